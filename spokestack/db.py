"""Statements the platform runs thousands of times with the same text (the loop's writes, budget
holds, the usage count): bound on the server and prepared once per connection. Django's cursors bind
on the client and plan every time (measured 1.3 against 0.7 ms a write)."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection


def execute_prepared(sql: str, params: dict[str, Any]) -> list[tuple]:
    """Run `sql` on the current instance's connection as a prepared statement; its rows."""
    with connection.cursor():  # connects, and sets the instance's search_path when needed
        pass
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if cursor.description else []
