"""What each tier may do (issue #20, DESIGN §14): its limits in code, overridable per instance by
platform staff (`Instance.limits_override`).

* `runs_per_minute`: new runs (executes, thread messages, delegated runs excluded) per minute;
* `concurrent_runs`: runs queued, running or waiting at once;
* `monthly_budget_usd`: what the instance's model calls may cost per calendar month (its time zone);
* `max_cost_per_run_usd`: the most one run may cost (an agent's own ceiling applies when lower).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Any

LIMIT_KEYS = ("runs_per_minute", "concurrent_runs", "monthly_budget_usd", "max_cost_per_run_usd")


@dataclass(frozen=True)
class Limits:
    runs_per_minute: int
    concurrent_runs: int
    monthly_budget_usd: Decimal
    max_cost_per_run_usd: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {key: (float(value) if isinstance(value, Decimal) else value) for key, value in asdict(self).items()}


TIER_LIMITS: dict[str, Limits] = {
    "free": Limits(runs_per_minute=5, concurrent_runs=2, monthly_budget_usd=Decimal("10"),
                   max_cost_per_run_usd=Decimal("1")),
    "starter": Limits(runs_per_minute=60, concurrent_runs=20, monthly_budget_usd=Decimal("500"),
                      max_cost_per_run_usd=Decimal("15")),
    "professional": Limits(runs_per_minute=300, concurrent_runs=100, monthly_budget_usd=Decimal("5000"),
                           max_cost_per_run_usd=Decimal("25")),
    "enterprise": Limits(runs_per_minute=1200, concurrent_runs=400, monthly_budget_usd=Decimal("50000"),
                         max_cost_per_run_usd=Decimal("100")),
}


def limits_for(instance: Any) -> Limits:
    """The instance's limits: its tier's, with platform staff's overrides applied."""
    limits = TIER_LIMITS.get(getattr(instance, "tier", "starter"), TIER_LIMITS["starter"])
    override = {key: value for key, value in (getattr(instance, "limits_override", None) or {}).items()
                if key in LIMIT_KEYS and value is not None}
    for key in ("monthly_budget_usd", "max_cost_per_run_usd"):
        if key in override:
            override[key] = Decimal(str(override[key]))
    return replace(limits, **override) if override else limits
