"""Agency-built agents as specs: the registry's agency source (agents.registry.set_agency_source).

The registry asks it for any agent type that is not a core one, in the schema of the current
connection; it answers from the instance's `AgencyAgent` rows. A published version is immutable, so
its AgentSpec is built once per process (keyed by schema and version row) and kept; which version is
current, and which agents are published, is read each time (one indexed query).
"""

from __future__ import annotations

import re

from django.db import connection
from django_tenants.utils import get_public_schema_name

from agents.registry import AgentSpec

from .models import AgencyAgent, AgentStatus, AgentVersion, version_string

_VERSION = re.compile(r"^(\d+)\.0\.0$")
_TEST_VERSION = re.compile(r"^0\.0\.(\d+)-test$")


def _in_an_instance() -> bool:
    return connection.schema_name != get_public_schema_name()


def spec_for_version(row: AgentVersion) -> AgentSpec:
    return _built(connection.schema_name, row.pk, row.agent.slug, row.semver, row)


_SPECS: dict[tuple[str, int], AgentSpec] = {}


def _built(schema: str, pk: int, slug: str, version: str, row: AgentVersion) -> AgentSpec:
    key = (schema, pk)
    spec = _SPECS.get(key)
    if spec is None:
        from .definition import build_spec
        from .library import library_by_ref

        spec = build_spec(slug=slug, version=version, definition=row.definition, owner=schema,
                          library=library_by_ref())
        if len(_SPECS) > 2048:
            _SPECS.clear()
        _SPECS[key] = spec
    return spec


def published_agents() -> list[tuple[str, str, str]]:
    """(slug, title, purpose) of the instance's published agents, from their rows (no spec is built)."""
    if not _in_an_instance():
        return []
    rows = AgencyAgent.objects.filter(status=AgentStatus.PUBLISHED).select_related("current_version") \
        .order_by("slug")
    return [(a.slug, a.title, str((a.current_version.definition if a.current_version else {}).get("purpose", "")))
            for a in rows]


class AgencySource:
    def agent_types(self) -> list[str]:
        if not _in_an_instance():
            return []
        return list(AgencyAgent.objects.filter(status=AgentStatus.PUBLISHED).values_list("slug", flat=True))

    def versions(self, agent_type: str) -> list[str]:
        if not _in_an_instance():
            return []
        numbers = AgentVersion.objects.filter(agent__slug=agent_type, number__isnull=False) \
            .order_by("number").values_list("number", flat=True)
        return [version_string(n) for n in numbers]

    def spec(self, agent_type: str, version: str | None) -> AgentSpec | None:
        """The current version of a published agent (version None: what a new run uses), or the
        named version of any agent, archived included (a run or thread started on it finishes).
        One small statement finds the version row's id (plain SQL: this runs for every run and every
        list of agents); the spec of that row is built once per process."""
        if not _in_an_instance():
            return None
        if version is None:
            sql, params = (f"SELECT current_version_id FROM {AgencyAgent._meta.db_table} "  # noqa: S608 - ours
                           "WHERE slug = %s AND status = %s", [agent_type, AgentStatus.PUBLISHED])
        elif match := _VERSION.match(version):
            sql, params = (f"SELECT v.id FROM {AgentVersion._meta.db_table} v JOIN {AgencyAgent._meta.db_table} a "  # noqa: S608
                           "ON a.id = v.agent_id WHERE a.slug = %s AND v.number = %s", [agent_type, int(match.group(1))])
        elif match := _TEST_VERSION.match(version):
            sql, params = (f"SELECT v.id FROM {AgentVersion._meta.db_table} v JOIN {AgencyAgent._meta.db_table} a "  # noqa: S608
                           "ON a.id = v.agent_id WHERE a.slug = %s AND v.id = %s AND v.number IS NULL",
                           [agent_type, int(match.group(1))])
        else:
            return None
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchone()
        if not found or found[0] is None:
            return None
        spec = _SPECS.get((connection.schema_name, found[0]))
        if spec is not None:
            return spec
        row = AgentVersion.objects.select_related("agent").filter(pk=found[0]).first()
        return spec_for_version(row) if row is not None else None
