"""Reading usage (issue #20, DESIGN §14): the API, the CSV, the instance and platform pages.

Everything but the top runs is read from the rollup (`UsageDaily`), never by scanning runs, so a
page costs the same few grouped queries whatever the number of runs. Who sees what is the policy's
`usage.view`: instance admins, managers and support every row; an account manager the rows of
their assigned clients only (never the rows of runs without a client, which are the agency's own).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db.models import Count, DateField, QuerySet, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from agents.model import price_for
from spokestack.accounts import policy
from spokestack.errors import InvalidInput, NotFound

from .models import DURATION_BUCKETS_MS, UsageDaily

ACTION = "usage.view"
GROUPS = ("agent", "client", "user", "model", "day", "week")
# group → the columns that name a group (the first is its key)
_GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "agent": ("agent_type",), "client": ("client_id", "client__name"), "user": ("user_id", "user__email"),
    "model": ("model",), "day": ("day",), "week": ("week",),
}
_SUMS = ("runs_succeeded", "runs_failed", "runs_cancelled", "turns", "tool_calls", "input_tokens", "output_tokens",
         "cache_creation_input_tokens", "cache_read_input_tokens", "cost_usd", "duration_ms_total")
_N_BUCKETS = len(DURATION_BUCKETS_MS) + 1
# A cache read is billed at 10 % of the input price, so each read token saves 90 % of it.
CACHE_READ_SAVING = Decimal("0.9")
_MILLION = Decimal(1_000_000)


def usage_rows(actor: AbstractUser | None, date_from: dt.date, date_to: dt.date, agent_type: str | None = None,
               client_id: int | None = None) -> QuerySet[UsageDaily]:
    """The rollup rows of the days `date_from`..`date_to` (both included, the instance's days) the
    actor may see. A client the actor may not see is a 404 (NotFound), as everywhere."""
    if date_from > date_to:
        raise InvalidInput("from: must be on or before to.", details={"from": [str(date_from)], "to": [str(date_to)]})
    policy.require(actor, ACTION, client_id)
    rows = UsageDaily.objects.filter(day__gte=date_from, day__lte=date_to)
    if not policy.acts_on_every_client(actor, ACTION):
        rows = rows.filter(client__in=policy.clients_for(actor, ACTION))
    if client_id is not None:
        from tuning.models import Client

        if not Client.objects.filter(pk=client_id).exists():
            raise NotFound("No such client.", details={"client_id": client_id})
        rows = rows.filter(client_id=client_id)
    if agent_type:
        rows = rows.filter(agent_type=agent_type)
    return rows


def _percentile_ms(buckets: list[int], share: float) -> int | None:
    """The upper bound (ms) of the bucket holding the `share` quantile; None when that is the last,
    open bucket (longer than the longest bound) or when nothing was counted."""
    total = sum(buckets)
    if not total:
        return None
    running = 0
    for index, count in enumerate(buckets):
        running += count
        if running >= share * total:
            return DURATION_BUCKETS_MS[index] if index < len(DURATION_BUCKETS_MS) else None
    return None


def _grouped(rows: QuerySet[UsageDaily], columns: Iterable[str]) -> list[dict[str, Any]]:
    """One query: the sums (and the summed duration buckets) per group and model."""
    columns = list(columns)
    if "week" in columns:
        rows = rows.annotate(week=Trunc("day", "week", output_field=DateField()))
    sums = {name: Sum(name) for name in _SUMS}
    sums |= {f"bucket_{i}": Sum(f"duration_buckets__{i}") for i in range(_N_BUCKETS)}
    keys = [*columns, *(["model"] if "model" not in columns else [])]
    return list(rows.order_by().values(*keys).annotate(**sums).order_by(*keys))


def _empty() -> dict[str, Any]:
    return {name: 0 for name in _SUMS} | {"cost_usd": Decimal(0), "buckets": [0] * _N_BUCKETS,
                                          "cache_saved_usd": Decimal(0)}


def _add(into: dict[str, Any], row: dict[str, Any]) -> None:
    for name in _SUMS:
        into[name] += row[name] or 0
    for i in range(_N_BUCKETS):
        into["buckets"][i] += row[f"bucket_{i}"] or 0
    price = Decimal(str(price_for(row["model"] or "").input))
    into["cache_saved_usd"] += (row["cache_read_input_tokens"] or 0) * price * CACHE_READ_SAVING / _MILLION


def _finish(group: dict[str, Any]) -> dict[str, Any]:
    buckets = group.pop("buckets")
    read = group["cache_read_input_tokens"]
    prompt = group["input_tokens"] + group["cache_creation_input_tokens"] + read
    group["runs"] = group["runs_succeeded"] + group["runs_failed"] + group["runs_cancelled"]
    group["cost_usd"] = Decimal(group["cost_usd"]).quantize(Decimal("0.000001"))
    group["cache_saved_usd"] = group["cache_saved_usd"].quantize(Decimal("0.000001"))
    group["cache_read_share"] = round(read / prompt, 4) if prompt else 0.0
    group["p50_duration_ms"] = _percentile_ms(buckets, 0.5)
    group["p95_duration_ms"] = _percentile_ms(buckets, 0.95)
    return group


def usage_breakdown(rows: QuerySet[UsageDaily], group_bys: Iterable[str]) -> list[dict[str, Any]]:
    """The totals per combination of `group_bys` (e.g. ("week", "agent") for a stacked chart), each
    with `group` = {group_by: key}; one query whatever the number of rows or runs."""
    group_bys = list(group_bys)
    columns = [column for name in group_bys for column in _GROUP_COLUMNS[name]]
    groups: dict[tuple, dict[str, Any]] = {}
    for row in _grouped(rows, columns):
        key = tuple(row[_GROUP_COLUMNS[name][0]] for name in group_bys)
        if key not in groups:
            group = groups[key] = _empty()
            group["group"] = {name: row[_GROUP_COLUMNS[name][0]] for name in group_bys}
            if "client" in group_bys:
                group["group"]["client_name"] = row["client__name"] or ""
            if "user" in group_bys:
                group["group"]["user_email"] = row["user__email"] or ""
        _add(groups[key], row)
    return [_finish(group) for group in groups.values()]


def usage_totals(rows: QuerySet[UsageDaily], group_by: str) -> dict[str, Any]:
    """{"groups": [totals per agent|client|user|model|day|week], "totals": the whole window's}: runs
    by outcome, turns, tool calls, the four token kinds, cost, p50/p95 run duration (the upper bound
    of the histogram bucket, None above the last), the cache-read share of prompt tokens and the
    money the cache saved. One query."""
    if group_by not in GROUPS:
        raise InvalidInput(f"group_by: choose one of {', '.join(GROUPS)}.", details={"group_by": [group_by]})
    groups = usage_breakdown(rows, [group_by])
    return {"groups": groups, "totals": window_totals(rows) if groups else _finish(_empty())}


def window_totals(rows: QuerySet[UsageDaily]) -> dict[str, Any]:
    """The totals of all the rows (one query; the zeros when there are none)."""
    total = usage_breakdown(rows, [])
    return total[0] if total else _finish(_empty())


def top_runs(actor: AbstractUser | None, date_from: dt.date, date_to: dt.date, agent_type: str | None = None,
             client_id: int | None = None, limit: int = 10) -> QuerySet:
    """The costliest ended runs of the window (by their end, in the instance's days), scoped as the
    rollup is: an account manager sees their clients' runs only."""
    from agents.models import TERMINAL_STATUSES, AgentRun

    zone = timezone.get_current_timezone()
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=zone)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    runs = AgentRun.objects.filter(status__in=TERMINAL_STATUSES, finished_at__gte=start, finished_at__lt=end)
    if not policy.acts_on_every_client(actor, ACTION):
        runs = runs.filter(client__in=policy.clients_for(actor, ACTION))
    if client_id is not None:
        runs = runs.filter(client_id=client_id)
    if agent_type:
        runs = runs.filter(agent_type=agent_type)
    return runs.select_related("client").only(
        "id", "agent_type", "client__name", "model", "cost_usd", "finished_at", "status", "task").order_by(
        "-cost_usd", "-finished_at")[:limit]


def runs_totals(runs: QuerySet) -> dict[str, Any]:
    """The totals of a set of runs as filtered (the runs changelist's totals row): one aggregate query.
    Not the rollup: the changelist's filters (status, review, search) are the runs' own."""
    sums = runs.order_by().aggregate(
        runs=Count("pk"), cost_usd=Sum("cost_usd"), turns=Sum("iterations"), tool_calls=Sum("tool_calls_count"),
        input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"),
        cache_creation_input_tokens=Sum("cache_creation_input_tokens"),
        cache_read_input_tokens=Sum("cache_read_input_tokens"))
    return {name: value or (Decimal(0) if name == "cost_usd" else 0) for name, value in sums.items()}


def default_window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The last 30 days, today included (the instance's today)."""
    today = today or timezone.localdate()
    return today - dt.timedelta(days=29), today


def weeks_between(date_from: dt.date, date_to: dt.date) -> list[dt.date]:
    """The Mondays of the weeks the window touches (the charts' x axis, empty weeks included)."""
    monday = date_from - dt.timedelta(days=date_from.weekday())
    weeks = []
    while monday <= date_to:
        weeks.append(monday)
        monday += dt.timedelta(days=7)
    return weeks


def platform_usage(days: int = 30) -> list[dict[str, Any]]:
    """Per instance: runs and cost of its last `days` days (platform staff's page). One query per
    instance, in its schema."""
    from django_tenants.utils import schema_context

    from spokestack.tenancy.models import Instance

    answer = []
    for instance in Instance.objects.exclude(schema_name="public").order_by("name"):
        with schema_context(instance.schema_name):
            date_to = timezone.localdate()
            rows = UsageDaily.objects.filter(day__gt=date_to - dt.timedelta(days=days))
            sums = rows.aggregate(succeeded=Sum("runs_succeeded"), failed=Sum("runs_failed"),
                                  cancelled=Sum("runs_cancelled"), cost=Sum("cost_usd"),
                                  input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"),
                                  cache_read=Sum("cache_read_input_tokens"))
        runs = sum(sums[k] or 0 for k in ("succeeded", "failed", "cancelled"))
        answer.append({"instance": instance, "runs": runs, "runs_failed": sums["failed"] or 0,
                       "cost_usd": (sums["cost"] or Decimal(0)).quantize(Decimal("0.01")),
                       "input_tokens": sums["input_tokens"] or 0, "output_tokens": sums["output_tokens"] or 0,
                       "cache_read_input_tokens": sums["cache_read"] or 0})
    return answer
