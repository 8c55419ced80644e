"""Proposal tools: the orchestrator's own one. Everything else it gets from the agents it delegates
to (agents/delegation.py); this saves the assembled proposal, once, as a draft in the ERP."""

from __future__ import annotations

from typing import Any

from agents.registry import ToolContext, ToolError

from .common import CLIENT_INPUT, client_slug, erp_write, settings_of, written

SECTIONS = ("cover_letter", "executive_summary", "understanding", "approach", "team", "timeline", "commercials",
            "credentials", "compliance")

SAVE_PROPOSAL_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200, "description": "The proposal's title."},
        "content": {"type": "string", "minLength": 1, "maxLength": 100_000,
                    "description": "The whole proposal in markdown, every section in order (cover letter, executive "
                                   "summary, understanding, approach, team, timeline, commercials, credentials, "
                                   "compliance matrix)."},
        "child_runs": {"type": "array", "maxItems": 20, "items": {"type": "string", "maxLength": 40},
                       "description": "The run ids of the delegated work it is built on (from each delegation "
                                      "result's run_id), so a reviewer can open each part's run."},
        "total_fee": {"type": "number", "exclusiveMinimum": 0,
                      "description": "The fee the commercials section quotes, in the agency's currency."},
        "client": CLIENT_INPUT,
    },
    "required": ["title", "content"],
    "additionalProperties": False,
}


SAVE_PROPOSAL_SETTINGS = {
    "require_all_sections": {"type": "boolean", "default": False,
                             "description": "Refuse a proposal without an executive summary, a commercials section "
                                            "and a team section (by default it is saved and the missing ones named)."},
}


def save_proposal(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    content = tool_input["content"]
    missing = [name for name, words in (("executive summary", ("executive summary", "summary")),
                                        ("commercials", ("commercial", "fee", "price", "pricing", "estimate")),
                                        ("team", ("team", "staff", "resourc")))
               if not any(word in content.lower() for word in words)]
    if missing and settings_of(ctx, SAVE_PROPOSAL_SETTINGS)["require_all_sections"]:
        raise ToolError(f"This agency's proposal needs every section: add {' and '.join(missing)} (from the delegated "
                        "results), then save it again.")
    if len(missing) == 3:
        raise ToolError("This does not read as a proposal yet: it has no executive summary, commercials or team "
                        "section. Assemble the delegated results into the proposal's sections, then save it.")
    body = {"client": client_slug(ctx, tool_input), "title": tool_input["title"], "content": content,
            "channel": "proposal",
            "metadata": {"agent": "proposal", "kind": "proposal", "run_id": ctx.run_id,
                         "child_runs": list(tool_input.get("child_runs") or []),
                         **({"total_fee": tool_input["total_fee"]} if tool_input.get("total_fee") else {})}}
    result, simulated = erp_write(ctx, "/drafts", body)
    extra = {"sections_missing": missing} if missing and not simulated else None
    return written(result, simulated, id_key="proposal_id", extra=extra)
