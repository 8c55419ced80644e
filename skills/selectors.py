"""Reads for skills."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from .models import Skill, SkillCall

METRICS_WINDOW = 1000  # latency percentiles over a skill's most recent calls


def skills_for_agent_type(*, agent_type: str, enabled_only: bool = True) -> QuerySet[Skill]:
    skills = Skill.objects.filter(agent_types__contains=[agent_type])
    return skills.filter(enabled=True) if enabled_only else skills


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


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 2)


def skill_metrics(*, skill: Skill) -> SkillMetrics:
    """Calls, success rate, p50/p95 latency and the last error of a skill (tests excluded)."""
    recent = list(SkillCall.objects.filter(skill=skill, test=False).values_list("ok", "duration_ms", "error")
                  [:METRICS_WINDOW])
    total = SkillCall.objects.filter(skill=skill, test=False).count() if len(recent) >= METRICS_WINDOW else len(recent)
    if not recent:
        return SkillMetrics(0, None, None, None, "")
    durations = [d for _, d, _ in recent]
    ok = sum(1 for o, _, _ in recent if o)
    last_error = next((e for o, _, e in recent if not o and e), "")
    return SkillMetrics(total, round(ok / len(recent), 4), _percentile(durations, 0.5), _percentile(durations, 0.95),
                        last_error)
