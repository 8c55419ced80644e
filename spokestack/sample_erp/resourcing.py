"""Team capacity and allocations (the resource agent's): weekly capacity, skills matrix, allocations."""

from __future__ import annotations

from .domain import Domain

DOMAIN = Domain(name="resourcing")
