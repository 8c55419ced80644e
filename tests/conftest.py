"""Test infrastructure shared by every app's tests.

* One test database for the session with two instances, A and B, provisioned once
  (django-tenants' FastTenantTestCase idea); `db`-using tests run in a transaction that is
  rolled back, with the connection set to instance A.
* Tests that need committed data (a real worker or daphne in another process) use
  `live_instance`: a fresh instance provisioned for the test and dropped after it.
* `celery_worker` and `daphne_server` run the real worker, broker, channel layer and ASGI
  server as subprocesses against the test database and the private Redis.
* An autouse guard fails any socket to an address off this machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import os
import shutil
import socket
import time
from pathlib import Path

import pytest
from django.db import connection
from django_tenants.utils import schema_context

ROOT = Path(__file__).resolve().parent.parent
HOST_A = "tenant-a.localhost"
HOST_B = "tenant-b.localhost"
PASSWORD = "correct-horse-battery-staple"

# --- network guard ----------------------------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(sock: socket.socket, address) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0]
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        raise AssertionError(f"test tried to connect to unresolved host {host!r}") from None
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    if not ip.is_loopback:
        raise AssertionError(f"test tried to reach {host}: tests may only talk to this machine")


def _guarded_connect(self, address):
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check_address(self, address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def network_guard():
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


# --- database and instances -------------------------------------------------------------


def pytest_collection_modifyitems(config, items):
    """No test may use pytest-django's transactional database (django_db(transaction=True),
    `transactional_db`): its flush empties every table at teardown, the public instance and the
    hosts of instances A and B included, and every later test of the session then meets 404s.
    Tests that need committed data use `live_instance` (or `live_db`) instead."""
    for item in items:
        marker = item.get_closest_marker("django_db")
        transactional = marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0]))
        if transactional or "transactional_db" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid}: use live_instance or live_db, not a transactional database "
                                    "(its flush empties the public tables for the rest of the session)")



@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker, django_db_keepdb):
    """The test database, always (pytest-django only creates it when a collected test asks for
    `db`; a run of live tests alone does not), plus the public instance and instances A and B."""
    from django.conf import settings
    from django.test.utils import setup_databases, teardown_databases

    from spokestack.tenancy.models import Domain, Instance
    from spokestack.tenancy.services import instance_provision

    if not django_db_keepdb:
        # The documents an earlier session stored for its instances, whose schemas went with its database.
        shutil.rmtree(Path(settings.MEDIA_ROOT) / "knowledge", ignore_errors=True)
    with django_db_blocker.unblock():
        db_cfg = setup_databases(verbosity=request.config.option.verbose, interactive=False,
                                 keepdb=django_db_keepdb, aliases={"default"})
        public, _ = Instance.objects.get_or_create(schema_name="public", defaults={"name": "Platform"})
        Domain.objects.get_or_create(domain="localhost", defaults={"tenant": public})
        for schema, host in (("tenant_a", HOST_A), ("tenant_b", HOST_B)):
            if not Instance.objects.filter(schema_name=schema).exists():
                # The enterprise tier: its rate and concurrency limits never get in a functional test's
                # way (tests/usage/test_limits.py sets the tier it tests).
                instance_provision(name=f"Instance {schema[-1].upper()}", domain=host,
                                   admin_email=f"admin@{host}", admin_password=PASSWORD, schema_name=schema,
                                   tier="enterprise")
        connection.set_schema_to_public()
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            # Subprocesses and threads of the session are gone; end any connection they left.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            connection.close()
            teardown_databases(db_cfg, verbosity=request.config.option.verbose)


@pytest.fixture(scope="session")
def instance_a(django_db_setup, django_db_blocker):
    from spokestack.tenancy.models import Instance

    with django_db_blocker.unblock():
        return Instance.objects.get(schema_name="tenant_a")


@pytest.fixture(scope="session")
def instance_b(django_db_setup, django_db_blocker):
    from spokestack.tenancy.models import Instance

    with django_db_blocker.unblock():
        return Instance.objects.get(schema_name="tenant_b")


@pytest.fixture
def in_a(db, instance_a):
    """The test runs inside instance A's schema (rolled back afterwards)."""
    connection.set_tenant(instance_a)
    yield instance_a
    connection.set_schema_to_public()


@pytest.fixture
def in_b(db, instance_b):
    connection.set_tenant(instance_b)
    yield instance_b
    connection.set_schema_to_public()


_live_counter = itertools.count(1)


@pytest.fixture
def live_instance(django_db_setup, django_db_blocker):
    """A fresh, committed instance for tests whose other processes must see its data."""
    from spokestack.tenancy.services import instance_provision

    n = next(_live_counter)
    schema = f"live_{os.getpid()}_{n}"
    with django_db_blocker.unblock():
        # An earlier test's request may have left the connection in an instance's schema, and
        # instances are created from the public one.
        connection.set_schema_to_public()
        result = instance_provision(name=f"Live {n}", domain=f"live{os.getpid()}-{n}.localhost",
                                    admin_email="admin@live.localhost", admin_password=PASSWORD, schema_name=schema,
                                    tier="enterprise")
        connection.set_schema_to_public()
        yield result
        connection.set_schema_to_public()
        result.instance.refresh_from_db()
        result.instance.delete(force_drop=True)


@pytest.fixture
def runs_stay_here(monkeypatch):
    """Runs created while the test lasts are not sent to the workers: the test executes them in this
    process (`execute_run`), and a session worker that is running would otherwise race it for each
    committed run (its claim wins, the test's execute_run says "skipped"). Returns the run ids held."""
    from agents.tasks import run_agent

    held: list[str] = []
    monkeypatch.setattr(run_agent, "apply_async", lambda *args, kwargs=None, **options: held.append(
        (kwargs or {}).get("run_id")))
    return held


@pytest.fixture
def live_db(django_db_setup, django_db_blocker):
    """Database access without the rolling-back transaction (commits are visible to others)."""
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


def run_async(coro):
    """asyncio.run in a thread of its own: Playwright's sync API keeps an event loop running in
    the main thread once a browser test has run, and asyncio.run refuses to nest in it."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def host_of(instance) -> str:
    with schema_context("public"):
        return instance.domains.get(is_primary=True).domain


# --- API clients ------------------------------------------------------------------------


@pytest.fixture
def make_user():
    """make_user(role, email=None) -> user in the current schema, password PASSWORD."""
    from spokestack.accounts.services import user_create

    counter = itertools.count(1)

    def make(role: str = "instance_admin", email: str | None = None):
        return user_create(email=email or f"{role}{next(counter)}@example.com", password=PASSWORD, role=role)

    return make


@pytest.fixture
def assigned(make_user):
    """assigned(role, *clients) -> a user of that role with access to those clients."""
    from tuning.services import client_assign

    def make(role: str, *clients):
        user = make_user(role)
        for client in clients:
            client_assign(user=user, client=client, role=role)
        return user

    return make


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):
    """Poll until predicate() returns something truthy (and return it); fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:.0f} s")


@pytest.fixture
def api():
    """api(instance, user=None) -> DRF APIClient on the instance's host, with a bearer token for user."""
    from rest_framework.test import APIClient

    from spokestack.accounts.services import api_token_create

    def make(instance, user=None):
        host = host_of(instance)
        client = APIClient(HTTP_HOST=host)
        if user is not None:
            with schema_context(instance.schema_name):
                raw = api_token_create(user=user, name="tests").raw
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    return make


# --- real processes ---------------------------------------------------------------------

from .processes import WorkerProcess, process_env, start_daphne, stop_process  # noqa: E402


@pytest.fixture(scope="session")
def sample_erp():
    """The sample ERP on loopback for the whole session: (server, base_url)."""
    from spokestack.sample_erp import start_sample_erp

    server, base_url = start_sample_erp(port=0, allow_reset=True)
    yield server, base_url
    server.stop()


@pytest.fixture(scope="session")
def fake_model():
    """A local fake Messages API (tests/fakes/messages_api.py) that the worker's real SDK talks to."""
    from .fakes.messages_api import FakeMessagesApi

    api = FakeMessagesApi()
    api.start()
    yield api
    api.stop()


@pytest.fixture(scope="session")
def worker_webhook():
    """A LoopbackServer for the session that the live Celery worker may call, like the sample ERP
    (`egress_loopback` allows a port in this process only, not in the worker). A test routes a
    path on it and clears `requests` first."""
    from .loopback_server import LoopbackServer

    server = LoopbackServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, sample_erp, fake_model, worker_webhook):
    ports = f"{sample_erp[0].server_port},{worker_webhook.port}"
    env = {**process_env(), "ANTHROPIC_API_KEY": "sk-ant-test-not-a-real-key", "ANTHROPIC_BASE_URL": fake_model.base_url,
           "EGRESS_ALLOW_LOOPBACK": "1", "EGRESS_LOOPBACK_PORTS": ports,
           "DATABASE_POOL_MAX_SIZE": "10", "RUN_LEASE_SECONDS": "3",
           # event webhooks retry after 0.5 s instead of the Standard Webhooks schedule's 5 s, 5 min…
           "WEBHOOK_RETRY_SCHEDULE": "0.5,0.5,0.5,0.5,0.5,0.5,0.5",
           # knowledge's semantic ranking, with the fake's embeddings: the worker embeds what it ingests
           "KNOWLEDGE_EMBEDDINGS_API_KEY": "test-embeddings-key",
           "KNOWLEDGE_EMBEDDINGS_URL": f"{fake_model.base_url}/v1/embeddings"}
    worker = WorkerProcess(env, "test").start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def daphne_server(django_db_setup):
    """daphne serving spokestack.asgi on a free loopback port; yields the port."""
    process, port = start_daphne(process_env(), "test")
    yield port
    stop_process(process)


# --- browser ----------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module. Playwright's sync API runs an event loop in the main thread
    while it is open, so for the module's duration Django's ORM is allowed beside it (no async
    Django code runs here), and the connections opened inside that loop are closed at the end:
    Django keys them by context there, not by thread, so they would outlive the session."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing (make test installs Debian's chromium as root)")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            )
            yield chromium
            chromium.close()
            connections.close_all()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


# --- outbound HTTP ----------------------------------------------------------------------


@pytest.fixture
def loopback_server():
    """A LoopbackServer on 127.0.0.1 (tests/loopback_server.py), stopped after the test."""
    from .loopback_server import LoopbackServer

    server = LoopbackServer().start()
    yield server
    server.stop()


@pytest.fixture
def egress_loopback(settings):
    """egress_loopback(*ports): the development loopback allowance, for this test only and
    only for the given ports (production settings refuse it; see spokestack.egress)."""

    def allow(*ports: int) -> None:
        settings.EGRESS_ALLOW_LOOPBACK = True
        settings.EGRESS_LOOPBACK_PORTS = [*settings.EGRESS_LOOPBACK_PORTS, *ports]

    return allow
