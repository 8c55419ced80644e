"""Reads for skills."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Aggregate, Count, FloatField, OuterRef, Q, QuerySet, Subquery

from .models import Skill, SkillCall


def skills_for_agent_type(*, agent_type: str, enabled_only: bool = True) -> QuerySet[Skill]:
    skills = Skill.objects.filter(agent_types__contains=[agent_type])
    return skills.filter(enabled=True) if enabled_only else skills


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
    counted = Q(calls__test=False)
    last_error = SkillCall.objects.filter(skill=OuterRef("pk"), test=False, ok=False).order_by("-created_at", "-id")
    return (queryset if queryset is not None else Skill.objects.all()).annotate(
        m_calls=Count("calls", filter=counted),
        m_ok=Count("calls", filter=counted & Q(calls__ok=True)),
        m_p50=Percentile("calls__duration_ms", 0.5, filter=counted),
        m_p95=Percentile("calls__duration_ms", 0.95, filter=counted),
        m_last_error=Subquery(last_error.values("error")[:1]),
    )


def metrics_of(skill: Skill) -> SkillMetrics:
    """From the annotations of `skills_with_metrics` when present, else one query of its own."""
    if not hasattr(skill, "m_calls"):
        skill = skills_with_metrics(Skill.objects.filter(pk=skill.pk)).get()
    rate = round(skill.m_ok / skill.m_calls, 4) if skill.m_calls else None
    rounded = [round(v, 2) if v is not None else None for v in (skill.m_p50, skill.m_p95)]
    return SkillMetrics(skill.m_calls, rate, rounded[0], rounded[1], skill.m_last_error or "")


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
