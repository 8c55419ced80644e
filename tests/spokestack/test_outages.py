"""Honest answers while a dependency is down: PostgreSQL or Redis unavailable answers 503 with
`Retry-After` (the JSON envelope on the API, a plain page elsewhere), never 500, in DEBUG too.

The database goes away for real: the test process reaches PostgreSQL through a TcpProxy
(tests/faults.py) that is cut, either before the request (the instance lookup fails) or by a test
middleware after the instance was found (the view fails). Redis goes away by pointing the cache,
the channel layer and the readiness check at a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
import redis
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import IntegrityError, OperationalError, connection, connections
from django.http import HttpResponse
from django.test import Client
from django.urls import include, path
from django_tenants.utils import schema_context
from psycopg_pool import PoolTimeout
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from spokestack.accounts.services import api_token_create
from spokestack.outages import RETRY_AFTER_SECONDS, dependency_of

from ..conftest import HOST_A, host_of, run_async
from ..faults import TcpProxy
from ..processes import free_port


@pytest.fixture(autouse=True)
def public_schema_afterwards():
    """A request leaves the connection in its instance's schema; later tests expect public."""
    yield
    connection.set_schema_to_public()


# --- the database through a proxy that a test cuts -------------------------------------


class CutTheDatabaseAfterTheInstanceLookup:
    """Test middleware, last in the list: a request with `X-Test-Cut-Database` loses the
    database after InstanceMiddleware found its instance, before the view runs."""

    proxy: TcpProxy | None = None

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_X_TEST_CUT_DATABASE" in request.META and self.proxy is not None:
            self.proxy.cut()
        return self.get_response(request)


@pytest.fixture
def database_proxy(live_db, settings):
    """This process's database connections go through a proxy the test can cut (and restore)."""
    settings_dict = connection.settings_dict
    real_port = settings_dict["PORT"]
    proxy = TcpProxy(int(real_port)).start()
    connection.close()
    settings_dict["PORT"] = str(proxy.port)
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.CutTheDatabaseAfterTheInstanceLookup"]
    CutTheDatabaseAfterTheInstanceLookup.proxy = proxy
    try:
        yield proxy
    finally:
        CutTheDatabaseAfterTheInstanceLookup.proxy = None
        connection.close()
        settings_dict["PORT"] = real_port
        proxy.stop()


@pytest.fixture(params=[False, True], ids=["production", "debug"])
def debug(request, settings):
    """Both ways Django answers an unexpected exception: handler500, and the technical page."""
    settings.DEBUG = request.param
    return request.param


def browser_client() -> Client:
    """A client that sees what a browser sees: the response, not the exception behind it."""
    return Client(raise_request_exception=False)


def assert_unavailable_envelope(response, dependency: str = "database") -> dict:
    assert response.status_code == 503, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    assert 1 <= int(response["Retry-After"]) <= 30
    error = response.json()["error"]
    assert error["code"] == "unavailable", error
    assert error["details"]["dependency"] == dependency
    return error


def assert_unavailable_page(response, words: str = "database") -> None:
    assert response.status_code == 503, response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    assert 1 <= int(response["Retry-After"]) <= 30
    assert words in response.content.decode().lower()
    assert "Traceback" not in response.content.decode()


# --- the database down before the request: the instance lookup fails --------------------


def test_api_answers_503_in_the_envelope_when_the_database_is_down(database_proxy, debug):
    database_proxy.cut()
    response = browser_client().get("/api/v1/me", HTTP_HOST=HOST_A)
    error = assert_unavailable_envelope(response)
    assert error["message"] == "The database is unavailable right now; retry in a few seconds."


def test_admin_answers_a_503_page_when_the_database_is_down(database_proxy, debug):
    database_proxy.cut()
    assert_unavailable_page(browser_client().get("/admin/login/", HTTP_HOST=HOST_A))
    assert_unavailable_page(browser_client().get("/admin/", HTTP_HOST="localhost"))


def test_readiness_answers_503_naming_the_database_when_the_instance_lookup_fails(database_proxy, debug):
    database_proxy.cut()
    response = browser_client().get("/api/v1/health/ready", HTTP_HOST=HOST_A)
    assert "database" in assert_unavailable_envelope(response)["message"]


def test_liveness_stays_200_while_the_database_is_down(database_proxy):
    database_proxy.cut()
    for host in (HOST_A, "localhost", "unknown.localhost"):
        response = browser_client().get("/api/v1/health", HTTP_HOST=host)
        assert response.status_code == 200 and response.json() == {"status": "ok"}, host


def test_the_database_back_answers_as_before(database_proxy):
    database_proxy.cut()
    assert browser_client().get("/api/v1/me", HTTP_HOST=HOST_A).status_code == 503
    database_proxy.restore()
    assert browser_client().get("/api/v1/me", HTTP_HOST=HOST_A).status_code == 401


async def asgi_get(host: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET through Django's ASGIHandler, the application daphne runs."""
    from django.core.handlers.asgi import ASGIHandler

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 50000), "headers": [(b"host", host.encode())]}
    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict] = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # the client stays connected

    async def send(message):
        sent.append(message)

    await ASGIHandler()(scope, receive, send)
    start = sent[0]
    headers = {key.decode().lower(): value.decode() for key, value in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def test_the_asgi_handler_answers_503_too(database_proxy, settings):
    """daphne runs Django through ASGIHandler: the middleware chain is async there, and Django
    handles the exception in a worker thread."""
    settings.DEBUG = True
    database_proxy.cut()

    async def requests():
        try:
            return await asgi_get(HOST_A, "/api/v1/me"), await asgi_get(HOST_A, "/admin/login/")
        finally:
            await sync_to_async(connections.close_all)()

    (api_status, api_headers, api_body), (admin_status, admin_headers, admin_body) = run_async(requests())
    assert api_status == 503 and int(api_headers["retry-after"]) == RETRY_AFTER_SECONDS, api_body[:300]
    assert json.loads(api_body)["error"]["code"] == "unavailable"
    assert admin_status == 503 and admin_headers["content-type"].startswith("text/html"), admin_body[:300]
    assert b"Traceback" not in admin_body


def test_an_outage_is_logged_as_one_short_warning_per_request_not_a_traceback(database_proxy, caplog):
    import logging

    from spokestack.outages import OutageLogFilter

    database_proxy.cut()
    request_logger = logging.getLogger("django.request")
    assert any(isinstance(f, OutageLogFilter) for f in request_logger.filters), "configured in LOGGING"
    with caplog.at_level(logging.INFO, logger="django.request"):
        browser_client().get("/admin/login/", HTTP_HOST=HOST_A)
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records and all(r.levelno == logging.WARNING and r.exc_info is None for r in records), records
    assert "database unavailable" in records[0].getMessage()


def test_a_websocket_handshake_while_the_database_is_down_is_told_to_try_again_later(database_proxy):
    """Not a 403 ("you may not"): accepted and closed with 1013, "try again later"."""
    from channels.testing import WebsocketCommunicator

    from spokestack.asgi import application
    from spokestack.realtime import WS_CLOSE_TRY_AGAIN_LATER

    database_proxy.cut()

    async def handshake():
        communicator = WebsocketCommunicator(application, "/ws/runs/00000000-0000-0000-0000-000000000000/",
                                             headers=[(b"host", HOST_A.encode())])
        try:
            connected, _ = await communicator.connect(timeout=10)
            closed = await communicator.receive_output(timeout=10)
            return connected, closed
        finally:
            await communicator.disconnect()
            await sync_to_async(connections.close_all)()

    connected, closed = run_async(handshake())
    assert connected and closed == {"type": "websocket.close", "code": WS_CLOSE_TRY_AGAIN_LATER}


# --- the database lost after the instance was found: the view fails ----------------------


@pytest.fixture
def admin_of_live(live_instance, database_proxy):
    """A fresh committed instance (its data reached through the proxy) and its admin's token."""
    with schema_context(live_instance.instance.schema_name):
        token = api_token_create(user=live_instance.admin, name="outage").raw
    return {"host": host_of(live_instance.instance), "token": token, "admin": live_instance.admin,
            "schema": live_instance.instance.schema_name, "proxy": database_proxy}


def test_a_database_error_inside_an_api_view_is_503_in_the_envelope(admin_of_live, debug):
    client = APIClient(HTTP_HOST=admin_of_live["host"], raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_of_live['token']}")
    assert client.get("/api/v1/me").status_code == 200
    assert_unavailable_envelope(client.get("/api/v1/me", HTTP_X_TEST_CUT_DATABASE="1"))


def test_a_database_error_inside_an_admin_page_is_a_503_page(admin_of_live, debug):
    client = browser_client()
    with schema_context(admin_of_live["schema"]):
        client.force_login(admin_of_live["admin"])
    assert client.get("/admin/", HTTP_HOST=admin_of_live["host"]).status_code == 200
    assert_unavailable_page(client.get("/admin/", HTTP_HOST=admin_of_live["host"], HTTP_X_TEST_CUT_DATABASE="1"))


def test_readiness_names_the_database_check_when_the_database_fails_after_the_lookup(admin_of_live):
    response = browser_client().get("/api/v1/health/ready", HTTP_HOST=admin_of_live["host"],
                                    HTTP_X_TEST_CUT_DATABASE="1")
    assert response.status_code == 503, response.content
    assert 1 <= int(response["Retry-After"]) <= 30
    error = response.json()["error"]
    assert error["code"] == "not_ready" and "database" in error["message"]
    assert error["details"]["database"]["ok"] is False


# --- Redis down ---------------------------------------------------------------------------


@pytest.fixture
def redis_down(settings):
    """The cache, the channel layer and the readiness check point at a port nobody listens on."""
    dead = f"redis://127.0.0.1:{free_port()}"
    settings.REDIS_URL = f"{dead}/0"
    settings.CACHE_REDIS_URL, settings.CHANNEL_LAYER_REDIS_URL = f"{dead}/1", f"{dead}/2"
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"{dead}/1"}}
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": [f"{dead}/2"]}}}
    return dead


def test_readiness_answers_503_naming_redis_when_redis_is_down(db, redis_down, client):
    response = client.get("/api/v1/health/ready", HTTP_HOST=HOST_A)
    assert response.status_code == 503, response.content
    assert 1 <= int(response["Retry-After"]) <= 30
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"]["redis"]["ok"] is False and error["details"]["database"]["ok"] is True
    assert error["details"]["worker"]["detail"].startswith("not checked")


class CacheReadingApiView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"value": cache.get("outage-probe")})


def cache_reading_page(request):
    return HttpResponse(f"<p>{cache.get('outage-probe')}</p>")


urlpatterns = [
    path("api/v1/probe/cache", CacheReadingApiView.as_view()),
    path("probe/cache", cache_reading_page),
    path("", include("spokestack.urls")),
]


@pytest.mark.urls(__name__)
def test_any_view_that_meets_redis_down_answers_503(db, redis_down, debug):
    assert_unavailable_envelope(browser_client().get("/api/v1/probe/cache", HTTP_HOST=HOST_A), "redis")
    assert_unavailable_page(browser_client().get("/probe/cache", HTTP_HOST=HOST_A), "redis")


# --- which errors are an outage -----------------------------------------------------------


def test_dependency_of_names_the_dependency_of_real_client_errors(db):
    dead = free_port()
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(host="127.0.0.1", port=dead, user="nobody", dbname="nothing", connect_timeout=2)
    assert dependency_of(refused.value) == "database"
    assert dependency_of(PoolTimeout("couldn't get a connection after 60.00 sec")) == "database"
    with pytest.raises(redis.exceptions.ConnectionError) as unreachable:
        redis.Redis(port=dead, socket_connect_timeout=1).ping()
    assert dependency_of(unreachable.value) == "redis"

    from kombu.exceptions import OperationalError as KombuOperationalError

    from spokestack.celery import app

    with pytest.raises(KombuOperationalError) as unpublished, app.connection_for_write(
            f"redis://127.0.0.1:{dead}/0") as broker:
        app.send_task("agents.run_agent", kwargs={}, connection=broker, retry=False)
    assert dependency_of(unpublished.value) == "redis"


def test_the_server_answering_with_an_error_is_not_an_outage(db):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1/0")
    except Exception as exc:  # noqa: BLE001 - Django's wrapper of psycopg's DivisionByZero
        division = exc
    assert dependency_of(division) is None
    wrapped = OperationalError("could not serialize access due to concurrent update")
    wrapped.__cause__ = psycopg.errors.SerializationFailure("could not serialize access")
    assert dependency_of(wrapped) is None
    assert dependency_of(IntegrityError("duplicate key")) is None
    assert dependency_of(ValueError("no")) is None
    assert dependency_of(None) is None
