"""Reads for instances."""

from __future__ import annotations

from .models import Domain, Instance


def instance_for_host(*, host: str) -> Instance | None:
    """The instance that answers on this host (port and a leading www. ignored), or None."""
    hostname = host.split(":")[0].lower().removeprefix("www.")
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    return domain.tenant if domain else None
