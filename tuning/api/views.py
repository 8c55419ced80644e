"""The tuning API on the instance host. Thin views: read the request, call one selector or
service, serialize. Permissions are checked by the services and the scoped selectors."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from spokestack.accounts import policy
from spokestack.accounts import selectors as account_selectors
from spokestack.accounts import services as account_services
from spokestack.api.pagination import Pagination
from spokestack.api.params import choice_param, int_param, text_param
from spokestack.api.views import InstanceApiView, validated_body
from spokestack.errors import InvalidInput, NotFound

from .. import audit as audit_log
from .. import selectors, services
from ..assembly import assemble_prompt, platform_tier_for
from ..models import ApprovedExample, ContentRule, MemoryStatus
from ..precedence import CLIENT_FIELDS, EMPTY, INSTANCE_FIELDS, effective_instance
from . import auditlog
from .serializers import (
    AgentTuningSerializer,
    ApprovedExampleSerializer,
    AssignmentCreateSerializer,
    AssignmentSerializer,
    ClientCreateSerializer,
    ClientSerializer,
    ClientTuningSerializer,
    ClientUpdateSerializer,
    ContentRuleCreateSerializer,
    ContentRuleSerializer,
    InstanceTuningSerializer,
    MemoryCreateSerializer,
    MemoryDecisionSerializer,
    MemoryEditSerializer,
    MemorySerializer,
    PromptPreviewSerializer,
    RollbackSerializer,
    TuningChangeSerializer,
)

AUDIT_KEYS = ("reason", "ticket")


class TuningView(InstanceApiView):
    """Fails closed (InstanceApiView)."""

    @staticmethod
    def split(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        audit = {key: str(data.pop(key) or "") for key in AUDIT_KEYS if key in data}
        return data, audit

    def client(self, client_id: int):
        return selectors.client_get(actor=self.request.user, client_id=client_id)


AUTO_ACCEPT = services.AUTO_ACCEPT  # instance-wide only; written by memory_auto_accept_set
REQUIRE_EVAL = "require_eval_for_tuning"  # instance-wide only; written by versions.evals.services.require_eval_set


def _instance_payload(row, agent_type: str) -> dict[str, Any]:
    if row is None:
        payload = {"agent_type": agent_type, **{f: EMPTY[k] for f, k in INSTANCE_FIELDS.items()},
                   AUTO_ACCEPT: False, REQUIRE_EVAL: False, "updated_at": None}
    else:
        payload = dict(InstanceTuningSerializer(row).data)
    if agent_type:
        payload.pop(AUTO_ACCEPT, None)
        payload.pop(REQUIRE_EVAL, None)
    return payload


class InstanceTuningView(TuningView):
    action = {"get": "instance_tuning.view", "put": "instance_tuning.edit"}

    @extend_schema(responses=InstanceTuningSerializer, summary="The instance-wide tuning (tier 2).")
    def get(self, request):
        return Response(_instance_payload(selectors.instance_tuning_get(actor=request.user), ""))

    @extend_schema(request=InstanceTuningSerializer, responses=InstanceTuningSerializer,
                   summary="Change instance-wide tuning fields; only the fields sent change.")
    def put(self, request):
        changes, audit = self.split(self.body())
        auto_accept = changes.pop(AUTO_ACCEPT, None)
        require_eval = changes.pop(REQUIRE_EVAL, None)
        with transaction.atomic():  # the tuning fields and the instance-wide flags: all or none
            row = services.instance_tuning_update(actor=request.user, changes=changes, **audit)
            if auto_accept is not None:
                row = services.memory_auto_accept_set(actor=request.user, enabled=auto_accept, **audit)
            if require_eval is not None:
                from versions.evals.services import require_eval_set

                require_eval_set(actor=request.user, enabled=require_eval, **audit)
                row = selectors.instance_tuning_get(actor=request.user)
        return Response(_instance_payload(row, ""))


class AgentTuningView(TuningView):
    action = {"get": "instance_tuning.view", "put": "instance_tuning.edit"}

    @extend_schema(responses=AgentTuningSerializer,
                   summary="One agent type's tier-2 overrides, and the effective values with the platform's bounds.")
    def get(self, request, agent_type: str):
        platform = platform_tier_for(agent_type)
        row = selectors.instance_tuning_get(actor=request.user, agent_type=agent_type)
        effective = effective_instance(selectors.instance_tuning_rows(agent_type=agent_type), platform)
        bounds = {"max_effort": platform.max_effort, "max_tokens_limit": platform.max_tokens_limit,
                  "content_filters": list(platform.content_filters),
                  "confirmation_patterns": list(platform.confirmation_patterns)}
        return Response({**_instance_payload(row, agent_type), "effective": effective, "platform": bounds})

    @extend_schema(request=InstanceTuningSerializer, responses=InstanceTuningSerializer,
                   summary="Change one agent type's tier-2 overrides.")
    def put(self, request, agent_type: str):
        changes, audit = self.split(self.body())
        row = services.instance_tuning_update(actor=request.user, agent_type=agent_type, changes=changes, **audit)
        return Response(_instance_payload(row, agent_type))


ARCHIVED_PARAM = OpenApiParameter("archived", bool, description="true: only the archived clients; false "
                                  "(default): only the active ones.")


class ClientListView(TuningView):
    action = {"get": "client.view", "post": "client.create"}
    pagination_class = Pagination  # paged by hand; the attribute documents the envelope and its parameters

    @extend_schema(parameters=[ARCHIVED_PARAM], responses=ClientSerializer(many=True),
                   summary="The clients you may see (the active ones, or with ?archived=true the archived ones).")
    def get(self, request):
        archived = choice_param(request.query_params, "archived", ["true", "false"]) == "true"
        clients = selectors.clients_visible_to(actor=request.user).filter(archived_at__isnull=not archived)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(clients, request, view=self)
        return paginator.get_paginated_response(ClientSerializer(page, many=True).data)

    @extend_schema(request=ClientCreateSerializer, responses={201: ClientSerializer},
                   summary="Create a client (instance admins); audited, and its rollback archives the client.")
    def post(self, request):
        data = validated_body(ClientCreateSerializer, self.body())
        client = services.client_create(actor=request.user, **data)
        return Response(ClientSerializer(client).data, status=status.HTTP_201_CREATED)


class ClientArchiveView(TuningView):
    action = "client.edit"
    archive = True

    @extend_schema(request=RollbackSerializer, responses=ClientSerializer,
                   summary="Archive a client: new runs for it are refused (409), its history stays readable; "
                           "audited and reversible.")
    def post(self, request, client_id: int):
        client = self.client(client_id)
        _, audit = self.split(validated_body(RollbackSerializer, self.body() if request.data else {}))
        change = services.client_archive if self.archive else services.client_unarchive
        return Response(ClientSerializer(change(actor=request.user, client=client, **audit)).data)


class ClientUnarchiveView(ClientArchiveView):
    archive = False

    @extend_schema(request=RollbackSerializer, responses=ClientSerializer,
                   summary="Unarchive a client: it takes runs again; audited and reversible.")
    def post(self, request, client_id: int):
        return super().post(request, client_id)


def _assignment_payload(user, role: str) -> dict[str, Any]:
    return {"user_id": user.pk, "email": user.email, "name": user.get_full_name() or user.email, "role": role,
            "is_active": user.is_active}


class ClientAssignmentsView(TuningView):
    action = "client.assign"

    @extend_schema(responses=AssignmentSerializer(many=True),
                   summary="Who is assigned to the client (account managers and client contacts).")
    def get(self, request, client_id: int):
        client = self.client(client_id)
        policy.require(request.user, "client.assign", client)
        pairs = account_selectors.client_assignments(client=client)
        return Response(AssignmentSerializer([_assignment_payload(u, r) for u, r in pairs], many=True).data)

    @extend_schema(request=AssignmentCreateSerializer, responses={201: AssignmentSerializer},
                   summary="Assign an account manager or a client contact to the client; audited.")
    def post(self, request, client_id: int):
        client = self.client(client_id)
        data = validated_body(AssignmentCreateSerializer, self.body())
        user = account_selectors.person_get(user_id=data.pop("user_id"))
        role = data.pop("role", None) or account_services.role_of(user) or ""
        services.client_assign(actor=request.user, user=user, client=client, role=role, **data)
        return Response(AssignmentSerializer(_assignment_payload(user, role)).data, status=status.HTTP_201_CREATED)


class ClientAssignmentDetailView(TuningView):
    action = "client.assign"

    @extend_schema(parameters=[OpenApiParameter("reason", str, description="Why: kept in the audit log.")],
                   responses={204: None}, summary="Remove a person's assignment to the client; audited.")
    def delete(self, request, client_id: int, user_id: int):
        client = self.client(client_id)
        policy.require(request.user, "client.assign", client)
        held = [role for user, role in account_selectors.client_assignments(client=client) if user.pk == user_id]
        if not held:
            raise NotFound("That person is not assigned to this client.",
                           details={"client_id": client.pk, "user_id": user_id})
        user = account_selectors.person_get(user_id=user_id)
        with audit_log.group():
            for role in held:
                services.client_unassign(actor=request.user, user=user, client=client, role=role,
                                         reason=text_param(request.query_params, "reason"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ClientDetailView(TuningView):
    action = {"get": "client.view", "patch": "client.edit"}

    @extend_schema(responses=ClientSerializer, summary="One client.")
    def get(self, request, client_id: int):
        return Response(ClientSerializer(self.client(client_id)).data)

    @extend_schema(request=ClientUpdateSerializer, responses=ClientSerializer,
                   summary="Change a client's name, slug, vertical, region or language (instance admins); audited.")
    def patch(self, request, client_id: int):
        client = self.client(client_id)
        changes, audit = self.split(self.body())
        return Response(ClientSerializer(services.client_update(actor=request.user, client=client, changes=changes,
                                                                **audit)).data)


AGENT_TYPE_PARAM = OpenApiParameter("agent_type", str, description="An agent type's own row; omit for client-wide.")


class ClientTuningView(TuningView):
    # Changing only the client's preferences is the lesser action; the service asks for
    # client_tuning.edit when other fields change.
    action = {"get": "client.view", "put": "preferences.edit"}

    @extend_schema(parameters=[AGENT_TYPE_PARAM], responses=ClientTuningSerializer, summary="A client's tier-3 tuning.")
    def get(self, request, client_id: int):
        client = self.client(client_id)
        agent_type = request.query_params.get("agent_type", "")
        if agent_type:
            platform_tier_for(agent_type)
        row = selectors.client_tuning_get(client=client, agent_type=agent_type)
        if row is None:
            return Response({"client": client.pk, "agent_type": agent_type,
                             **{f: EMPTY[k] for f, k in CLIENT_FIELDS.items()}, "updated_at": None})
        return Response(ClientTuningSerializer(row).data)

    @extend_schema(parameters=[AGENT_TYPE_PARAM], request=ClientTuningSerializer, responses=ClientTuningSerializer,
                   summary="Change a client's tier-3 fields; only the fields sent change.")
    def put(self, request, client_id: int):
        changes, audit = self.split(self.body())
        policy.require(request.user, services.client_tuning_action(changes))  # which fields: before which client
        client = self.client(client_id)
        row = services.client_tuning_update(actor=request.user, client=client, changes=changes,
                                            agent_type=request.query_params.get("agent_type", ""), **audit)
        return Response(ClientTuningSerializer(row).data)


class ClientRulesView(TuningView):
    action = {"get": "client.view", "post": "client_rule.add"}

    @extend_schema(responses=ContentRuleSerializer(many=True), summary="A client's always / never / prefer rules.")
    def get(self, request, client_id: int):
        return Response(ContentRuleSerializer(selectors.client_rules(client=self.client(client_id)), many=True).data)

    @extend_schema(request=ContentRuleCreateSerializer, responses={201: ContentRuleSerializer(many=True)},
                   summary="Add a rule, or several with {\"rules\": [...]} (all or none).")
    def post(self, request, client_id: int):
        client = self.client(client_id)
        data, audit = self.split(self.body())
        if "rules" in data:
            added = services.client_rules_add(actor=request.user, client=client, rules=data.pop("rules"), **audit)
            return Response(ContentRuleSerializer(added, many=True).data, status=status.HTTP_201_CREATED)
        rule = services.client_rule_add(actor=request.user, client=client, **services.content_rule_validate(data),
                                        **audit)
        return Response(ContentRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class ClientRuleDetailView(TuningView):
    action = {"patch": "client_rule.change", "delete": "client_rule.remove"}

    def rule(self, client_id: int, rule_id: int) -> ContentRule:
        rule = ContentRule.objects.filter(client=self.client(client_id), pk=rule_id).select_related("client").first()
        if rule is None:
            raise NotFound("No such rule for this client.", details={"rule_id": rule_id})
        return rule

    @extend_schema(request=ContentRuleSerializer, responses=ContentRuleSerializer,
                   summary="Change a rule's text, kind, agent type or active flag.")
    def patch(self, request, client_id: int, rule_id: int):
        changes, audit = self.split(self.body())
        rule = services.client_rule_update(actor=request.user, rule=self.rule(client_id, rule_id), changes=changes,
                                           **audit)
        return Response(ContentRuleSerializer(rule).data)

    @extend_schema(responses={204: None}, summary="Remove a rule.")
    def delete(self, request, client_id: int, rule_id: int):
        services.client_rule_remove(actor=request.user, rule=self.rule(client_id, rule_id),
                                    reason=request.query_params.get("reason", ""))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ClientExamplesView(TuningView):
    action = {"get": "client.view", "post": "example.add"}

    @extend_schema(responses=ApprovedExampleSerializer(many=True), summary="A client's approved examples.")
    def get(self, request, client_id: int):
        examples = selectors.client_examples(client=self.client(client_id))
        return Response(ApprovedExampleSerializer(examples, many=True).data)

    @extend_schema(request=ApprovedExampleSerializer, responses={201: ApprovedExampleSerializer},
                   summary="Add an approved example.")
    def post(self, request, client_id: int):
        client = self.client(client_id)
        data, audit = self.split(self.body())
        fields = services.approved_example_validate(data)
        example = services.client_example_add(actor=request.user, client=client, **fields, **audit)
        return Response(ApprovedExampleSerializer(example).data, status=status.HTTP_201_CREATED)


class ClientExampleDetailView(TuningView):
    action = {"delete": "example.remove"}

    @extend_schema(responses={204: None}, summary="Remove an approved example.")
    def delete(self, request, client_id: int, example_id: int):
        example = ApprovedExample.objects.filter(client=self.client(client_id), pk=example_id).first()
        if example is None:
            raise NotFound("No such example for this client.", details={"example_id": example_id})
        services.client_example_remove(actor=request.user, example=example,
                                       reason=request.query_params.get("reason", ""))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditListView(TuningView):
    """Every configuration change (tuning, clients and assignments, skills, version settings,
    feedback settings, roles, suggestions), newest first, filtered by entity, actor, client and
    date. Instance admins and managers read all of it; an account manager their clients' entries."""

    action = "audit.view"
    pagination_class = Pagination
    content_negotiation_class = auditlog.FormatIsAParameter

    @extend_schema(parameters=[*auditlog.FILTER_PARAMETERS, auditlog.LIST_FORMAT],
                   responses=TuningChangeSerializer(many=True),
                   summary="The audit log of every configuration change (admins and managers: all; account "
                           "managers: their clients').")
    def get(self, request):
        if auditlog.export_format(request.query_params, default=None) == "csv":
            raise InvalidInput("format: this list is JSON; export CSV with GET /api/v1/tuning/audit/export?format=csv "
                               "(the same filters).", details={"format": ["json"]})
        changes = auditlog.filter_entries(selectors.tuning_changes_visible_to(actor=request.user),
                                          request.query_params)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(changes, request, view=self)
        return paginator.get_paginated_response(TuningChangeSerializer(page, many=True).data)


class AuditExportView(TuningView):
    """The audit log as a file for compliance: the list's filters and scoping, every matching entry
    (not a page), streamed."""

    action = "audit.view"
    content_negotiation_class = auditlog.FormatIsAParameter

    @extend_schema(parameters=[*auditlog.FILTER_PARAMETERS, auditlog.EXPORT_FORMAT],
                   responses=auditlog.EXPORT_RESPONSES,
                   summary="Export the audit log as CSV or JSON (the list's filters and scoping; streamed).")
    def get(self, request):
        fmt = auditlog.export_format(request.query_params)
        changes = auditlog.filter_entries(selectors.tuning_changes_visible_to(actor=request.user),
                                          request.query_params)
        return auditlog.export_response(changes, fmt)


class ClientAuditView(TuningView):
    action = "audit.view"
    pagination_class = Pagination

    @extend_schema(responses=TuningChangeSerializer(many=True), summary="The audit log of one client.")
    def get(self, request, client_id: int):
        client = self.client(client_id)
        paginator = self.pagination_class()
        changes = selectors.tuning_changes_visible_to(actor=request.user, client=client)
        page = paginator.paginate_queryset(changes, request, view=self)
        return paginator.get_paginated_response(TuningChangeSerializer(page, many=True).data)


class RollbackView(TuningView):
    action = "audit.rollback"

    @extend_schema(request=RollbackSerializer, responses={201: TuningChangeSerializer},
                   summary="Restore what an audit entry replaced; 409 with both values if it changed since.")
    def post(self, request, audit_id: int):
        change = selectors.tuning_change_get(actor=request.user, change_id=audit_id)
        _, audit = self.split(self.body() if request.data else {})
        entry = services.tuning_rollback(actor=request.user, change=change, **audit)
        return Response(TuningChangeSerializer(entry).data, status=status.HTTP_201_CREATED)


def preview_payload(prompt) -> dict[str, Any]:
    return {
        "agent_type": prompt.agent_type, "version": prompt.version, "client_id": prompt.client_id,
        "specialization": prompt.specialization,
        "sections": [{"tier": s.tier, "field": s.field, "text": s.text} for s in prompt.sections],
        "system": prompt.system, "tools": prompt.tools, "effort": prompt.effort,
        "max_tokens": prompt.max_tokens, "require_approval": list(prompt.require_approval),
        "disabled_tools": list(prompt.disabled_tools), "rules": [r.as_dict() for r in prompt.rules],
        "token_estimate": prompt.token_estimate,
    }


class PromptPreviewView(TuningView):
    action = "prompt.preview"

    @extend_schema(
        parameters=[OpenApiParameter("client_id", int), OpenApiParameter("vertical", str),
                    OpenApiParameter("region", str), OpenApiParameter("language", str)],
        responses=PromptPreviewSerializer,
        summary="The prompt an agent would get now, each section labelled by tier and field.",
    )
    def get(self, request, agent_type: str):
        platform = platform_tier_for(agent_type)
        client_id = int_param(request.query_params, "client_id", minimum=1,
                              wanted="give the client's id in ASCII digits, e.g. 12.")
        client = self.client(client_id) if client_id is not None else None
        # Tier 2 shows in every preview; without a client, the preview is tiers 1-2 only.
        if client is None:
            policy.require(request.user, "instance_tuning.view")
        else:
            policy.require(request.user, "prompt.preview", client)
        spec = {key: value for key in ("vertical", "region", "language")
                if (value := text_param(request.query_params, key))}
        prompt = assemble_prompt(platform=platform, client=client, specialization=spec or None)
        return Response(preview_payload(prompt))


# --- memory (tier 3) ---------------------------------------------------------------------------

MEMORY_FILTERS = [
    OpenApiParameter("client_id", int, description="Only this client's memories."),
    OpenApiParameter("agency", bool, description="true: only agency-wide memories (no client)."),
    OpenApiParameter("status", str, enum=[s.value for s in MemoryStatus], description="Only memories in this status."),
]


class MemoryListView(TuningView):
    """Facts agents are told about a client (accepted) or that wait for a decision (proposed)."""

    action = {"get": "memory.view", "post": "memory.propose"}
    pagination_class = Pagination

    @extend_schema(parameters=MEMORY_FILTERS, responses=MemorySerializer(many=True),
                   summary="The memories you may see, newest first (?client_id=, ?status=, ?agency=true).")
    def get(self, request):
        params = request.query_params
        client_id = int_param(params, "client_id", minimum=1)
        if client_id is not None:
            self.client(client_id)  # 404 for a client you may not see
        status_ = choice_param(params, "status", [s.value for s in MemoryStatus]) or ""
        agency = choice_param(params, "agency", ["true", "false"]) == "true"
        memories = selectors.memories_visible_to(actor=request.user, client_id=client_id, status=status_,
                                                 agency_wide=agency)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(memories, request, view=self)
        return paginator.get_paginated_response(MemorySerializer(page, many=True).data)

    @extend_schema(request=MemoryCreateSerializer, responses={201: MemorySerializer},
                   summary="Write a memory (accepted at once), or propose one with status \"proposed\".")
    def post(self, request):
        data, audit = self.split(validated_body(MemoryCreateSerializer, self.body()))
        client_id = data.get("client_id")
        client = self.client(client_id) if client_id is not None else None
        common = {"actor": request.user, "client": client, "text": data["text"],
                  "expires_at": data.get("expires_at"), **audit}
        if data.get("status") == "proposed":
            memory = services.memory_propose(**common)
        else:
            memory = services.memory_create(**common)
        return Response(MemorySerializer(memory).data, status=status.HTTP_201_CREATED)


class MemoryDetailView(TuningView):
    action = {"get": "memory.view", "patch": "memory.decide", "delete": "memory.write"}

    def memory(self, memory_id: int):
        return selectors.memory_get(actor=self.request.user, memory_id=memory_id)

    @extend_schema(responses=MemorySerializer, summary="One memory.")
    def get(self, request, memory_id: int):
        return Response(MemorySerializer(self.memory(memory_id)).data)

    @extend_schema(request=MemoryEditSerializer, responses=MemorySerializer,
                   summary="Change a memory's text or expiry (audited, reversible).")
    def patch(self, request, memory_id: int):
        changes, audit = self.split(self.body())
        memory = services.memory_edit(actor=request.user, memory=self.memory(memory_id), changes=changes, **audit)
        return Response(MemorySerializer(memory).data)

    @extend_schema(responses={204: None}, summary="Delete a memory (its audit entry can bring it back).")
    def delete(self, request, memory_id: int):
        services.memory_delete(actor=request.user, memory=self.memory(memory_id),
                               reason=request.query_params.get("reason", ""))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemoryAcceptView(TuningView):
    action = "memory.decide"
    decide = staticmethod(services.memory_accept)

    @extend_schema(request=MemoryDecisionSerializer, responses=MemorySerializer,
                   summary="Accept a memory: the client's next runs are told it. An expired memory is accepted "
                           "again with a new expires_at (in the future, or null for never).")
    def post(self, request, memory_id: int):
        memory = selectors.memory_get(actor=request.user, memory_id=memory_id)
        data, audit = self.split(self.body() if request.data else {})
        if "expires_at" in data:
            if self.decide is not services.memory_accept:
                raise InvalidInput("expires_at: only an accept takes a new expiry; change it with PATCH "
                                   f"/api/v1/memories/{memory.pk}.", details={"expires_at": ["not here"]})
            audit["expires_at"] = data["expires_at"]
        return Response(MemorySerializer(self.decide(actor=request.user, memory=memory, **audit)).data)


class MemoryRejectView(MemoryAcceptView):
    decide = staticmethod(services.memory_reject)

    @extend_schema(request=MemoryDecisionSerializer, responses=MemorySerializer,
                   summary="Reject a memory: no run is told it (it stays, for the record).")
    def post(self, request, memory_id: int):
        return super().post(request, memory_id)
