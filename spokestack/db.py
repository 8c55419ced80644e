"""Statements the platform runs thousands of times with the same text (the loop's writes, budget
holds, the usage count): bound on the server and prepared once per connection. Django's cursors bind
on the client and plan every time (measured 1.3 against 0.7 ms a write). Django also turns psycopg's
preparing off (prepare_threshold None, where `prepare=True` does nothing): the settings' OPTIONS turn
it back on for these statements only (tests/spokestack/test_prepared.py reads pg_prepared_statements)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection
from django.db.models import Model

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%|%")
_POSITIONAL: dict[str, tuple[bytes, tuple[str, ...]]] = {}


def positional(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """`sql` with its `%(name)s` placeholders numbered ($1, $2 … in order of first use) and the names
    in that order, converted once per text. psycopg converts named placeholders on every execution
    unless the text is under 4,096 bytes and 50 parameters (`MAX_CACHED_STATEMENT_LENGTH`): the
    loop's step write is longer, and its conversion was 15 % of a worker's CPU (py-spy, session 13)."""
    known = _POSITIONAL.get(sql)
    if known is None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(0) == "%":
                raise ValueError(f"only %(name)s placeholders and %% are allowed in a prepared statement: {sql[:80]!r}")
            if match.group(1) is None:
                return "%"
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        known = _POSITIONAL[sql] = (_PLACEHOLDER.sub(number, sql).encode(), tuple(names))
    return known


def execute_prepared(sql: str, params: dict[str, Any]) -> list[tuple]:
    """Run `sql` (named `%(name)s` placeholders) on the current instance's connection as a prepared
    statement; its rows."""
    if connection.connection is None or not connection.search_path_set_schemas or connection.needs_rollback:
        # Django's cursor connects, sets the instance's search_path (django-tenants, once per connection
        # and schema: TENANT_LIMIT_SET_CALLS) and refuses a broken transaction. Once that is done the
        # psycopg connection is used as it is: Django's cursor cost about 0.1 ms a call, a dozen calls a run.
        with connection.cursor():
            pass
    query, names = positional(sql)
    with psycopg.RawCursor(connection.connection) as cursor:
        cursor.execute(query, [params[name] for name in names], prepare=True)
        return cursor.fetchall() if cursor.description else []


def columns(model: type[Model], alias: str) -> str:
    """`alias`'s columns of `model`, in the order `model_from_row` reads them."""
    return ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in model._meta.concrete_fields)


_CONVERTERS: dict[type[Model], list[tuple[int, Any, list]]] = {}


def model_from_row(model: type[Model], values: Sequence[Any]) -> Model:
    """An instance of `model` from a row's values selected by `columns(model, …)`, with the
    converters Django applies to what it reads (a JSONField's text loaded, …)."""
    fields = model._meta.concrete_fields
    converters = _CONVERTERS.get(model)
    if converters is None:
        converters = _CONVERTERS[model] = [
            (i, col, found) for i, field in enumerate(fields)
            for col in [field.get_col(model._meta.db_table)]
            for found in [connection.ops.get_db_converters(col) + field.get_db_converters(connection)] if found]
    values = list(values)
    for i, col, found in converters:
        for convert in found:
            values[i] = convert(values[i], col, connection)
    return model.from_db(connection.alias, [f.attname for f in fields], values)


# --- connection pooling (DESIGN §17) ----------------------------------------------------------

TRANSACTION_POOLING = (
    "The database is reached through a pooler in transaction (or statement) mode, such as PgBouncer with "
    "pool_mode = transaction: two client connections were given the same PostgreSQL backend. The platform "
    "keeps each instance's schema in the connection's search_path (django-tenants) and prepares its hottest "
    "statements per connection, so under transaction pooling one instance's queries could run in another's "
    "schema. Use pool_mode = session (PgBouncer), or connect to PostgreSQL directly.")


def pooling_mode_problem(settings_dict: dict[str, Any] | None = None) -> str | None:
    """Why the database cannot be used as configured, or None. Two client connections each ask for
    their backend's pid, the first staying connected: directly on PostgreSQL, or behind a pooler in
    session mode, the second gets a backend of its own; behind transaction pooling the first gives
    its backend back when its statement ends and the second is handed that one (PgBouncer reuses
    the server connection released last unless server_round_robin is set). An unreachable database
    tells nothing: None (the outage is answered where it meets a request)."""
    from django.db import connections

    db = settings_dict or connections["default"].settings_dict
    options = {k: v for k, v in (db.get("OPTIONS") or {}).items() if k in ("sslmode", "sslrootcert", "sslcert",
                                                                            "sslkey", "connect_timeout")}
    params = {"dbname": db["NAME"], "user": db.get("USER") or None, "password": db.get("PASSWORD") or None,
              "host": db.get("HOST") or None, "port": db.get("PORT") or None, "connect_timeout": 5, **options}
    try:
        with psycopg.connect(**params, autocommit=True) as first, psycopg.connect(**params, autocommit=True) as second:
            pids = [c.execute("SELECT pg_backend_pid()").fetchone()[0] for c in (first, second)]
    except psycopg.OperationalError:
        return None
    return TRANSACTION_POOLING if pids[0] == pids[1] else None


def refuse_transaction_pooling() -> None:
    """Called as a web or worker process starts: refuse to serve behind transaction pooling."""
    from django.core.exceptions import ImproperlyConfigured

    problem = pooling_mode_problem()
    if problem:
        raise ImproperlyConfigured(problem)
