"""The version-control API on the instance host (issue 7 item 8). Thin: read, call, serialize.
Each view names its policy action (InstanceApiView); the services check it again."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from spokestack.api.params import choice_param
from spokestack.api.views import InstanceApiView

from .. import selectors, services
from ..comparison import compare, session_dict
from ..models import UpdateNotification
from .serializers import (
    AgentVersionsSerializer,
    ComparisonSerializer,
    ReasonSerializer,
    ReviewedUpdateSerializer,
    ReviewSerializer,
    SandboxCreateSerializer,
    SandboxSessionSerializer,
    SandboxTestSerializer,
    UpdateListSerializer,
    VersionConfigSerializer,
    VersionRollbackSerializer,
    VersionStateSerializer,
)


class VersionsView(InstanceApiView):
    """Fails closed (InstanceApiView)."""


def _session_id(session_id: str) -> str:
    import uuid

    from spokestack.errors import NotFound

    try:
        return str(uuid.UUID(session_id))
    except ValueError:
        raise NotFound(f"No sandbox session {session_id} in this instance.") from None


class AgentVersionsView(VersionsView):
    action = "version.view"

    @extend_schema(responses=AgentVersionsSerializer,
                   summary="Released versions of an agent type, with release notes and changes.")
    def get(self, request, agent_type: str):
        return Response({"agent_type": agent_type,
                         "versions": selectors.catalog_versions(actor=request.user, agent_type=agent_type)})


class AgentVersionView(VersionsView):
    action = {"get": "version.view", "put": "version.configure"}

    @extend_schema(responses=VersionStateSerializer,
                   summary="This instance's version of an agent type: current, pinned, policy, history.")
    def get(self, request, agent_type: str):
        return Response(selectors.version_state(actor=request.user, agent_type=agent_type))

    @extend_schema(request=VersionConfigSerializer, responses=VersionStateSerializer,
                   summary="Pin or unpin a version, set the update policy, optimization preferences, notifications.")
    def put(self, request, agent_type: str):
        data = self.body()
        reason = str(data.pop("reason", "") or "")
        services.version_config_update(actor=request.user, agent_type=agent_type, changes=data, reason=reason)
        return Response(selectors.version_state(actor=request.user, agent_type=agent_type))


class RollbackView(VersionsView):
    action = "version.configure"

    @extend_schema(request=VersionRollbackSerializer, responses=VersionStateSerializer,
                   summary="Roll back to an earlier version with a reason (force for a never-activated one).")
    def post(self, request, agent_type: str):
        data = self.body()
        services.version_rollback(actor=request.user, agent_type=agent_type, version=data.get("version"),
                                  reason=data.get("reason"), force=data.get("force") is True)
        return Response(selectors.version_state(actor=request.user, agent_type=agent_type))


class UpdatesView(VersionsView):
    action = "version.view"

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=UpdateNotification.Status.values)],
                   responses=UpdateListSerializer,
                   summary="Update notifications of this instance (filter with ?status=pending).")
    def get(self, request):
        wanted = choice_param(request.query_params, "status", UpdateNotification.Status.values)
        rows = selectors.notifications(actor=request.user, status=wanted)
        return Response({"results": [selectors.notification_dict(n) for n in rows[:200]]})


class ReviewView(VersionsView):
    action = "version.configure"

    @extend_schema(request=ReviewSerializer, responses=ReviewedUpdateSerializer,
                   summary="Review an update: approve, reject (pin current), sandbox or defer.")
    def post(self, request, notification_id: int):
        data = self.body()
        notification, session = services.notification_review(
            actor=request.user, notification_id=notification_id, action=data.get("action"),
            reason=str(data.get("reason") or ""))
        body = selectors.notification_dict(notification)
        if session is not None:
            body["sandbox"] = session_dict(session, with_tests=False)
        return Response(body)


class SandboxCreateView(VersionsView):
    action = "sandbox.run"

    @extend_schema(request=SandboxCreateSerializer, responses={201: SandboxSessionSerializer},
                   summary="Open a sandbox session: the current version against a test version, for 24 hours.")
    def post(self, request):
        data = self.body()
        session = services.sandbox_create(actor=request.user, agent_type=data.get("agent_type"),
                                          test_version=data.get("test_version"))
        return Response(session_dict(session), status=status.HTTP_201_CREATED)


class SandboxDetailView(VersionsView):
    action = "sandbox.view"

    @extend_schema(responses=SandboxSessionSerializer,
                   summary="A sandbox session with every test and its side-by-side comparison.")
    def get(self, request, session_id: str):
        session = selectors.sandbox_get(actor=request.user, session_id=_session_id(session_id))
        return Response(session_dict(session))


class SandboxTestView(VersionsView):
    action = "sandbox.run"

    @extend_schema(request=SandboxTestSerializer, responses={202: ComparisonSerializer},
                   summary="Run a task on both versions (sandbox runs, concurrently); returns the pending comparison.")
    def post(self, request, session_id: str):
        data = self.body()
        test = services.sandbox_test_add(actor=request.user, session_id=_session_id(session_id),
                                         task=data.get("task"), client_id=data.get("client_id"),
                                         specialization=data.get("specialization"))
        return Response(compare(test), status=status.HTTP_202_ACCEPTED)


class SandboxEvalsView(VersionsView):
    action = "sandbox.run"

    @extend_schema(request=None, responses={202: SandboxSessionSerializer},
                   summary="Run the eval set on both versions of the session again (e.g. after cases changed).")
    def post(self, request, session_id: str):
        services.sandbox_evals_run(actor=request.user, session_id=_session_id(session_id))
        session = selectors.sandbox_get(actor=request.user, session_id=_session_id(session_id))
        return Response(session_dict(session), status=status.HTTP_202_ACCEPTED)


class SandboxPromoteView(VersionsView):
    action = "sandbox.decide"

    @extend_schema(request=ReasonSerializer, responses=VersionStateSerializer,
                   summary="Promote the tested version: it becomes current, recorded in the history.")
    def post(self, request, session_id: str):
        data = self.body()
        config = services.sandbox_promote(actor=request.user, session_id=_session_id(session_id),
                                          reason=data.get("reason"), notes=data.get("notes"))
        return Response(selectors.version_state(actor=request.user, agent_type=config.agent_type))


class SandboxRejectView(VersionsView):
    action = "sandbox.decide"

    @extend_schema(request=ReasonSerializer, responses=VersionStateSerializer,
                   summary="Reject the tested version: stay on the current one, pinned, recorded in the history.")
    def post(self, request, session_id: str):
        data = self.body()
        config = services.sandbox_reject(actor=request.user, session_id=_session_id(session_id),
                                         reason=data.get("reason"), notes=data.get("notes"))
        return Response(selectors.version_state(actor=request.user, agent_type=config.agent_type))


class SandboxDeferView(VersionsView):
    action = "sandbox.decide"

    @extend_schema(request=ReasonSerializer, responses=SandboxSessionSerializer,
                   summary="Defer the decision: the session ends, the update stays open for a later review.")
    def post(self, request, session_id: str):
        data = self.body()
        session = services.sandbox_defer(actor=request.user, session_id=_session_id(session_id),
                                         reason=data.get("reason"), notes=data.get("notes"))
        return Response(session_dict(session))
