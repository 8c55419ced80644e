"""An agency-built agent's definition: its JSON contract (`DEFINITION_SCHEMA`), the checks that make
it safe to run (`definition_clean`, errors naming the field), and the `AgentSpec` it becomes
(`build_spec`): the platform frame around the agency's instructions, the library's tools, limits
within the platform's bounds and approval requirements on top of the platform's own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator

from agents.registry import DEFAULT_CONFIRMATION_PATTERNS, AgentSpec, core_agent_types, is_core
from agents.specs.common import base_prompt
from spokestack.errors import InvalidInput
from tuning.knowledge.models import DocumentKind

CONTRACT = "spokestack.agent/v1"
SLUG = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
EFFORTS = ["low", "medium", "high"]
# The platform's bounds: an agency agent may ask for less, never more.
BOUNDS = {"max_iterations": (1, 25), "max_tokens": (256, 8192), "max_tool_calls_per_turn": (1, 10),
          "time_limit_s": (30, 600), "cost_ceiling_usd": (0.01, 2.0)}
DEFAULT_LIMITS = {"max_iterations": 15, "max_tokens": 2048, "max_tool_calls_per_turn": 6, "time_limit_s": 300,
                  "cost_ceiling_usd": 1.0, "effort": ""}

_TEXT = {"type": "string"}
DEFINITION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://spokestack.example/schemas/agent-definition-v1.json",
    "title": "SpokeStack agency-built agent",
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "purpose", "instructions", "tools"],
    "properties": {
        "contract": {"const": CONTRACT},
        "slug": {"type": "string", "pattern": SLUG.pattern},
        "title": {"type": "string", "minLength": 1, "maxLength": 120},
        "purpose": {"type": "string", "minLength": 1, "maxLength": 500},
        "instructions": {"type": "string", "minLength": 1, "maxLength": 8000},
        "persona": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "voice": {"type": "string", "maxLength": 500},
                "traits": {"type": "object", "maxProperties": 8,
                           "propertyNames": {"pattern": "^[a-z][a-z_]{0,29}$"},
                           "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100}},
            },
        },
        "tools": {"type": "array", "maxItems": 30, "uniqueItems": True,
                  "items": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*\.[A-Za-z0-9_-]+$"}},
        "tool_roles": {"type": "object", "maxProperties": 30,
                       "description": "A tool (its reference) offered only to runs started by these roles.",
                       "additionalProperties": {"type": "array", "minItems": 1, "uniqueItems": True,
                                                "items": {"type": "string"}}},
        "cache_results": {"type": "array", "uniqueItems": True, "maxItems": 30, "items": {"type": "string"},
                          "description": "Read-only tools (references) whose answer a run reuses for the same "
                                         "input instead of asking again."},
        "knowledge_kinds": {"type": "array", "uniqueItems": True,
                            "items": {"enum": list(DocumentKind.values)}},
        "limits": {
            "type": "object", "additionalProperties": False,
            "properties": {
                **{key: {"type": "number" if key == "cost_ceiling_usd" else "integer", "minimum": low,
                         "maximum": high} for key, (low, high) in BOUNDS.items()},
                "effort": {"enum": ["", *EFFORTS]},
            },
        },
        "specialization": {"type": "object", "additionalProperties": False,
                           "properties": {"vertical": _TEXT, "region": _TEXT, "language": _TEXT}},
        "require_approval": {"type": "array", "maxItems": 20, "uniqueItems": True,
                             "items": {"type": "string", "pattern": r"^[A-Za-z0-9_.*-]{1,64}$"}},
        "starters": {"type": "array", "maxItems": 6, "items": {"type": "string", "minLength": 1, "maxLength": 200}},
        "icon": {"type": "string", "maxLength": 8},
        "colour": {"type": "string", "pattern": "^(#[0-9a-fA-F]{6})?$"},
    },
}
_VALIDATOR = Draft202012Validator(DEFINITION_SCHEMA)


def _where(path) -> str:
    where = ""
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where or "definition"


def definition_clean(data: Any, *, tools_available: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The definition as stored: checked against the contract's schema (every problem, each naming
    its field), its tools against the tool library, its slug against the core agents. Raises
    InvalidInput (400) with `details` {field: [problems]}."""
    if not isinstance(data, dict):
        raise InvalidInput("The definition is a JSON object; see GET /api/v1/studio/schema.",
                           details={"definition": ["expected an object"]})
    problems: dict[str, list[str]] = {}
    for error in sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        problems.setdefault(_where(error.absolute_path), []).append(error.message)
    slug = data.get("slug")
    if isinstance(slug, str) and is_core(slug):
        problems.setdefault("slug", []).append(
            f"{slug!r} is a core agent's; choose another (core agents: {', '.join(core_agent_types())}).")
    if tools_available is not None:
        for index, ref in enumerate(data.get("tools") or []):
            if isinstance(ref, str) and ref not in tools_available:
                problems.setdefault(f"tools[{index}]", []).append(
                    f"{ref!r} is not in the tool library (GET /api/v1/tools lists it).")
        names = [ref.split(".", 1)[1] for ref in data.get("tools") or [] if isinstance(ref, str) and "." in ref]
        for name in {n for n in names if names.count(n) > 1}:
            problems.setdefault("tools", []).append(f"two tools are called {name!r}: keep one.")
        chosen = set(data.get("tools") or [])
        for ref in (data.get("tool_roles") or {}) if isinstance(data.get("tool_roles"), dict) else {}:
            if ref not in chosen:
                problems.setdefault(f"tool_roles.{ref}", []).append("names a tool the agent is not given.")
        for index, ref in enumerate(data.get("cache_results") or []):
            if ref not in chosen:
                problems.setdefault(f"cache_results[{index}]", []).append("names a tool the agent is not given.")
            elif ref in tools_available and tools_available[ref].side_effect:
                problems.setdefault(f"cache_results[{index}]", []).append(
                    f"{ref} writes outside the platform: only a read-only tool's answer may be reused.")
    from spokestack.accounts.roles import Role

    roles_known = list(Role.values)
    for ref, roles in (data.get("tool_roles") or {}).items() if isinstance(data.get("tool_roles"), dict) else ():
        for role in roles if isinstance(roles, list) else []:
            if role not in roles_known:
                problems.setdefault(f"tool_roles.{ref}", []).append(
                    f"{role!r} is not a role; use {', '.join(roles_known)}.")
    from tuning.specialization import normalise

    specialization = data.get("specialization") if isinstance(data.get("specialization"), dict) else {}
    for key, value in specialization.items():
        if isinstance(value, str) and value:
            try:
                specialization = {**specialization, key: normalise(key, value, field=f"specialization.{key}")}
            except InvalidInput as exc:
                problems.setdefault(f"specialization.{key}", []).append(exc.message)
    if problems:
        first, messages = next(iter(problems.items()))
        raise InvalidInput(f"{first}: {messages[0]}" + (f" (and {sum(map(len, problems.values())) - 1} more)"
                                                         if sum(map(len, problems.values())) > 1 else ""),
                           details=problems)
    cleaned = {key: value for key, value in data.items() if key not in ("contract", "slug")}
    if specialization:
        cleaned["specialization"] = {key: value for key, value in specialization.items() if value}
    cleaned.setdefault("tools", [])
    return cleaned


def _persona(persona: dict) -> str:
    lines = []
    if persona.get("voice"):
        lines.append(f"Voice: {persona['voice'].strip()}")
    traits = persona.get("traits") or {}
    if traits:
        lines.append("Traits (0–100): " + ", ".join(f"{name.replace('_', ' ')} {value}"
                                                     for name, value in sorted(traits.items())))
    return "\n".join(lines)


def prompt_for(definition: dict, tools: list) -> str:
    """The base prompt: the platform's frame (workflow, ground rules, output) around the agency's
    role, persona and instructions. Byte-stable for one definition (the cached prefix)."""
    role = (f"You are {definition['title'].strip()}, an agent this agency built on SpokeStack. "
            f"Your purpose: {definition['purpose'].strip()}")
    persona = _persona(definition.get("persona") or {})
    if persona:
        role += "\n\n## Persona\n" + persona
    tool_lines = "\n".join(f"- {t.name}: {t.description.split('. ')[0].rstrip('.')}." for t in tools) \
        or "- (no tools: answer from the task and the context you are given)"
    extra = "## Instructions from the agency\n" + definition["instructions"].strip()
    output = ("The deliverable the task asks for, ready to use, in the run's language. Cite any passage from the "
              "knowledge base you relied on. If something essential is missing, ask one clear question.")
    return base_prompt(role=role, tools=tool_lines, output=output, extra=extra)


def build_spec(*, slug: str, version: str, definition: dict, owner: str, library: dict) -> AgentSpec:
    """The AgentSpec a run of this version executes: `library` maps references to LibraryTool."""
    refs = list(definition.get("tools") or [])
    chosen = [library[ref] for ref in refs if ref in library]
    tools = tuple(entry.tool for entry in chosen if entry.tool is not None)
    if definition.get("knowledge_kinds"):  # its knowledge scopes: the search reads only those kinds
        from agents.tools_knowledge import SEARCH_KNOWLEDGE, scoped_search_knowledge

        tools = tuple(scoped_search_knowledge(definition["knowledge_kinds"]) if t.name == SEARCH_KNOWLEDGE else t
                      for t in tools)
    skills = tuple(entry.name for entry in chosen if entry.tool is None)
    limits = {**DEFAULT_LIMITS, **(definition.get("limits") or {})}
    return AgentSpec(
        agent_type=slug, version=version, title=definition["title"], description=definition["purpose"],
        base_prompt=prompt_for(definition, [*tools]), tools=tools,
        max_tokens=int(limits["max_tokens"]), max_iterations=int(limits["max_iterations"]),
        max_tool_calls_per_turn=int(limits["max_tool_calls_per_turn"]), time_limit_s=int(limits["time_limit_s"]),
        cost_ceiling_usd=float(limits["cost_ceiling_usd"]), effort=limits.get("effort") or "",
        confirmation_patterns=(*DEFAULT_CONFIRMATION_PATTERNS,
                               *[p for p in definition.get("require_approval") or []
                                 if p not in DEFAULT_CONFIRMATION_PATTERNS]),
        owner=owner, skills=skills,
        tool_roles={library[ref].name: tuple(roles) for ref, roles in (definition.get("tool_roles") or {}).items()
                    if ref in library},
        cached_tools=frozenset(library[ref].name for ref in definition.get("cache_results") or []
                               if ref in library and not library[ref].side_effect),
        default_specialization={key: value for key, value in (definition.get("specialization") or {}).items()
                                if value})
