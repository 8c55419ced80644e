"""django-tenants' PostgreSQL backend, minus a `SET search_path` per pooled connection checkout.

django-tenants sets the instance's search_path once per Django connection (TENANT_LIMIT_SET_CALLS)
and forgets it on close, because a closed connection may come back as any pooled PostgreSQL
session. A worker gives its connection back to the pool before every model call (agents/loop.py),
so each step of a run paid a round trip to set the path the session very likely had already.

Here each PostgreSQL session remembers the path last set on it in autocommit mode, which nothing
takes back: a `SET` inside a transaction is undone by its rollback, so one set there is not
remembered (the next checkout sets it again). A checkout whose session already has the wanted
path skips the statement; any other sets it as before.

The pool's health check (CONN_HEALTH_CHECKS) is `check_connection` below, not Django's empty query
on every checkout.
"""

from __future__ import annotations

import select

import psycopg
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper
from psycopg_pool import ConnectionPool

SESSION_PATH = "_spokestack_search_path"  # attribute of the psycopg connection


def check_connection(conn: psycopg.Connection) -> None:
    """Raise if the pooled `conn` is not fit to hand out; psycopg_pool then discards it and takes
    another. Django's check sends an empty query on every checkout, and a worker checks a connection
    out for each of a run's statements (it gives it back before every model call): a round trip per
    statement, 4 % of a worker's GIL time under py-spy (session 14). A session PostgreSQL ended (a
    restart, pg_terminate_backend, idle_session_timeout) has its socket readable: the server sent
    its FATAL error and closed. Only then, or when anything else waits on the socket, is the round
    trip made. A session that died without a word (a cable pulled) fails no sooner than at its
    first statement, as it did with the empty query. (poll, not select: a busy worker's sockets
    go past select's 1,024 descriptors.)"""
    waiting = select.poll()
    waiting.register(conn.fileno(), select.POLLIN)
    if waiting.poll(0):
        ConnectionPool.check_connection(conn)


class DatabaseWrapper(TenantDatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        if pool is not None and self.settings_dict["CONN_HEALTH_CHECKS"]:
            pool._check = check_connection  # psycopg_pool takes its check when built, and Django builds it
        return pool

    def _handle_search_path(self, cursor=None):
        raw = self.connection
        if self.search_path_set_schemas or self._setting_search_path or raw is None:
            return super()._handle_search_path(cursor)
        if self.schema_name and getattr(raw, SESSION_PATH, None) == self._get_cursor_search_paths():
            self.search_path_set_schemas = getattr(raw, SESSION_PATH)
            return None
        super()._handle_search_path(cursor)
        committed = self.search_path_set_schemas and self.get_autocommit() and not self.in_atomic_block
        setattr(raw, SESSION_PATH, list(self.search_path_set_schemas) if committed else None)
        return None
