"""Which agent types exist, at which versions, with which tools: the one answer (DESIGN §2).

The platform shell imports no app: the `agents` app fills this catalog in `AppConfig.ready` with its
core specs and the instance's agency-built agents (`agents.catalog.AgentCatalog`). Everything else
asks here: tuning for tier 1 (`platform_tier`), skills for the core tools a skill must not shadow
(`tool_names`), and every API, admin form and service for "is this an agent type"
(`require_agent_type`), which answers one way everywhere: 404 `unknown_agent_type`, naming what
exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .errors import NotFound


class AgentCatalog(Protocol):
    def agent_types(self) -> list[str]: ...

    def versions(self, agent_type: str) -> list[str]: ...

    def platform_tier(self, agent_type: str, version: str | None = None) -> Any: ...

    def tool_names(self) -> Mapping[str, frozenset[str]]: ...


class UnknownAgentType(NotFound):
    code = "unknown_agent_type"


_catalog: AgentCatalog | None = None


def register(catalog: AgentCatalog | None) -> None:
    global _catalog
    _catalog = catalog


def registered() -> AgentCatalog | None:
    return _catalog


def require_agent_type(agent_type: Any, version: str | None = None, *, field: str = "agent_type",
                       catalog: AgentCatalog | None = None) -> str:
    """`agent_type` if the catalog has it (and `version` of it, when given); else UnknownAgentType."""
    catalog = catalog or _catalog
    types = catalog.agent_types() if catalog is not None else []
    if not isinstance(agent_type, str) or agent_type not in types:
        raise UnknownAgentType(
            f"{field}: unknown agent type {agent_type!r}; this instance has {', '.join(types) or 'none'}.",
            details={field: [f"unknown agent type {agent_type!r}"]})
    if version is not None and version not in catalog.versions(agent_type):
        known = catalog.versions(agent_type)
        raise UnknownAgentType(f"agent_version: {agent_type} has no version {version!r}; it has {', '.join(known)}.",
                               details={"agent_version": [f"unknown version {version!r}"]})
    return agent_type
