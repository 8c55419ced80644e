"""The publishing queue (the publisher agent's): channel connections per client, posts and their status."""

from __future__ import annotations

from .domain import Domain

DOMAIN = Domain(name="publishing")
