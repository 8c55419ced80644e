"""The API's error envelope on every response under /api/, not only those DRF views answer.

DRF views answer errors through `spokestack.api.errors.exception_handler`. What Django answers
itself is an HTML page: an unknown path (404, on the instance hosts and on the platform host),
an exception no handler mapped (500), a refused `Host` (400). `ApiErrorEnvelopeMiddleware`
turns such a page into `{"error": {"code", "message", "details"}}`, keeping its status and
headers, in DEBUG too (Django's technical pages are HTML for a client that wanted JSON; the
traceback is still logged by `django.request`). It is one middleware rather than handler400 …
handler500 because Django skips those in DEBUG (`make run`), and they cover four statuses only.

It also refuses, on every path, a request whose path, query string or headers carry U+0000:
PostgreSQL cannot store it, so any filter or write with it would be a 500 (the body's JSON is
checked by spokestack.api.parsers).

Second in MIDDLEWARE, inside `spokestack.outages.DependencyOutageMiddleware`: a 500 made JSON
here is still turned into the outage's 503 there.
"""

from __future__ import annotations

from django.core.exceptions import SuspiciousOperation
from django.http import HttpResponse, JsonResponse

from spokestack.hygiene import NUL
from spokestack.middleware import ResponseMiddleware

API_PREFIX = "/api/"
CODES = {400: "bad_request", 401: "not_authenticated", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 413: "too_large", 429: "throttled", 500: "server_error", 503: "unavailable"}
PUBLIC_HOST_PATHS = ("/api/v1/health", "/api/v1/health/ready")
SERVER_ERROR = ("The server failed while answering this request; it is logged. Try again, and tell your SpokeStack "
                "contact if it keeps failing.")


def _message(request, status: int) -> str:
    if status == 404:
        if getattr(getattr(request, "tenant", None), "schema_name", None) == "public":
            return (f"No API path {request.path} on the platform host, which serves only "
                    f"{' and '.join(PUBLIC_HOST_PATHS)}. The instance API is on each instance's own host "
                    "(e.g. alpha.localhost/api/v1/...).")
        return f"No API path {request.path}. The paths are listed at /api/docs/ on this host."
    if status == 405:
        return f"{request.method} is not allowed on {request.path}."
    if status == 413:
        return "The request body is too large."
    if status >= 500:
        return SERVER_ERROR
    return f"The request was refused (HTTP {status})."


def _is_page(response: HttpResponse) -> bool:
    """An error page Django (or a non-DRF view) made, as opposed to our JSON or an event stream."""
    media = response.get("Content-Type", "").split(";")[0].strip().lower()
    return media in ("text/html", "text/plain", "")


def envelope_response(request, status: int, *, code: str | None = None, message: str | None = None,
                      details: dict | None = None) -> JsonResponse:
    return JsonResponse({"error": {"code": code or CODES.get(status, "error"),
                                   "message": message or _message(request, status), "details": details or {}}},
                        status=status)


def carries_nul(request) -> str | None:
    """Where the request carries U+0000 outside its body: 'path', a query parameter or a header."""
    if NUL in request.path:
        return "path"
    try:
        query = request.GET.lists()
    except SuspiciousOperation:  # too many parameters: the view meets it again, and answers 400
        query = []
    for key, values in query:
        if NUL in key or any(NUL in value for value in values):
            return f"query parameter {key!r}"
    for key, value in request.META.items():
        if key.startswith("HTTP_") and isinstance(value, str) and NUL in value:
            return f"header {key[5:].replace('_', '-').title()}"
    return None


class ApiErrorEnvelopeMiddleware(ResponseMiddleware):
    """Refuses a path, query parameter or header that carries U+0000 (400), and answers every
    HTML or plain-text error under /api/ with the JSON error envelope, its status and headers kept."""

    def before(self, request) -> HttpResponse | None:
        where = carries_nul(request)
        if where is None:
            return None
        from spokestack.api.parsers import unstorable_input
        from spokestack.tenancy.middleware import refusal_response

        error = unstorable_input(where)
        return refusal_response(request, status=error.status, code=error.code, message=error.message,
                                details=error.details)

    def after(self, request, response: HttpResponse) -> HttpResponse:
        if (response.status_code < 400 or response.streaming or not request.path.startswith(API_PREFIX)
                or not _is_page(response)):
            return response
        # The page's body is replaced, its headers (Allow, Retry-After, the security headers) kept.
        response.content = envelope_response(request, response.status_code).content
        response["Content-Type"] = "application/json"
        if response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        return response
