"""Keeping the usage rollup current (usage/models.py `UsageDaily`).

A run is counted once, when it ends: `usage_record` marks it (`AgentRun.usage_recorded`) and adds it
to its day's row in one statement, so a retried or resumed run (its row holds everything it used,
every execution's turns included) is counted exactly once, and two callers racing count it once.
The reaper counts any ended run whose counting was lost (`usage_record_missing`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.db import connection

from spokestack.db import execute_prepared

from .models import DURATION_BUCKETS_MS

# A run's columns a count needs: what a statement that counts a run returns from its row, as `counted`.
COUNT_COLUMNS = """agent_type, client_id, created_by_id, model, status, iterations, tool_calls_count, input_tokens,
           output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd,
           GREATEST(0, EXTRACT(EPOCH FROM (COALESCE(finished_at, now()) - COALESCE(started_at, created_at))) * 1000)
               ::bigint AS duration_ms,
           COALESCE(finished_at, now()) AS ended_at"""
# Adds the runs in `counted` (COUNT_COLUMNS) to their days' rollups: params `count_params()`.
COUNT_INSERT = """
INSERT INTO usage_usagedaily (day, agent_type, client_id, user_id, model, runs_succeeded, runs_failed,
                              runs_cancelled, turns, tool_calls, input_tokens, output_tokens, cache_creation_input_tokens,
                              cache_read_input_tokens, cost_usd, duration_ms_total, duration_buckets)
SELECT (ended_at AT TIME ZONE %(tz)s)::date, agent_type, client_id, created_by_id, model,
       (status = 'succeeded')::int, (status = 'failed')::int, (status = 'cancelled')::int, iterations,
       tool_calls_count, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd,
       duration_ms,
       ARRAY(SELECT (i = (SELECT count(*) FROM unnest(%(bounds)s::int[]) AS bound WHERE bound < duration_ms))::int
               FROM generate_series(0, %(n)s) AS i ORDER BY i)
  FROM counted
ON CONFLICT (day, agent_type, client_id, user_id, model) DO UPDATE SET
    runs_succeeded = usage_usagedaily.runs_succeeded + EXCLUDED.runs_succeeded,
    runs_failed = usage_usagedaily.runs_failed + EXCLUDED.runs_failed,
    runs_cancelled = usage_usagedaily.runs_cancelled + EXCLUDED.runs_cancelled,
    turns = usage_usagedaily.turns + EXCLUDED.turns,
    tool_calls = usage_usagedaily.tool_calls + EXCLUDED.tool_calls,
    input_tokens = usage_usagedaily.input_tokens + EXCLUDED.input_tokens,
    output_tokens = usage_usagedaily.output_tokens + EXCLUDED.output_tokens,
    cache_creation_input_tokens = usage_usagedaily.cache_creation_input_tokens + EXCLUDED.cache_creation_input_tokens,
    cache_read_input_tokens = usage_usagedaily.cache_read_input_tokens + EXCLUDED.cache_read_input_tokens,
    cost_usd = usage_usagedaily.cost_usd + EXCLUDED.cost_usd,
    duration_ms_total = usage_usagedaily.duration_ms_total + EXCLUDED.duration_ms_total,
    duration_buckets = ARRAY(SELECT a + b FROM unnest(usage_usagedaily.duration_buckets, EXCLUDED.duration_buckets)
                                                WITH ORDINALITY AS pair(a, b, i) ORDER BY i)"""
_RECORD_SQL = f"""
WITH counted AS (
    UPDATE agents_agentrun SET usage_recorded = true
     WHERE id = %(run)s::uuid AND NOT usage_recorded AND status IN ('succeeded', 'failed', 'cancelled')
 RETURNING {COUNT_COLUMNS}
)
{COUNT_INSERT}
RETURNING id
"""  # noqa: S608 - built from constants, not from input

_MISSING_SQL = """
SELECT id::text FROM agents_agentrun
 WHERE NOT usage_recorded AND status IN ('succeeded', 'failed', 'cancelled')
   AND finished_at < now() - make_interval(secs => %s)
 LIMIT 500
"""

_ZONES: dict[str, tuple[float, str]] = {}  # schema -> (read at, time zone)
ZONE_CACHE_SECONDS = 60.0


def instance_time_zone() -> str:
    """The current instance's time zone (its days are counted in it), read at most once a minute."""
    schema = connection.schema_name
    zone = getattr(connection.tenant, "timezone", None)
    if isinstance(zone, str) and zone:
        return zone
    cached = _ZONES.get(schema)
    if cached is None or time.monotonic() - cached[0] > ZONE_CACHE_SECONDS:
        from spokestack.tenancy.models import Instance

        zone = Instance.objects.filter(schema_name=schema).values_list("timezone", flat=True).first() or "UTC"
        cached = _ZONES[schema] = (time.monotonic(), zone)
    return cached[1]


def usage_record(*, run_id: uuid.UUID | str) -> bool:
    """Count an ended run in the rollup, once. True when this call counted it."""
    return bool(execute_prepared(_RECORD_SQL, {"run": str(run_id), **count_params()}))


def count_params() -> dict[str, Any]:
    """COUNT_INSERT's parameters: the instance's time zone (its days) and the duration buckets."""
    return {"tz": instance_time_zone(), "bounds": list(DURATION_BUCKETS_MS), "n": len(DURATION_BUCKETS_MS)}


def usage_record_missing(*, older_than_s: float = 30.0) -> int:
    """Count ended runs whose counting was lost (the process died between the end and the count)."""
    with connection.cursor() as cursor:
        cursor.execute(_MISSING_SQL, [older_than_s])
        run_ids = [row[0] for row in cursor.fetchall()]
    return sum(usage_record(run_id=run_id) for run_id in run_ids)
