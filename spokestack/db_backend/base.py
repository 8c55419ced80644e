"""django-tenants' PostgreSQL backend, minus a `SET search_path` per pooled connection checkout.

django-tenants sets the instance's search_path once per Django connection (TENANT_LIMIT_SET_CALLS)
and forgets it on close, because a closed connection may come back as any pooled PostgreSQL
session. A worker gives its connection back to the pool before every model call (agents/loop.py),
so each step of a run paid a round trip to set the path the session very likely had already.

Here each PostgreSQL session remembers the path last set on it in autocommit mode, which nothing
takes back: a `SET` inside a transaction is undone by its rollback, so one set there is not
remembered (the next checkout sets it again). A checkout whose session already has the wanted
path skips the statement; any other sets it as before.
"""

from __future__ import annotations

from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper

SESSION_PATH = "_spokestack_search_path"  # attribute of the psycopg connection


class DatabaseWrapper(TenantDatabaseWrapper):
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
