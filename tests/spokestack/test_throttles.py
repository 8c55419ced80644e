"""Abuse limits (issue #13, finding 5): the admin sign-in lockout and the API's throttles.

Sign-in: django-axes counts failures in the schema of the instance whose login page was used,
so a lockout holds in its own instance only, and nothing done in another instance lifts it.
API: failed bearer authentications per client address, and executions per user and per
address, counted in Redis per instance; 429 carries `Retry-After` and the error envelope.

API tests send from an address of their own (a documentation range), so counters in the shared
Redis never meet another test's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import secrets
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import authenticate, get_user_model
from django.db import connection, connections
from django.test import Client
from django.urls import include, path
from django_tenants.utils import schema_context
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from tuning.services import client_create

from ..conftest import HOST_A, HOST_B, PASSWORD, host_of, run_async
from ..processes import free_port

LOGIN = "/admin/login/"


def fresh_address() -> str:
    """An IPv6 client of its own: a random /64 of the documentation range (2001:db8::/32)."""
    return str(ipaddress.IPv6Address("2001:db8::") + (secrets.randbits(32) << 64) + secrets.randbits(64))


def sign_in(http: Client, host: str, email: str, password: str, **extra):
    return http.post(LOGIN, {"username": email, "password": password, "next": "/admin/"}, HTTP_HOST=host, **extra)


def signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def assert_lockout_page(response, *, header: str) -> int:
    """The lockout answer: 429, Retry-After, the admin's own branded page saying when. -> seconds"""
    assert response.status_code == 429, response.content[:500]
    retry_after = int(response["Retry-After"])
    page = response.content.decode()
    assert header in page, page[:1000]
    assert "Sign-in locked" in page and "Too many failed sign-ins" in page
    assert re.search(r"try again in \d+ (minute|second)s?", page), page
    assert 'href="/admin/login/' in page
    return retry_after


def set_rates(settings, **rates: str) -> None:
    drf = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {**drf, "DEFAULT_THROTTLE_RATES": {**drf["DEFAULT_THROTTLE_RATES"], **rates}}


def assert_throttled(response, *, limit: str) -> int:
    assert response.status_code == 429, response.content[:500]
    retry_after = int(response["Retry-After"])
    assert retry_after >= 1
    error = response.json()["error"]
    assert error["code"] == "throttled"
    assert error["message"].endswith(f"retry in {retry_after} s."), error["message"]
    assert error["details"]["retry_after"] == retry_after and error["details"]["limit"] == limit, error
    return retry_after


# --- admin sign-in ------------------------------------------------------------------------


def test_thirty_wrong_passwords_then_the_right_one_does_not_sign_in(in_a, make_user, settings):
    user = make_user("instance_admin")
    http = Client()
    answers = [sign_in(http, HOST_A, user.email, f"wrong-{n}").status_code for n in range(30)]
    limit = settings.AXES_FAILURE_LIMIT
    assert answers == [200] * (limit - 1) + [429] * (31 - limit), answers
    right = sign_in(http, HOST_A, user.email, PASSWORD)
    retry_after = assert_lockout_page(right, header="Instance A · SpokeStack")
    assert 0 < retry_after <= settings.AXES_COOLOFF_TIME.total_seconds()
    assert "_auth_user_id" not in http.session
    assert http.get("/admin/", HTTP_HOST=HOST_A).status_code == 302  # to the login page


def test_the_lockout_covers_the_address_too_not_only_the_login_name(in_a, make_user, settings):
    """One address spraying guesses over many names is stopped like one name guessed from many."""
    settings.AXES_FAILURE_LIMIT = 3
    user = make_user("instance_admin")
    http = Client()
    for n in range(3):
        sign_in(http, HOST_A, f"nobody{n}@example.com", "guess")
    assert sign_in(http, HOST_A, user.email, PASSWORD).status_code == 429
    elsewhere = Client(REMOTE_ADDR="198.51.100.20")
    for _ in range(3):
        sign_in(elsewhere, HOST_A, user.email, "guess")
    assert sign_in(Client(REMOTE_ADDR="198.51.100.21"), HOST_A, user.email, PASSWORD).status_code == 429


def test_a_lockout_in_one_instance_leaves_the_same_email_in_another_alone(in_a, instance_b, make_user, settings):
    email = "shared.person@example.com"
    make_user("instance_admin", email=email)
    connection.set_tenant(instance_b)
    make_user("instance_admin", email=email)
    connection.set_tenant(in_a)
    http_a = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(http_a, HOST_A, email, f"wrong-{n}")
    assert sign_in(http_a, HOST_A, email, PASSWORD).status_code == 429

    # Same address, same e-mail, the other instance: not locked, and signing in there...
    assert signed_in(sign_in(Client(), HOST_B, email, PASSWORD))
    # ...does not lift the lockout in A; and B has no record of A's failures.
    assert sign_in(Client(), HOST_A, email, PASSWORD).status_code == 429
    from axes.models import AccessAttempt

    with schema_context("tenant_b"):
        assert not AccessAttempt.objects.exists()
    with schema_context("tenant_a"):
        assert AccessAttempt.objects.filter(username=email).exists()


def test_failures_in_another_instance_do_not_count_here(in_a, instance_b, make_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = make_user("instance_admin")
    for n in range(5):
        sign_in(Client(), HOST_B, user.email, f"wrong-{n}")
    assert signed_in(sign_in(Client(), HOST_A, user.email, PASSWORD))


def test_a_success_by_another_account_does_not_clear_the_count(in_a, make_user, settings):
    """Otherwise anyone with an account could clear the count of the address they guess from."""
    settings.AXES_FAILURE_LIMIT = 3
    target, own = make_user("instance_admin"), make_user("account_manager")
    http = Client()
    for n in range(2):
        sign_in(http, HOST_A, target.email, f"wrong-{n}")
    assert signed_in(sign_in(Client(), HOST_A, own.email, PASSWORD))
    sign_in(http, HOST_A, target.email, "wrong-3")
    assert sign_in(http, HOST_A, target.email, PASSWORD).status_code == 429


def test_the_lockout_ends_after_the_cool_off(in_a, make_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=3)
    user = make_user("instance_admin")
    http = Client()
    for n in range(3):
        sign_in(http, HOST_A, user.email, f"wrong-{n}")
    last_failure = time.monotonic()
    locked = sign_in(http, HOST_A, user.email, PASSWORD)
    assert 1 <= assert_lockout_page(locked, header="Instance A · SpokeStack") <= 3
    assert re.search(r"try again in [123] seconds?", locked.content.decode())
    # Attempts refused during the lockout do not extend it.
    sign_in(http, HOST_A, user.email, "wrong-again")
    time.sleep(max(0.0, last_failure + 3.2 - time.monotonic()))
    assert signed_in(sign_in(http, HOST_A, user.email, PASSWORD))


def test_an_operator_lifts_a_lockout_with_the_documented_command(in_a, make_user, settings):
    from django.core.management import call_command

    settings.AXES_FAILURE_LIMIT = 3
    user = make_user("instance_admin")
    for n in range(3):
        sign_in(Client(), HOST_A, user.email, f"wrong-{n}")
    assert sign_in(Client(), HOST_A, user.email, PASSWORD).status_code == 429
    call_command("tenant_command", "axes_reset_username", user.email, schema_name="tenant_a")
    assert signed_in(sign_in(Client(), HOST_A, user.email, PASSWORD))


def test_the_platform_admin_on_the_public_host_locks_out_too(db, settings):
    settings.AXES_FAILURE_LIMIT = 3
    with schema_context("public"):
        get_user_model().objects.create_superuser(username="ops@spokestack.example", email="ops@spokestack.example",
                                                  password=PASSWORD)
    http = Client()
    for n in range(3):
        sign_in(http, "localhost", "ops@spokestack.example", f"wrong-{n}")
    locked = sign_in(http, "localhost", "ops@spokestack.example", PASSWORD)
    assert_lockout_page(locked, header="SpokeStack platform")
    # The instances' own sign-in is not affected by the platform's lockout.
    with schema_context("tenant_a"):
        from spokestack.accounts.services import user_create

        user_create(email="ops@spokestack.example", password=PASSWORD, role="instance_admin")
    assert signed_in(sign_in(Client(), HOST_A, "ops@spokestack.example", PASSWORD))


class SignInProbe(APIView):
    """What an API sign-in (e-mail and password for a token) would do: authenticate() with the request."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        user = authenticate(request._request, username=request.data["username"], password=request.data["password"])
        return Response({"signed_in": user is not None}, status=200 if user else 400)


urlpatterns = [path("api/v1/probe/sign-in", SignInProbe.as_view()), path("", include("spokestack.urls"))]


@pytest.mark.urls(__name__)
def test_a_sign_in_through_the_api_is_locked_out_with_the_envelope(in_a, make_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = make_user("instance_admin")
    http = APIClient(HTTP_HOST=HOST_A, REMOTE_ADDR=fresh_address())

    def attempt(password: str):
        return http.post("/api/v1/probe/sign-in", {"username": user.email, "password": password}, format="json")

    assert [attempt(f"wrong-{n}").status_code for n in range(3)] == [400, 400, 429]
    locked = attempt(PASSWORD)
    assert locked.status_code == 429 and 1 <= int(locked["Retry-After"]) <= 900
    error = locked.json()["error"]
    assert error["code"] == "throttled" and error["details"] == {"retry_after": int(locked["Retry-After"]),
                                                                  "limit": "login"}
    assert error["message"].startswith("Too many failed sign-ins") and "try again in 15 minutes" in error["message"]


async def _asgi_request(host: str, method: str, path: str, body: bytes = b"", headers=()) -> tuple[int, dict, bytes]:
    from django.core.handlers.asgi import ASGIHandler

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 50000),
             "headers": [(b"host", host.encode()), *headers]}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await ASGIHandler()(scope, receive, send)
    start = sent[0]
    response_headers: dict[str, list[str]] = {}
    for key, value in start["headers"]:
        response_headers.setdefault(key.decode().lower(), []).append(value.decode())
    return start["status"], response_headers, b"".join(m.get("body", b"") for m in sent[1:])


def test_the_lockout_page_under_the_asgi_handler_daphne_runs(live_instance, settings):
    """daphne runs the middleware chain async: axes' middleware takes another path there."""
    settings.AXES_FAILURE_LIMIT = 3
    host = host_of(live_instance.instance)

    async def attempts():
        try:
            status, headers, page = await _asgi_request(host, "GET", LOGIN)
            assert status == 200
            csrf_cookie = next(c for c in headers["set-cookie"] if c.startswith("csrftoken=")).split(";")[0]
            token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
            answers = []
            for password in ("wrong-1", "wrong-2", "wrong-3", PASSWORD):
                body = urlencode({"csrfmiddlewaretoken": token, "username": "admin@live.localhost",
                                  "password": password, "next": "/admin/"}).encode()
                answers.append(await _asgi_request(host, "POST", LOGIN, body, [
                    (b"content-type", b"application/x-www-form-urlencoded"), (b"cookie", csrf_cookie.encode())]))
            return answers
        finally:
            await sync_to_async(connections.close_all)()

    answers = run_async(attempts())
    assert [status for status, _, _ in answers] == [200, 200, 429, 429]
    status, headers, page = answers[-1]
    assert int(headers["retry-after"][0]) >= 1
    assert b"Sign-in locked" in page and live_instance.instance.name.encode() in page
    assert not any(c.startswith("sessionid=") for c in headers.get("set-cookie", []))


# --- API: failed authentications ----------------------------------------------------------


def test_a_hundred_bad_tokens_get_429_with_retry_after_and_the_envelope(in_a, instance_b, make_user, api, settings):
    address = fresh_address()
    http = Client(REMOTE_ADDR=address)
    answers = [http.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION=f"Bearer ss_guess-{n}") for n in range(100)]
    statuses = [r.status_code for r in answers]
    budget = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth_failures"].split("/")[0])
    assert budget < 99 and statuses == [401] * budget + [429] * (100 - budget), statuses
    retry_after = assert_throttled(answers[-1], limit="auth_failures")
    assert retry_after <= 60
    assert "failed authentications from this address" in answers[-1].json()["error"]["message"]

    # While the address's budget is spent, a good token from it waits too (it is refused before
    # any token is looked up); from another address, or on another instance, nothing changed.
    user = make_user("instance_admin")
    good = api(in_a, user)
    good.defaults["REMOTE_ADDR"] = address
    assert_throttled(good.get("/api/v1/me"), limit="auth_failures")
    good.defaults["REMOTE_ADDR"] = fresh_address()
    assert good.get("/api/v1/me").status_code == 200
    assert http.get("/api/v1/me", HTTP_HOST=HOST_B, HTTP_AUTHORIZATION="Bearer ss_guess").status_code == 401


def test_malformed_authorization_headers_count_as_failures(in_a, settings):
    set_rates(settings, auth_failures="3/min")
    http = Client(REMOTE_ADDR=fresh_address())
    for header in ("Bearer two parts", "Bearer tökén".encode().decode("latin-1"), "Bearer ss_nope"):
        assert http.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION=header).status_code == 401
    assert_throttled(http.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION="Bearer ss_x"), limit="auth_failures")


def test_requests_without_credentials_are_not_failures(in_a, settings):
    set_rates(settings, auth_failures="2/min")
    http = Client(REMOTE_ADDR=fresh_address())
    assert [http.get("/api/v1/me", HTTP_HOST=HOST_A).status_code for _ in range(5)] == [401] * 5


def test_x_forwarded_for_is_ignored_unless_proxies_are_trusted(in_a, settings):
    """A client cannot dodge its address's budget by naming a new address in every request."""
    set_rates(settings, auth_failures="3/min")
    http = Client(REMOTE_ADDR=fresh_address())
    statuses = [http.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION="Bearer ss_x",
                         HTTP_X_FORWARDED_FOR=fresh_address()).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = Client(REMOTE_ADDR=fresh_address())
    behind = [fresh_address(), fresh_address()]
    statuses = [proxy.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION="Bearer ss_x",
                          HTTP_X_FORWARDED_FOR=f"203.0.113.9, {behind[0]}").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    other = proxy.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION="Bearer ss_x", HTTP_X_FORWARDED_FOR=behind[1])
    assert other.status_code == 401
    # What the proxy forwarded is not an address: the proxy's own address counts.
    junk = [proxy.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION="Bearer ss_x",
                      HTTP_X_FORWARDED_FOR="not-an-address").status_code for _ in range(4)]
    assert junk == [401, 401, 401, 429]


def test_an_ipv6_client_is_its_64_not_each_address_in_it(in_a, settings):
    """A subscriber gets a /64: taking a new address from it per request spends the same budget."""
    set_rates(settings, auth_failures="3/min")
    network = ipaddress.IPv6Address(fresh_address()).exploded.rsplit(":", 4)[0]
    statuses = [Client(REMOTE_ADDR=f"{network}:{n:x}::{n:x}").get(
        "/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION="Bearer ss_x").status_code for n in range(1, 6)]
    assert statuses == [401, 401, 401, 429, 429]
    ipv4_address = ipaddress.IPv4Address("100.64.0.0") + secrets.randbits(22)
    mapped = Client(REMOTE_ADDR=f"::ffff:{ipv4_address}")  # an IPv4 client on a dual-stack socket
    ipv4 = Client(REMOTE_ADDR=str(ipv4_address))
    statuses = [http.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION="Bearer ss_x").status_code
                for http in (mapped, ipv4, mapped, ipv4)]
    assert statuses == [401, 401, 401, 429]


# --- API: execute -------------------------------------------------------------------------


def execute(http, client) -> object:
    return http.post("/api/v1/agent/execute", {"agent_type": "copy", "task": "Write a tagline.",
                                               "client_id": client.pk}, format="json")


@pytest.fixture
def brand(in_a):
    return client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")


def test_execute_beyond_the_per_user_rate_answers_429(in_a, make_user, api, brand, settings):
    set_rates(settings, execute_user="3/min")
    user, colleague = make_user("instance_admin"), make_user("instance_admin")
    first, second = api(in_a, user), api(in_a, user)  # two tokens of one user share one budget
    for http in (first, second, colleague_api := api(in_a, colleague)):
        http.defaults["REMOTE_ADDR"] = fresh_address()
    assert [execute(http, brand).status_code for http in (first, second, first)] == [202, 202, 202]
    retry_after = assert_throttled(execute(second, brand), limit="execute_user")
    assert retry_after <= 60
    assert "agent executions by this user" in execute(first, brand).json()["error"]["message"]
    assert execute(colleague_api, brand).status_code == 202
    # Reading is not limited by it.
    assert first.get("/api/v1/me").status_code == 200


def test_execute_beyond_the_per_address_rate_answers_429(in_a, make_user, api, brand, settings):
    set_rates(settings, execute_address="3/min")
    address = fresh_address()
    users = [api(in_a, make_user("instance_admin")) for _ in range(4)]
    for http in users:
        http.defaults["REMOTE_ADDR"] = address
    assert [execute(http, brand).status_code for http in users[:3]] == [202] * 3
    assert_throttled(execute(users[3], brand), limit="execute_address")
    users[3].defaults["REMOTE_ADDR"] = fresh_address()
    assert execute(users[3], brand).status_code == 202


def test_the_429_of_an_execute_asking_for_a_stream_is_an_sse_error_event(in_a, make_user, api, brand, settings):
    set_rates(settings, execute_user="1/min")
    http = api(in_a, make_user("instance_admin"))
    http.defaults["REMOTE_ADDR"] = fresh_address()
    assert execute(http, brand).status_code == 202
    response = http.post("/api/v1/agent/execute", {"agent_type": "copy", "task": "x", "client_id": brand.pk},
                         format="json", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    event = response.content.decode()
    assert event.startswith("event: error\ndata: ")
    assert json.loads(event.split("data: ", 1)[1])["error"]["code"] == "throttled"


# --- Redis unavailable --------------------------------------------------------------------


@pytest.fixture
def cache_down(settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/1"}}


def test_throttles_let_requests_through_while_redis_is_down(in_a, make_user, api, brand, cache_down, settings):
    """Reading a run and starting one need only the database (issue #12): a throttle that cannot
    count lets the request through rather than answer 503."""
    set_rates(settings, auth_failures="1/min", execute_user="1/min", execute_address="1/min")
    http = api(in_a, make_user("instance_admin"))
    http.defaults["REMOTE_ADDR"] = fresh_address()
    assert http.get("/api/v1/me").status_code == 200
    assert [execute(http, brand).status_code for _ in range(3)] == [202] * 3
    bad = Client(REMOTE_ADDR=fresh_address())
    assert [bad.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION="Bearer ss_x").status_code
            for _ in range(3)] == [401] * 3
