"""Layer 1: the platform's core agents, in code (DESIGN §4, §8).

An `AgentSpec` is one version of one agent type: its base prompt, core tools, model defaults
and limits, guardrails and specialization knowledge. Several versions of an agent type are
registered side by side; `get_spec(agent_type)` without a version is the latest by semver.
Specs are immutable: a change to a prompt or a tool is a new version.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_MODEL = "claude-sonnet-5-5"
FALLBACK_MODEL = "claude-haiku-5-5"
DEFAULT_CONFIRMATION_PATTERNS = ("delete_*", "publish_*")


class ToolError(Exception):
    """A tool could not do what was asked. The message becomes an `is_error` tool result the
    model reads and can act on, so it says what was wrong and what would work instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ToolContext:
    """What a tool handler may use. Handlers never touch the database connection's schema or
    the request: everything about the run they need is here."""

    instance: Any  # spokestack.tenancy.models.Instance
    run_id: str
    tool_use_id: str
    idempotency_key: str  # "<run id>:<hash of the call's name and input>" (agents.services.call_idempotency_key)
    client: Any | None = None  # tuning.models.Client
    specialization: Mapping[str, str] = field(default_factory=dict)
    rules: tuple[Mapping[str, str], ...] = ()  # the assembled client rules: {"kind": never|always|prefer|competitor, "text"}
    sandbox: bool = False  # side-effecting tools record what they would do and reach nothing
    erp_factory: Callable[[], Any] | None = None  # returns a spokestack.erp.ErpClient
    # The slugs of the clients the run's creator may see; None: every client. A tool never reads
    # or writes a client outside it (agents/tools/common.client_slug).
    client_scope: frozenset[str] | None = None
    # The tool's effective settings (its declared defaults overlaid with the instance's
    # `tool_config_overrides`, AssembledPrompt.tool_config). A key missing here means its default
    # (agents/tools/common.settings_of).
    settings: Mapping[str, Any] = field(default_factory=dict)

    def erp(self):
        """The instance's ERP client. The run's database connection goes back to the pool first:
        nothing holds one while a tool waits on the network."""
        from .services import release_connection

        release_connection()
        if self.erp_factory is None:
            from spokestack.erp import ErpClient

            return ErpClient.for_instance(self.instance)
        return self.erp_factory()


ToolHandler = Callable[[ToolContext, dict], Any]


SETTING_TYPES = ("integer", "number", "boolean", "string")
_SETTING_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str  # written for the model: when to use it and what it returns
    input_schema: Mapping[str, Any]  # JSON Schema (Draft 2020-12); input is validated before the handler runs
    handler: ToolHandler
    side_effect: bool = False  # writes outside the platform: idempotency key sent, simulated in sandbox mode
    # The settings the handler honours, set per instance (tier 2, `tool_config_overrides`), never by
    # the model: {key: {"type": integer|number|boolean|string, "minimum"/"maximum" (numbers) or "enum"
    # (strings), "default", "description"}}. The handler reads them from `ToolContext.settings`.
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def definition(self) -> dict:
        """The tool as the Messages API takes it. The settings' values never enter it (prompt
        caching needs byte-stable tools); the description ends with the keys the tool honours."""
        return {"name": self.name, "description": self.model_description(), "input_schema": dict(self.input_schema)}

    def model_description(self) -> str:
        if not self.settings:
            return self.description
        from tuning.precedence import describe_tool_settings

        return f"{self.description} Agency settings: {describe_tool_settings(self.settings_declaration())}."

    def settings_declaration(self) -> dict[str, dict]:
        """The declared settings as plain data, for the assembler's platform tier."""
        return {key: dict(spec) for key, spec in sorted(self.settings.items())}


@dataclass(frozen=True)
class ToolChange:
    kind: str  # added | removed | modified
    tool: str
    summary: str


@dataclass(frozen=True)
class ReleaseInfo:
    """What a version changed (the versions issue reads this for impact analysis)."""

    release_date: str = ""  # ISO date
    notes: str = ""  # markdown
    breaking: bool = False
    optimization_tags: tuple[str, ...] = ()
    tool_changes: tuple[ToolChange, ...] = ()
    prompt_changes: tuple[str, ...] = ()
    behaviour_changes: tuple[str, ...] = ()
    deprecations: tuple[str, ...] = ()
    min_platform_version: str = "1.0.0"
    sunset_date: str = ""


@dataclass(frozen=True)
class AgentSpec:
    agent_type: str
    version: str  # semver
    title: str
    description: str
    base_prompt: str
    tools: tuple[ToolSpec, ...]
    knowledge: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # {"vertical"|"region"|"language": {key: text}}
    model: str = DEFAULT_MODEL
    fallback_model: str = FALLBACK_MODEL
    # How much effort the model puts into an answer (the Messages API's `output_config.effort`,
    # one of EFFORT_LEVELS); empty: the API's default. Tier 2 may lower it, never raise it past
    # max_effort. (The SDK's Messages API takes no temperature: effort is the dial it has.)
    effort: str = ""
    max_effort: str = "high"
    max_tokens: int = 2048
    max_tokens_limit: int = 8192
    max_iterations: int = 25
    max_tool_calls_per_turn: int = 10
    time_limit_s: int = 600
    cost_ceiling_usd: float = 2.0
    confirmation_patterns: tuple[str, ...] = DEFAULT_CONFIRMATION_PATTERNS
    content_filters: tuple[str, ...] = ()
    release: ReleaseInfo = field(default_factory=ReleaseInfo)
    # An agency-built agent's (agents.studio): the schema of the instance that built it, and the skills
    # it was given by name (a core agent's skills are those offered to its type: None).
    owner: str = ""
    skills: tuple[str, ...] | None = None
    # Conditional tool access (guide §11.3): {tool name: the roles whose runs get it}; a run started by
    # anyone else (a client contact, a user without those roles) is not offered the tool at all.
    tool_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Read-only tools whose result is reused within a run for the same input (guide §11.4).
    cached_tools: frozenset[str] = frozenset()
    default_specialization: Mapping[str, str] = field(default_factory=dict)  # an agency agent's default

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)


def _semver_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("-")[0].split("."))


_REGISTRY: dict[str, dict[str, AgentSpec]] = {}


def register(spec: AgentSpec) -> AgentSpec:
    from .tools_knowledge import with_knowledge_tool  # here: both build on this module's types
    from .tools_memory import with_core_tools

    spec = with_core_tools(spec)  # every agent gets the core `remember` tool (issue #16)
    spec = with_knowledge_tool(spec)  # … and the core `search_knowledge` tool (issue #17)
    versions = _REGISTRY.setdefault(spec.agent_type, {})
    if spec.version in versions and versions[spec.version] is not spec:
        raise ValueError(f"{spec.agent_type} {spec.version} is registered twice")
    names = [t.name for t in spec.tools]
    if len(names) != len(set(names)):
        raise ValueError(f"{spec.agent_type} {spec.version} declares a tool name twice")
    for tool in spec.tools:
        _check_settings(tool)
    versions[spec.version] = spec
    return spec


def _check_settings(tool: ToolSpec) -> None:
    """A declared setting is well formed and its default is one of its own values."""
    from tuning.precedence import tool_setting_problem

    for key, spec in tool.settings.items():
        where = f"{tool.name}.{key}"
        if not _SETTING_KEY.fullmatch(key):
            raise ValueError(f"{where}: a setting key is lower_snake_case")
        if spec.get("type") not in SETTING_TYPES or not str(spec.get("description", "")).strip() \
                or "default" not in spec:
            raise ValueError(f"{where}: a setting needs a type ({', '.join(SETTING_TYPES)}), a default and a "
                             "description")
        if spec["type"] == "string" and not spec.get("enum"):
            raise ValueError(f"{where}: a text setting lists its values (enum)")
        problem = tool_setting_problem(dict(spec), spec["default"])
        if problem:
            raise ValueError(f"{where}: the default {problem}")


def _load_specs() -> None:
    from . import specs  # noqa: F401 - importing registers every shipped spec


def core_agent_types() -> list[str]:
    """The platform's agent types (in code), the same in every instance."""
    _load_specs()
    return sorted(_REGISTRY)


class AgencySource(Protocol):
    """The instance's agency-built agents (agents.studio registers it): looked up after the core ones,
    in the schema of the current connection."""

    def agent_types(self) -> list[str]: ...
    def versions(self, agent_type: str) -> list[str]: ...
    def spec(self, agent_type: str, version: str | None) -> AgentSpec | None: ...


_agency_source: AgencySource | None = None


def set_agency_source(source: AgencySource | None) -> None:
    global _agency_source
    _agency_source = source


def is_core(agent_type: Any) -> bool:
    _load_specs()
    return isinstance(agent_type, str) and agent_type in _REGISTRY


def agent_types() -> list[str]:
    """Every agent type a new run may use here: the core ones and the instance's published agents."""
    _load_specs()
    agency = _agency_source.agent_types() if _agency_source is not None else []
    return sorted({*_REGISTRY, *agency})


def versions(agent_type: str) -> list[str]:
    _load_specs()
    if agent_type in _REGISTRY:
        return sorted(_REGISTRY[agent_type], key=_semver_key)
    return _agency_source.versions(agent_type) if _agency_source is not None else []


def get_spec(agent_type: str, version: str | None = None) -> AgentSpec | None:
    """The spec of that version, or the latest (an agency agent's: its current one) when version is
    None; None if unknown."""
    _load_specs()
    if not isinstance(agent_type, str):
        return None
    available = _REGISTRY.get(agent_type)
    if not available:
        return _agency_source.spec(agent_type, version) if _agency_source is not None else None
    if version is None:
        return available[max(available, key=_semver_key)]
    return available.get(version)
