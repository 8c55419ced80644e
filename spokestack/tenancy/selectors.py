"""Reads for instances."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django_tenants.utils import get_public_schema_name, schema_context

from .models import Domain, Instance

logger = logging.getLogger(__name__)


def instance_for_host(*, host: str) -> Instance | None:
    """The instance that answers on this host (port and a leading www. ignored), or None."""
    hostname = host.split(":")[0].lower().removeprefix("www.")
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    return domain.tenant if domain else None


def instances_qs():
    """Every agency instance: neither the public schema nor the template new ones are cloned from."""
    return Instance.objects.exclude(schema_name__in=[get_public_schema_name(), settings.TENANT_BASE_SCHEMA])


def in_each_instance(work: Callable[[str], int], *, what: str) -> int:
    """Call `work(schema)` inside every instance's schema and add up what it returns (the platform
    beat tasks). An instance whose work fails is logged and skipped: one broken instance must not
    hold up the others."""
    total = 0
    for schema in instances_qs().order_by("schema_name").values_list("schema_name", flat=True):
        try:
            with schema_context(schema):
                total += work(schema)
        except SoftTimeLimitExceeded:
            raise  # the task's own time is up: stop, do not go on to the next instance
        except Exception:
            logger.exception("%s failed in instance %s", what, schema)
    return total
