"""The glue between core agents and instance skills: which names core tools take (a skill may
not reuse one, in any registered version of an agent type it attaches to)."""

from __future__ import annotations

from .registry import agent_types, get_spec, versions


def core_tool_names() -> dict[str, frozenset[str]]:
    """{agent_type: the names of every core tool of every registered version}."""
    names: dict[str, frozenset[str]] = {}
    for agent_type in agent_types():
        names[agent_type] = frozenset(t.name for v in versions(agent_type) for t in get_spec(agent_type, v).tools)
    return names
