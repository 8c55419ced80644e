"""Reads for skills."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, OuterRef, Q, QuerySet, Subquery

from .models import McpServer, McpTool, McpToolCall, Skill, SkillCall


def skills_for_agent_type(*, agent_type: str, enabled_only: bool = True) -> QuerySet[Skill]:
    skills = Skill.objects.filter(agent_types__contains=[agent_type])
    return skills.filter(enabled=True) if enabled_only else skills


# What a run is offered changes with a skill or MCP write, each audited (the audit log's newest id);
# the tables' row counts and newest `updated_at` are in the key too, for a write that bypasses the
# services (a data migration, a fix in the shell).
OFFER_TABLES = ("skills_skill", "skills_mcptool", "skills_mcpserver")
_OFFERS: OrderedDict[tuple, tuple] = OrderedDict()
_OFFERS_SIZE = 256
_OFFERS_LOCK = threading.Lock()


def offer_version() -> tuple:
    """The key of everything a run's tools and prompt are built from (tuning, skills, MCP tools),
    read in one statement (the runs' claim reads it with the run: `offer_version_sql`)."""
    from tuning.selectors import tuning_version

    return tuning_version(tables=OFFER_TABLES)


def offer_version_sql() -> str:
    """`offer_version`'s statement (one row)."""
    from tuning.selectors import tuning_version_sql

    return tuning_version_sql(OFFER_TABLES)


def skills_offered(*, agent_type: str, names: list[str] | None = None, version: tuple) -> tuple:
    """The enabled skills, then the exposed MCP tools, a run of `agent_type` is offered (for an
    agency-built agent, `names`: those its definition names), each group by name. Kept per process
    under `version` (`offer_version()`): a run reads two queries' worth of rows only when something
    they come from changed. The rows are shared by the runs that get them: read, never changed."""
    key = (connection.schema_name, version, agent_type, tuple(names) if names is not None else None)
    with _OFFERS_LOCK:
        hit = _OFFERS.get(key)
        if hit is not None:
            _OFFERS.move_to_end(key)
            return hit
    skills = skills_for_agent_type(agent_type=agent_type) if names is None else \
        Skill.objects.filter(name__in=names, enabled=True).order_by("name")
    offered = (*skills, *mcp_tools_offered(agent_type=agent_type, names=names))
    with _OFFERS_LOCK:
        _OFFERS[key] = offered
        while len(_OFFERS) > _OFFERS_SIZE:
            _OFFERS.popitem(last=False)
    return offered


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont(q) WITHIN GROUP (ORDER BY …)."""

    function = "percentile_cont"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, percentile: float, **extra) -> None:
        super().__init__(expression, percentile=float(percentile), **extra)


def skills_with_metrics(queryset: QuerySet[Skill] | None = None) -> QuerySet[Skill]:
    """Skills annotated with their metrics in one query (lists, the admin changelist):
    m_calls, m_ok, m_p50, m_p95, m_last_error. Test calls are not counted."""
    return _with_call_metrics(queryset if queryset is not None else Skill.objects.all(), SkillCall, "skill")


def _with_call_metrics(queryset: QuerySet, calls: type, owner: str) -> QuerySet:
    """Skills or MCP tools (their calls: related name `calls`) annotated with their call metrics."""
    counted = Q(calls__test=False)
    last_error = calls.objects.filter(**{owner: OuterRef("pk")}, test=False, ok=False).order_by("-created_at", "-id")
    return queryset.annotate(
        m_calls=Count("calls", filter=counted),
        m_ok=Count("calls", filter=counted & Q(calls__ok=True)),
        m_p50=Percentile("calls__duration_ms", 0.5, filter=counted),
        m_p95=Percentile("calls__duration_ms", 0.95, filter=counted),
        m_last_error=Subquery(last_error.values("error")[:1]),
    )


def _metrics(row) -> SkillMetrics:
    rate = round(row.m_ok / row.m_calls, 4) if row.m_calls else None
    rounded = [round(v, 2) if v is not None else None for v in (row.m_p50, row.m_p95)]
    return SkillMetrics(row.m_calls, rate, rounded[0], rounded[1], row.m_last_error or "")


def metrics_of(skill: Skill) -> SkillMetrics:
    """From the annotations of `skills_with_metrics` when present, else one query of its own."""
    if not hasattr(skill, "m_calls"):
        skill = skills_with_metrics(Skill.objects.filter(pk=skill.pk)).get()
    return _metrics(skill)


def skill_get(*, skill_id: int | str) -> Skill | None:
    try:
        return Skill.objects.filter(pk=int(skill_id)).first()
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class SkillMetrics:
    calls: int
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    last_error: str

    def as_dict(self) -> dict:
        return {"calls": self.calls, "success_rate": self.success_rate, "p50_ms": self.p50_ms,
                "p95_ms": self.p95_ms, "last_error": self.last_error}


# --- MCP servers and tools ------------------------------------------------------------------


def mcp_tools_offered(*, agent_type: str, names: list[str] | None = None) -> QuerySet[McpTool]:
    """The MCP tools a run of `agent_type` is offered: exposed, of an enabled server, still listed
    by it; for an agency-built agent (`names` given) those its definition names."""
    tools = McpTool.objects.filter(enabled=True, server__enabled=True, vanished_at__isnull=True)
    tools = tools.filter(name__in=names) if names is not None else tools.filter(agent_types__contains=[agent_type])
    return tools.select_related("server").order_by("name")


def mcp_servers_with_counts(queryset: QuerySet[McpServer] | None = None) -> QuerySet[McpServer]:
    """Servers with m_tools (listed now) and m_exposed, in one query."""
    listed = Q(tools__vanished_at__isnull=True)
    return (queryset if queryset is not None else McpServer.objects.all()).annotate(
        m_tools=Count("tools", filter=listed, distinct=True),
        m_exposed=Count("tools", filter=listed & Q(tools__enabled=True), distinct=True))


def mcp_server_get(*, server_id: int | str) -> McpServer | None:
    try:
        return McpServer.objects.filter(pk=int(server_id)).first()
    except (TypeError, ValueError):
        return None


def mcp_tool_get(*, server: McpServer, tool_id: int | str) -> McpTool | None:
    try:
        return McpTool.objects.select_related("server").filter(server=server, pk=int(tool_id)).first()
    except (TypeError, ValueError):
        return None


def mcp_tools_with_metrics(queryset: QuerySet[McpTool]) -> QuerySet[McpTool]:
    """Tools annotated with m_calls, m_ok, m_p50, m_p95, m_last_error (test calls not counted)."""
    return _with_call_metrics(queryset, McpToolCall, "tool")


def mcp_metrics_of(tool: McpTool) -> SkillMetrics:
    if not hasattr(tool, "m_calls"):
        tool = mcp_tools_with_metrics(McpTool.objects.filter(pk=tool.pk)).get()
    return _metrics(tool)
