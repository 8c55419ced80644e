"""The bridge from the code registry (tier 1) to tuning's assembler and to each instance's
choice of version. `tuning` must not import `agents`, so agents registers this catalog."""

from __future__ import annotations

from collections.abc import Callable

from tuning.assembly import PlatformTier

from .registry import AgentSpec, agent_types, core_agent_types, get_spec, versions

_TIERS: dict[tuple[str, str, str], PlatformTier] = {}


def platform_tier(spec: AgentSpec) -> PlatformTier:
    """Tier 1 of a spec as the assembler takes it. One object per (agent type, version): specs are
    immutable, and the same object keeps the assembler's own cache (keyed on it) hot."""
    key = (spec.owner, spec.agent_type, spec.version)  # an agency agent's slug and version are its instance's
    tier = _TIERS.get(key)
    if tier is None:
        tier = _TIERS.setdefault(key, _build_tier(spec))
    return tier


def _build_tier(spec: AgentSpec) -> PlatformTier:
    return PlatformTier(
        agent_type=spec.agent_type, version=spec.version, base_prompt=spec.base_prompt,
        tools=tuple(t.definition() for t in spec.tools),
        knowledge={kind: dict(entries) for kind, entries in spec.knowledge.items()},
        max_effort=spec.max_effort, max_tokens_limit=spec.max_tokens_limit,
        default_effort=spec.effort, default_max_tokens=spec.max_tokens,
        confirmation_patterns=tuple(spec.confirmation_patterns), content_filters=tuple(spec.content_filters),
        tool_settings={t.name: t.settings_declaration() for t in spec.tools if t.settings},
        default_specialization=dict(spec.default_specialization),
    )


_version_resolver: Callable[[str], str] | None = None


def set_version_resolver(resolver: Callable[[str], str] | None) -> None:
    """The versions app registers how an instance picks its version (agents must not import it)."""
    global _version_resolver
    _version_resolver = resolver


def current_version_for(agent_type: str) -> str:
    """The version this instance runs: what the versions app resolves (its config, pinned or
    current, else the newest released one), else the newest registered version."""
    spec = get_spec(agent_type)
    if spec is None:
        raise LookupError(agent_type)
    if spec.owner:  # an agency-built agent: its own current version, never the core version policies
        return spec.version
    return _version_resolver(agent_type) if _version_resolver is not None else spec.version


class AgentCatalog:
    """The one catalog (spokestack.catalog), filled from the registry: the core specs in code and the
    instance's agency-built agents (agents.studio, through the registry's agency source)."""

    def agent_types(self) -> list[str]:
        return agent_types()

    def versions(self, agent_type: str) -> list[str]:
        return versions(agent_type)

    def tool_names(self) -> dict[str, frozenset[str]]:
        """{core agent type: the names of every core tool of every registered version}: the names an
        instance skill offered to that type may not take."""
        return {agent_type: frozenset(t.name for v in versions(agent_type) for t in get_spec(agent_type, v).tools)
                for agent_type in core_agent_types()}

    def platform_tier(self, agent_type: str, version: str | None = None) -> PlatformTier:
        spec = get_spec(agent_type, version or current_version_for(agent_type))
        if spec is None:
            raise LookupError(f"{agent_type} {version}")
        return platform_tier(spec)
