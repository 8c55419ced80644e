"""One event stream for every live viewer (SSE, websocket): replay from the log, then follow.

The stream joins the run's channel-layer group *before* its first read of the log, so an event
committed at any moment is either in that read or announced by a nudge that arrives after it.

Outages (spokestack/outages.py) do not end a stream silently:

* a read of the log that fails because the database is unreachable is retried with backoff, and
  the viewer gets a keep-alive for each failed try; a read that hangs (a pool waiting for a
  connection, a half-open socket) sends keep-alives too. If the database stays unreachable for
  `OUTAGE_LIMIT_SECONDS`, the stream ends with `StreamInterrupted`: the viewer reconnects after
  the last seq it got. Reads go by seq, so a recovered stream has no gap and no duplicate.
* without the channel layer (Redis), or without the "watched" flag in the cache (the worker
  announces only watched runs), nudges cannot come: the stream reads the log every
  `POLL_SECONDS` instead, and joins again every `REJOIN_SECONDS`.

Nor does a stream outlive its reason to exist (issue #13):

* it ends after `STREAM_MAX_SECONDS` with `StreamExpired`: the viewer reconnects at once after
  the last seq it got (a run awaiting approval would otherwise hold its viewers for the SLA);
* with a `StreamViewer`, every `STREAM_RECHECK_SECONDS` the read that follows also proves the
  viewer's credentials again and asks whether they may still see the run: a revoked token, a
  deactivated user, a removed role or a withdrawn client assignment ends it with `StreamRefused`;
* on its way out, however it ends (the viewer leaving cancels it), it leaves the run's group and
  drops its channel, so an idle stream holds nothing on the channel layer after its viewer left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from spokestack.errors import NotFound
from spokestack.outages import DEPENDENCY_ERRORS, REDIS_ERRORS, dependency_of
from spokestack.realtime import Refusal, StreamViewer, forbidden, group_name, instance_sync_to_async

from .events import TERMINAL_EVENTS, run_group_parts
from .watcher import mark_watched

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
PAGE = 500
# A worker learns within its watcher's poll (0.1 s) that a run it had not announced has a viewer
# now: the stream reads the log again after this long, for events written in between.
CATCH_UP_SECONDS = 0.25
WATCH_REFRESH_SECONDS = 20.0
POLL_SECONDS = 1.0  # between reads while nudges cannot come
REJOIN_SECONDS = 5.0  # between attempts to join the run's group again
RETRY_FIRST_SECONDS = 0.25  # after a failed read, doubling up to RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 2.0
STALLED_READ_SECONDS = 2.0  # a read that has not answered for this long gets a keep-alive out
OUTAGE_LIMIT_SECONDS = 30.0  # reads failing for this long end the stream with StreamInterrupted


@dataclass(frozen=True)
class StreamedEvent:
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "payload": self.payload, "created_at": self.created_at}


@dataclass(frozen=True)
class StreamInterrupted:
    """The last item of a stream that gave up on an unreachable dependency: the viewer should
    reconnect and resume after `last_seq`, the last event it was sent."""

    last_seq: int
    dependency: str

    def as_dict(self, *, resume: str) -> dict[str, Any]:
        """`resume` says how to ask for the events after last_seq on this transport."""
        return {"type": "reconnect", "reason": "unavailable", "last_seq": self.last_seq,
                "dependency": self.dependency,
                "message": f"The {self.dependency} is unavailable right now: reconnect in a few seconds with "
                           f"{resume} to get the events after {self.last_seq}."}


@dataclass(frozen=True)
class StreamExpired:
    """The last item of a stream that reached its maximum lifetime: the viewer reconnects at once
    and resumes after `last_seq`."""

    last_seq: int
    max_seconds: float

    def as_dict(self, *, resume: str) -> dict[str, Any]:
        return {"type": "reconnect", "reason": "max_lifetime", "last_seq": self.last_seq,
                "message": f"This stream reached its maximum lifetime ({self.max_seconds:g} s): reconnect now with "
                           f"{resume} to get the events after {self.last_seq}."}


@dataclass(frozen=True)
class StreamRefused:
    """The last item of a stream whose viewer may no longer follow it (`refusal` says why)."""

    last_seq: int
    refusal: Refusal

    def as_dict(self) -> dict[str, Any]:
        return self.refusal.as_dict(last_seq=self.last_seq)


StreamEnd = StreamInterrupted | StreamExpired | StreamRefused


KEEPALIVE = None  # yielded when nothing happened for KEEPALIVE_SECONDS, and while reads fail


def _viewer_refusal(viewer: StreamViewer, run_id: str) -> Refusal | None:
    """Why the viewer may no longer follow the run, or None."""
    from .selectors import run_get

    user, refusal = viewer.recheck()
    if refusal is not None:
        return refusal
    try:
        run_get(actor=user, run_id=run_id)
    except NotFound:
        return forbidden("This stream ended because you may no longer see this run.")
    return None


def _fetch(run_id: str, after: int, watch: bool, viewer: StreamViewer | None,
           ) -> tuple[list[StreamedEvent], bool, Refusal | None]:
    """The events after `after`, whether the run is marked as watched (when asked to mark), and
    why the viewer may no longer follow it (when given one to check again)."""
    from .selectors import events_after

    if viewer is not None:
        refusal = _viewer_refusal(viewer, run_id)
        if refusal is not None:
            return [], False, refusal
    marked = False
    if watch:
        try:
            mark_watched(run_id)
            marked = True
        except REDIS_ERRORS:
            logger.debug("run %s: cannot mark it watched (cache unavailable); reading its log every %.0f s",
                         run_id, POLL_SECONDS)
    events = [StreamedEvent(e.seq, e.type, e.payload, e.created_at.isoformat())
              for e in events_after(run_id=run_id, seq=after, limit=PAGE)]
    return events, marked, None


class _Nudges:
    """The stream's membership of its run's channel-layer group. Without the channel layer there
    is nothing to wait for: `wait` just sleeps, and the stream polls.

    One `receive` on the stream's channel is always pending, and a wait that times out leaves it
    pending: with the pub/sub layer, cancelling a receive is what drops the channel (its queue in
    this process, its subscription on the layer's Redis connection), and a nudge that came while
    no receive was pending was dropped with it. `leave` cancels it, so however the stream ends,
    the viewer leaving included, nothing of it stays on the channel layer."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.receiving: asyncio.Future | None = None
        self.tried_at: float | None = None

    @property
    def joined(self) -> bool:
        return self.channel is not None

    async def join(self) -> bool:
        self.tried_at = asyncio.get_running_loop().time()
        try:
            # Kept at once: a stream cancelled from here on (its viewer left) leaves it in `leave`.
            self.channel = await self.layer.new_channel()
            await self.layer.group_add(self.group, self.channel)
        except REDIS_ERRORS:
            logger.info("cannot join %s (channel layer unavailable); polling the log", self.group)
            await self.leave()
            return False
        self._receive()
        return True

    def _receive(self) -> None:
        self.receiving = asyncio.ensure_future(self.layer.receive(self.channel))
        self.receiving.add_done_callback(_consume_result)

    def rejoin_due(self) -> bool:
        return not self.joined and asyncio.get_running_loop().time() - (self.tried_at or 0.0) >= REJOIN_SECONDS

    async def wait(self, timeout: float) -> bool:
        """Whether a nudge came within `timeout`."""
        if self.channel is not None and self.receiving is not None:
            done, _ = await asyncio.wait({self.receiving}, timeout=timeout)
            if not done:
                return False
            received, self.receiving = self.receiving, None
            try:
                received.result()
            except REDIS_ERRORS:
                logger.info("lost %s (channel layer unavailable); polling the log", self.group)
                self.channel = None
                return False
            self._receive()
            return True
        await asyncio.sleep(timeout)
        return False

    async def _drop(self, channel: str) -> None:
        """Drop the channel from the layer: cancel a receive that waits on it (started here when
        none is pending; one that already got a message is started again)."""
        for _ in range(3):
            receiving = self.receiving
            if receiving is None or receiving.done():
                receiving = asyncio.ensure_future(self.layer.receive(channel))
                receiving.add_done_callback(_consume_result)
                await asyncio.sleep(0)  # to its wait on the channel's queue, where a cancel cleans up
            self.receiving = None
            if receiving.done():
                continue  # a nudge was queued: that receive took it; wait again
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS):
                await receiving
            return

    async def leave(self) -> None:
        if self.channel is None:
            return
        channel, self.channel = self.channel, None
        with contextlib.suppress(*REDIS_ERRORS):
            await self.layer.group_discard(self.group, channel)
        await self._drop(channel)


def _consume_result(task: asyncio.Future) -> None:
    """A read the stream left before it ended (given up on, or the viewer went away): its late
    failure is of no interest and must not be logged as an exception nobody retrieved."""
    if not task.cancelled():
        task.exception()


async def run_event_stream(*, instance, run_id: str, after_seq: int = 0, keepalive: float = KEEPALIVE_SECONDS,
                           outage_limit: float | None = None, viewer: StreamViewer | None = None,
                           max_seconds: float | None = None,
                           ) -> AsyncIterator[StreamedEvent | StreamEnd | None]:
    """The run's events after `after_seq`, then live ones, until the terminal event; KEEPALIVE
    while nothing happens. The last item may instead be StreamInterrupted (the database stayed
    unreachable for `outage_limit` seconds, OUTAGE_LIMIT_SECONDS by default), StreamExpired (the
    stream lived `max_seconds`, STREAM_MAX_SECONDS by default) or StreamRefused (`viewer`, checked
    again every STREAM_RECHECK_SECONDS, may no longer follow the run)."""
    outage_limit = OUTAGE_LIMIT_SECONDS if outage_limit is None else outage_limit
    max_seconds = settings.STREAM_MAX_SECONDS if max_seconds is None else max_seconds
    clock = asyncio.get_running_loop().time
    ends_at = clock() + max_seconds
    nudges = _Nudges(group_name(instance.schema_name, *run_group_parts(run_id)))
    fetch = instance_sync_to_async(instance)(_fetch)
    last = after_seq
    marked_at: float | None = None  # when this viewer last marked the run as watched
    catch_up = True
    failing_since: float | None = None  # when reads started failing
    backoff = RETRY_FIRST_SECONDS
    sent_at = clock()  # when the viewer was last sent anything
    try:
        await nudges.join()
        while True:
            started = clock()
            if started >= ends_at:
                yield StreamExpired(last_seq=last, max_seconds=max_seconds)
                return
            watch = marked_at is None or started - marked_at >= WATCH_REFRESH_SECONDS
            check = viewer if viewer is not None and viewer.check_due() else None
            read = asyncio.ensure_future(fetch(run_id, last, watch, check))
            read.add_done_callback(_consume_result)  # the stream may leave before a hung read ends
            while not (await asyncio.wait({read}, timeout=STALLED_READ_SECONDS))[0]:
                failing_since = failing_since or started
                if clock() - failing_since >= outage_limit:
                    logger.warning("run %s: a read of its log hung for %.0f s; the viewer is told to reconnect",
                                   run_id, clock() - failing_since)
                    yield StreamInterrupted(last_seq=last, dependency="database")
                    return
                yield KEEPALIVE
                sent_at = clock()
            try:
                events, marked, refusal = read.result()
            except DEPENDENCY_ERRORS as exc:
                dependency = dependency_of(exc)
                if dependency is None:
                    raise
                if failing_since is None:
                    failing_since = started
                    logger.info("run %s: cannot read its log (%s unavailable); retrying", run_id, dependency)
                if clock() - failing_since >= outage_limit:
                    logger.warning("run %s: its log unreadable for %.0f s (%s); the viewer is told to reconnect",
                                   run_id, clock() - failing_since, exc)
                    yield StreamInterrupted(last_seq=last, dependency=dependency)
                    return
                yield KEEPALIVE
                sent_at = clock()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_SECONDS)
                continue
            if failing_since is not None:
                logger.info("run %s: its log is readable again after %.1f s", run_id, clock() - failing_since)
                failing_since, backoff = None, RETRY_FIRST_SECONDS
            if refusal is not None:
                logger.info("run %s: a viewer's stream ends: %s", run_id, refusal.message)
                yield StreamRefused(last_seq=last, refusal=refusal)
                return
            if watch:
                if marked and marked_at is None:
                    catch_up = True  # newly watched: the worker starts announcing within its poll
                marked_at = started if marked else None
            for event in events:
                last = event.seq
                yield event
                sent_at = clock()
                if event.type in TERMINAL_EVENTS:
                    return
            if len(events) == PAGE:
                continue
            if nudges.rejoin_due() and await nudges.join():
                continue  # read once more: nudges count from here
            polling = not nudges.joined or marked_at is None
            timeout = CATCH_UP_SECONDS if catch_up else POLL_SECONDS if polling else keepalive
            catch_up = False
            timeout = min(timeout, keepalive - (clock() - sent_at), ends_at - clock())
            if viewer is not None:  # the next read re-checks the viewer
                timeout = min(timeout, viewer.seconds_to_next_duty())
            if timeout > 0.01:
                await nudges.wait(timeout)
            if clock() - sent_at >= keepalive - 0.01:
                yield KEEPALIVE
                sent_at = clock()
    finally:
        await nudges.leave()
