"""Audience data per client (the brief agent's): segments, sizes, channel habits."""

from __future__ import annotations

from .domain import Domain

DOMAIN = Domain(name="audiences")
