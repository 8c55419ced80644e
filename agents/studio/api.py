"""`/api/v1/studio/agents` (agency-built agents, issue #18) and `/api/v1/tools` (the tool library).

Thin views over `services`: the base view asks the policy per method (`studio.view`, `studio.build`;
the library: `agent.view`), the services ask again and audit. A definition is the JSON contract of
`definition.DEFINITION_SCHEMA` (served at `/api/v1/studio/schema`).
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from spokestack.api.params import int_param
from spokestack.api.views import InstanceApiView, validated_body

from . import services
from .definition import DEFINITION_SCHEMA
from .library import library
from .models import AgencyAgent, AgentVersion


class StudioToolSerializer(serializers.Serializer):
    ref = serializers.CharField(help_text="How an agent's definition names it: <group>.<tool>.")
    group = serializers.CharField(help_text="The core agent it comes from, core (every agent's) or skill.")
    name = serializers.CharField(help_text="The name the model calls it by.")
    description = serializers.CharField()
    input_schema = serializers.JSONField()
    side_effect = serializers.BooleanField(help_text="Writes outside the platform (simulated in sandbox runs).")
    read_only = serializers.BooleanField()


class StudioVersionSerializer(serializers.ModelSerializer):
    version = serializers.CharField(source="semver", read_only=True, help_text="As runs record it: 2.0.0.")
    published_by = serializers.CharField(source="published_by.username", default=None, read_only=True)

    class Meta:
        model = AgentVersion
        fields = ["number", "version", "change_note", "published_by", "published_at", "definition"]
        read_only_fields = fields


class StudioAgentSerializer(serializers.ModelSerializer):
    current_version = serializers.IntegerField(source="current_version.number", default=None, read_only=True)
    has_unpublished_changes = serializers.SerializerMethodField()
    versions = serializers.SerializerMethodField()

    class Meta:
        model = AgencyAgent
        fields = ["slug", "title", "status", "current_version", "has_unpublished_changes", "draft", "versions",
                  "created_at", "updated_at"]
        read_only_fields = fields

    def get_has_unpublished_changes(self, agent: AgencyAgent) -> bool:
        return agent.current_version is None or agent.current_version.definition != agent.draft

    def get_versions(self, agent: AgencyAgent) -> list[dict]:
        # agent.versions.all(): prefetched by the list (one query for every agent's versions)
        rows = sorted((v for v in agent.versions.all() if v.number is not None), key=lambda v: -v.number)
        return [{"number": v.number, "version": v.semver, "change_note": v.change_note,
                 "published_at": v.published_at.isoformat()} for v in rows]


class StudioAgentCreateSerializer(serializers.Serializer):
    slug = serializers.CharField(help_text="Its agent_type: 2–40 of a-z, 0-9 and _, never a core agent's.")
    definition = serializers.JSONField(help_text="The definition (GET /api/v1/studio/schema).")
    reason = serializers.CharField(required=False, allow_blank=True)
    ticket = serializers.CharField(required=False, allow_blank=True)


class StudioDraftSerializer(serializers.Serializer):
    definition = serializers.JSONField(help_text="The new draft: published versions change only when it is "
                                                 "published.")
    reason = serializers.CharField(required=False, allow_blank=True)
    ticket = serializers.CharField(required=False, allow_blank=True)


class StudioPublishSerializer(serializers.Serializer):
    change_note = serializers.CharField(help_text="What this version changes (in the version history).")
    reason = serializers.CharField(required=False, allow_blank=True)
    ticket = serializers.CharField(required=False, allow_blank=True)


class StudioRollbackSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="The earlier version to publish again.")
    reason = serializers.CharField(required=False, allow_blank=True)
    ticket = serializers.CharField(required=False, allow_blank=True)


class StudioArchiveSerializer(serializers.Serializer):
    archived = serializers.BooleanField(help_text="true: no new runs or threads; false: back in use.")
    reason = serializers.CharField(required=False, allow_blank=True)
    ticket = serializers.CharField(required=False, allow_blank=True)


class StudioTestRunSerializer(serializers.Serializer):
    task = serializers.CharField(help_text="What to try the draft on.")
    client_id = serializers.IntegerField(required=False, allow_null=True)
    thread = serializers.BooleanField(required=False, default=False,
                                      help_text="true: a test thread (send the next messages to /api/v1/threads/"
                                                "{id}/messages; every turn is sandboxed).")


class StudioTestRunCreatedSerializer(serializers.Serializer):
    run_id = serializers.UUIDField()
    agent_version = serializers.CharField(help_text="The draft as frozen for the test: 0.0.<id>-test.")
    thread_id = serializers.UUIDField(allow_null=True)
    status_url = serializers.CharField()


class ToolLibraryView(InstanceApiView):
    """Every tool an agent may be given: each core agent's, the core ones, and this instance's skills."""

    action = "agent.view"

    @extend_schema(responses=StudioToolSerializer(many=True), summary="The tool library.")
    def get(self, request):
        return Response([entry.as_dict() for entry in library()])


class StudioSchemaView(InstanceApiView):
    action = "studio.view"

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="The JSON Schema of an agent definition (the contract).")
    def get(self, request):
        return Response(DEFINITION_SCHEMA)


class StudioAgentListView(InstanceApiView):
    """Agency-built agents: drafts, published and archived."""

    action = {"get": "studio.view", "post": "studio.build"}

    @extend_schema(responses=StudioAgentSerializer(many=True), summary="The instance's agency-built agents.")
    def get(self, request):
        agents = AgencyAgent.objects.select_related("current_version").prefetch_related("versions").order_by("slug")
        return Response(StudioAgentSerializer(agents, many=True).data)

    @extend_schema(request=StudioAgentCreateSerializer, responses={201: StudioAgentSerializer},
                   summary="Create an agent with its first draft (publish it to run it).")
    def post(self, request):
        body = validated_body(StudioAgentCreateSerializer, request.data)
        agent = services.agent_create(actor=request.user, slug=body["slug"], definition=body["definition"],
                                      reason=body.get("reason", ""), ticket=body.get("ticket", ""))
        return Response(StudioAgentSerializer(agent).data, status=status.HTTP_201_CREATED)


class StudioAgentView(InstanceApiView):
    action = {"get": "studio.view", "put": "studio.build"}

    @extend_schema(responses=StudioAgentSerializer, summary="One agent: its draft, current version and history.")
    def get(self, request, slug: str):
        return Response(StudioAgentSerializer(services.agent_get(actor=request.user, slug=slug)).data)

    @extend_schema(request=StudioDraftSerializer, responses=StudioAgentSerializer, summary="Replace the draft.")
    def put(self, request, slug: str):
        body = validated_body(StudioDraftSerializer, request.data)
        agent = services.agent_draft_update(actor=request.user, slug=slug, definition=body["definition"],
                                            reason=body.get("reason", ""), ticket=body.get("ticket", ""))
        return Response(StudioAgentSerializer(agent).data)


class StudioPublishView(InstanceApiView):
    action = "studio.build"

    @extend_schema(request=StudioPublishSerializer, responses={201: StudioVersionSerializer},
                   summary="Publish the draft as the next version: new runs use it, runs started keep theirs.")
    def post(self, request, slug: str):
        body = validated_body(StudioPublishSerializer, request.data)
        version = services.agent_publish(actor=request.user, slug=slug, change_note=body["change_note"],
                                         reason=body.get("reason", ""), ticket=body.get("ticket", ""))
        return Response(StudioVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class StudioRollbackView(InstanceApiView):
    action = "studio.build"

    @extend_schema(request=StudioRollbackSerializer, responses={201: StudioVersionSerializer},
                   summary="Publish an earlier version again (as the next version).")
    def post(self, request, slug: str):
        body = validated_body(StudioRollbackSerializer, request.data)
        version = services.agent_rollback(actor=request.user, slug=slug, number=body["version"],
                                          reason=body.get("reason", ""), ticket=body.get("ticket", ""))
        return Response(StudioVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class StudioArchiveView(InstanceApiView):
    action = "studio.build"

    @extend_schema(request=StudioArchiveSerializer, responses=StudioAgentSerializer, summary="Archive or unarchive an agent.")
    def post(self, request, slug: str):
        body = validated_body(StudioArchiveSerializer, request.data)
        agent = services.agent_archive(actor=request.user, slug=slug, archived=body["archived"],
                                       reason=body.get("reason", ""), ticket=body.get("ticket", ""))
        return Response(StudioAgentSerializer(agent).data)


class StudioTestRunView(InstanceApiView):
    action = "studio.build"

    @extend_schema(request=StudioTestRunSerializer, responses={202: StudioTestRunCreatedSerializer},
                   summary="Try the draft: a sandbox run or thread (side effects simulated), before publishing.")
    def post(self, request, slug: str):
        body = validated_body(StudioTestRunSerializer, request.data)
        created = services.agent_test_run(actor=request.user, slug=slug, task=body["task"],
                                          client_id=body.get("client_id"), thread=body.get("thread", False))
        run = created.run
        return Response({"run_id": str(run.pk), "agent_version": run.agent_version,
                         "thread_id": str(run.thread_id) if run.thread_id else None,
                         "status_url": f"/api/v1/agent/status/{run.pk}"}, status=status.HTTP_202_ACCEPTED)


class StudioExportView(InstanceApiView):
    action = "studio.view"

    @extend_schema(parameters=[OpenApiParameter("version", int, description="A published version; default: the "
                                                                             "current one.")],
                   responses=OpenApiTypes.OBJECT, summary="The agent's JSON contract (import it in another instance).")
    def get(self, request, slug: str):
        number = int_param(request.query_params, "version", minimum=1)
        return Response(services.agent_export(actor=request.user, slug=slug, number=number))


class StudioImportView(InstanceApiView):
    action = "studio.build"

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: StudioAgentSerializer},
                   summary="Create and publish an agent from an exported contract.")
    def post(self, request):
        agent = services.agent_import(actor=request.user, contract=request.data)
        return Response(StudioAgentSerializer(agent).data, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("tools", ToolLibraryView.as_view(), name="tools"),
    path("studio/schema", StudioSchemaView.as_view(), name="studio-schema"),
    path("studio/agents", StudioAgentListView.as_view(), name="studio-agents"),
    path("studio/agents/import", StudioImportView.as_view(), name="studio-import"),
    path("studio/agents/<str:slug>", StudioAgentView.as_view(), name="studio-agent"),
    path("studio/agents/<str:slug>/publish", StudioPublishView.as_view(), name="studio-publish"),
    path("studio/agents/<str:slug>/rollback", StudioRollbackView.as_view(), name="studio-rollback"),
    path("studio/agents/<str:slug>/archive", StudioArchiveView.as_view(), name="studio-archive"),
    path("studio/agents/<str:slug>/test", StudioTestRunView.as_view(), name="studio-test"),
    path("studio/agents/<str:slug>/export", StudioExportView.as_view(), name="studio-export"),
]
