"""The tier's run limits, asked before a run is created (issue #20, DESIGN §14).

`check_run_limits(instance, actor=...)` refuses a new run with `RunLimitReached` (429, the error
envelope, `Retry-After`) when the instance already has `concurrent_runs` runs queued or running, or
has started `runs_per_minute` runs in the last 60 s. The limits are `limits_for(instance)`: the
tier's, with platform staff's overrides (`Instance.limits_override`), read from the instance row
the request or task already holds, so an override takes effect on the next execute (no cache).

Concurrency is counted in PostgreSQL: runs awaiting approval or waiting for delegated runs hold no
worker and no slot. Inside the caller's transaction the check takes a transaction-level advisory
lock per instance, so two executes cannot both see the last free slot: the count and the new run's
insert are serial per instance until the caller commits.

The rate is a sliding window in Redis (a sorted set per instance, one Lua script: trim, count, add,
atomic across processes). Redis unavailable: the rate is not applied (logged), the concurrency limit
and the budgets (both in PostgreSQL) still are. Starting a run needs only the database (issue #12),
and the spend the rate limit guards is bounded by the budgets' reservations anyway; a 503 for the
throttle's sake would be the worse outage (spokestack/throttles.py decides the same).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import zlib
from typing import Any

from django.core.cache import cache
from django.db import connection

from spokestack.errors import DomainError
from spokestack.outages import REDIS_ERRORS
from spokestack.tenancy.tiers import limits_for

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# What a refusal at the concurrency limit suggests: a slot frees when any run ends, which we cannot
# foresee; a short wait, not a promise.
CONCURRENCY_RETRY_SECONDS = 10
HOLDING_A_SLOT = ("queued", "running")

# KEYS[1] the window; ARGV: now (ms), window (ms), limit, member. Returns 0 when counted, else the
# ms until the oldest start leaves the window.
_SLIDING_WINDOW = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


class RunLimitReached(DomainError):
    """A run refused by the instance's rate or concurrency limit (HTTP 429 with Retry-After)."""

    status = 429
    code = "throttled"

    def __init__(self, message: str, *, retry_after: int, details: dict[str, Any]) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(message, details={**details, "retry_after": self.retry_after})


def _who(instance: Any) -> str:
    return f"{getattr(instance, 'name', connection.schema_name)} ({getattr(instance, 'tier', '?')} tier)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _hold_slot_lock(schema: str) -> None:
    """Serialise the concurrency count with the run's insert, per instance, until commit."""
    if not connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [20_20, zlib.crc32(schema.encode()) - 2**31])


def _check_concurrency(instance: Any, allowed: int) -> None:
    from agents.models import AgentRun

    _hold_slot_lock(connection.schema_name)
    holding = AgentRun.objects.filter(status__in=HOLDING_A_SLOT).count()
    if holding < allowed:
        return
    raise RunLimitReached(
        f"{_who(instance)} may have {_plural(allowed, 'run')} queued or running at once and has {holding}; "
        f"try again when one ends (in about {CONCURRENCY_RETRY_SECONDS} s).",
        retry_after=CONCURRENCY_RETRY_SECONDS,
        details={"limit": "concurrent_runs", "tier": getattr(instance, "tier", ""), "allowed": allowed,
                 "current": holding})


def _count_start(instance: Any, allowed: int) -> None:
    key = cache.make_key(f"limits:runs_per_minute:{connection.schema_name}")
    try:
        client = cache._cache.get_client(key, write=True)
        wait_ms = int(client.eval(_SLIDING_WINDOW, 1, key, int(time.time() * 1000), WINDOW_SECONDS * 1000, allowed,
                                  uuid.uuid4().hex))
    except REDIS_ERRORS as exc:
        logger.warning("runs_per_minute of %s not applied: Redis unavailable (%s)", connection.schema_name, exc)
        return
    if wait_ms <= 0:
        return
    wait = max(1, math.ceil(wait_ms / 1000))
    raise RunLimitReached(
        f"{_who(instance)} may start {_plural(allowed, 'run')} a minute; try again in {wait} s.",
        retry_after=wait,
        details={"limit": "runs_per_minute", "tier": getattr(instance, "tier", ""), "allowed": allowed})


def check_run_limits(instance: Any, *, actor: Any = None) -> None:
    """Refuse (RunLimitReached, 429) a new run of the current instance over its concurrency or rate
    limit; otherwise count it in the rate window. Call it once per new run, right before the run's
    row is created and inside the same transaction (delegated runs are not counted)."""
    if not hasattr(instance, "limits_override"):  # None, or a schema_context's stand-in: read the row
        from spokestack.tenancy.models import Instance

        instance = Instance.objects.get(schema_name=connection.schema_name)
    limits = limits_for(instance)
    # Concurrency first: a refusal there must not spend a place in the minute's window.
    _check_concurrency(instance, limits.concurrent_runs)
    _count_start(instance, limits.runs_per_minute)
