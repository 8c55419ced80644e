"""The tool library (issue #18 part 2): every tool an agent of this instance may be given.

Each core agent's tools (its newest version's, without the two core tools every agent has), the
core tools `search_knowledge` and `remember`, a delegation tool per agent it may hand work to
(agents/delegation.py), and the instance's enabled skills. An entry is named
by its reference, "<group>.<tool>": "copy.check_brand_rules", "core.search_knowledge",
"skill.crm_lookup". Agency-built agents list references; `GET /api/v1/tools` and the admin list the
entries with their descriptions, schemas and side-effect flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.delegation import delegation_tool, target_of
from agents.registry import ToolSpec, core_agent_types, get_spec
from agents.tools_knowledge import SEARCH_KNOWLEDGE_TOOL
from agents.tools_memory import REMEMBER_TOOL

CORE_GROUP, SKILL_GROUP, DELEGATION_GROUP = "core", "skill", "delegation"
_CORE_TOOLS = {t.name: t for t in (SEARCH_KNOWLEDGE_TOOL, REMEMBER_TOOL)}


@dataclass(frozen=True)
class LibraryTool:
    ref: str
    group: str  # a core agent type, "core" or "skill"
    name: str  # what the model calls it
    description: str
    input_schema: dict[str, Any]
    side_effect: bool
    tool: ToolSpec | None = field(default=None, compare=False)  # None for a skill (its executor runs it)

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "group": self.group, "name": self.name, "description": self.description,
                "input_schema": self.input_schema, "side_effect": self.side_effect,
                "read_only": not self.side_effect}


def _entry(group: str, tool: ToolSpec) -> LibraryTool:
    return LibraryTool(ref=f"{group}.{tool.name}", group=group, name=tool.name, description=tool.description,
                       input_schema=dict(tool.input_schema), side_effect=tool.side_effect, tool=tool)


def core_tools() -> list[LibraryTool]:
    """The platform's tools, the same in every instance: each core agent's, then the core ones."""
    entries = []
    for agent_type in core_agent_types():
        spec = get_spec(agent_type)
        entries += [_entry(agent_type, t) for t in spec.tools if t.name not in _CORE_TOOLS and not target_of(t.name)]
    entries += [_entry(CORE_GROUP, t) for t in _CORE_TOOLS.values()]
    return entries


def delegation_tools() -> list[LibraryTool]:
    """A delegation tool per agent a run here may hand work to (agents/delegation.py): every core
    agent and the instance's published agency-built agents, "delegation.delegate_to_<type>"."""
    from .specs import published_agents

    entries = [_entry(DELEGATION_GROUP, delegation_tool(agent_type)) for agent_type in core_agent_types()]
    # An agency agent is described from its row, never by building its spec: that spec's own library
    # lists this agent's delegation tool in turn.
    for slug, title, purpose in published_agents():
        entries.append(_entry(DELEGATION_GROUP, delegation_tool(slug, title=title, description=purpose or title)))
    return entries


def skill_tools() -> list[LibraryTool]:
    """The instance's enabled skills (in its schema). A skill reaches the agency's systems, so it counts
    as a side effect."""
    from skills.models import Skill

    entries = []
    for skill in Skill.objects.filter(enabled=True).order_by("name"):
        entries.append(LibraryTool(ref=f"{SKILL_GROUP}.{skill.name}", group=SKILL_GROUP, name=skill.name,
                                   description=skill.description, input_schema=dict(skill.input_schema or {}),
                                   side_effect=True))
    return entries


def library(*, skills: bool = True) -> list[LibraryTool]:
    return core_tools() + delegation_tools() + (skill_tools() if skills else [])


def library_by_ref(*, skills: bool = True) -> dict[str, LibraryTool]:
    return {entry.ref: entry for entry in library(skills=skills)}
