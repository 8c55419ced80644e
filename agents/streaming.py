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

KEEPALIVE_SECONDS = 15.0
PAGE = 500


@dataclass(frozen=True)
class StreamedEvent:
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "payload": self.payload, "created_at": self.created_at}


KEEPALIVE = None  # yielded when nothing happened for KEEPALIVE_SECONDS


def _fetch(run_id: str, after: int) -> list[StreamedEvent]:
    from .selectors import events_after

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
    try:
        while True:
            events = await fetch(run_id, last)
            for event in events:
                last = event.seq
                yield event
                if event.type in TERMINAL_EVENTS:
                    return
            if len(events) == PAGE:
                continue
            try:
                await asyncio.wait_for(layer.receive(channel), timeout=keepalive)
            except TimeoutError:
                yield KEEPALIVE
    finally:
        await layer.group_discard(group, channel)
