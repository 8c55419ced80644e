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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer

from spokestack.outages import DEPENDENCY_ERRORS, REDIS_ERRORS, dependency_of
from spokestack.realtime import group_name, instance_sync_to_async

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
        return {"type": "reconnect", "last_seq": self.last_seq, "dependency": self.dependency,
                "message": f"The {self.dependency} is unavailable right now: reconnect in a few seconds with "
                           f"{resume} to get the events after {self.last_seq}."}


KEEPALIVE = None  # yielded when nothing happened for KEEPALIVE_SECONDS, and while reads fail


def _fetch(run_id: str, after: int, watch: bool) -> tuple[list[StreamedEvent], bool]:
    """The events after `after`, and whether the run is marked as watched (when asked to mark)."""
    from .selectors import events_after

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
    return events, marked


class _Nudges:
    """The stream's membership of its run's channel-layer group. Without the channel layer there
    is nothing to wait for: `wait` just sleeps, and the stream polls."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.tried_at: float | None = None

    @property
    def joined(self) -> bool:
        return self.channel is not None

    async def join(self) -> bool:
        self.tried_at = asyncio.get_running_loop().time()
        try:
            channel = await self.layer.new_channel()
            await self.layer.group_add(self.group, channel)
        except REDIS_ERRORS:
            logger.info("cannot join %s (channel layer unavailable); polling the log", self.group)
            return False
        self.channel = channel
        return True

    def rejoin_due(self) -> bool:
        return not self.joined and asyncio.get_running_loop().time() - (self.tried_at or 0.0) >= REJOIN_SECONDS

    async def wait(self, timeout: float) -> bool:
        """Whether a nudge came within `timeout`."""
        if self.channel is not None:
            try:
                await asyncio.wait_for(self.layer.receive(self.channel), timeout=timeout)
                return True
            except TimeoutError:
                return False
            except REDIS_ERRORS:
                logger.info("lost %s (channel layer unavailable); polling the log", self.group)
                self.channel = None
        await asyncio.sleep(timeout)
        return False

    async def leave(self) -> None:
        if self.channel is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self.layer.group_discard(self.group, self.channel)


def _consume_result(task: asyncio.Future) -> None:
    """A read the stream left before it ended (given up on, or the viewer went away): its late
    failure is of no interest and must not be logged as an exception nobody retrieved."""
    if not task.cancelled():
        task.exception()


async def run_event_stream(*, instance, run_id: str, after_seq: int = 0, keepalive: float = KEEPALIVE_SECONDS,
                           outage_limit: float | None = None,
                           ) -> AsyncIterator[StreamedEvent | StreamInterrupted | None]:
    """The run's events after `after_seq`, then live ones, until the terminal event; KEEPALIVE
    while nothing happens; StreamInterrupted as the last item when the database stayed
    unreachable for `outage_limit` seconds (OUTAGE_LIMIT_SECONDS by default)."""
    outage_limit = OUTAGE_LIMIT_SECONDS if outage_limit is None else outage_limit
    clock = asyncio.get_running_loop().time
    nudges = _Nudges(group_name(instance.schema_name, *run_group_parts(run_id)))
    await nudges.join()
    fetch = instance_sync_to_async(instance)(_fetch)
    last = after_seq
    marked_at: float | None = None  # when this viewer last marked the run as watched
    catch_up = True
    failing_since: float | None = None  # when reads started failing
    backoff = RETRY_FIRST_SECONDS
    sent_at = clock()  # when the viewer was last sent anything
    try:
        while True:
            started = clock()
            watch = marked_at is None or started - marked_at >= WATCH_REFRESH_SECONDS
            read = asyncio.ensure_future(fetch(run_id, last, watch))
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
                events, marked = read.result()
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
            timeout = min(timeout, keepalive - (clock() - sent_at))
            if timeout > 0.01:
                await nudges.wait(timeout)
            if clock() - sent_at >= keepalive - 0.01:
                yield KEEPALIVE
                sent_at = clock()
    finally:
        await nudges.leave()
