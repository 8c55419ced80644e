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
        named version of any agent, archived included (a run or thread started on it finishes)."""
        if not _in_an_instance():
            return None
        rows = AgentVersion.objects.select_related("agent").filter(agent__slug=agent_type)
        if version is None:
            row = AgencyAgent.objects.filter(slug=agent_type, status=AgentStatus.PUBLISHED) \
                .select_related("current_version__agent").first()
            row = row.current_version if row is not None else None
        elif match := _VERSION.match(version):
            row = rows.filter(number=int(match.group(1))).first()
        elif match := _TEST_VERSION.match(version):
            row = rows.filter(pk=int(match.group(1)), number__isnull=True).first()
        else:
            row = None
        return spec_for_version(row) if row is not None else None
