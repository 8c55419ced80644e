"""The run event log: append in the database, then nudge live viewers over the channel layer.

Viewers never trust the nudge's content: on a nudge they read the events after the last `seq`
they saw, so a viewer that reconnects, or misses a nudge, still sees every event in order.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.db import connection, transaction

from spokestack.realtime import group_send

logger = logging.getLogger(__name__)
RUN_GROUP = "run"
TERMINAL_EVENTS = {"run.succeeded", "run.failed", "run.cancelled"}

_APPEND_SQL = """
WITH next AS (
    UPDATE agents_agentrun SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq, parent_id
)
INSERT INTO agents_runevent (run_id, seq, type, payload, created_at)
SELECT %s, last_seq, %s, %s::jsonb, now() FROM next
RETURNING seq, (SELECT parent_id FROM next),
          (SELECT up.parent_id FROM agents_agentrun up JOIN next ON up.id = next.parent_id)
"""


def run_group_parts(run_id: uuid.UUID | str) -> tuple[str, str]:
    return (RUN_GROUP, str(run_id))


def event_append(*, run_id: uuid.UUID | str, type: str, payload: dict[str, Any] | None = None) -> int:
    """Append one event to a run's log and return its seq (allocated atomically in the database).
    Viewers of the run, and of its parent and grandparent when it is a delegated run, are nudged."""
    with connection.cursor() as cursor:
        cursor.execute(_APPEND_SQL, [run_id, run_id, type, json.dumps(payload or {}, default=str)])
        row = cursor.fetchone()
    if row is None:
        raise LookupError(f"run {run_id} does not exist in schema {connection.schema_name}")
    seq, *ancestors = row
    schema = connection.schema_name
    transaction.on_commit(lambda: nudge(schema=schema, run_id=run_id, seq=seq, type=type))
    for ancestor in filter(None, ancestors):  # a delegated run's event is in its ancestors' logs too (mirrored)
        transaction.on_commit(lambda ancestor=ancestor: nudge(schema=schema, run_id=ancestor, seq=0,
                                                             type="child.event"))
    return seq


def nudge(*, schema: str, run_id: uuid.UUID | str, seq: int, type: str) -> None:
    """Tell live viewers to read the log. Nudges need no order (viewers read by seq) and a lost
    one costs a viewer at most one keep-alive interval, so only the last one of a run is awaited.
    The channel layer being down loses the nudge, never the event or the run's progress."""
    try:
        group_send(schema, *run_group_parts(run_id), message={"type": "run.nudge", "seq": seq, "event": type},
                   wait=type in TERMINAL_EVENTS)
    except Exception:  # noqa: BLE001 - viewers read the log; a lost nudge only delays them
        logger.warning("could not nudge the viewers of run %s (seq %s)", run_id, seq)
