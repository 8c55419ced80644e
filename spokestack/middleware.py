"""One base for the project's middleware that answer before a request or rewrite its response,
under WSGI and ASGI alike (daphne runs the chain async: a sync-only middleware there would cost
a thread hop per request)."""

from __future__ import annotations

import functools
import logging
import zoneinfo

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpResponse
from django.utils import timezone

logger = logging.getLogger(__name__)


class ResponseMiddleware:
    """`before(request)` may answer at once; `after(request, response)` may replace the answer."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return self.before(request) or self.after(request, self.get_response(request))

    async def _acall(self, request):
        return self.before(request) or self.after(request, await self.get_response(request))

    def before(self, request) -> HttpResponse | None:
        return None

    def after(self, request, response: HttpResponse) -> HttpResponse:
        return response


def activate_instance_timezone(instance) -> None:
    """Every page of an instance shows times in the instance's time zone (`Instance.timezone`);
    any other request (the platform's public host, an unknown host) in UTC, so a zone never
    carries over from one request to the next in a reused thread or context. A stored name that
    is not a zone (written around the forms' validation) falls back to UTC and is logged."""
    name = getattr(instance, "timezone", "") or ""
    if not name or getattr(instance, "schema_name", "public") == "public":
        timezone.deactivate()
        return
    try:
        timezone.activate(_zone(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        logger.warning("instance %s has an unknown time zone %r; showing UTC", instance.schema_name, name)
        timezone.deactivate()


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)
