"""The platform behind PgBouncer (issue 23 part 3; django-tenants #1112). django-tenants keeps the
instance's schema in the connection's search_path and the loop prepares statements per connection,
so transaction pooling could run one instance's queries in another's schema. The platform supports
session pooling and refuses transaction pooling, and both are proven here with Debian's pgbouncer:
the isolation tests pass through a session pooler (a whole pytest session — its worker and daphne
too — reaching PostgreSQL only through it), and `migrate`/`check`, a Celery worker and daphne all
refuse to start behind a transaction pooler, saying why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from spokestack.db import TRANSACTION_POOLING, pooling_mode_problem

from ..pgbouncer import PgBouncer
from ..processes import ROOT, process_env

pytestmark = pytest.mark.live


def bouncer(mode: str) -> PgBouncer:
    db = settings.DATABASES["default"]
    return PgBouncer(mode, host=db["HOST"] or "127.0.0.1", port=db["PORT"], user=db["USER"]).start()


@pytest.fixture
def transaction_pooler():
    pooler = bouncer("transaction")
    yield pooler
    pooler.stop()


@pytest.fixture
def session_pooler():
    pooler = bouncer("session")
    yield pooler
    pooler.stop()


def via(pooler: PgBouncer, dbname: str | None = None) -> dict:
    return {**settings.DATABASES["default"], "HOST": "127.0.0.1", "PORT": pooler.port,
            "NAME": dbname or settings.DATABASES["default"]["NAME"]}


def test_the_check_tells_transaction_pooling_from_session_pooling_and_postgresql(live_db, transaction_pooler,
                                                                                 session_pooler):
    assert pooling_mode_problem() is None  # PostgreSQL itself
    assert pooling_mode_problem(via(session_pooler)) is None
    assert pooling_mode_problem(via(transaction_pooler)) == TRANSACTION_POOLING


def test_nothing_starts_behind_a_transaction_pooler(live_db, transaction_pooler):
    env = {**process_env(), "DATABASE_URL": transaction_pooler.url(settings.DATABASES["default"]["NAME"])}
    check = subprocess.run([sys.executable, "manage.py", "check", "--database", "default"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode != 0 and "spokestack.E001" in check.stderr and "pool_mode = session" in check.stderr
    web = subprocess.run([sys.executable, "-c", "import spokestack.asgi"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert web.returncode != 0 and "transaction (or statement) mode" in web.stderr
    worker = subprocess.run([sys.executable, "-m", "celery", "-A", "spokestack", "worker", "--pool", "threads",
                             "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat",
                             "--queues", "never-used"], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert worker.returncode != 0 and "transaction (or statement) mode" in worker.stdout + worker.stderr


def test_the_isolation_tests_pass_through_a_session_pooler(live_db, session_pooler, tmp_path):
    """A pytest session of its own whose every connection (tests, worker, daphne) goes through the
    pooler, on a database of its own and Redis databases of its own (the Redis roles apart). It keeps
    its database (--reuse-db): a session pooler holds idle server connections to it, which a DROP
    DATABASE at its end would meet."""
    redis = settings.CELERY_BROKER_URL.rsplit("/", 1)[0]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "spokestack.settings.test",
           "DATABASE_URL": session_pooler.url("spokestack_pooled"), "REDIS_URL": "",
           "CELERY_BROKER_URL": f"{redis}/10", "CACHE_REDIS_URL": f"{redis}/11",
           "CHANNEL_LAYER_REDIS_URL": f"{redis}/12", "SPOKESTACK_TEST_STATE": str(tmp_path)}
    tests = [str(Path("tests") / "spokestack" / name) for name in ("test_isolation.py", "test_tenancy.py")]
    result = subprocess.run([sys.executable, "-m", "pytest", "-c", "tests/pytest.ini", "--rootdir", str(ROOT), "-q",
                             "-p", "no:randomly", "-p", "no:cacheprovider", "--reuse-db", *tests], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
