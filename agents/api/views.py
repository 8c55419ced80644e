"""Agent API on the instance host (`/api/v1/…`): execute, follow, cancel, list."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from spokestack.api.errors import error_body
from spokestack.api.params import choice_param, datetime_param, int_param, text_param
from spokestack.api.schema import ServerSentEventSerializer
from spokestack.api.views import InstanceApiView
from spokestack.realtime import Credentials, StreamViewer, TooManyStreams, instance_sync_to_async

from ..approval_rules import (
    approval_rule_create,
    approval_rule_delete,
    approval_rule_get,
    approval_rule_update,
    approval_rules_visible_to,
)
from ..approvals import approval_decide, approvals_visible_to
from ..models import ApprovalPriority, ApprovalStatus, RunStatus
from ..registry import agent_types, get_spec
from ..selectors import REVIEW_FILTERS, events_after, run_get, runs_in_review, runs_visible_to
from ..services import run_cancel, run_create, run_version_for
from ..streaming import StreamExpired, StreamInterrupted, StreamRefused, run_event_stream
from ..threads import (
    thread_close,
    thread_continue_from_run,
    thread_cost,
    thread_create,
    thread_get,
    thread_list,
    thread_message_send,
    thread_messages,
    thread_turns,
)
from .serializers import (
    AgentSerializer,
    ApprovalRuleSerializer,
    ApprovalSerializer,
    DecidedSerializer,
    DecisionSerializer,
    ExecuteSerializer,
    RunDetailSerializer,
    RunSerializer,
    ThreadCreateSerializer,
    ThreadDetailSerializer,
    ThreadMessageSerializer,
    ThreadSerializer,
)

logger = logging.getLogger(__name__)

ExecuteAccepted = inline_serializer("ExecuteAccepted", {
    "run_id": serializers.UUIDField(), "status": serializers.CharField(), "status_url": serializers.CharField(),
    "events_url": serializers.CharField(), "websocket_url": serializers.CharField(),
    "replayed": serializers.BooleanField(),
    "thread_id": serializers.UUIDField(required=False, help_text="With thread=true: the new thread."),
    "thread_turn": serializers.IntegerField(required=False, help_text="The turn this run is, in a thread."),
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
EVENT_STREAM = EventStreamRenderer.media_type
SSE_FORMAT = ("Server-Sent Events: `retry: 2000` first, then per event `id: <seq>`, `event: <type>` and `data: <JSON>` "
              "(`{seq, type, payload, created_at}`; the types and payloads are listed in the README), a `: keep-alive` comment every "
              "15 s, and the end after the run's terminal event (run.succeeded, run.failed, run.cancelled). A stream "
              "cut short by an outage ends with a `reconnect` event; reconnect with Last-Event-ID.")


def _links(request, run_id) -> dict:
    ws_scheme = "wss" if request.is_secure() else "ws"
    return {
        "status_url": request.build_absolute_uri(f"/api/v1/agent/status/{run_id}"),
        "events_url": request.build_absolute_uri(f"/api/v1/agent/runs/{run_id}/events"),
        "websocket_url": f"{ws_scheme}://{request.get_host()}/ws/runs/{run_id}/",
    }


async def _sse(instance, run_id: str, after_seq: int, viewer: StreamViewer) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    last = after_seq
    stream = run_event_stream(instance=instance, run_id=run_id, after_seq=after_seq, viewer=viewer)
    try:
        async with contextlib.aclosing(stream):  # its clean-up runs now, also when the viewer left
            async for event in stream:
                if event is None:
                    yield b": keep-alive\n\n"
                    continue
                if isinstance(event, StreamInterrupted | StreamExpired):
                    # The last event: a dependency stayed down, or the stream lived its time. `id:` is
                    # what an EventSource sends back as Last-Event-ID when it reconnects (after
                    # `retry:`), also when nothing came before.
                    data = json.dumps(event.as_dict(resume=f"Last-Event-ID: {event.last_seq}"), ensure_ascii=False)
                    yield f"id: {event.last_seq}\nevent: reconnect\ndata: {data}\n\n".encode()
                    return
                if isinstance(event, StreamRefused):
                    # The viewer may no longer follow the run: an EventSource that reconnects gets the
                    # 401 or 403 that says so, and stops.
                    data = json.dumps(event.as_dict(), ensure_ascii=False)
                    yield f"id: {event.last_seq}\nevent: error\ndata: {data}\n\n".encode()
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
    finally:
        await instance_sync_to_async(instance)(viewer.release)()


def _stream_credentials(request) -> Credentials | None:
    """What the request authenticated with, for the stream to prove again every few seconds."""
    if request.auth is not None:  # BearerTokenAuthentication: the raw token is in the header
        return Credentials.from_headers(authorization=request.headers.get("Authorization", ""), cookie="")
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    return Credentials(session_key=session_key) if session_key else None


def sse_response(request, run_id: str, after_seq: int) -> StreamingHttpResponse | Response:
    """The run's event stream, holding one of the user's STREAM_MAX_PER_USER places (429 when
    none is left; after an execute, the run goes on and the answer says how to follow it)."""
    try:
        viewer = StreamViewer.open(user=request.user, credentials=_stream_credentials(request))
    except TooManyStreams as exc:
        message, details = exc.message, {**exc.details, "run_id": str(run_id)}
        if request.method == "POST":
            message += (f" The run {run_id} was started and goes on without you: follow it at "
                        f"{_links(request, run_id)['events_url']} once you have closed a stream.")
        return Response(error_body(exc.code, message, details), status=exc.status,
                        headers={"Retry-After": str(exc.retry_after)})
    response = StreamingHttpResponse(_sse(request.tenant, str(run_id), after_seq, viewer),
                                     content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _after_seq(request) -> int:
    wanted = "give the seq of the last event you saw, in ASCII digits (0 or more)."
    header = request.headers.get("Last-Event-ID")
    if header:
        return int_param({"Last-Event-ID": header}, "Last-Event-ID", minimum=0, wanted=wanted)
    return int_param(request.query_params, "after", minimum=0, wanted=wanted) or 0


class ExecuteView(InstanceApiView):
    action = "run.create"
    renderer_classes = STREAMING_RENDERERS
    @extend_schema(
        request=ExecuteSerializer,
        parameters=[OpenApiParameter(
            "Idempotency-Key", {"type": "string", "maxLength": 200}, OpenApiParameter.HEADER, required=False,
            description="Repeat a request safely: your same key with the same agent_type, task, client_id, metadata, "
                        "specialization and thread returns the first run (replayed: true); with any other value it is 409 "
                        "naming the fields that differ. Keys are per user.")],
        responses={202: ExecuteAccepted, (200, EVENT_STREAM): OpenApiResponse(
            ServerSentEventSerializer, description="With stream=true (or Accept: text/event-stream): the run's event stream, "
            "as GET /agent/runs/{run_id}/events gives it.")},
        summary="Run an agent on a task. 202 with the run id, or the live event stream with stream=true.")
    def post(self, request):
        body = ExecuteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        created = run_create(
            actor=request.user, agent_type=data["agent_type"], task=data["task"], client_id=data.get("client_id"),
            metadata=data.get("metadata"), specialization=data.get("specialization"),
            idempotency_key=request.headers.get("Idempotency-Key", ""), thread=data.get("thread", False))
        return accepted(request, created, stream=data.get("stream", False))


def accepted(request, created, *, stream: bool) -> Response | StreamingHttpResponse:
    """202 with the run id and how to follow it, or the run's event stream."""
    run = created.run
    # A client that asks for text/event-stream wants the stream, `stream` set or not.
    if stream or request.accepted_renderer.format == EventStreamRenderer.format:
        return sse_response(request, str(run.pk), 0)
    body = {"run_id": str(run.pk), "status": run.status, "replayed": created.replayed, **_links(request, run.pk)}
    if run.thread_id:
        body.update(thread_id=str(run.thread_id), thread_turn=run.thread_turn)
    if created.enqueued is not None and created.enqueued.sent is False:
        body["note"] = ("The run is saved but the job queue is unavailable right now: it starts within a minute "
                        "of the queue's recovery. Do not send the request again.")
    return Response(body, status=status.HTTP_202_ACCEPTED)


class RunStatusView(InstanceApiView):
    action = "run.view"

    @extend_schema(responses=RunDetailSerializer, summary="A run's status, output, usage, tools and artifacts.")
    def get(self, request, run_id):
        run = run_get(actor=request.user, run_id=run_id)
        return Response(RunDetailSerializer(run).data)


class RunCancelView(InstanceApiView):
    action = "run.cancel"

    @extend_schema(responses={202: RunSerializer}, summary="Cancel a run. 409 when it already finished.")
    def delete(self, request, run_id):
        run = run_cancel(actor=request.user, run=run_get(actor=request.user, run_id=run_id))
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunEventsView(InstanceApiView):
    action = "run.view"
    renderer_classes = STREAMING_RENDERERS
    @extend_schema(
        parameters=[OpenApiParameter("Last-Event-ID", {"type": "integer", "minimum": 0}, OpenApiParameter.HEADER,
                                     required=False, description="The seq of the last event you saw (wins over after)."),
                    OpenApiParameter("after", {"type": "integer", "minimum": 0}, required=False,
                                     description="Replay the events after this seq (default 0: all of them).")],
        responses={(200, EVENT_STREAM): OpenApiResponse(ServerSentEventSerializer, description=SSE_FORMAT),
                   204: OpenApiResponse(description="The run has finished and there is no event after that seq: "
                                                    "nothing more will come (an EventSource stops reconnecting).")},
        summary="Server-Sent Events of a run: replays after Last-Event-ID, follows live, closes after the end.")
    def get(self, request, run_id):
        run = run_get(actor=request.user, run_id=run_id)
        after = _after_seq(request)
        if run.is_finished and not events_after(run_id=run.pk, seq=after, limit=1):
            # Past the terminal event a stream would wait for nothing until its maximum lifetime; an
            # EventSource reconnecting after the end gets 204, which tells it to stop (the SSE spec).
            return HttpResponse(status=status.HTTP_204_NO_CONTENT)
        return sse_response(request, str(run.pk), after)


class RunListView(InstanceApiView, ListAPIView):
    action = "run.view"
    serializer_class = RunSerializer

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=RunStatus.values), OpenApiParameter("agent_type", str),
        OpenApiParameter("client_id", int), OpenApiParameter("created_after", str),
        OpenApiParameter("created_before", str),
        OpenApiParameter("review", str, enum=REVIEW_FILTERS, description=(
            "pending: the review queue (outputs that broke a content filter or client rule, and every output "
            "of an agent the instance audits), until someone gives feedback on them; reviewed: taken out by "
            "feedback."))],
        summary="Runs you may see, newest first (?review=pending for the review queue).")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        runs = runs_visible_to(actor=self.request.user)
        if status_ := choice_param(params, "status", RunStatus.values):
            runs = runs.filter(status=status_)
        if agent_type := text_param(params, "agent_type"):
            runs = runs.filter(agent_type=agent_type)
        if review := choice_param(params, "review", REVIEW_FILTERS):
            runs = runs_in_review(runs, review)
        client_id = int_param(params, "client_id", minimum=1, wanted="give the client's id in ASCII digits, e.g. 12.")
        if client_id is not None:
            runs = runs.filter(client_id=client_id)
        for name, lookup in (("created_after", "created_at__gte"), ("created_before", "created_at__lt")):
            if (moment := datetime_param(params, name)) is not None:
                runs = runs.filter(**{lookup: moment})
        return runs.order_by("-created_at")


class AgentListView(InstanceApiView):
    action = "agent.view"

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


APPROVAL_ORDERINGS = {"priority": ["-priority", "sla_due_at", "created_at"], "-created_at": ["-created_at"],
                      "created_at": ["created_at"], "sla_due_at": ["sla_due_at", "-priority"]}


class ApprovalListView(InstanceApiView, ListAPIView):
    action = "approval.view"
    serializer_class = ApprovalSerializer

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=ApprovalStatus.values),
        OpenApiParameter("priority", str, enum=[p.name.lower() for p in ApprovalPriority]),
        OpenApiParameter("assigned", str, enum=["me"], description="Only the requests assigned to you."),
        OpenApiParameter("ordering", str, enum=list(APPROVAL_ORDERINGS),
                         description="priority: urgent first, then the earliest SLA; default newest first.")],
        summary="Approval requests you may decide, newest first (?status=pending for the queue).")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        approvals = approvals_visible_to(actor=self.request.user).select_related("assigned_to")
        if wanted := choice_param(params, "status", ApprovalStatus.values):
            approvals = approvals.filter(status=wanted)
        if priority := choice_param(params, "priority", [p.name.lower() for p in ApprovalPriority]):
            approvals = approvals.filter(priority=ApprovalPriority[priority.upper()])
        if choice_param(params, "assigned", ["me"]):
            approvals = approvals.filter(assigned_to=self.request.user)
        ordering = choice_param(params, "ordering", list(APPROVAL_ORDERINGS)) or "-created_at"
        return approvals.order_by(*APPROVAL_ORDERINGS[ordering])


class ApprovalDecisionView(InstanceApiView):
    action = "approval.decide"
    approve = True

    @extend_schema(request=DecisionSerializer, responses=DecidedSerializer,
                   summary="Decide an approval request (with whole_turn: every pending call of its turn). 409 when "
                           "it was already decided or expired.")
    def post(self, request, approval_id):
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        approval = approval_decide(actor=request.user, approval_id=approval_id, approve=self.approve,
                                   note=body.validated_data["note"], whole_turn=body.validated_data["whole_turn"])
        return Response(DecidedSerializer(approval).data)


class ApprovalApproveView(ApprovalDecisionView):
    approve = True


class ApprovalRejectView(ApprovalDecisionView):
    approve = False


def _rule_fields(data: dict) -> dict:
    if data.get("priority") == "":
        data["priority"] = None
    return data


class ApprovalRuleListView(InstanceApiView):
    """Instance admins' approval rules (policy `approval.rule.manage`)."""

    action = "approval.rule.manage"

    @extend_schema(responses=ApprovalRuleSerializer(many=True), summary="The instance's approval rules.")
    def get(self, request):
        return Response(ApprovalRuleSerializer(approval_rules_visible_to(actor=request.user), many=True).data)

    @extend_schema(request=ApprovalRuleSerializer, responses={201: ApprovalRuleSerializer},
                   summary="Add a rule: approve matching gated calls (action approve), or set their priority and "
                           "assignee (action route).")
    def post(self, request):
        body = ApprovalRuleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rule = approval_rule_create(actor=request.user, **_rule_fields(dict(body.validated_data)))
        return Response(ApprovalRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class ApprovalRuleDetailView(InstanceApiView):
    action = "approval.rule.manage"

    @extend_schema(responses=ApprovalRuleSerializer, summary="An approval rule.")
    def get(self, request, rule_id):
        return Response(ApprovalRuleSerializer(approval_rule_get(actor=request.user, rule_id=rule_id)).data)

    @extend_schema(request=ApprovalRuleSerializer, responses=ApprovalRuleSerializer,
                   summary="Change a rule (enabled: false disables it).")
    def patch(self, request, rule_id):
        rule = approval_rule_get(actor=request.user, rule_id=rule_id)
        body = ApprovalRuleSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        rule = approval_rule_update(actor=request.user, rule=rule, changes=_rule_fields(dict(body.validated_data)))
        return Response(ApprovalRuleSerializer(rule).data)

    @extend_schema(responses={204: None}, summary="Delete a rule.")
    def delete(self, request, rule_id):
        approval_rule_delete(actor=request.user, rule=approval_rule_get(actor=request.user, rule_id=rule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- threads ------------------------------------------------------------------------------------

ThreadCreated = inline_serializer("ThreadCreated", {
    "thread": ThreadSerializer(),
    "run_id": serializers.UUIDField(required=False, help_text="With a message: the first turn's run."),
    "status_url": serializers.CharField(required=False), "events_url": serializers.CharField(required=False),
    "websocket_url": serializers.CharField(required=False)})


def _thread_detail(thread) -> dict:
    turns = thread_turns(thread)
    thread.cost_usd = thread_cost(turns)
    thread.messages = thread_messages(turns)
    return ThreadDetailSerializer(thread).data


class ThreadListView(InstanceApiView, ListAPIView):
    action = {"get": "thread.view", "post": "thread.create"}
    serializer_class = ThreadSerializer

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=["open", "closed"]), OpenApiParameter("agent_type", str),
        OpenApiParameter("client_id", int)],
        summary="Threads you may see, most recently active first.")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        client_id = int_param(params, "client_id", minimum=1, wanted="give the client's id in ASCII digits, e.g. 12.")
        return thread_list(actor=self.request.user, status=choice_param(params, "status", ["open", "closed"]),
                           agent_type=text_param(params, "agent_type"), client_id=client_id)

    @extend_schema(request=ThreadCreateSerializer, responses={201: ThreadCreated},
                   summary="Start a thread with an agent (for a client); with a message, its first turn starts.")
    def post(self, request):
        body = ThreadCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        created = thread_create(actor=request.user, agent_type=data["agent_type"], client_id=data.get("client_id"),
                                title=data.get("title", ""), message=data.get("message", ""),
                                specialization=data.get("specialization"))
        answer = {"thread": ThreadSerializer(created.thread).data}
        if created.turn is not None:
            answer.update(run_id=str(created.turn.run.pk), **_links(request, created.turn.run.pk))
        return Response(answer, status=status.HTTP_201_CREATED)


class ThreadDetailView(InstanceApiView):
    action = {"get": "thread.view", "delete": "thread.close"}

    @extend_schema(responses=ThreadDetailSerializer,
                   summary="A thread: its messages (each user message and final answer, with run ids, statuses "
                           "and cost).")
    def get(self, request, thread_id):
        return Response(_thread_detail(thread_get(actor=request.user, thread_id=thread_id)))

    @extend_schema(responses={200: ThreadDetailSerializer},
                   summary="Close a thread: it takes no more messages (409 after); a turn still running is cancelled.")
    def delete(self, request, thread_id):
        return Response(_thread_detail(thread_close(actor=request.user, thread_id=thread_id)))


class ThreadMessagesView(InstanceApiView):
    action = "thread.message"
    renderer_classes = STREAMING_RENDERERS

    @extend_schema(
        request=ThreadMessageSerializer,
        responses={202: ExecuteAccepted, (200, EVENT_STREAM): OpenApiResponse(
            ServerSentEventSerializer, description="With stream=true (or Accept: text/event-stream): the turn's "
                                                   "event stream, as GET /agent/runs/{run_id}/events gives it.")},
        summary="Send the next message: a new turn (a run) continuing the conversation, answered like an execute. "
                "409 while the last turn runs, or when the thread is closed.")
    def post(self, request, thread_id):
        body = ThreadMessageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        created = thread_message_send(actor=request.user, thread_id=thread_id, message=data["message"],
                                      metadata=data.get("metadata"))
        return accepted(request, created, stream=data.get("stream", False))


class RunThreadView(InstanceApiView):
    action = "thread.create"

    @extend_schema(request=None, responses={201: ThreadDetailSerializer, 200: ThreadDetailSerializer},
                   summary="Continue a succeeded run in a thread: the run becomes turn 1 of a new thread (201); "
                           "send the next message to POST /threads/{thread_id}/messages. A run that is a thread's "
                           "turn already answers that thread (200). 409 while the run has not succeeded.")
    def post(self, request, run_id):
        continued = thread_continue_from_run(actor=request.user, run_id=run_id)
        return Response(_thread_detail(continued.thread),
                        status=status.HTTP_201_CREATED if continued.created else status.HTTP_200_OK)
