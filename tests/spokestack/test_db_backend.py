"""spokestack.db_backend: a pooled PostgreSQL session remembers the instance's search_path set on
it, so a checkout for the same instance sends no `SET search_path` — and never runs a query in
another instance's schema: a checkout for another instance sets its own, and a path set inside a
transaction that rolled back (which takes the SET back) is set again."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from psycopg_pool import ConnectionPool

from spokestack.db_backend.base import DatabaseWrapper
from spokestack.settings.base import database_from_url


@pytest.fixture
def pooled(django_db_blocker, monkeypatch):
    """A connection of its own on a pool of one PostgreSQL session, configured as a worker's is
    (settings: DATABASE_POOL_MAX_SIZE)."""
    default = connections["default"].settings_dict
    url = f"postgres://{default['USER']}:{default['PASSWORD']}@{default['HOST']}:{default['PORT']}/{default['NAME']}"
    monkeypatch.setenv("DATABASE_POOL_MAX_SIZE", "1")
    worker = database_from_url(url)
    db = {**default, "CONN_MAX_AGE": worker["CONN_MAX_AGE"], "CONN_HEALTH_CHECKS": worker["CONN_HEALTH_CHECKS"],
          "OPTIONS": {**settings.DATABASES["default"].get("OPTIONS", {}),
                      "pool": {**worker["OPTIONS"]["pool"], "min_size": 1}}}
    monkeypatch.setitem(connections.settings, "pooled", db)
    wrapper = connections["pooled"]
    assert isinstance(wrapper, DatabaseWrapper)
    sets: list[str] = []
    checks: list[int] = []
    full_check = ConnectionPool.check_connection

    def count_checks(conn):
        checks.append(conn.info.backend_pid)
        return full_check(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(count_checks))

    def count_sets(execute, sql, params, many, context):
        if str(sql).startswith("SET search_path"):
            sets.append(str(sql))
        return execute(sql, params, many, context)

    with django_db_blocker.unblock():
        with wrapper.execute_wrapper(count_sets):
            yield wrapper, sets, checks
        wrapper.close()
        wrapper.close_pool()
    del connections["pooled"]


class _Rollback(Exception):
    pass


def _schema(wrapper) -> tuple[str, int]:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT current_schema(), pg_backend_pid()")
        return cursor.fetchone()


def test_a_checkout_for_the_same_instance_sets_no_path_and_another_instance_sets_its_own(
        pooled, instance_a, instance_b):
    wrapper, sets, _ = pooled
    wrapper.set_tenant(instance_a)
    first = _schema(wrapper)
    wrapper.close()  # back to the pool, as a worker does before a model call
    again = _schema(wrapper)
    assert first[0] == again[0] == "tenant_a" and first[1] == again[1]  # the same PostgreSQL session
    assert len(sets) == 1
    wrapper.close()
    wrapper.set_tenant(instance_b)
    assert _schema(wrapper) == ("tenant_b", first[1])
    assert len(sets) == 2
    wrapper.close()
    wrapper.set_tenant(instance_a)
    assert _schema(wrapper) == ("tenant_a", first[1])


def test_a_path_set_in_a_transaction_that_rolled_back_is_set_again(pooled, instance_a, instance_b):
    wrapper, sets, _ = pooled
    wrapper.set_tenant(instance_a)
    assert _schema(wrapper)[0] == "tenant_a"
    wrapper.close()
    wrapper.set_tenant(instance_b)
    with pytest.raises(_Rollback), transaction.atomic(using="pooled"):
        assert _schema(wrapper)[0] == "tenant_b"  # set inside the transaction…
        raise _Rollback  # …and taken back with it: the session is on tenant_a again
    wrapper.close()
    wrapper.set_tenant(instance_b)
    assert _schema(wrapper)[0] == "tenant_b"
    assert len(sets) == 3


def test_a_checkout_sends_nothing_to_a_live_session_and_replaces_one_the_server_ended(pooled, instance_a):
    """The pool's check (spokestack.db_backend.base.check_connection): no round trip per checkout, yet a session
    PostgreSQL terminated (a restart does the same) is never handed to a statement."""
    wrapper, _, checks = pooled
    wrapper.set_tenant(instance_a)
    first = _schema(wrapper)
    for _ in range(3):
        wrapper.close()
        assert _schema(wrapper) == first
    assert checks == []
    wrapper.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [first[1]])  # waits until it has ended
    fresh = _schema(wrapper)
    assert fresh[0] == "tenant_a" and fresh[1] != first[1]
    assert checks == [first[1]]  # the ended session was checked, failed, and replaced
