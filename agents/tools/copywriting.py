"""Copy tools: the client's guidelines and approved examples from the ERP, a deterministic brand
check, and saving a draft.

`check_brand_rules` is deliberately not a model call: the same text against the same rules must
always give the same verdict, so an account manager can trust a "passed" and a test can prove
it. It is the check every final output gets in the loop (agents/checks.py: one matcher for the
client's never and competitor rules, the instance's terms to avoid and content filters, and the
platform's content filters), so a text that passes here is not flagged at the end of the run.
"""

from __future__ import annotations

from typing import Any

from agents.checks import check_text
from agents.registry import ToolContext

from .common import CLIENT_INPUT, client_record, client_slug, erp_write, settings_of, written

# --- handlers --------------------------------------------------------------------------------

GUIDELINES_SCHEMA = {"type": "object", "properties": {"client": CLIENT_INPUT}, "additionalProperties": False}


def get_brand_guidelines(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    record = client_record(ctx, client_slug(ctx, tool_input))
    return {
        "client": record.get("slug"), "name": record.get("name"), "industry": record.get("industry"),
        "region": record.get("region"), "language": record.get("language"),
        "brand_guidelines": record.get("brand_guidelines", {}), "competitors": record.get("competitors", []),
        # The rules the agency keeps in the platform (tier 3) also bind; check_brand_rules checks them.
        "platform_rules": [dict(rule) for rule in ctx.rules],
    }


EXAMPLES_SCHEMA = {
    "type": "object",
    "properties": {
        "client": CLIENT_INPUT,
        "channel": {"type": "string", "maxLength": 40, "description": "Only examples for this channel, e.g. 'instagram'."},
        "language": {"type": "string", "maxLength": 10, "description": "Only examples in this language (ISO 639-1)."},
    },
    "additionalProperties": False,
}
EXAMPLES_SETTINGS = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 10,
              "description": "The most approved examples one call returns (in the ERP's order); count still "
                             "counts every match."},
}


def get_approved_examples(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    record = client_record(ctx, client_slug(ctx, tool_input))
    examples = record.get("approved_examples", [])
    channel, language = (tool_input.get("channel") or "").lower(), (tool_input.get("language") or "").lower()
    matching = [e for e in examples if (not channel or str(e.get("channel", "")).lower() == channel)
                and (not language or str(e.get("language", "")).lower() == language)]
    shown = matching[:settings_of(ctx, EXAMPLES_SETTINGS)["limit"]]
    result: dict[str, Any] = {"client": record.get("slug"), "count": len(matching), "examples": shown}
    if len(shown) < len(matching):
        result["examples_not_shown"] = len(matching) - len(shown)
    if not matching and examples:
        result["note"] = (f"No approved example matches those filters; the client has {len(examples)} for "
                          f"channels {sorted({e.get('channel') for e in examples})}.")
    return result


CHECK_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 50_000, "description": "The copy to check."},
        "extra_never": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 300}, "maxItems": 50,
                        "description": "More never rules to apply, e.g. the ERP guidelines' never list."},
        "extra_competitors": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100},
                              "maxItems": 50, "description": "More competitor names, e.g. from get_brand_guidelines."},
    },
    "required": ["text"],
    "additionalProperties": False,
}


def check_brand_rules(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    """The run's rules (`ctx.rules`: the client's never and competitor rules, the instance's terms to
    avoid, and the content filters) plus the ERP lists passed in, through the output check's matcher."""
    rules = [*ctx.rules, *({"kind": "never", "text": t} for t in tool_input.get("extra_never", [])),
             *({"kind": "competitor", "text": f'"{t}"'} for t in tool_input.get("extra_competitors", []))]
    result = check_text(tool_input["text"], rules)
    result["reminders"] = [rule["text"] for rule in ctx.rules if rule.get("kind") == "always"]
    if not any(rule.get("kind") in ("never", "competitor") for rule in rules):
        result["note"] = ("No never or competitor rules are set for this client in the platform; pass the ERP "
                          "guidelines' never list and competitors (get_brand_guidelines) as extra_never and "
                          "extra_competitors.")
    return result


SAVE_DRAFT_SCHEMA = {
    "type": "object",
    "properties": {
        "content": {"type": "string", "minLength": 1, "maxLength": 50_000, "description": "The final copy."},
        "title": {"type": "string", "maxLength": 200, "description": "A short name for the draft."},
        "channel": {"type": "string", "maxLength": 40, "description": "Where it runs, e.g. 'instagram', 'email'."},
        "language": {"type": "string", "maxLength": 10, "description": "ISO 639-1 code of the copy's language."},
        "client": CLIENT_INPUT,
    },
    "required": ["content"],
    "additionalProperties": False,
}


def save_draft(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    body = {"client": client_slug(ctx, tool_input), "content": tool_input["content"],
            "metadata": {"agent": "copy", "run_id": ctx.run_id}}
    for name in ("title", "channel", "language"):
        if tool_input.get(name):
            body[name] = tool_input[name]
    result, simulated = erp_write(ctx, "/drafts", body)
    return written(result, simulated, id_key="draft_id")
