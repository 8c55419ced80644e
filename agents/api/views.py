"""Agent API on the instance host (`/api/v1/…`): execute, follow, cancel, list."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from django.http import StreamingHttpResponse
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from spokestack.errors import InvalidInput, NotAllowed

from ..approvals import approval_decide, approvals_visible_to, may_approve
from ..models import ApprovalStatus, RunStatus
from ..registry import agent_types, get_spec
from ..selectors import run_get, runs_visible_to
from ..services import run_cancel, run_create, run_version_for
from ..streaming import StreamInterrupted, run_event_stream
from .serializers import (
    AgentSerializer,
    ApprovalSerializer,
    DecisionSerializer,
    ExecuteSerializer,
    RunDetailSerializer,
    RunSerializer,
)

logger = logging.getLogger(__name__)

ExecuteAccepted = inline_serializer("ExecuteAccepted", {
    "run_id": serializers.UUIDField(), "status": serializers.CharField(), "status_url": serializers.CharField(),
    "events_url": serializers.CharField(), "websocket_url": serializers.CharField(),
    "replayed": serializers.BooleanField(),
    "note": serializers.CharField(required=False, help_text="Present when the job queue was unavailable: the run "
                                  "is saved and starts when the queue recovers.")})


class EventStreamRenderer(BaseRenderer):
    """Lets clients that send `Accept: text/event-stream` reach the streaming endpoints. The
    stream itself is a StreamingHttpResponse; what this renders is an error before it starts,
    as one SSE `error` event (the HTTP status says the rest)."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return f"event: error\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode()


STREAMING_RENDERERS = [JSONRenderer, EventStreamRenderer]


def _links(request, run_id) -> dict:
    ws_scheme = "wss" if request.is_secure() else "ws"
    return {
        "status_url": request.build_absolute_uri(f"/api/v1/agent/status/{run_id}"),
        "events_url": request.build_absolute_uri(f"/api/v1/agent/runs/{run_id}/events"),
        "websocket_url": f"{ws_scheme}://{request.get_host()}/ws/runs/{run_id}/",
    }


async def _sse(instance, run_id: str, after_seq: int) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    last = after_seq
    try:
        async for event in run_event_stream(instance=instance, run_id=run_id, after_seq=after_seq):
            if event is None:
                yield b": keep-alive\n\n"
                continue
            if isinstance(event, StreamInterrupted):
                # The last event: a dependency stayed down. `id:` is what an EventSource sends back
                # as Last-Event-ID when it reconnects (after `retry:`), also when nothing came before.
                data = json.dumps(event.as_dict(resume=f"Last-Event-ID: {event.last_seq}"), ensure_ascii=False)
                yield f"id: {event.last_seq}\nevent: reconnect\ndata: {data}\n\n".encode()
                return
            data = json.dumps(event.as_dict(), ensure_ascii=False, default=str)
            last = event.seq
            yield f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()
    except Exception:
        # Never a stream that hangs: the client is told, and may reconnect from what it saw.
        logger.exception("the event stream of run %s failed", run_id)
        data = json.dumps({"last_seq": last, "message": "The stream failed on the server; reconnect with "
                           f"Last-Event-ID: {last}."})
        yield f"id: {last}\nevent: error\ndata: {data}\n\n".encode()


def sse_response(request, run_id: str, after_seq: int) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_sse(request.tenant, str(run_id), after_seq), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _after_seq(request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query_params.get("after") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput("Last-Event-ID (or ?after=) must be the integer seq of the last event you saw.") from None
    if value < 0:
        raise InvalidInput("Last-Event-ID (or ?after=) cannot be negative.")
    return value


class ExecuteView(APIView):
    renderer_classes = STREAMING_RENDERERS
    @extend_schema(
        request=ExecuteSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
                                     description="Repeat a request safely: the same key returns the same run.")],
        responses={202: ExecuteAccepted, 200: OpenApiResponse(description="text/event-stream when stream=true")},
        summary="Run an agent on a task. 202 with the run id, or the live event stream with stream=true.")
    def post(self, request):
        body = ExecuteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        created = run_create(
            actor=request.user, agent_type=data["agent_type"], task=data["task"], client_id=data.get("client_id"),
            metadata=data.get("metadata"), specialization=data.get("specialization"),
            idempotency_key=request.headers.get("Idempotency-Key", ""))
        run = created.run
        if data.get("stream"):
            return sse_response(request, str(run.pk), 0)
        body = {"run_id": str(run.pk), "status": run.status, "replayed": created.replayed, **_links(request, run.pk)}
        if created.enqueued is not None and created.enqueued.sent is False:
            body["note"] = ("The run is saved but the job queue is unavailable right now: it starts within a minute "
                            "of the queue's recovery. Do not send the request again.")
        return Response(body, status=status.HTTP_202_ACCEPTED)


class RunStatusView(APIView):
    @extend_schema(responses=RunDetailSerializer, summary="A run's status, output, usage, tools and artifacts.")
    def get(self, request, run_id):
        run = run_get(actor=request.user, run_id=run_id)
        return Response(RunDetailSerializer(run).data)


class RunCancelView(APIView):
    @extend_schema(responses=RunSerializer, summary="Cancel a run. 409 when it already finished.")
    def delete(self, request, run_id):
        run = run_cancel(actor=request.user, run=run_get(actor=request.user, run_id=run_id))
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunEventsView(APIView):
    renderer_classes = STREAMING_RENDERERS
    @extend_schema(
        parameters=[OpenApiParameter("Last-Event-ID", int, OpenApiParameter.HEADER, required=False),
                    OpenApiParameter("after", int, required=False)],
        responses={200: OpenApiResponse(description="text/event-stream of the run's events")},
        summary="Server-Sent Events of a run: replays after Last-Event-ID, follows live, closes after the end.")
    def get(self, request, run_id):
        run = run_get(actor=request.user, run_id=run_id)
        return sse_response(request, str(run.pk), _after_seq(request))


class RunListView(ListAPIView):
    serializer_class = RunSerializer

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=RunStatus.values), OpenApiParameter("agent_type", str),
        OpenApiParameter("client_id", int), OpenApiParameter("created_after", str),
        OpenApiParameter("created_before", str)], summary="Runs you may see, newest first.")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        runs = runs_visible_to(actor=self.request.user)
        if params.get("status"):
            if params["status"] not in RunStatus.values:
                raise InvalidInput(f"status: choose one of {', '.join(RunStatus.values)}.")
            runs = runs.filter(status=params["status"])
        if params.get("agent_type"):
            runs = runs.filter(agent_type=params["agent_type"])
        if params.get("client_id"):
            if not params["client_id"].isdigit():
                raise InvalidInput("client_id: give the client's numeric id.")
            runs = runs.filter(client_id=int(params["client_id"]))
        for name, lookup in (("created_after", "created_at__gte"), ("created_before", "created_at__lt")):
            if params.get(name):
                moment = parse_datetime(params[name])
                if moment is None:
                    raise InvalidInput(f"{name}: give an ISO 8601 date-time, e.g. 2026-11-21T09:00:00Z.")
                runs = runs.filter(**{lookup: moment})
        return runs.order_by("-created_at")


class AgentListView(APIView):
    @extend_schema(responses=AgentSerializer(many=True), summary="Agents enabled for this instance, with tools.")
    def get(self, request):
        from tuning.assembly import assemble_prompt

        from ..catalog import platform_tier

        agents = []
        for agent_type in agent_types():
            spec = get_spec(agent_type, run_version_for(agent_type))
            prompt = assemble_prompt(platform=platform_tier(spec), client=None)
            if not prompt.enabled:
                continue
            disabled = set(prompt.disabled_tools)
            agents.append({
                "agent_type": agent_type, "title": spec.title, "description": spec.description,
                "version": spec.version, "model": spec.model,
                "tools": [{**t.definition(), "side_effect": t.side_effect} for t in spec.tools if t.name not in disabled],
            })
        return Response(AgentSerializer(agents, many=True).data)


class ApprovalListView(ListAPIView):
    serializer_class = ApprovalSerializer

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=ApprovalStatus.values)],
                   summary="Approval requests you may decide, newest first (?status=pending for the queue).")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if not may_approve(self.request.user):
            raise NotAllowed("Your role does not allow you to see approval requests.")
        approvals = approvals_visible_to(actor=self.request.user)
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in ApprovalStatus.values:
                raise InvalidInput(f"status: choose one of {', '.join(ApprovalStatus.values)}.")
            approvals = approvals.filter(status=wanted)
        return approvals.order_by("-created_at")


class ApprovalDecisionView(APIView):
    approve = True

    @extend_schema(request=DecisionSerializer, responses=ApprovalSerializer,
                   summary="Decide an approval request. 409 when it was already decided or expired.")
    def post(self, request, approval_id):
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        approval = approval_decide(actor=request.user, approval_id=approval_id, approve=self.approve,
                                   note=body.validated_data["note"])
        return Response(ApprovalSerializer(approval).data)


class ApprovalApproveView(ApprovalDecisionView):
    approve = True


class ApprovalRejectView(ApprovalDecisionView):
    approve = False
