"""Instance-wide live events (`ws/events/`): approval requests as they are made and decided
(`approvals`), and update notifications of new core-agent versions as they are made and
reviewed (`updates`).

A client subscribes to a topic; the group names are built from the handshake's instance, so a
client on one instance's host can never join a group of another. Within the instance, every
message goes only to the viewers who may see it (issue #13): each connection keeps, per topic,
the set of clients whose messages its user may see (`approvals`: policy `approval.view`, the same
answer as `GET /api/v1/approvals`; `updates`: policy `version.view`, instance-wide, so all or
nothing), refreshed every STREAM_RECHECK_SECONDS together with a new proof of its credentials,
and a message reaches it only when its `client_id` is in that set (a message without a client:
only viewers who see every client of the topic). A subscription the user's role may not have is
refused.

`runs` and `notifications` were listed once but nothing was ever published on them: a
subscriber waited for nothing. A run is followed on `ws/runs/<id>/` (or its SSE stream), and runs
are listed with `GET /api/v1/agent/runs`, both scoped by the same access rules.

Like every live connection, the socket counts against its user's STREAM_MAX_PER_USER, closes
with 4401 or 4403 once its credentials or its user's role are gone, and closes after
STREAM_MAX_SECONDS with a `reconnect` message and code 4000 (subscribe again after reconnecting,
and read what came in between: `GET /api/v1/approvals?status=pending`, `GET /api/v1/updates`,
or in the admin the header's counts, `live_counts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .outages import DEPENDENCY_ERRORS, dependency_of
from .realtime import (
    WS_CLOSE_RECONNECT,
    WS_CLOSE_UNAUTHENTICATED,
    Refusal,
    StreamViewer,
    TooManyStreams,
    forbidden,
    group_name,
    instance_sync_to_async,
)

logger = logging.getLogger(__name__)

APPROVALS = "approvals"
UPDATES = "updates"
EVENTS = "events"  # the outbound events (spokestack/webhooks/events.py), as the webhooks carry them
EVENT_TOPICS = {APPROVALS, UPDATES, EVENTS}
REMOVED_TOPICS = {
    "runs": "follow a run on ws/runs/<run_id>/ (or GET /api/v1/agent/runs/<run_id>/events), and list runs "
            "with GET /api/v1/agent/runs",
    "notifications": "subscribe to 'updates' for update notifications as they are made and reviewed, and list "
                     "them with GET /api/v1/updates",
}
# The statuses of an update notification that still wait for a person's decision (the same as the
# pending update of `versions.selectors.version_state`).
UPDATES_TO_REVIEW = ("pending", "deferred", "sandbox")


@dataclass(frozen=True)
class ClientScope:
    """Which clients' messages of a topic a viewer may receive."""

    allowed: bool  # the viewer's role sees the topic at all
    every: bool = False  # every client's, and those of no client
    client_ids: frozenset[int] = frozenset()

    def includes(self, client_id: int | None) -> bool:
        return self.allowed and (self.every or (client_id is not None and client_id in self.client_ids))


def client_scope(user, action: str) -> ClientScope:
    """The clients on which `user` may take `action` (policy), as a topic's scope."""
    from spokestack.accounts import policy

    if policy.acts_on_every_client(user, action):
        return ClientScope(allowed=True, every=True)
    if not policy.allows(user, action):
        return ClientScope(allowed=False)
    return ClientScope(allowed=True, client_ids=frozenset(policy.clients_for(user, action).values_list("pk", flat=True)))


def approvals_scope(user) -> ClientScope:
    """The clients whose approval requests `user` may see: policy `approval.view`, the same answer
    as `GET /api/v1/approvals` (`agents.approvals.approvals_visible_to`)."""
    return client_scope(user, "approval.view")


@dataclass(frozen=True)
class EventsScope:
    """The `events` topic: each event type needs its own action (its catalogue row), on its client."""

    allowed: bool
    by_action: dict[str, ClientScope]

    def includes(self, client_id: int | None, event_type: str = "") -> bool:
        from spokestack.webhooks.events import CATALOGUE

        kind = CATALOGUE.get(event_type)
        scope = self.by_action.get(kind.action) if kind else None
        return scope is not None and scope.includes(client_id)


def events_scope(user) -> EventsScope:
    from spokestack.webhooks.events import CATALOGUE

    by_action = {action: client_scope(user, action) for action in {e.action for e in CATALOGUE.values()}}
    return EventsScope(allowed=any(scope.allowed for scope in by_action.values()), by_action=by_action)


def updates_scope(user) -> ClientScope:
    """Update notifications are instance configuration: policy `version.view`, every one or none
    (a notification belongs to no client)."""
    from spokestack.accounts import policy

    return ClientScope(allowed=True, every=True) if policy.allows(user, "version.view") else ClientScope(allowed=False)


SCOPES = {APPROVALS: approvals_scope, UPDATES: updates_scope, EVENTS: events_scope}


def live_counts(user) -> dict[str, int | None]:
    """What a viewer's admin header counts, per topic: the pending approval requests they may
    decide (the approvals queue, `agents.approvals.pending_for`) and the updates waiting for a
    review; None for a topic their role may not see. Read on every (re)connect, so a socket that
    was away misses nothing."""
    from agents.approvals import pending_for
    from versions.models import UpdateNotification

    scopes = {topic: scope_of(user) for topic, scope_of in SCOPES.items()}
    return {
        APPROVALS: pending_for(actor=user).count() if scopes[APPROVALS].allowed else None,
        UPDATES: (UpdateNotification.objects.filter(status__in=UPDATES_TO_REVIEW).count()
                  if scopes[UPDATES].allowed else None),
    }


class InstanceEventsConsumer(AsyncJsonWebsocketConsumer):
    viewer: StreamViewer | None = None
    watcher: asyncio.Task | None = None

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=WS_CLOSE_UNAUTHENTICATED)
            return
        self.schema = self.scope["instance"].schema_name
        self.in_schema = instance_sync_to_async(self.scope["instance"])
        self.joined: dict[str, str] = {}  # topic → group
        try:
            self.viewer = await self.in_schema(StreamViewer.open)(user=user, credentials=self.scope.get("credentials"))
        except TooManyStreams as exc:
            await self.accept()  # so that the client gets the reason and the code, not a bare 403
            await self.send_json(exc.refusal.as_dict())
            await self.close(code=exc.refusal.close_code)
            return
        self.scopes: dict[str, ClientScope] = await self.in_schema(self._scopes)(user)
        await self.accept()
        self.watcher = asyncio.create_task(self._watch())

    @staticmethod
    def _scopes(user) -> dict[str, ClientScope]:
        return {topic: scope_of(user) for topic, scope_of in SCOPES.items()}

    async def receive_json(self, content, **kwargs) -> None:
        topic = content.get("subscribe") if isinstance(content, dict) else None
        if topic in REMOVED_TOPICS:
            await self.send_json({"error": f"There is no {topic!r} topic: {REMOVED_TOPICS[topic]}."})
            return
        if topic not in EVENT_TOPICS:
            await self.send_json({"error": f"Unknown topic {topic!r}; choose one of {sorted(EVENT_TOPICS)}."})
            return
        if not self.scopes[topic].allowed:
            await self.send_json({"error": f"Your role does not allow you to see {topic}."})
            return
        group = group_name(self.schema, topic)
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined[topic] = group
        await self.send_json({"subscribed": topic})

    async def _watch(self) -> None:
        """Prove the credentials again and refresh the scopes every STREAM_RECHECK_SECONDS; end
        the socket when they fail or when it reached STREAM_MAX_SECONDS."""
        viewer = self.viewer
        try:
            while True:
                await asyncio.sleep(viewer.seconds_to_next_duty())
                if viewer.expired():
                    await self.send_json({
                        "type": "reconnect", "reason": "max_lifetime",
                        "message": f"This socket reached its maximum lifetime ({viewer.max_seconds:g} s): reconnect "
                                   "now and subscribe again; GET /api/v1/approvals?status=pending and GET "
                                   "/api/v1/updates list what is waiting."})
                    await self.close(code=WS_CLOSE_RECONNECT)
                    return
                if not viewer.check_due():
                    continue
                try:
                    refusal, scopes = await self.in_schema(self._recheck)()
                except DEPENDENCY_ERRORS as exc:
                    if dependency_of(exc) is None:
                        raise
                    viewer.checked = time.monotonic()  # keep the last answer; try again next time
                    continue
                if refusal is not None:
                    await self.send_json(refusal.as_dict())
                    await self.close(code=refusal.close_code)
                    return
                self.scopes = scopes
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the checks of a ws/events socket failed; it is closed")
            await self.close(code=1011)

    def _recheck(self) -> tuple[Refusal | None, dict[str, ClientScope]]:
        user, refusal = self.viewer.recheck()
        if refusal is not None:
            return refusal, self.scopes
        scopes = self._scopes(user)
        lost = sorted(topic for topic in self.joined if not scopes[topic].allowed)
        if lost:
            return forbidden(f"This socket ended because your role no longer allows you to see {', '.join(lost)}."), \
                scopes
        return None, scopes

    async def disconnect(self, code) -> None:
        watcher = self.watcher
        if watcher is not None and not watcher.done() and watcher is not asyncio.current_task():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for group in getattr(self, "joined", {}).values():
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.viewer is not None:
            await self.in_schema(self.viewer.release)()

    async def instance_event(self, message: dict) -> None:
        """Delivered only to a viewer who may see the message's client (fail closed: a topic
        without a scope reaches nobody)."""
        topic, data = message["topic"], message["data"]
        scope = self.scopes.get(topic)
        if topic == EVENTS:  # {type, timestamp, data}: the event's type decides who may see it
            if scope is None or not scope.includes((data.get("data") or {}).get("client_id"), data.get("type", "")):
                return
        elif scope is None or not scope.includes(data.get("client_id")):
            return
        await self.send_json({"topic": topic, "data": message["data"]})
