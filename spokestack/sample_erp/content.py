"""Content data (the content agent's): content calendar, channel specs, review requests."""

from __future__ import annotations

from .domain import Domain

DOMAIN = Domain(name="content")
