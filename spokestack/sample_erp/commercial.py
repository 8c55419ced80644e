"""Commercial data (the commercial agent's): rate card, past pricing, client budgets, estimates, discount requests."""

from __future__ import annotations

from .domain import Domain

DOMAIN = Domain(name="commercial")
