"""spokestack.db.execute_prepared: the platform's hottest statements, named placeholders numbered
once per text (psycopg re-parses texts over 4 KB on every execution)."""

from __future__ import annotations

import pytest

from spokestack.db import execute_prepared, positional

pytestmark = pytest.mark.django_db


def test_a_name_used_twice_is_one_parameter_and_a_doubled_percent_is_a_percent():
    assert positional("SELECT %(a)s::int + %(b)s::int * %(a)s::int, '100%%'") == (
        b"SELECT $1::int + $2::int * $1::int, '100%'", ("a", "b"))
    assert execute_prepared("SELECT %(a)s::int + %(b)s::int * %(a)s::int, '100%%'", {"b": 3, "a": 2}) == [(8, "100%")]


def test_a_long_statement_runs_with_its_values_in_their_places():
    names = [f"p{i}" for i in range(60)]  # over psycopg's 4 KB and 50 parameters, as the loop's step write
    sql = "SELECT " + ", ".join(f"%({n})s::text AS {'x' * 60}{n}" for n in reversed(names))
    assert len(sql) > 4096
    row = execute_prepared(sql, {n: f"value of {n}" for n in names})[0]
    assert row == tuple(f"value of {n}" for n in reversed(names))
    assert execute_prepared(sql, {n: n.upper() for n in names})[0][:2] == ("P59", "P58")  # the prepared one


def test_a_placeholder_of_another_form_is_refused():
    with pytest.raises(ValueError, match="only %\\(name\\)s placeholders"):
        positional("SELECT %s")
    with pytest.raises(ValueError):
        positional("SELECT * FROM t WHERE name LIKE 'a%'")


def _prepared_on_server(marker: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{marker}%"])
        return cursor.fetchone()[0]


def test_the_statement_is_prepared_on_the_server_once_and_then_reused():
    sql = "SELECT %(a)s::int * 2 AS prepared_probe"
    assert [execute_prepared(sql, {"a": a}) for a in (1, 2, 3)] == [[(2,)], [(4,)], [(6,)]]
    assert _prepared_on_server("prepared_probe") == 1  # not parsed and planned again each time


def test_one_prepared_statement_reads_the_schema_of_whichever_instance_is_current(instance_a, instance_b):
    """PostgreSQL re-analyses a prepared statement when search_path changed since its last use
    (PREPARE: "the statement will be re-parsed using the new search_path"), generic plan or not:
    a worker's connection serves every instance."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    sql = f"SELECT email FROM {get_user_model()._meta.db_table} WHERE is_superuser = %(su)s ORDER BY id"  # noqa: S608
    seen = []
    try:
        for _ in range(4):  # past PostgreSQL's five custom plans, into its generic one
            for instance in (instance_a, instance_b):
                connection.set_tenant(instance)
                seen.append((instance.schema_name, [email for (email,) in execute_prepared(sql, {"su": False})]))
    finally:
        connection.set_schema_to_public()
    assert _prepared_on_server("is_superuser = $1") == 1
    for schema, emails in seen:
        assert emails and all(schema.replace("_", "-") in email for email in emails), (schema, emails)
