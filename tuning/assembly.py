"""The prompt assembler: the three tiers plus the run's specialization -> the model request prefix.

The runtime (`agents`) registers the platform's catalog (tier 1, code) with
`set_platform_catalog` and calls `assemble_prompt` before each run; `tuning` never imports
`agents`. The result is deterministic and byte-stable: the same configuration gives the same
bytes (`AssembledPrompt.prefix_bytes()`), so Anthropic prompt caching hits. Order: tools
(sorted by name) -> tier 1 -> tier 2 -> tier 3; per-run content (the task, dates, metadata)
belongs in the messages and never here. Tuning is read from the database on every call, so a
saved change applies to the very next run with no restart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.module_loading import import_string

from spokestack import catalog as agent_catalog
from spokestack.errors import DomainError, InvalidInput

from .precedence import effective_client, effective_instance, effective_tool_settings
from .specialization import lenient, normalise

if TYPE_CHECKING:
    from .models import ApprovedExample, Client, ContentRule

CACHE = {"type": "ephemeral"}
SPECIALIZATION_KEYS = ("language", "region", "vertical")


@dataclass(frozen=True)
class PlatformTier:
    """Tier 1 of one version of one core agent: what the platform fixes in code."""

    agent_type: str
    version: str
    base_prompt: str
    tools: tuple[dict, ...]  # each {"name", "description", "input_schema"}
    knowledge: dict  # {"vertical": {name: text}, "region": {name: text}, "language": {name: text}}
    max_effort: str  # the highest `output_config.effort` tier 2 may ask for (precedence.EFFORT_LEVELS)
    max_tokens_limit: int
    default_effort: str  # "" leaves the API's default
    default_max_tokens: int
    confirmation_patterns: tuple[str, ...]  # tool-name patterns, e.g. "delete_*", "publish_*"
    content_filters: tuple[str, ...]
    # The settings each tool's handler honours: {tool: {key: {"type", "minimum"/"maximum" or "enum",
    # "default", "description"}}}. Tier 2 sets their values (`tool_config_overrides`), within these.
    tool_settings: dict[str, dict[str, dict]] = dataclasses.field(default_factory=dict)
    # An agency-built agent's default specialization ({"vertical", "region", "language"}): after the
    # run's and the client's values, before the instance's defaults.
    default_specialization: dict[str, str] = dataclasses.field(default_factory=dict)


class PlatformCatalog(Protocol):
    def agent_types(self) -> list[str]: ...

    def platform_tier(self, agent_type: str, version: str | None = None) -> PlatformTier: ...


class CatalogUnavailable(DomainError):
    status = 503
    code = "catalog_unavailable"


def set_platform_catalog(catalog: PlatformCatalog | None) -> None:
    """Register the platform's agent catalog: spokestack.catalog's (the `agents` app fills it)."""
    agent_catalog.register(catalog)


def registered_platform_catalog() -> PlatformCatalog | None:
    return agent_catalog.registered()


def get_platform_catalog() -> PlatformCatalog:
    """The registered catalog (spokestack.catalog), else the one named by
    `settings.TUNING_PLATFORM_CATALOG` (a dotted path: a fallback for processes without the agents
    app, e.g. a test server); `CatalogUnavailable` (503) when there is neither."""
    registered = agent_catalog.registered()
    if registered is not None:
        return registered
    fallback = getattr(settings, "TUNING_PLATFORM_CATALOG", "")
    if fallback:
        return import_string(fallback)
    raise CatalogUnavailable(
        "No agent catalog is registered, so the platform tier (base prompts, tools, bounds) is unknown. "
        "Install the agents app or set TUNING_PLATFORM_CATALOG."
    )


def known_agent_types() -> list[str]:
    return sorted(get_platform_catalog().agent_types())


def platform_tier_for(agent_type: str, version: str | None = None) -> PlatformTier:
    """Tier 1 for an agent type, or UnknownAgentType (404) naming `agent_type` when there is none."""
    catalog = get_platform_catalog()
    agent_catalog.require_agent_type(agent_type, catalog=catalog)
    return catalog.platform_tier(agent_type, version)


@dataclass(frozen=True)
class Section:
    """One labelled piece of the system prompt, for the admin preview: where it came from."""

    tier: int
    field: str
    text: str


@dataclass(frozen=True)
class PromptRule:
    """A rule the output must follow, for the runtime's deterministic brand check."""

    kind: str  # always | never | prefer | competitor | avoid_term (a term the output must not contain)
    text: str
    tier: int
    source: str  # manual | feedback_suggestion | competitor_rules | terminology_avoid
    competitor: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "tier": self.tier, "source": self.source,
                "competitor": self.competitor}


@dataclass(frozen=True)
class AssembledPrompt:
    agent_type: str
    version: str
    client_id: int | None
    system: list[dict]  # Anthropic text blocks, tier 1 -> 2 -> 3, cache_control on stable ends
    tools: list[dict]  # sorted by name, cache_control on the last
    sections: tuple[Section, ...]
    effort: str  # output_config.effort sent with every request ("": none sent)
    max_tokens: int
    require_approval: tuple[str, ...]  # tool-name patterns: platform + instance + client
    disabled_tools: tuple[str, ...]
    rules: tuple[PromptRule, ...]
    content_filters: tuple[str, ...]
    tool_config: dict[str, dict]  # per enabled tool that has settings: its effective settings (defaults + tier 2)
    specialization: dict[str, str]  # the vertical / region / language actually used
    enabled: bool
    audit_all_outputs: bool
    on_rule_violation: str  # flag | revise
    token_estimate: int
    memory_ids: tuple[int, ...] = ()  # the accepted memories told (tier 3), by id
    memory_left_out: tuple[int, ...] = ()  # accepted memories the size bound left out
    memory_valid_until: datetime | None = None  # the first expiry among the told memories
    pinned_documents: tuple[int, ...] = ()  # the documents whose pinned excerpts are told (tier 3), by id
    pins_left_out: tuple[int, ...] = ()  # pinned documents the total bound left out

    def prefix_bytes(self) -> bytes:
        """The exact bytes of tools + system as they are sent: equal bytes, equal cache key."""
        return _canonical({"tools": self.tools, "system": self.system})

    def system_text(self) -> str:
        return "\n\n".join(block["text"] for block in self.system)

    def tier_bytes(self, tier: int) -> bytes:
        return "\n\n".join(s.text for s in self.sections if s.tier == tier).encode()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


# --- rendering behaviour as instructions ------------------------------------------------

_BANDS = (20, 40, 60, 80, 100)
_BEHAVIOUR: dict[str, tuple[str, str, str, str, str]] = {
    "verbosity": (
        "Be extremely brief: give only the answer, no preamble or recap.",
        "Be concise: short paragraphs, no repetition.",
        "Use a moderate length: enough context to act on, nothing more.",
        "Be thorough: explain your reasoning and include supporting detail.",
        "Be expansive: cover alternatives, reasoning and detail in full.",
    ),
    "creativity": (
        "Stay strictly conventional: proven formats and plain wording only.",
        "Prefer safe, familiar ideas; innovate only when asked.",
        "Balance fresh ideas with proven approaches.",
        "Push for original angles and unexpected wording.",
        "Be boldly inventive: surprising concepts first, conventions second.",
    ),
    "formality": (
        "Write casually, as to a friend; contractions welcome.",
        "Write in a relaxed, conversational register.",
        "Write in a neutral professional register.",
        "Write formally: no slang, full sentences.",
        "Write very formally, as for a board or a regulator.",
    ),
    "detail": (
        "Give headlines only; leave out specifics.",
        "Give the key specifics only.",
        "Give the specifics a reader needs to act.",
        "Give full specifics: numbers, names, dates and sources.",
        "Give exhaustive specifics and cite every source.",
    ),
    "proactivity": (
        "Do only what is asked; do not suggest next steps.",
        "Suggest a next step only when it is clearly needed.",
        "End with the obvious next step where there is one.",
        "Anticipate needs: suggest next steps and alternatives.",
        "Lead: propose next steps, alternatives and risks the person has not asked about.",
    ),
    "risk_taking": (
        "Never take creative or strategic risks; flag anything uncertain.",
        "Take only small, well-supported risks.",
        "Take measured risks where the upside is clear.",
        "Be willing to take bold positions and say so.",
        "Favour bold, provocative positions.",
    ),
}
_TRAIT_BANDS = ("avoid showing {t}", "show little {t}", "show some {t} where it fits",
                "show clear {t}", "make {t} a defining quality of the writing")


def _band(score: int) -> int:
    return next(i for i, top in enumerate(_BANDS) if score <= top)


def render_behaviour(params: dict[str, int], traits: dict[str, int]) -> str:
    lines = [f"- {_BEHAVIOUR[name][_band(score)]} ({name} {score}/100)"
             for name, score in sorted(params.items()) if name in _BEHAVIOUR]
    lines += [f"- {name.replace('_', ' ').capitalize()}: "
              f"{_TRAIT_BANDS[_band(score)].format(t=name.replace('_', ' '))} ({score}/100)."
              for name, score in sorted(traits.items())]
    return "## Behaviour\n" + "\n".join(lines) if lines else ""


def _bullets(title: str, items: Sequence[str]) -> str:
    return f"## {title}\n" + "\n".join(f"- {item}" for item in items) if items else ""


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _mapping(title: str, mapping: dict[str, Any]) -> str:
    """Texts as "key: value"; the guide's nested preferences ({"headlines": {"max_words": 8}}) as
    "headlines: max words 8; style imperative", keys sorted so the bytes are stable."""
    def entry(key: str, value: Any) -> str:
        if isinstance(value, dict):
            value = "; ".join(f"{name.replace('_', ' ')} {_value_text(value[name])}" for name in sorted(value))
        return f"{key.replace('_', ' ')}: {_value_text(value)}"
    return _bullets(title, [entry(key, mapping[key]) for key in sorted(mapping)])


def _competitors(items: Sequence[dict[str, Any]]) -> str:
    """Competitor rules, then the brand's positioning (the last one given: a per-agent row's wins)
    and what sets it apart (all, in order)."""
    lines = [f"{c['competitor']}: {c['instruction']}" for c in items if "competitor" in c]
    positioning = [c["positioning"] for c in items if "positioning" in c]
    if positioning:
        lines.append(f"Position the brand as: {positioning[-1]}")
    apart = [name for c in items for name in c.get("differentiation", ())]
    if apart:
        lines.append(f"Differentiate on: {', '.join(dict.fromkeys(apart))}")
    return _bullets("Competitors", lines)


def _block(title: str, text: str) -> str:
    return f"## {title}\n{text}" if text else ""


# --- assembly ---------------------------------------------------------------------------


def resolve_specialization(*, specialization: dict | None, client: Client | None,
                           instance: dict[str, Any], agent: dict[str, str] | None = None) -> dict[str, str]:
    """The run's values, then the client's, then the agent's own default (an agency-built agent's),
    then the instance tuning's defaults, then the instance's
    own region and language (set at provisioning; `connection.tenant`), each in the one canonical
    form of `tuning.specialization` ("gcc", "uae", "ksa" -> GCC; "en-GB" -> en; "e-commerce" -> retail).
    The run's values are checked (an unknown one is InvalidInput listing the known values); stored
    values are read leniently: one saved before normalisation that is unknown is skipped."""
    spec = dict(specialization or {})
    unknown = sorted(set(spec) - set(SPECIALIZATION_KEYS))
    if unknown:
        raise InvalidInput(f"specialization: unknown key '{unknown[0]}'; use {', '.join(SPECIALIZATION_KEYS)}.",
                           details={"specialization": [f"unknown key '{unknown[0]}'"]})
    run = {key: normalise(key, value, field=f"specialization.{key}") for key, value in spec.items()}
    tenant = getattr(connection, "tenant", None)

    def first(dimension: str, *stored: Any) -> str:
        return run.get(dimension) or next((key for value in stored if (key := lenient(dimension, value))), "")

    client_vertical = client.vertical if client is not None and client.vertical != "other" else ""
    agent = agent or {}
    resolved = {
        "vertical": first("vertical", client_vertical, agent.get("vertical"), instance["default_vertical"],
                          client.vertical if client is not None else ""),
        "region": first("region", client.region if client is not None else "", agent.get("region"),
                        instance["default_region"], getattr(tenant, "region", "")),
        "language": first("language", client.language if client is not None else "", agent.get("language"),
                          instance["default_language"], getattr(tenant, "language", "")),
    }
    return {key: value for key, value in resolved.items() if value}


def _tier1(platform: PlatformTier, spec: dict[str, str]) -> list[Section]:
    sections = [Section(1, "base_prompt", platform.base_prompt.strip())]
    if platform.confirmation_patterns:
        sections.append(Section(1, "confirmation_patterns", _bullets(
            "Actions that always wait for a person's approval", sorted(platform.confirmation_patterns))))
    if platform.content_filters:
        sections.append(Section(1, "content_filters", _bullets(
            "Content you must never produce", sorted(platform.content_filters))))
    for kind in SPECIALIZATION_KEYS[::-1]:  # vertical, region, language
        name = spec.get(kind, "")
        text = (platform.knowledge.get(kind) or {}).get(name, "")
        if text:
            sections.append(Section(1, f"knowledge.{kind}.{name}", _block(f"{kind.capitalize()} knowledge: {name}",
                                                                          text.strip())))
    return sections


def _tier2(tuning: dict[str, Any], platform: PlatformTier, spec: dict[str, str]) -> list[Section]:
    own_approvals = [p for p in tuning["require_approval_for"] if p not in platform.confirmation_patterns]
    own_filters = [f for f in tuning["content_filters"] if f not in platform.content_filters]
    candidates = [
        ("prompt_extension", _block("Agency instructions", tuning["prompt_extension"])),
        *[(f"instruction_overrides.{name}", _block(f"Instruction: {name.replace('_', ' ')}",
                                                   tuning["instruction_overrides"][name]))
          for name in sorted(tuning["instruction_overrides"])],
        ("behaviour_params", render_behaviour(tuning["behaviour_params"], tuning["traits"])),
        ("output_preferences", _mapping("Output preferences", tuning["output_preferences"])),
        ("brand_voice", _block("Agency voice (unless the client's brand voice says otherwise)",
                               tuning["brand_voice"])),
        ("terminology_use", _bullets("Terms to use", tuning["terminology_use"])),
        ("terminology_avoid", _bullets("Terms never to use", tuning["terminology_avoid"])),
        ("require_approval_for", _bullets("Actions that also wait for approval in this agency", own_approvals)),
        ("content_filters", _bullets("Also never produce", own_filters)),
    ]
    vertical = spec.get("vertical", "")
    if vertical and tuning["vertical_knowledge"].get(vertical):
        candidates.append((f"vertical_knowledge.{vertical}",
                           _block(f"Agency know-how: {vertical}", tuning["vertical_knowledge"][vertical])))
    return [Section(2, name, text.strip()) for name, text in candidates if text.strip()]


# The guide's learned-preferences keys (§9.26) and how the prompt names them; other keys (a person's
# own) follow as "key: value". "<kind> (feedback #<id>)" keys are copies of a rule's text that
# applying a suggestion stored before learned preferences had this structure: the rule itself is
# in the prompt, so they are not repeated.
LEARNED_LABELS = {"rejected_patterns": "Patterns to avoid", "successful_approaches": "Approaches that work well",
                  "preferred_length": "Preferred length", "preferred_headline_styles": "Preferred headline styles"}
LEARNED_HIDDEN = ("confidence_score",)
LEGACY_LEARNED_KEY = re.compile(r"^(never|always|prefer) \(feedback #\d+\)$")


def render_learned(learned: dict[str, Any]) -> str:
    def text(value: Any) -> str:
        return "; ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)

    lines = [f"{label}: {text(learned[key])}" for key, label in LEARNED_LABELS.items() if learned.get(key)]
    lines += [f"{key.replace('_', ' ')}: {text(learned[key])}" for key in sorted(learned)
              if key not in LEARNED_LABELS and key not in LEARNED_HIDDEN and not LEGACY_LEARNED_KEY.match(key)
              and learned[key] not in ("", None, [])]
    return _bullets("Learned from feedback", lines)


MEMORY_TITLE = "What we remember"


def render_memories(memories: Sequence[Any]) -> str:
    """Accepted memories as told to the model, in the order given (by id)."""
    return _bullets(MEMORY_TITLE, [m.text for m in memories])


def _tier3(client: Client, tuning: dict[str, Any], rules: Sequence[ContentRule],
           examples: Sequence[ApprovedExample], memory_text: str = "",
           pins: Sequence[tuple[str, str]] = ()) -> list[Section]:
    by_kind = {kind: [r.text for r in rules if r.kind == kind] for kind in ("always", "never", "prefer")}
    candidates = [
        ("client", f"# Client: {client.name}"),
        ("brand_voice", _block("Brand voice", tuning["brand_voice"])),
        ("tone_keywords", _block("Tone", ", ".join(tuning["tone_keywords"]))),
        ("rules.always", _bullets("Always", by_kind["always"])),
        ("rules.never", _bullets("Never", by_kind["never"])),
        ("rules.prefer", _bullets("Prefer", by_kind["prefer"])),
        ("memory", memory_text),
        *pins,  # pinned document excerpts (tuning.knowledge.pins), after the memories
        ("competitor_rules", _competitors(tuning["competitor_rules"])),
        ("format_preferences", _mapping("Format", tuning["format_preferences"])),
        ("length_preferences", _mapping("Length", tuning["length_preferences"])),
        ("learned_preferences", render_learned(tuning["learned_preferences"])),
        ("feedback_summary", _block("What feedback says", tuning["feedback_summary"])),
        ("required_approvals", _bullets("Actions that wait for approval for this client",
                                        tuning["required_approvals"])),
    ]
    if examples:
        parts = [f"### {e.kind}" + (f" ({e.context})" if e.context else "") + f"\n{e.text.strip()}" for e in examples]
        candidates.append(("examples", "## Approved examples\n" + "\n\n".join(parts)))
    return [Section(3, name, text.strip()) for name, text in candidates if text.strip()]


def _tools(platform: PlatformTier, disabled: set[str], extra_tools: Sequence[dict]) -> list[dict]:
    tools: dict[str, dict] = {}
    extra_names = {tool["name"] for tool in extra_tools}
    for tool in [*platform.tools, *extra_tools]:
        name = tool["name"]
        if name in tools:
            raise InvalidInput(f"tools: '{name}' is declared twice (a skill cannot reuse a core tool's name).",
                               details={"tools": [name]})
        if name in extra_names or name not in disabled:
            tools[name] = {key: tool[key] for key in sorted(tool) if key != "cache_control"}
    ordered = [json.loads(_canonical(tools[name])) for name in sorted(tools)]
    if ordered:
        ordered[-1]["cache_control"] = dict(CACHE)
    return ordered


# Assembled prompts per process, keyed by everything they are built from. The tuning part of the
# key is the newest audit entry's id (`selectors.tuning_version`): every tuning write records
# one, so a saved change is a new key and takes effect on the very next run.
_CACHE: OrderedDict[tuple, tuple[PlatformTier, AssembledPrompt]] = OrderedDict()
_CACHE_SIZE = 512
_CACHE_LOCK = threading.Lock()


def assembly_cache_clear() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _cache_key(platform: PlatformTier, client: Client | None, specialization: dict | None,
               extra_tools: Sequence[dict], version: tuple) -> tuple:
    client_part = (client.pk, client.name, client.vertical, client.region, client.language) if client else None
    spec = tuple(sorted((specialization or {}).items()))
    tools = _canonical(list(extra_tools)) if extra_tools else b""
    # The instance's own region and language are the last specialization default.
    tenant = getattr(connection, "tenant", None)
    instance_part = (getattr(tenant, "region", ""), getattr(tenant, "language", ""))
    return (connection.schema_name, version, platform.agent_type, platform.version, id(platform), client_part,
            spec, tools, instance_part)


def _fresh_copy(prompt: AssembledPrompt) -> AssembledPrompt:
    """The cached prompt with its own top-level lists and blocks, so a caller that adds to them
    (e.g. appends a tool) cannot change what the next run gets."""
    return dataclasses.replace(prompt, system=[dict(block) for block in prompt.system],
                               tools=[dict(tool) for tool in prompt.tools])


def assemble_prompt(*, platform: PlatformTier, client: Client | None, specialization: dict | None = None,
                    extra_tools: Sequence[dict] = (), for_run: bool = False,
                    what_if_rules: Sequence[dict] = (), version: tuple | None = None) -> AssembledPrompt:
    """Build the stable request prefix for one agent run of `platform.agent_type` for `client`.
    `for_run`: a run will be told it, so each memory in it counts a use (previews and checks do not).
    `what_if_rules`: a proposed tuning change, never saved ({"kind": "never"|"avoid_term", "text"}), as
    an eval run tries it (versions/evals): told and checked as if it were the client's.
    `version`: `selectors.tuning_version()` when the caller has just read it (a run reads it once
    for its skills and its prompt)."""
    from .selectors import tuning_version

    key = (*_cache_key(platform, client, specialization, extra_tools, version or tuning_version()),
           _canonical(list(what_if_rules)) if what_if_rules else b"")
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        fresh = hit is not None and (hit[1].memory_valid_until is None or timezone.now() < hit[1].memory_valid_until)
        if hit is not None and hit[0] is platform and fresh:
            _CACHE.move_to_end(key)
            if for_run:
                _note_memory_use(hit[1].memory_ids)
            return _fresh_copy(hit[1])
    prompt = _assemble(platform=platform, client=client, specialization=specialization, extra_tools=extra_tools,
                       what_if_rules=what_if_rules)
    with _CACHE_LOCK:
        _CACHE[key] = (platform, prompt)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    if for_run:
        _note_memory_use(prompt.memory_ids)
    return _fresh_copy(prompt)


def _note_memory_use(memory_ids: Sequence[int]) -> None:
    """Count a use of each memory told (the size bound leaves the least recently used out first).
    Not a tuning change: no audit entry, so the cached prompt stays byte-stable."""
    if memory_ids:
        from django.db.models import F

        from .models import Memory

        Memory.objects.filter(pk__in=memory_ids).update(use_count=F("use_count") + 1, last_used_at=timezone.now())


def _assemble(*, platform: PlatformTier, client: Client | None, specialization: dict | None,
              extra_tools: Sequence[dict], what_if_rules: Sequence[dict] = ()) -> AssembledPrompt:
    from .models import ContentRule
    from .selectors import client_tier3_rows, instance_tuning_rows, memories_for_prompt

    tier2 = effective_instance(instance_tuning_rows(agent_type=platform.agent_type), platform)
    what_if_terms = [r["text"] for r in what_if_rules if r.get("kind") == "avoid_term"]
    if what_if_terms:
        tier2 = {**tier2, "terminology_avoid": [*tier2["terminology_avoid"], *what_if_terms]}
    spec = resolve_specialization(specialization=specialization, client=client, instance=tier2,
                                  agent=platform.default_specialization)
    sections = _tier1(platform, spec) + _tier2(tier2, platform, spec)
    tier3: dict[str, Any] = {"required_approvals": [], "competitor_rules": []}
    rules: list[PromptRule] = [PromptRule("avoid_term", term, 2, "terminology_avoid")
                               for term in tier2["terminology_avoid"]]
    # Memories of this client and the agency's own, never another client's (DESIGN §11).
    memories = memories_for_prompt(client=client)
    memory_text = render_memories(memories.included)
    # Pinned excerpts of this client's documents and the instance-wide ones (tuning.knowledge.pins);
    # every pin change is an audit entry, so the cache key above covers them.
    from .knowledge.pins import pin_sections, pins_for_prompt

    pins = pins_for_prompt(client=client)
    if client is not None:
        rows, content_rules, examples = client_tier3_rows(client=client, agent_type=platform.agent_type)
        content_rules = [*content_rules, *(ContentRule(client=client, kind=r["kind"], text=r["text"])
                                           for r in what_if_rules if r.get("kind") != "avoid_term")]
        tier3 = effective_client(rows, platform.agent_type)
        sections += _tier3(client, tier3, content_rules, examples, memory_text, pin_sections(pins.included))
        rules += [PromptRule(r.kind, r.text, 3, r.source) for r in content_rules]
        rules += [PromptRule("competitor", f"{c['competitor']}: {c['instruction']}", 3, "competitor_rules",
                             c["competitor"]) for c in tier3["competitor_rules"] if "competitor" in c]
    else:
        sections += [Section(3, name, text.strip()) for name, text in
                     [("memory", memory_text), *pin_sections(pins.included)] if text.strip()]

    system: list[dict] = []
    for tier in (1, 2, 3):
        texts = [s.text for s in sections if s.tier == tier]
        if texts:
            system.append({"type": "text", "text": "\n\n".join(texts), "tier": tier})
    # Breakpoints: after the last block every client shares (tier 1-2), and after the last block.
    shared = [i for i, block in enumerate(system) if block["tier"] <= 2]
    for i in {shared[-1] if shared else None, len(system) - 1} - {None}:
        system[i]["cache_control"] = dict(CACHE)
    for block in system:
        del block["tier"]

    disabled = set(tier2["disabled_tools"])
    tools = _tools(platform, disabled, extra_tools)
    approvals = sorted({*platform.confirmation_patterns, *tier2["require_approval_for"], *tier3["required_approvals"]})
    enabled_names = {t["name"] for t in tools}
    return AssembledPrompt(
        agent_type=platform.agent_type,
        version=platform.version,
        client_id=client.pk if client is not None else None,
        system=system,
        tools=tools,
        sections=tuple(sections),
        effort=tier2["effort"],
        max_tokens=tier2["max_tokens"],
        require_approval=tuple(approvals),
        disabled_tools=tuple(sorted(disabled)),
        rules=tuple(rules),
        content_filters=tuple(tier2["content_filters"]),
        tool_config={name: effective_tool_settings(declared, tier2["tool_config_overrides"].get(name) or {})
                     for name, declared in sorted(platform.tool_settings.items()) if name in enabled_names},
        specialization=spec,
        enabled=tier2["enabled"],
        audit_all_outputs=tier2["audit_all_outputs"],
        on_rule_violation=tier2["on_rule_violation"],
        # A rough count (about four bytes per token), good enough to compare configurations.
        token_estimate=math.ceil(len(_canonical({"tools": tools, "system": system})) / 4),
        memory_ids=tuple(m.pk for m in memories.included),
        memory_left_out=tuple(m.pk for m in memories.left_out),
        memory_valid_until=memories.valid_until,
        pinned_documents=tuple(pin.document_id for pin in pins.included),
        pins_left_out=tuple(pin.document_id for pin in pins.left_out),
    )
