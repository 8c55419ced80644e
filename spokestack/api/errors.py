"""One exception handler: every API error answers `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from spokestack.errors import DomainError
from spokestack.outages import RETRY_AFTER_SECONDS, dependency_of, outage_message
from spokestack.throttles import throttled_error

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _first_message(value)
            return inner if field == "non_field_errors" else f"{field}: {inner}"
        return "Invalid input."
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "Invalid input."
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        retry_after = getattr(exc, "retry_after", None)
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status,
                        headers={"Retry-After": str(retry_after)} if retry_after else None)
    if isinstance(exc, RequestDataTooBig):  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, a 400 page by default
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(error_body("too_large", f"The request body is larger than {limit} bytes, the limit; "
                                   "send less (a long task can be shortened, or split into several runs).",
                                   {"max_bytes": limit}), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    dependency = dependency_of(exc)
    if dependency is not None:
        set_rollback()
        request = context.get("request")
        logger.warning("%s %s: %s unavailable, answered 503 (%s: %s)", request.method if request else "",
                       request.path if request else "", dependency, exc.__class__.__name__, exc)
        return Response(error_body("unavailable", outage_message(dependency), {"dependency": dependency}),
                        status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's 500 handling, logged with the traceback
    if isinstance(exc, exceptions.ValidationError):
        body = error_body("invalid", _first_message(exc.detail), exc.detail)
    elif isinstance(exc, exceptions.ParseError):
        body = error_body("malformed_request", f"The request body could not be read: {exc.detail}")
    elif isinstance(exc, exceptions.NotAuthenticated):
        body = error_body("not_authenticated", "Send 'Authorization: Bearer <token>' with an API token of this instance.")
    elif isinstance(exc, exceptions.Throttled):  # spokestack/throttles.py: always with Retry-After
        message, details = throttled_error(exc, context.get("request"))
        body = error_body("throttled", message, details)
        response["Retry-After"] = str(details["retry_after"])
    else:
        code = getattr(exc, "default_code", "error")
        body = error_body(code, str(getattr(exc, "detail", exc)))
    response.data = body
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
        logger.info("throttled: %s", context.get("request").path if context.get("request") else "")
    return response
