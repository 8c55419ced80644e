"""A migrate_schemas executor that skips schemas whose migrations are all applied.

django-tenants runs Django's full `migrate` in every schema, even when there is nothing to
do: the migration graph is rebuilt and checked per schema, so a deploy with 900 tenants and
no new migration takes minutes (django-tenants#719). Here the graph is loaded once, each
schema's `django_migrations` rows are read with one query for all schemas, and only the
schemas that lack a migration go through django-tenants' standard executor.

The executor also keeps the template schema (settings.TENANT_BASE_SCHEMA) migrated on every
all-tenant run, so new instances are cloned from an up-to-date schema.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.migration_executors.standard import StandardExecutor
from django_tenants.utils import get_public_schema_name, get_tenant_base_schema, schema_exists


def _app_labels(app_names: list[str]) -> set[str]:
    labels = set()
    for config in apps.get_app_configs():
        if config.name in app_names:
            labels.add(config.label)
    return labels


def expected_migrations(*, public: bool) -> set[tuple[str, str]]:
    labels = _app_labels(settings.SHARED_APPS if public else settings.TENANT_APPS)
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return {key for key in loader.graph.nodes if key[0] in labels}


def applied_migrations(schemas: list[str]) -> dict[str, set[tuple[str, str]]]:
    """{schema: {(app, name), …}} for every schema that has a django_migrations table."""
    applied: dict[str, set[tuple[str, str]]] = {schema: set() for schema in schemas}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables "
            "WHERE table_name = 'django_migrations' AND table_schema = ANY(%s)",
            [schemas],
        )
        present = [row[0] for row in cursor.fetchall()]
        for start in range(0, len(present), 200):
            chunk = present[start : start + 200]
            sql = " UNION ALL ".join(
                # Schema names come from information_schema and are quoted: not user input.
                f"SELECT %s, app, name FROM {connection.ops.quote_name(schema)}.django_migrations"  # noqa: S608
                for schema in chunk
            )
            cursor.execute(sql, chunk)
            for schema, app, name in cursor.fetchall():
                applied[schema].add((app, name))
    return applied


def stale_schemas(schemas: list[str]) -> list[str]:
    if not schemas:
        return []
    public = get_public_schema_name()
    applied = applied_migrations(schemas)
    expected_tenant = expected_migrations(public=False)
    expected_public = expected_migrations(public=True) if public in schemas else set()
    return [
        schema
        for schema in schemas
        if not (expected_public if schema == public else expected_tenant) <= applied[schema]
    ]


class UpToDateSkippingExecutor(StandardExecutor):
    codename = "standard"

    def _is_plain_run(self) -> bool:
        options = self.options
        return not (
            options.get("app_label") or options.get("migration_name") or options.get("plan") or options.get("prune")
        )

    def run_migrations(self, tenants=None):
        tenants = list(tenants or [])
        public = get_public_schema_name()
        all_tenants_run = public not in tenants and not self.options.get("schema_name")
        template = get_tenant_base_schema()
        if all_tenants_run and template and template not in tenants:
            if not schema_exists(template):
                with connection.cursor() as cursor:
                    cursor.execute(f"CREATE SCHEMA {connection.ops.quote_name(template)}")
            tenants.append(template)
        if self._is_plain_run():
            connection.set_schema_to_public()
            skipped = len(tenants)
            tenants = stale_schemas(tenants)
            skipped -= len(tenants)
            if skipped and int(self.options.get("verbosity", 1)) >= 1:
                self.logger_info(f"{skipped} schema(s) already up to date, skipped")
        super().run_migrations(tenants=tenants)

    def logger_info(self, message: str) -> None:
        import sys

        sys.stdout.write(f"[migrate_schemas] {message}\n")


def get_executor(codename=None):
    """`--executor` picks django-tenants' own executors by name (e.g. `multiprocessing`);
    the default, or `standard`, is the up-to-date-skipping one."""
    if codename in (None, "standard"):
        return UpToDateSkippingExecutor
    from django_tenants.migration_executors import get_executor as tenants_get_executor

    return tenants_get_executor(codename="standard" if codename == "django-tenants" else codename)
