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
