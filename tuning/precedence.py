"""How the tiers combine, and what a tuning value may be. The one place that decides it.

Precedence (written down in the README too):

1. Tier 1, the platform (code), sets defaults and hard bounds: maximum temperature and
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

from .models import MAX_TEXT, Vertical

if TYPE_CHECKING:
    from .assembly import PlatformTier
    from .models import ClientTuning, InstanceTuning

MAX_LIST_ITEMS = 200
MAX_ITEM_CHARS = 500
MAX_MAPPING_KEYS = 100
BEHAVIOUR_PARAMS = ("creativity", "detail", "formality", "risk_taking", "verbosity")

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
    "temperature": "float",
    "max_tokens": "int",
    "content_filters": "list",
    "audit_all_outputs": "bool",
}
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
         "list": [], "text_map": {}, "object_map": {}, "score_map": {}, "competitors": []}


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", details={field: [message]})


def _check_str(field: str, value: Any, limit: int, what: str = "a text") -> str:
    if not isinstance(value, str):
        raise _invalid(field, f"must be {what}, not {type(value).__name__}.")
    if len(value) > limit:
        raise _invalid(field, f"is {len(value):,} characters long; the limit is {limit:,}.")
    return value


def clean_value(field: str, kind: str, value: Any) -> Any:
    """The value in its stored form, or InvalidInput naming the field and what is wrong."""
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
    if kind == "short":
        return _check_str(field, value, 20).strip()
    if kind == "vertical":
        value = _check_str(field, value, 20).strip()
        if value and value not in Vertical.values:
            raise _invalid(field, f"unknown vertical '{value}'; choose one of {', '.join(Vertical.values)}.")
        return value
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
            if kind == "text_map":
                cleaned[key] = _check_str(where, item, MAX_TEXT)
            elif kind == "score_map":
                if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 100:
                    raise _invalid(where, "must be a whole number from 0 to 100.")
                if field == "behaviour_params" and key not in BEHAVIOUR_PARAMS:
                    raise _invalid(where, f"unknown behaviour parameter; use {', '.join(BEHAVIOUR_PARAMS)}.")
                cleaned[key] = item
            else:
                if not isinstance(item, dict):
                    raise _invalid(where, "must be an object of settings.")
                cleaned[key] = item
        return cleaned
    if kind == "competitors":
        if not isinstance(value, list):
            raise _invalid(field, 'must be a list of {"competitor": …, "instruction": …} objects.')
        if len(value) > MAX_LIST_ITEMS:
            raise _invalid(field, f"has {len(value)} items; the limit is {MAX_LIST_ITEMS}.")
        rules = []
        for i, item in enumerate(value):
            where = f"{field}[{i}]"
            if not isinstance(item, dict) or set(item) != {"competitor", "instruction"}:
                raise _invalid(where, 'must be an object with exactly "competitor" and "instruction".')
            competitor = _check_str(f"{where}.competitor", item["competitor"], 120).strip()
            instruction = _check_str(f"{where}.instruction", item["instruction"], MAX_ITEM_CHARS).strip()
            if not competitor or not instruction:
                raise _invalid(where, "needs both a competitor and an instruction.")
            rules.append({"competitor": competitor, "instruction": instruction})
        return rules
    raise AssertionError(f"unknown kind {kind}")


def clean_changes(changes: Any, fields: dict[str, str]) -> dict[str, Any]:
    if not isinstance(changes, dict):
        raise InvalidInput("Send a JSON object of the fields to change.")
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
        temperature = values.get("temperature")
        if temperature is not None and temperature > platform.max_temperature:
            raise _invalid("temperature", f"{temperature:g} is above the platform's bound for '{platform.agent_type}' "
                                          f"(max_temperature {platform.max_temperature:g}).")
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
    for name in values.get("tool_config_overrides") or {}:
        if name not in all_tools:
            raise _invalid(f"tool_config_overrides.{name}", "is not a core tool of "
                                                            f"{', '.join(sorted(p.agent_type for p in platforms))}.")


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
    temperature = merged["temperature"] if merged["temperature"] is not None else platform.default_temperature
    merged["temperature"] = min(temperature, platform.max_temperature)
    max_tokens = merged["max_tokens"] if merged["max_tokens"] is not None else platform.default_max_tokens
    merged["max_tokens"] = min(max_tokens, platform.max_tokens_limit)
    own = [f for f in merged["content_filters"] if f[:1] not in {"-", "!"}]
    merged["content_filters"] = sorted(set(platform.content_filters) | set(own))
    return merged


def effective_client(rows: Sequence[ClientTuning], agent_type: str) -> dict[str, Any]:
    ordered = sorted((r for r in rows if r.agent_type in ("", agent_type)), key=lambda r: r.agent_type != "")
    return _merge(ordered, CLIENT_FIELDS)
