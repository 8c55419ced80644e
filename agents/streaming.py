"""One event stream for every live viewer (SSE, websocket): replay from the log, then follow.

The stream joins the run's channel-layer group *before* its first read of the log, so an event
committed at any moment is either in that read or announced by a nudge that arrives after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer

from spokestack.realtime import group_name, instance_sync_to_async

from .events import TERMINAL_EVENTS, run_group_parts
from .watcher import mark_watched

KEEPALIVE_SECONDS = 15.0
PAGE = 500
# A worker learns within its watcher's poll (0.1 s) that a run it had not announced has a viewer
# now: the stream reads the log again after this long, for events written in between.
CATCH_UP_SECONDS = 0.25
WATCH_REFRESH_SECONDS = 20.0


@dataclass(frozen=True)
class StreamedEvent:
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "payload": self.payload, "created_at": self.created_at}


KEEPALIVE = None  # yielded when nothing happened for KEEPALIVE_SECONDS


def _fetch(run_id: str, after: int, watch: bool) -> list[StreamedEvent]:
    from .selectors import events_after

    if watch:
        mark_watched(run_id)
    return [StreamedEvent(e.seq, e.type, e.payload, e.created_at.isoformat())
            for e in events_after(run_id=run_id, seq=after, limit=PAGE)]


async def run_event_stream(*, instance, run_id: str, after_seq: int = 0,
                           keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[StreamedEvent | None]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = group_name(instance.schema_name, *run_group_parts(run_id))
    await layer.group_add(group, channel)
    fetch = instance_sync_to_async(instance)(_fetch)
    last = after_seq
    marked = None  # when this viewer last marked the run as watched
    catch_up = True
    try:
        while True:
            now = asyncio.get_running_loop().time()
            watch = marked is None or now - marked >= WATCH_REFRESH_SECONDS
            events = await fetch(run_id, last, watch)
            marked = now if watch else marked
            for event in events:
                last = event.seq
                yield event
                if event.type in TERMINAL_EVENTS:
                    return
            if len(events) == PAGE:
                continue
            try:
                await asyncio.wait_for(layer.receive(channel), timeout=CATCH_UP_SECONDS if catch_up else keepalive)
            except TimeoutError:
                if not catch_up:
                    yield KEEPALIVE
            catch_up = False
    finally:
        await layer.group_discard(group, channel)
