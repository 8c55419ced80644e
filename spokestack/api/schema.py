"""The OpenAPI contract's shared parts: the bearer scheme and the errors every operation can answer.

`ApiAutoSchema` (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) adds to each operation the error
responses it can give, all in the one envelope of `spokestack.api.errors` (`ErrorEnvelope`), so
that no view repeats them in a decorator:

* 400 everywhere: a malformed query parameter or body, or U+0000 in a path, query or header
  (spokestack.api.error_envelope refuses it on every path);
* 401, 403 and 429 where authentication applies (bad or missing token; the access policy or a
  CSRF check refuses; failed authentications from this address, or agent executions, throttled);
* 404 where the path names an object, a list is paged (a page past the last one), or a write
  refers to another object by id (a run, a client, an agent type);
* 409 on writes: a decision already taken, a lost race, an `Idempotency-Key` replayed with a
  different body;
* 413 and 415 where there is a body (larger than DATA_UPLOAD_MAX_MEMORY_SIZE; not JSON);
* 503 everywhere, with `Retry-After`: PostgreSQL or Redis is down (spokestack.outages).

A view that documents one of these codes itself keeps its own description (and its own body, if
it gives one). Where a view can answer an event stream (Accept: text/event-stream, ?format=sse),
an error asked for that way is one SSE `error` event, documented as such beside the JSON.
"""

from __future__ import annotations

import inspect

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_doc, is_basic_type, is_list_serializer
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers
from rest_framework.mixins import ListModelMixin

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable: invalid, malformed_request, not_authenticated, "
                                           "forbidden, not_found, conflict, too_large, throttled, unavailable …")
    message = serializers.CharField(help_text="What went wrong and what to do, for a person.")
    details = serializers.JSONField(help_text="Structured context: the fields that failed and why, the ids "
                                              "involved, the limit that refused the request.")


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorSerializer()


class ServerSentEventSerializer(serializers.Serializer):
    """One event of a text/event-stream answer, as an EventSource hands it over (OpenAPI 3.0: the
    media type's schema describes each event)."""

    event = serializers.CharField(help_text="The event type: run.queued … run.cancelled (see the README), or "
                                            "reconnect (resume with Last-Event-ID), or error.")
    data = serializers.CharField(help_text="JSON: a run event {seq, type, payload, created_at}; for reconnect "
                                           "{type, reason, last_seq, message}; for error the error envelope.")
    id = serializers.CharField(required=False, help_text="The event's seq: send it back as Last-Event-ID.")
    retry = serializers.IntegerField(required=False, help_text="Milliseconds an EventSource waits to reconnect.")


EVENT_STREAM = "text/event-stream"


ERRORS = {
    400: "Bad input: a malformed query parameter or body, a value the service refuses, or U+0000 anywhere.",
    401: "No token, or an invalid, expired or revoked one (`WWW-Authenticate: Bearer`).",
    403: "Your role, or your assignment to the client, does not allow this (the access policy).",
    404: "No such object in this instance, or none you may see (or a page past the last one).",
    409: "Conflicts with the current state: already decided or finished, changed since, or an "
         "Idempotency-Key repeated with a different body (details name the fields).",
    413: "The request body is larger than the limit (details.max_bytes).",
    415: "The body must be JSON (Content-Type: application/json).",
    429: "Too many requests (failed authentications from this address, or agent executions); retry after "
         "Retry-After seconds.",
    503: "PostgreSQL or Redis is unavailable (details.dependency); retry after Retry-After seconds.",
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}
WWW_AUTHENTICATE = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer realm=\"api\""}}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer ss_…`: an API token of this instance (Swagger UI's Authorize button)."""

    target_class = "spokestack.accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API token of this instance: `manage.py create_api_token`, the admin's "
                               "API tokens page, or POST /api/v1/tokens."}


class ApiAutoSchema(AutoSchema):
    """drf-spectacular reads a view's `action` as a ViewSet action (list, create …); here it names
    the access-policy row (spokestack.api.views.InstanceApiView), so the three places that read it
    decide without it: a list is a list serializer or a ListAPIView's GET, a create is a POST that
    documents 201, and the description is the handler's docstring or the view's own (not one
    inherited from a base class)."""

    def get_description(self) -> str:
        handler = getattr(self.view, self.method.lower(), None)
        own = vars(type(self.view)).get("__doc__")
        return get_doc(handler) or (inspect.cleandoc(own) if own else "")

    def _is_list_view(self, serializer=None) -> bool:
        if serializer is None:
            serializer = self.get_response_serializers()
        if isinstance(serializer, dict) and serializer:
            serializer = {str(code): value for code, value in serializer.items()}
            serializer = serializer[min(serializer)]
        if is_list_serializer(serializer):
            return True
        if is_basic_type(serializer):
            return False
        return self.method == "GET" and isinstance(self.view, ListModelMixin)

    def _is_create_operation(self) -> bool:
        return False  # a POST documents its 201 itself

    def error_statuses(self) -> list[int]:
        codes = [400]
        if self._authenticated():
            codes += [401, 403, 429]
        if "{" in self.path or self._is_paginated_list() or self.method in BODY_METHODS:
            codes.append(404)
        if self.method in WRITE_METHODS:
            codes.append(409)
        if self.method in BODY_METHODS:
            codes += [413, 415]
        return [*codes, 503]

    def _authenticated(self) -> bool:
        if not self.view.get_authenticators():
            return False
        return not any(isinstance(p, permissions.AllowAny) for p in self.view.get_permissions())

    def _is_paginated_list(self) -> bool:
        return self.method == "GET" and self._get_paginator() is not None and self._is_list_view()

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self.error_statuses():
            response = responses.get(str(code))
            if response is None or not response.get("content"):
                description = response["description"] if response and response.get("description") else ERRORS[code]
                response = self._get_response_for_code(OpenApiResponse(ErrorEnvelopeSerializer, description),
                                                       str(code), media_types=["application/json"], direction=direction)
                if EVENT_STREAM in self.map_renderers("media_type"):
                    # Asked for an event stream (Accept, or ?format=sse), an error is one `error` event.
                    event = self.resolve_serializer(ServerSentEventSerializer, direction)
                    response["content"][EVENT_STREAM] = {"schema": event.ref}
            if code in (429, 503):
                response["headers"] = {**response.get("headers", {}), **RETRY_AFTER}
            elif code == 401:
                response["headers"] = {**response.get("headers", {}), **WWW_AUTHENTICATE}
            responses[str(code)] = response
        return responses
