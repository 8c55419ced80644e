"""How the tiers combine, and what a tuning value may be. The one place that decides it.

Precedence (written down in the README too):

1. Tier 1, the platform (code), sets defaults and hard bounds: maximum effort and
   output tokens, the tools that always need confirmation, the content filters.
2. Tier 2, the instance: the instance-wide `InstanceTuning` row, then the agent type's row.
3. Tier 3, the client: the client-wide `ClientTuning` row, then the agent type's row.

* A per-agent row overrides the wide row *field by field*: an empty text, a null number or
  bool and an empty mapping mean "inherit"; mappings merge key by key (the per-agent key wins).
* Lists merge (union, in first-seen order): disabled tools, approval patterns, content
  filters, terminology, tone keywords; rules and examples of both rows apply.
* An instance can restrict the platform but never relax it. A value above a bound, or a
  filter that tries to switch a platform filter off, is refused when it is written
  (`check_instance_bounds`) with a message naming the bound; at run time the effective values
  are clamped again (`effective_instance`), so a platform release that tightens a bound
  wins over a value saved earlier.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from spokestack.errors import InvalidInput

from .models import MAX_TEXT
from .specialization import normalise

if TYPE_CHECKING:
    from .assembly import PlatformTier
    from .models import ClientTuning, InstanceTuning

MAX_LIST_ITEMS = 200
MAX_ITEM_CHARS = 500
MAX_MAPPING_KEYS = 100
BEHAVIOUR_PARAMS = ("creativity", "detail", "formality", "proactivity", "risk_taking", "verbosity")

# field -> kind. The kind decides how a value is validated and how rows merge.
INSTANCE_FIELDS: dict[str, str] = {
    "enabled": "bool",
    "prompt_extension": "text",
    "instruction_overrides": "text_map",
    "default_vertical": "vertical",
    "default_region": "short",
    "default_language": "short",
    "vertical_knowledge": "text_map",
    "disabled_tools": "list",
    "tool_config_overrides": "object_map",
    "behaviour_params": "score_map",
    "traits": "score_map",
    "output_preferences": "text_map",
    "brand_voice": "text",
    "terminology_use": "list",
    "terminology_avoid": "list",
    "require_approval_for": "list",
    "effort": "effort",
    "max_tokens": "int",
    "content_filters": "list",
    "audit_all_outputs": "bool",
    "on_rule_violation": "violation",
}
RULE_VIOLATION_ACTIONS = ("flag", "revise")
# The Messages API's output_config.effort levels, lowest first (the order bounds compare by).
EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
CLIENT_FIELDS: dict[str, str] = {
    "brand_voice": "text",
    "tone_keywords": "list",
    "competitor_rules": "competitors",
    "format_preferences": "text_map",
    "length_preferences": "text_map",
    "required_approvals": "list",
    "learned_preferences": "text_map",
    "feedback_summary": "text",
}
# What a client contact may change on their client's tuning (DESIGN §10: "preferences").
CLIENT_CONTACT_FIELDS = frozenset({"format_preferences", "length_preferences"})
EMPTY = {"bool": None, "float": None, "int": None, "text": "", "short": "", "vertical": "",
         "list": [], "text_map": {}, "object_map": {}, "score_map": {}, "competitors": [], "violation": "", "effort": ""}


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={field: [message]})


def _check_str(field: str, value: Any, limit: int, what: str = "a text") -> str:
    if not isinstance(value, str):
        raise _invalid(field, f"must be {what}, not {type(value).__name__}.")
    if len(value) > limit:
        raise _invalid(field, f"is {len(value):,} characters long; the limit is {limit:,}.")
    return value


# --- the guide's shapes (§9.25, §9.26), mapped to the stored ones -------------------------

# Behaviour as words: each word is stored as the score in the middle of the band it names (the
# bands of `assembly.render_behaviour`: 0–20, 21–40, 41–60, 61–80, 81–100), so a word and a
# number render the same instruction. Words any dial understands, then each dial's own.
BEHAVIOUR_LEVELS = {"minimal": 10, "very low": 10, "low": 30, "medium": 50, "moderate": 50, "balanced": 50,
                    "standard": 50, "normal": 50, "high": 70, "very high": 90, "maximum": 90}
BEHAVIOUR_WORDS: dict[str, dict[str, int]] = {
    "verbosity": {"terse": 10, "brief": 10, "concise": 30, "detailed": 70, "comprehensive": 90, "exhaustive": 90},
    "creativity": {"conventional": 10, "conservative": 30, "creative": 70, "experimental": 90, "bold": 90},
    "formality": {"casual": 10, "informal": 30, "conversational": 30, "neutral": 50, "professional": 50,
                  "formal": 70, "very formal": 90},
    "detail": {"headline": 10, "summary": 30, "detailed": 70, "exhaustive": 90},
    "risk_taking": {"averse": 10, "cautious": 30, "conservative": 30, "measured": 50, "bold": 70, "provocative": 90},
    "proactivity": {"reactive": 10, "passive": 10, "responsive": 30, "proactive": 70, "anticipatory": 90},
}
# Preference maps whose values may be the guide's nested objects ({"headlines": {"max_words": 8}})
# or plain values (true, 3), besides today's texts; rendered readably by the assembler.
PREFERENCE_FIELDS = frozenset({"format_preferences", "length_preferences", "output_preferences"})
# The guide's field names -> ours (agency_terminology is split into its two lists).
FIELD_ALIASES = {"behavior_params": "behaviour_params", "agency_brand_voice": "brand_voice",
                 "output_preference": "output_preferences"}
COMPETITOR_OBJECT_KEYS = ("never_mention", "positioning", "differentiation")
NEVER_MENTION = "Never mention by name."
_SPECIALIZATION_FIELDS = {"default_region": "region", "default_language": "language", "default_vertical": "vertical"}


def behaviour_words(name: str) -> dict[str, int]:
    return {**BEHAVIOUR_LEVELS, **BEHAVIOUR_WORDS.get(name, {})}


def _score(field: str, where: str, key: str, item: Any) -> int:
    if isinstance(item, str):
        words = behaviour_words(key if field == "behaviour_params" else "")
        word = " ".join(item.casefold().replace("_", " ").replace("-", " ").split())
        if word in words:
            return words[word]
        raise _invalid(where, f"unknown word {item!r}; use a whole number from 0 to 100 or one of "
                              f"{', '.join(sorted(words, key=lambda w: (words[w], w)))}.")
    if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 100:
        raise _invalid(where, "must be a whole number from 0 to 100 (or a word such as low, medium, high).")
    return item


def _scalar(where: str, item: Any) -> Any:
    if isinstance(item, str):
        return _check_str(where, item, MAX_TEXT)
    if isinstance(item, bool) or (isinstance(item, int | float) and math.isfinite(item)):
        return item
    if isinstance(item, list) and all(isinstance(x, str) for x in item) and len(item) <= MAX_LIST_ITEMS:
        return [_check_str(f"{where}[{i}]", x, MAX_ITEM_CHARS) for i, x in enumerate(item)]
    raise _invalid(where, "must be a text, a number, true/false or a list of texts.")


def _preference(where: str, item: Any) -> Any:
    """A preference value: a text (today's shape), a plain value, or one level of named settings."""
    if not isinstance(item, dict):
        return _scalar(where, item)
    if len(item) > MAX_MAPPING_KEYS:
        raise _invalid(where, f"has {len(item)} keys; the limit is {MAX_MAPPING_KEYS}.")
    nested: dict[str, Any] = {}
    for key, value in item.items():
        key = _check_str(where, key, 60, "a mapping with text keys").strip()
        if not key:
            raise _invalid(where, "has an empty key.")
        nested[key] = _scalar(f"{where}.{key}", value)
    return nested


def _names(where: str, value: Any, limit: int) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
        raise _invalid(where, f"must be a list of at most {MAX_LIST_ITEMS} texts.")
    names: list[str] = []
    for i, item in enumerate(value):
        item = _check_str(f"{where}[{i}]", item, limit).strip()
        if item and item not in names:
            names.append(item)
    return names


def _competitor_object(field: str, value: dict) -> list[dict[str, Any]]:
    """The guide's {never_mention, positioning, differentiation} as stored items: one rule per
    competitor never to mention (the brand check enforces it), then the positioning and the
    differentiators (prompt only)."""
    unknown = sorted(set(value) - set(COMPETITOR_OBJECT_KEYS))
    if unknown:
        raise _invalid(f"{field}.{unknown[0]}", f"unknown key; use {', '.join(COMPETITOR_OBJECT_KEYS)}, or send a "
                                                 'list of {"competitor": …, "instruction": …} objects.')
    items: list[dict[str, Any]] = [{"competitor": name, "instruction": NEVER_MENTION}
                                   for name in _names(f"{field}.never_mention", value.get("never_mention") or [], 120)]
    positioning = _check_str(f"{field}.positioning", value.get("positioning") or "", MAX_ITEM_CHARS).strip()
    if positioning:
        items.append({"positioning": positioning})
    differentiation = _names(f"{field}.differentiation", value.get("differentiation") or [], MAX_ITEM_CHARS)
    if differentiation:
        items.append({"differentiation": differentiation})
    return items


def _competitor_item(where: str, item: Any) -> dict[str, Any]:
    if isinstance(item, dict) and set(item) == {"positioning"}:
        text = _check_str(f"{where}.positioning", item["positioning"], MAX_ITEM_CHARS).strip()
        if not text:
            raise _invalid(where, "has an empty positioning.")
        return {"positioning": text}
    if isinstance(item, dict) and set(item) == {"differentiation"}:
        names = _names(f"{where}.differentiation", item["differentiation"], MAX_ITEM_CHARS)
        if not names:
            raise _invalid(where, "has no differentiators.")
        return {"differentiation": names}
    if not isinstance(item, dict) or set(item) != {"competitor", "instruction"}:
        raise _invalid(where, 'must be an object with exactly "competitor" and "instruction" (or "positioning", '
                              'or "differentiation").')
    competitor = _check_str(f"{where}.competitor", item["competitor"], 120).strip()
    instruction = _check_str(f"{where}.instruction", item["instruction"], MAX_ITEM_CHARS).strip()
    if not competitor or not instruction:
        raise _invalid(where, "needs both a competitor and an instruction.")
    return {"competitor": competitor, "instruction": instruction}


def clean_value(field: str, kind: str, value: Any) -> Any:
    """The value in its stored form, or InvalidInput naming the field and what is wrong.

    The guide's shapes (§9.25, §9.26) are accepted besides today's and stored in today's form:
    behaviour words as scores, nested preferences as they are, a competitor object as items."""
    if value is None:
        return EMPTY[kind]
    if kind == "bool":
        if not isinstance(value, bool):
            raise _invalid(field, "must be true, false or null.")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _invalid(field, "must be a number or null.")
        if value < 0:
            raise _invalid(field, "cannot be negative.")
        return float(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(field, "must be a whole number or null.")
        if value < 1:
            raise _invalid(field, "must be at least 1.")
        return value
    if kind == "text":
        return _check_str(field, value, MAX_TEXT).strip()
    if kind == "short" and field in _SPECIALIZATION_FIELDS:
        return normalise(_SPECIALIZATION_FIELDS[field], value, field=field)
    if kind == "short":
        return _check_str(field, value, 20).strip()
    if kind == "effort":
        if value not in ("", *EFFORT_LEVELS):
            raise _invalid(field, f"must be one of {', '.join(EFFORT_LEVELS)} (or null for the platform's default), "
                                  f"not {value!r}.")
        return value
    if kind == "violation":
        if value not in ("", *RULE_VIOLATION_ACTIONS):
            raise _invalid(field, f"must be one of {', '.join(RULE_VIOLATION_ACTIONS)} (or null to inherit), "
                                  f"not {value!r}.")
        return value
    if kind == "vertical":
        return normalise("vertical", value, field=field)
    if kind == "list":
        if not isinstance(value, list):
            raise _invalid(field, "must be a list of texts.")
        if len(value) > MAX_LIST_ITEMS:
            raise _invalid(field, f"has {len(value)} items; the limit is {MAX_LIST_ITEMS}.")
        items: list[str] = []
        for i, item in enumerate(value):
            item = _check_str(f"{field}[{i}]", item, MAX_ITEM_CHARS).strip()
            if not item:
                raise _invalid(f"{field}[{i}]", "is empty.")
            if item not in items:
                items.append(item)
        return items
    if kind in {"text_map", "object_map", "score_map"}:
        if not isinstance(value, dict):
            raise _invalid(field, "must be an object (a mapping of names to values).")
        if len(value) > MAX_MAPPING_KEYS:
            raise _invalid(field, f"has {len(value)} keys; the limit is {MAX_MAPPING_KEYS}.")
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            key = _check_str(field, key, 60, "a mapping with text keys").strip()
            if not key:
                raise _invalid(field, "has an empty key.")
            where = f"{field}.{key}"
            if kind == "text_map" and field in PREFERENCE_FIELDS:
                cleaned[key] = _preference(where, item)
            elif kind == "text_map":
                cleaned[key] = _check_str(where, item, MAX_TEXT)
            elif kind == "score_map":
                if field == "behaviour_params" and key not in BEHAVIOUR_PARAMS:
                    raise _invalid(where, f"unknown behaviour parameter; use {', '.join(BEHAVIOUR_PARAMS)}.")
                cleaned[key] = _score(field, where, key, item)
            else:
                if not isinstance(item, dict):
                    raise _invalid(where, "must be an object of settings.")
                cleaned[key] = item
        return cleaned
    if kind == "competitors":
        if isinstance(value, dict):
            return _competitor_object(field, value)
        if not isinstance(value, list):
            raise _invalid(field, 'must be a list of {"competitor": …, "instruction": …} objects, or an object '
                                  'with never_mention, positioning and differentiation.')
        if len(value) > MAX_LIST_ITEMS:
            raise _invalid(field, f"has {len(value)} items; the limit is {MAX_LIST_ITEMS}.")
        rules = []
        for i, item in enumerate(value):
            rule = _competitor_item(f"{field}[{i}]", item)
            if rule not in rules:
                rules.append(rule)
        return rules
    raise AssertionError(f"unknown kind {kind}")


def _unalias(changes: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """The guide's field names in ours: behavior_params, agency_brand_voice, and agency_terminology
    {"use": […], "avoid": […]} as terminology_use / terminology_avoid. Sending both names of one
    field is refused, so nothing is silently dropped."""
    renamed: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "agency_terminology" and "terminology_use" in fields:
            if value is None:
                value = {}
            if not isinstance(value, dict) or set(value) - {"use", "avoid"}:
                raise _invalid(name, 'must be an object with "use" and/or "avoid" lists.')
            targets = {f"terminology_{key}": item for key, item in value.items()}
        else:
            target = FIELD_ALIASES.get(name, name) if "behaviour_params" in fields else name  # tier 2's names
            targets = {target if target in fields else name: value}
        for target, item in targets.items():
            if target in renamed or (target != name and target in changes):
                raise _invalid(name, f"is also sent as {target}; send one of them.")
            renamed[target] = item
    return renamed


def clean_changes(changes: Any, fields: dict[str, str]) -> dict[str, Any]:
    if not isinstance(changes, dict):
        raise InvalidInput("Send a JSON object of the fields to change.")
    changes = _unalias(changes, fields)
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise _invalid(unknown[0], f"is not a tuning field here; the fields are: {', '.join(fields)}.")
    return {field: clean_value(field, fields[field], value) for field, value in changes.items()}


# --- platform bounds --------------------------------------------------------------------


def check_instance_bounds(values: dict[str, Any], platforms: Sequence[PlatformTier]) -> None:
    """Refuse a tier-2 value that would relax any of the given platform tiers.

    The instance-wide row is checked against every agent type, a per-agent row against its own.
    """
    for platform in platforms:
        effort = values.get("effort")
        if effort and EFFORT_LEVELS.index(effort) > EFFORT_LEVELS.index(platform.max_effort):
            raise _invalid("effort", f"'{effort}' is above the platform's bound for '{platform.agent_type}' "
                                     f"(max_effort {platform.max_effort}).")
        max_tokens = values.get("max_tokens")
        if max_tokens is not None and max_tokens > platform.max_tokens_limit:
            raise _invalid("max_tokens", f"{max_tokens} is above the platform's bound for '{platform.agent_type}' "
                                         f"(max_tokens_limit {platform.max_tokens_limit}).")
        for item in values.get("content_filters") or ():
            if item[:1] in {"-", "!"} or item.lower().startswith(("no ", "disable ", "off:")):
                raise _invalid("content_filters", f"'{item}' would switch a filter off; an instance can only add "
                                                  f"filters to the platform's ({', '.join(platform.content_filters)}).")
    all_tools = {tool["name"] for platform in platforms for tool in platform.tools}
    for name in values.get("disabled_tools") or ():
        if name not in all_tools:
            raise _invalid("disabled_tools", f"'{name}' is not a core tool of "
                                             f"{', '.join(sorted(p.agent_type for p in platforms))}.")
    for name, overrides in (values.get("tool_config_overrides") or {}).items():
        if name not in all_tools:
            raise _invalid(f"tool_config_overrides.{name}", "is not a core tool of "
                                                            f"{', '.join(sorted(p.agent_type for p in platforms))}.")
        # Keys are checked per tool against the declaration of every given platform that has the tool.
        for platform in platforms:
            if any(tool["name"] == name for tool in platform.tools):
                _check_tool_settings(name, overrides, platform.tool_settings.get(name, {}))


def _check_tool_settings(tool: str, overrides: dict[str, Any], declared: dict[str, dict]) -> None:
    where = f"tool_config_overrides.{tool}"
    honours = f"{tool} honours {describe_tool_settings(declared)}" if declared else f"{tool} has no settings"
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        names = ", ".join(f"'{key}'" for key in unknown)
        raise _invalid(where, f"unknown setting{'s' if len(unknown) > 1 else ''} {names}; {honours}.")
    for key, value in overrides.items():
        problem = tool_setting_problem(declared[key], value)
        if problem:
            raise _invalid(f"{where}.{key}", f"{problem}; {honours}.")


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_tool_setting(key: str, declared: dict[str, Any]) -> str:
    """One declared tool setting for people and the model: "limit (1–20, default 8)"."""
    default = declared["default"]
    if declared["type"] == "boolean":
        return f"{key} (true or false, default {str(default).lower()})"
    if declared["type"] == "string":
        return f"{key} ({' or '.join(declared['enum'])}, default {default})"
    low, high = declared.get("minimum"), declared.get("maximum")
    span = f"{_number(low)}–{_number(high)}" if low is not None and high is not None else (
        f"at least {_number(low)}" if low is not None else f"at most {_number(high)}" if high is not None else "a number")
    return f"{key} ({span}, default {_number(default)})"


def describe_tool_settings(declared: dict[str, dict]) -> str:
    return ", ".join(describe_tool_setting(key, declared[key]) for key in sorted(declared))


def tool_setting_problem(declared: dict[str, Any], value: Any) -> str | None:
    """What is wrong with `value` for a declared tool setting, or None. Declarations are
    JSON-Schema-like: {"type": integer|number|boolean|string, "minimum", "maximum", "enum", "default"}."""
    kind = declared["type"]
    if kind == "boolean":
        return None if isinstance(value, bool) else f"must be true or false, not {value!r}"
    if kind == "string":
        return None if value in declared.get("enum", ()) else f"must be one of {', '.join(declared['enum'])}, " \
                                                               f"not {value!r}"
    whole = kind == "integer"
    if isinstance(value, bool) or not isinstance(value, int if whole else int | float) or (
            isinstance(value, float) and not math.isfinite(value)):
        return f"must be {'a whole number' if whole else 'a number'}, not {value!r}"
    low, high = declared.get("minimum"), declared.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        return f"{_number(value)} is out of range"
    return None


def effective_tool_settings(declared: dict[str, dict], overrides: dict[str, Any]) -> dict[str, Any]:
    """A tool's settings at run time: the declared defaults overlaid with the instance's values.

    A value saved before a platform release changed the declaration is clamped into the new range,
    or left out (the default applies) when its key or type no longer fits: the platform wins.
    """
    settings = {key: spec["default"] for key, spec in sorted(declared.items())}
    for key, value in overrides.items():
        spec = declared.get(key)
        if spec is None:
            continue
        if spec["type"] in ("integer", "number") and isinstance(value, int | float) and not isinstance(value, bool):
            low, high = spec.get("minimum"), spec.get("maximum")
            value = max(value, low) if low is not None else value
            value = min(value, high) if high is not None else value
        if tool_setting_problem(spec, value) is None:
            settings[key] = value
    return settings


# --- merging rows -----------------------------------------------------------------------


def _merge(rows: Iterable[Any], fields: dict[str, str]) -> dict[str, Any]:
    """Rows in increasing precedence: later rows override earlier ones field by field."""
    merged: dict[str, Any] = {field: EMPTY[kind] for field, kind in fields.items()}
    for row in rows:
        for field, kind in fields.items():
            value = getattr(row, field)
            if kind in {"list", "competitors"}:
                merged[field] = merged[field] + [item for item in value if item not in merged[field]]
            elif kind.endswith("_map"):
                merged[field] = {**merged[field], **value}
            elif value not in (None, ""):
                merged[field] = value
    return merged


def effective_instance(rows: Sequence[InstanceTuning], platform: PlatformTier) -> dict[str, Any]:
    """Tier 2 as it applies to `platform.agent_type`, with the platform's bounds enforced."""
    ordered = sorted((r for r in rows if r.agent_type in ("", platform.agent_type)), key=lambda r: r.agent_type != "")
    merged = _merge(ordered, INSTANCE_FIELDS)
    merged["enabled"] = merged["enabled"] is not False
    merged["audit_all_outputs"] = merged["audit_all_outputs"] is True
    merged["on_rule_violation"] = merged["on_rule_violation"] or "flag"
    effort = merged["effort"] or platform.default_effort
    if effort and EFFORT_LEVELS.index(effort) > EFFORT_LEVELS.index(platform.max_effort):
        effort = platform.max_effort  # a release that lowered the bound wins over a value saved before
    merged["effort"] = effort
    max_tokens = merged["max_tokens"] if merged["max_tokens"] is not None else platform.default_max_tokens
    merged["max_tokens"] = min(max_tokens, platform.max_tokens_limit)
    own = [f for f in merged["content_filters"] if f[:1] not in {"-", "!"}]
    merged["content_filters"] = sorted(set(platform.content_filters) | set(own))
    return merged


def effective_client(rows: Sequence[ClientTuning], agent_type: str) -> dict[str, Any]:
    ordered = sorted((r for r in rows if r.agent_type in ("", agent_type)), key=lambda r: r.agent_type != "")
    return _merge(ordered, CLIENT_FIELDS)
