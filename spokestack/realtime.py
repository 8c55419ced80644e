"""Websocket tenancy and the channel-layer conventions (DESIGN §3).

django-tenants' middleware does not run for websockets, so `InstanceScopeMiddleware` resolves
the instance from the handshake's Host header, authenticates the user inside that instance's
schema (session cookie for the admin, `Authorization: Bearer` for API clients), and every
database call a consumer makes goes through `instance_sync_to_async`, which sets the schema
in the worker thread for that call. Group names always start with the schema, and only
`group_name` builds them, so a consumer cannot name another instance's group.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import connection

WS_CLOSE_UNKNOWN_INSTANCE = 4404
WS_CLOSE_SUSPENDED = 4403
WS_CLOSE_UNAUTHENTICATED = 4401
WS_CLOSE_FORBIDDEN_ORIGIN = 4400
WS_CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455: a dependency is down; reconnect in a few seconds


def group_name(schema: str, *parts: str | int) -> str:
    return ".".join(["i", schema, *(str(p) for p in parts)])


class _LayerLoop:
    """One event loop per process for channel-layer sends from sync code.

    `async_to_sync` from a worker thread runs each call on a fresh event loop, and the Redis
    layer keeps its connections per loop: every send paid for a new Redis connection (~15 ms).
    Sends submitted here share one loop, one connection, and keep their order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked child starts its own
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="channel-layer-sends", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def submit(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._ensure())


_layer_loop = _LayerLoop()


def group_send(schema: str, *parts: str | int, message: dict, wait: bool = True) -> None:
    """Send a channel-layer message to one of an instance's groups from sync code. With
    wait=False the send is queued on the process's send loop and this returns at once."""
    future = _layer_loop.submit(get_channel_layer().group_send(group_name(schema, *parts), message))
    if wait:
        future.result(timeout=5.0)


def publish_instance_event(schema: str, topic: str, data: dict) -> None:
    """Tell the instance's `ws/events/` subscribers of `topic` about something."""
    group_send(schema, topic, message={"type": "instance.event", "topic": topic, "data": data})


def instance_sync_to_async(instance) -> Callable:
    """database_sync_to_async that runs the function with the connection set to `instance`."""

    def decorator(func: Callable) -> Callable:
        @functools.wraps(func)
        def in_schema(*args, **kwargs):
            connection.set_tenant(instance)
            try:
                return func(*args, **kwargs)
            finally:
                connection.set_schema_to_public()

        return database_sync_to_async(in_schema)

    return decorator


def _header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


@database_sync_to_async
def _instance_for_host(host: str):
    from spokestack.tenancy.selectors import instance_for_host

    connection.set_schema_to_public()
    return instance_for_host(host=host)


class _SessionRequest:
    """What django.contrib.auth.get_user reads from a request: its session."""

    def __init__(self, session) -> None:
        self.session = session


def _authenticate(scope: dict) -> Any:
    from django.contrib.auth import get_user

    from spokestack.accounts.services import api_token_authenticate

    authorization = _header(scope, b"authorization")
    if authorization:
        kind, _, raw = authorization.partition(" ")
        token = api_token_authenticate(raw=raw.strip()) if kind.lower() == "bearer" else None
        return token.user if token else AnonymousUser()
    cookies = SimpleCookie(_header(scope, b"cookie"))
    morsel = cookies.get(settings.SESSION_COOKIE_NAME)
    if morsel is None:
        return AnonymousUser()
    engine = import_module(settings.SESSION_ENGINE)
    return get_user(_SessionRequest(engine.SessionStore(morsel.value)))


class SameOriginValidator:
    """Refuse cross-site websocket handshakes.

    Browsers always send Origin, and cookies ride along with a browser's handshake, so an
    Origin must name exactly the host being connected to (another instance's host is refused
    too). API clients send no Origin and authenticate with a bearer token instead.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            origin = _header(scope, b"origin")
            if origin and urlsplit(origin).netloc.lower() != _header(scope, b"host").lower():
                return await send({"type": "websocket.close", "code": WS_CLOSE_FORBIDDEN_ORIGIN})
        return await self.app(scope, receive, send)


class InstanceScopeMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        from spokestack.outages import DEPENDENCY_ERRORS, dependency_of

        try:
            instance = await _instance_for_host(_header(scope, b"host"))
            if instance is not None and instance.is_active:
                user = await instance_sync_to_async(instance)(_authenticate)(scope)
        except DEPENDENCY_ERRORS as exc:
            if dependency_of(exc) is None:
                raise
            # Accepted, then closed with "try again later": a close before the accept reaches the
            # client as a bare 403, which says "you may not" rather than "not now".
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            return await send({"type": "websocket.close", "code": WS_CLOSE_TRY_AGAIN_LATER})
        if instance is None:
            return await send({"type": "websocket.close", "code": WS_CLOSE_UNKNOWN_INSTANCE})
        if not instance.is_active:
            return await send({"type": "websocket.close", "code": WS_CLOSE_SUSPENDED})
        scope = {**scope, "instance": instance, "user": user}
        return await self.app(scope, receive, send)
