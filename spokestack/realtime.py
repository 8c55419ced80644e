"""Websocket tenancy and the channel-layer conventions (DESIGN §3).

django-tenants' middleware does not run for websockets, so `InstanceScopeMiddleware` resolves
the instance from the handshake's Host header, authenticates the user inside that instance's
schema (session cookie for the admin, `Authorization: Bearer` for API clients), and every
database call a consumer makes goes through `instance_sync_to_async`, which sets the schema
in the worker thread for that call. Group names always start with the schema, and only
`group_name` builds them, so a consumer cannot name another instance's group.

A live connection (a websocket, an SSE stream) is a `StreamViewer` (issue #13): it keeps the
credentials it was opened with and proves them again every `STREAM_RECHECK_SECONDS` (a revoked
or expired token, an ended session, a deactivated user or one left without a role ends it within
that time), and it holds one of its user's `STREAM_MAX_PER_USER` places, counted in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import connection

from spokestack.errors import DomainError

logger = logging.getLogger(__name__)

WS_CLOSE_UNKNOWN_INSTANCE = 4404
WS_CLOSE_SUSPENDED = 4403
WS_CLOSE_UNAUTHENTICATED = 4401  # also: the credentials stopped being valid while the socket was open
WS_CLOSE_FORBIDDEN = 4403  # the user may no longer see what the socket carries (a role or access removed)
WS_CLOSE_TOO_MANY_STREAMS = 4429  # the user already holds STREAM_MAX_PER_USER streams and sockets, or
# the address spent its failed-authentication budget (the handshake's error message says which)
WS_CLOSE_RECONNECT = 4000  # the socket reached STREAM_MAX_SECONDS: reconnect now (with ?after=<last_seq>)
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


def publish_update_event(notification=None, *, agent_type: str = "", version: str = "") -> None:
    """Tell the instance's `updates` subscribers (policy `version.view`) that an update notification
    was made or reviewed: the notification, or its agent type and version (one per release and
    instance). Call it where the change is written, inside or outside a transaction: the message
    goes after the commit (never for a change rolled back), carries the row as it was committed,
    and a failure to send it is logged, never raised (a notification must not fail the review)."""
    from django.db import transaction

    if notification is not None:
        agent_type, version = notification.agent_type, notification.version
    schema = connection.schema_name
    transaction.on_commit(functools.partial(_publish_update, schema=schema, agent_type=agent_type, version=version),
                          robust=True)


def _publish_update(*, schema: str, agent_type: str, version: str) -> None:
    try:
        from django_tenants.utils import schema_context

        from versions.models import UpdateNotification

        from .consumers import UPDATES, UPDATES_TO_REVIEW

        with schema_context(schema):
            notification = UpdateNotification.objects.filter(agent_type=agent_type, version=version).first()
            if notification is None:
                return
            to_review = UpdateNotification.objects.filter(status__in=UPDATES_TO_REVIEW).count()
        publish_instance_event(schema, UPDATES, {
            "notification_id": notification.pk, "agent_type": notification.agent_type,
            "from_version": notification.from_version, "version": notification.version,
            "recommendation": notification.recommendation, "status": notification.status,
            "client_id": None, "to_review": to_review})
    except Exception:  # noqa: BLE001 - a notification must never fail the review or the release
        logger.warning("could not publish the update notification %s %s", agent_type, version, exc_info=True)


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


@dataclass(frozen=True)
class Credentials:
    """What a live connection's user proved who they are with, kept to prove it again: the raw
    bearer token (already in the connection's headers) or the session key. Neither is logged."""

    bearer: str = ""
    session_key: str = ""
    # A user the server itself put in the scope (a consumer mounted without
    # InstanceScopeMiddleware, as tests do): read again by id, so deactivation still counts.
    user_id: int | None = None

    @classmethod
    def from_headers(cls, *, authorization: str, cookie: str) -> Credentials:
        """An Authorization header wins over the session cookie, as in the API; one that is not
        `Bearer <token>` authenticates nobody."""
        if authorization:
            kind, _, raw = authorization.partition(" ")
            return cls(bearer=raw.strip() if kind.lower() == "bearer" else "")
        morsel = SimpleCookie(cookie).get(settings.SESSION_COOKIE_NAME)
        return cls(session_key=morsel.value if morsel is not None else "")

    def __repr__(self) -> str:
        kind = "bearer" if self.bearer else "session" if self.session_key else "user" if self.user_id else "none"
        return f"Credentials({kind})"


def credentials_user(credentials: Credentials) -> Any:
    """The user these credentials stand for now, in the current schema (AnonymousUser when the
    token was revoked or expired, the session ended, or the user was deactivated)."""
    from django.contrib.auth import get_user

    from spokestack.accounts.services import api_token_authenticate

    if credentials.bearer:
        token = api_token_authenticate(raw=credentials.bearer)
        return token.user if token else AnonymousUser()
    if credentials.session_key:
        engine = import_module(settings.SESSION_ENGINE)
        return get_user(_SessionRequest(engine.SessionStore(credentials.session_key)))
    if credentials.user_id is not None:
        from django.contrib.auth import get_user_model

        return get_user_model().objects.filter(pk=credentials.user_id, is_active=True).first() or AnonymousUser()
    return AnonymousUser()


class _Handshake:
    """What the API's throttles read from a request (its META), for a websocket handshake."""

    def __init__(self, scope: dict) -> None:
        client = scope.get("client") or ("", 0)
        self.META = {"REMOTE_ADDR": client[0] or "", "HTTP_X_FORWARDED_FOR": _header(scope, b"x-forwarded-for")}


class HandshakeThrottled(DomainError):
    """The handshake's address spent its failed-authentication budget (the API's `auth_failures`)."""

    status = 429
    code = "throttled"


def _authenticate(scope: dict) -> tuple[Any, Credentials]:
    """The handshake's user. A bearer token is counted as the API counts it: an address that spent
    its budget of failed authentications (`AuthFailureThrottle`, shared with the API) is refused
    before the token is looked up, and a token that authenticates no one spends one."""
    from rest_framework.exceptions import Throttled

    from spokestack.throttles import AuthFailureThrottle, throttled_error

    credentials = Credentials.from_headers(authorization=_header(scope, b"authorization"),
                                           cookie=_header(scope, b"cookie"))
    if not credentials.bearer:
        return credentials_user(credentials), credentials
    handshake, failures = _Handshake(scope), AuthFailureThrottle()
    try:
        failures.refuse_if_spent(handshake)
    except Throttled as exc:
        message, details = throttled_error(exc, handshake)
        raise HandshakeThrottled(message, details=details) from None
    user = credentials_user(credentials)
    if not user.is_authenticated:
        failures.record_failure()
    return user, credentials


# --- who may keep a live connection -----------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a live connection ends because of its viewer: the websocket close code (4401, 4403,
    4429), a machine-readable code and a message that says what to do."""

    close_code: int
    code: str
    message: str

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message, **extra}


def _credentials_refusal(credentials: Credentials) -> Refusal:
    """Why credentials that worked stopped working: revoked, expired, deactivated or ended."""
    reason = "the session ended (signed out, or the password changed) or the account was deactivated"
    if not credentials.session_key:
        reason = "the account was deactivated"
    if credentials.bearer:
        from django.utils import timezone

        from spokestack.accounts.models import ApiToken
        from spokestack.accounts.services import _digest

        token = ApiToken.objects.filter(digest=_digest(credentials.bearer)).values(
            "revoked_at", "expires_at", "user__is_active").first()
        if token is None:
            reason = "the API token was deleted"
        elif token["revoked_at"] is not None:
            reason = "the API token was revoked"
        elif not token["user__is_active"]:
            reason = "the account was deactivated"
        elif token["expires_at"] is not None and token["expires_at"] <= timezone.now():
            reason = "the API token expired"
        else:
            reason = "the API token is no longer valid"
    return Refusal(close_code=WS_CLOSE_UNAUTHENTICATED, code="not_authenticated",
                   message=f"This stream ended because {reason}: reconnect with valid credentials.")


NO_ROLE = Refusal(close_code=WS_CLOSE_FORBIDDEN, code="forbidden",
                  message="This stream ended because your account no longer has a role in this instance.")


def forbidden(message: str) -> Refusal:
    return Refusal(close_code=WS_CLOSE_FORBIDDEN, code="forbidden", message=message)


class TooManyStreams(DomainError):
    """The user already holds STREAM_MAX_PER_USER live streams and sockets (429; close 4429)."""

    status = 429
    code = "throttled"

    def __init__(self, *, limit: int, retry_after: int) -> None:
        super().__init__(
            f"You already have {limit} live event streams or sockets open, the most one user may hold at once: "
            f"close one and retry. A stream that ended without closing frees its place within {retry_after} s.",
            details={"retry_after": retry_after, "limit": "streams_per_user", "max": limit})
        self.retry_after = retry_after

    @property
    def refusal(self) -> Refusal:
        return Refusal(close_code=WS_CLOSE_TOO_MANY_STREAMS, code=self.code, message=self.message)


# A place is a member of a sorted set per user, scored with the time its lease ends: a stream
# renews it at every re-check, so a daphne that died leaves places that count for at most the
# lease, and a crashed stream never leaks a count for good.
_TAKE_PLACE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2] or ARGV[3]
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return false
"""


def _place_lease_seconds() -> int:
    return max(60, math.ceil(4 * settings.STREAM_RECHECK_SECONDS))


class StreamPlace:
    """One of a user's STREAM_MAX_PER_USER places (call with the instance as the schema)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.member = uuid.uuid4().hex

    @staticmethod
    def _redis():
        from django.core.cache import cache

        return cache._cache.get_client(write=True)  # the cache's Redis (one pool per process)

    @classmethod
    def take(cls, user_id: int) -> StreamPlace | None:
        """A place, or TooManyStreams; None when Redis is unavailable: the stream is not counted
        then (it still ends at STREAM_MAX_SECONDS), rather than refused for the cap's sake."""
        from django.core.cache import cache

        from spokestack.outages import REDIS_ERRORS

        place = cls(cache.make_key(f"stream-places:{user_id}"))
        now, lease, limit = time.time(), _place_lease_seconds(), settings.STREAM_MAX_PER_USER
        try:
            oldest = cls._redis().eval(_TAKE_PLACE, 1, place.key, now, limit, now + lease, place.member, lease + 5)
        except REDIS_ERRORS as exc:
            logger.warning("live streams of user %s not counted: Redis unavailable (%s)", user_id, exc)
            return None
        if oldest is not None:
            raise TooManyStreams(limit=limit, retry_after=max(1, math.ceil(float(oldest) - now)))
        return place

    def renew(self) -> None:
        from spokestack.outages import REDIS_ERRORS

        lease = _place_lease_seconds()
        try:
            self._redis().pipeline().zadd(self.key, {self.member: time.time() + lease}).expire(
                self.key, lease + 5).execute()
        except REDIS_ERRORS:
            logger.info("could not renew a live stream's place (Redis unavailable); it lapses after %s s", lease)

    def release(self) -> None:
        from spokestack.outages import REDIS_ERRORS

        try:
            self._redis().zrem(self.key, self.member)
        except REDIS_ERRORS:
            logger.info("could not free a live stream's place (Redis unavailable); it lapses by itself")


class StreamViewer:
    """Who holds a live stream or socket: the user, the credentials to prove again, their place.

    The async side asks `check_due()`, `expired()` and `seconds_to_next_duty()` (no I/O); the
    sync side (`recheck`, `release`, in the instance's schema, e.g. through
    `instance_sync_to_async`) does the reading.
    """

    def __init__(self, *, user_id: int, credentials: Credentials, place: StreamPlace | None) -> None:
        self.user_id = user_id
        self.credentials = credentials
        self.place = place
        self.recheck_seconds = settings.STREAM_RECHECK_SECONDS
        self.max_seconds = settings.STREAM_MAX_SECONDS
        self.started = time.monotonic()
        self.checked = self.started  # opening it proved the credentials

    @classmethod
    def open(cls, *, user, credentials: Credentials | None) -> StreamViewer:
        """Take one of the user's places (TooManyStreams when none is left). Without credentials
        (a scope the server filled itself) the user is proven again by reading them by id."""
        return cls(user_id=user.pk, credentials=credentials or Credentials(user_id=user.pk),
                   place=StreamPlace.take(user.pk))

    def check_due(self) -> bool:
        return time.monotonic() - self.checked >= self.recheck_seconds

    def expired(self) -> bool:
        return time.monotonic() - self.started >= self.max_seconds

    def seconds_to_next_duty(self) -> float:
        """Until the next re-check or the end of the connection's life, whichever comes first."""
        now = time.monotonic()
        return max(0.0, min(self.checked + self.recheck_seconds, self.started + self.max_seconds) - now)

    def recheck(self) -> tuple[Any, Refusal | None]:
        """Prove the credentials again and renew the place: (the user as they are now, None), or
        (None, why the connection must end). The caller checks its own object's visibility."""
        from spokestack.accounts.roles import is_support, roles_of

        self.checked = time.monotonic()
        if self.place is not None:
            self.place.renew()
        user = credentials_user(self.credentials)
        if not user.is_authenticated or user.pk != self.user_id:
            return None, _credentials_refusal(self.credentials)
        if not roles_of(user) and not is_support(user):
            return None, NO_ROLE
        return user, None

    def release(self) -> None:
        if self.place is not None:
            self.place.release()
            self.place = None


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


async def _accept_and_close(receive, send, code: int, message: dict | None = None) -> None:
    """Accept, say why (optionally), close: a close before the accept reaches the client as a
    bare HTTP 403, which says "you may not" rather than "not now" or "slow down"."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    if message is not None:
        await send({"type": "websocket.send", "text": json.dumps(message)})
    await send({"type": "websocket.close", "code": code})


def _drop_connections() -> None:
    from django.db import DatabaseError, connections

    for conn in connections.all(initialized_only=True):
        with contextlib.suppress(DatabaseError):
            conn.close()


class InstanceScopeMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        from spokestack.outages import DEPENDENCY_ERRORS, dependency_of

        for attempt in (1, 2):
            try:
                instance = await _instance_for_host(_header(scope, b"host"))
                if instance is not None and instance.is_active:
                    user, credentials = await instance_sync_to_async(instance)(_authenticate)(scope)
                break
            except HandshakeThrottled as exc:
                return await _accept_and_close(receive, send, WS_CLOSE_TOO_MANY_STREAMS, {
                    "type": "error", "code": exc.code, "message": exc.message, **exc.details})
            except DEPENDENCY_ERRORS as exc:
                dependency = dependency_of(exc)
                if dependency is None:
                    raise
                if attempt == 1 and dependency == "database":
                    # The thread's connection may be one PostgreSQL ended (a restart, a cut proxy) while
                    # the server is back: drop it and try once more on a new one before refusing.
                    await database_sync_to_async(_drop_connections)()
                    continue
                logger.warning("a websocket handshake is refused for now (1013): %s is unavailable: %r",
                               dependency, exc)
                return await _accept_and_close(receive, send, WS_CLOSE_TRY_AGAIN_LATER)
        if instance is None:
            return await send({"type": "websocket.close", "code": WS_CLOSE_UNKNOWN_INSTANCE})
        if not instance.is_active:
            return await send({"type": "websocket.close", "code": WS_CLOSE_SUSPENDED})
        scope = {**scope, "instance": instance, "user": user, "credentials": credentials}
        return await self.app(scope, receive, send)
