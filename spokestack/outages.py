"""Honest answers while PostgreSQL or Redis is down: 503 with `Retry-After`, never a 500.

What is an outage, in one place: `DEPENDENCY_ERRORS` is what to catch, `dependency_of(exc)`
says whether a caught error means a dependency is unreachable ("database", "redis") or is an
ordinary error (a serialization failure is the database answering, not the database down).

Where a request meets an outage, and who answers:

* in a DRF view: `spokestack.api.errors.exception_handler`, the 503 envelope;
* anywhere else (InstanceMiddleware's instance lookup runs before any view; the admin; saving
  the session): Django turns the exception into a 500 inside the `convert_exception_to_response`
  wrapper of the middleware it escaped from, so no outer middleware sees the exception, and in
  DEBUG the 500 is the technical page rather than handler500. `got_request_exception` is sent
  there with the exception current (in a worker thread under ASGI too: asgiref re-raises it
  there), so `_note_outage` marks the request, and `DependencyOutageMiddleware`, first in
  MIDDLEWARE, answers the marked request's 500 with the 503;
* in a stream under way (SSE, websocket): agents/streaming.py retries, then ends with `reconnect`.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import psycopg
import redis.exceptions
from django.core.signals import got_request_exception
from django.db import InterfaceError as DjangoInterfaceError
from django.db import OperationalError as DjangoOperationalError
from django.dispatch import receiver
from django.http import HttpResponse
from kombu.exceptions import OperationalError as KombuOperationalError
from psycopg_pool import PoolTimeout

from spokestack.middleware import ResponseMiddleware

logger = logging.getLogger(__name__)

Dependency = Literal["database", "redis"]

# PoolTimeout is a psycopg OperationalError; it is named for the reader.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DjangoOperationalError, DjangoInterfaceError, psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
# The cache and the channel layer raise redis-py's errors; publishing a Celery task raises
# kombu's OperationalError (with redis-py's error as its cause).
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, KombuOperationalError)
DEPENDENCY_ERRORS = DATABASE_ERRORS + REDIS_ERRORS

# SQLSTATEs with which a server says it cannot serve us now: connection exceptions (class 08),
# shutting down or starting up, too many connections. Any other SQLSTATE is the database
# answering; no SQLSTATE at all is a client-side failure (refused, reset, closed, pool timeout).
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "53300"}

RETRY_AFTER_SECONDS = 5
MESSAGES: dict[str, str] = {
    "database": "The database is unavailable right now; retry in a few seconds.",
    "redis": "The broker and cache (Redis) are unavailable right now; retry in a few seconds.",
}
REQUEST_ATTRIBUTE = "dependency_outage"


def dependency_of(exc: BaseException | None) -> Dependency | None:
    """The dependency whose unavailability `exc` reports, following explicit causes (Django's
    database errors wrap psycopg's; kombu's wrap redis-py's), or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, REDIS_ERRORS):
            return "redis"
        if isinstance(exc, psycopg.Error):
            if not isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
                return None
            state = exc.sqlstate
            return "database" if state is None or state.startswith("08") or state in _UNAVAILABLE_SQLSTATES else None
        if isinstance(exc, (DjangoOperationalError, DjangoInterfaceError)) and not isinstance(
                exc.__cause__, psycopg.Error):
            return "database"  # raised by Django itself, e.g. "connection already closed"
        exc = exc.__cause__
    return None


def outage_message(dependency: Dependency) -> str:
    return MESSAGES[dependency]


def outage_response(request, dependency: Dependency) -> HttpResponse:
    """The 503 for a request outside DRF: the JSON envelope under /api/, a plain page elsewhere."""
    from spokestack.tenancy.middleware import refusal_response

    response = refusal_response(request, status=503, code="unavailable", message=outage_message(dependency),
                                details={"dependency": dependency})
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@receiver(got_request_exception, dispatch_uid="spokestack.outages.note_outage")
def _note_outage(sender, request=None, **kwargs) -> None:
    dependency = dependency_of(sys.exc_info()[1])
    if dependency is not None and request is not None:
        setattr(request, REQUEST_ATTRIBUTE, dependency)


class OutageLogFilter(logging.Filter):
    """On `django.request`: a request answered 503 for an outage is logged as one short warning,
    not an error with a traceback (Django logs its 500, then the 503): during an outage every
    request would otherwise fill the log with the same stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        dependency = getattr(getattr(record, "request", None), REQUEST_ATTRIBUTE, None)
        if dependency is not None:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
            record.msg, record.args = "%s (%s unavailable)", (record.getMessage(), dependency)
        return True


class DependencyOutageMiddleware(ResponseMiddleware):
    """First in MIDDLEWARE: a request whose 500 came from a dependency's outage answers 503."""

    def after(self, request, response):
        dependency = getattr(request, REQUEST_ATTRIBUTE, None)
        if dependency is None or response.status_code != 500:
            return response
        logger.warning("%s %s: %s unavailable, answered 503", request.method, request.path, dependency)
        return outage_response(request, dependency)
