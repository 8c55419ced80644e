"""Abuse limits: the admin sign-in lockout (django-axes) and the API's throttles (DRF).

Sign-in, on both admin sites: django-axes with its database handler. Failures are rows in the
schema of the instance whose login page was used (axes is in SHARED_APPS and TENANT_APPS),
beside the users they guard: a lockout in one instance never touches the same e-mail address in
another, nothing done in another instance lifts it, and sign-in needs no more than it did
(PostgreSQL; the admin keeps working while Redis is down). Failures count per login name and per
client address (`AXES_LOCKOUT_PARAMETERS`); `AXES_FAILURE_LIMIT` of either locks until
`AXES_COOLOFF_TIME` after the last counted failure. `login_lockout_response` is the answer.

API: DRF's sliding-window throttles in Redis. Failed bearer authentications per client address
(`AuthFailureThrottle`, asked by BearerTokenAuthentication before it looks a token up), and agent
executions per user and per address (`ExecutePerUserThrottle`, `ExecutePerAddressThrottle`).
Cache keys carry the schema (django_tenants' make_key), so every count is per instance, the
per-address ones included: instances do not share limits, and one agency's misconfigured
integration never throttles another's behind the same address. (Tokens are 256-bit random, so
counting failures across instances would not make guessing any harder; the limit bounds load.)
A throttle that cannot reach Redis lets the request through: reading or starting a run needs
only the database (issue #12), and a 503 for the throttle's sake would be the worse outage.
"""

from __future__ import annotations

import ipaddress
import logging
import math

from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django_tenants.utils import get_public_schema_name
from rest_framework.exceptions import Throttled
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from spokestack.outages import REDIS_ERRORS

logger = logging.getLogger(__name__)

# What each limit counts, for the 429's message ("Too many requests (<this>: at most 30/min)").
LIMITS = {
    "auth_failures": "failed authentications from this address",
    "execute_user": "agent executions by this user",
    "execute_address": "agent executions from this address",
}
# The routes (URL names) whose POSTs count as agent executions.
EXECUTE_ROUTES = frozenset({"agent-execute"})
# Where a throttled request notes which limit refused it, for the error envelope.
THROTTLED_BY = "throttled_by"
IPV6_CLIENT_PREFIX = 64


def client_address(request: HttpRequest) -> str:
    """The client's address, for the sign-in lockout and the API throttles alike.

    REMOTE_ADDR, unless REST_FRAMEWORK["NUM_PROXIES"] (TRUSTED_PROXY_COUNT) says how many proxies
    in front of us append to X-Forwarded-For: then the entry that many from the right. Without
    trusted proxies the header is ignored, or a client would name a new address per request;
    an entry that is not an address is ignored too (the proxy's own address counts instead).
    An IPv6 client is its /64, the network one subscriber gets: it could otherwise take a new
    address from it for every request.
    """
    proxies = api_settings.NUM_PROXIES or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    candidates = [request.META.get("REMOTE_ADDR") or ""]
    if proxies and forwarded:
        entries = [entry.strip() for entry in forwarded.split(",")]
        candidates.insert(0, entries[-min(proxies, len(entries))])
    for candidate in candidates:
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if address.version == 6 and address.ipv4_mapped:
            return str(address.ipv4_mapped)
        if address.version == 6:
            return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False).network_address)
        return str(address)
    return candidates[-1]


# --- admin sign-in (django-axes) -----------------------------------------------------------


def _lockout_seconds_left(request: HttpRequest) -> int:
    from axes.handlers.proxy import AxesProxyHandler
    from axes.helpers import get_cool_off

    cool_off = get_cool_off(request)
    # The database handler's querysets of this request's counted failures (by name, by address):
    # the lockout ends at the latest one plus the cool-off (refused attempts are not recorded).
    # Another handler: a whole cool-off, the most it can be.
    attempts_of = getattr(AxesProxyHandler.get_implementation(), "get_user_attempts", None)
    counted = attempts_of(request, None) if attempts_of else []
    latest = max(filter(None, (attempts.aggregate(last=Max("attempt_time"))["last"] for attempts in counted)),
                 default=timezone.now())
    return max(1, math.ceil((latest + cool_off - timezone.now()).total_seconds()))


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def login_lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After, as the admin site's own page (instance or
    platform branding) saying when to try again, or as the API's error envelope under /api/."""
    from spokestack.admin_site import instance_admin, platform_admin

    wait = _lockout_seconds_left(request)
    message = f"Too many failed sign-ins for this account or from this address; try again in {_duration(wait)}."
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"error": {"code": "throttled", "message": message, "details": {"retry_after": wait, "limit": "login"}}},
            status=429)
    else:
        public = request.tenant.schema_name == get_public_schema_name()
        site = platform_admin if public else instance_admin
        request.current_app = site.name
        context = {**site.each_context(request), "title": "Sign-in locked", "wait": _duration(wait),
                   "login_url": request.get_full_path()}
        response = render(request, "admin/lockout.html", context, status=429)
    response["Retry-After"] = str(wait)
    return response


# --- API (DRF) -----------------------------------------------------------------------------


class RateThrottle(SimpleRateThrottle):
    """DRF's throttle with three changes: the rate is read per request (so settings can change
    it), the address is `client_address`, and Redis being unavailable lets the request through."""

    def get_rate(self) -> str | None:
        self.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        return super().get_rate()

    def get_ident(self, request) -> str:
        return client_address(request)

    def allow_request(self, request, view) -> bool:
        try:
            allowed = super().allow_request(request, view)
        except REDIS_ERRORS as exc:
            logger.warning("throttle %s not applied: Redis unavailable (%s)", self.scope, exc)
            return True
        if not allowed:
            setattr(request, THROTTLED_BY, self.scope)
        return allowed


def _is_execute(request) -> bool:
    match = request.resolver_match
    return request.method == "POST" and match is not None and match.url_name in EXECUTE_ROUTES


class ExecutePerUserThrottle(RateThrottle):
    """Per user, not per token: every token of a user (they make their own) shares one budget."""

    scope = "execute_user"

    def get_cache_key(self, request, view) -> str | None:
        if not _is_execute(request) or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class ExecutePerAddressThrottle(RateThrottle):
    scope = "execute_address"

    def get_cache_key(self, request, view) -> str | None:
        if not _is_execute(request):
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AuthFailureThrottle(RateThrottle):
    """Failed bearer authentications per client address. Only failures count; the budget is
    asked before the token is looked up, so an address that spent it is refused without a
    database query, whatever token it sends next."""

    scope = "auth_failures"

    def get_cache_key(self, request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def refuse_if_spent(self, request) -> None:
        """Raise Throttled when the address has no failure left in the window (counts nothing)."""
        self.key = None
        if self.rate is None:
            return
        key = self.get_cache_key(request)
        try:
            self.history = self.cache.get(key, [])
        except REDIS_ERRORS as exc:
            logger.warning("throttle %s not applied: Redis unavailable (%s)", self.scope, exc)
            return
        self.key = key
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            setattr(request, THROTTLED_BY, self.scope)
            raise Throttled(wait=self.wait())

    def record_failure(self) -> None:
        """Count the failure of the request refuse_if_spent() just let through."""
        if getattr(self, "key", None) is None:
            return
        try:
            self.throttle_success()  # DRF's name for "count this request in the window"
        except REDIS_ERRORS as exc:
            logger.warning("throttle %s not applied: Redis unavailable (%s)", self.scope, exc)


def throttled_error(exc: Throttled, request) -> tuple[str, dict]:
    """(message, details) of a 429 for the error envelope; `exc.wait` is set by every throttle here."""
    wait = max(1, math.ceil(exc.wait or 1))
    scope = getattr(request, THROTTLED_BY, None)
    rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope) if scope else None
    what = f" ({LIMITS[scope]}: at most {rate})" if scope in LIMITS and rate else ""
    details = {"retry_after": wait, **({"limit": scope, "rate": rate} if scope else {})}
    return f"Too many requests{what}; retry in {wait} s.", details
