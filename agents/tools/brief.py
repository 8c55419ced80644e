"""Brief tools: who the client is and what it asked for before, and filing a new brief."""

from __future__ import annotations

from typing import Any

from agents.registry import ToolContext, ToolError

from .common import CLIENT_INPUT, client_record, client_slug, erp_write, written

CLIENT_INFO_SCHEMA = {"type": "object", "properties": {"client": CLIENT_INPUT}, "additionalProperties": False}

_PROFILE_FIELDS = ("slug", "name", "industry", "region", "language", "annual_budget", "contact", "competitors",
                   "brand_guidelines")


def get_client_info(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    slug = client_slug(ctx, tool_input)
    record = client_record(ctx, slug)
    briefs = ctx.erp().get("/briefs", params={"client": slug}).get("results", [])
    briefs = sorted(briefs, key=lambda b: str(b.get("created_at", "")), reverse=True)
    by_status: dict[str, int] = {}
    for brief in briefs:
        by_status[str(brief.get("status"))] = by_status.get(str(brief.get("status")), 0) + 1
    return {"client": {k: record[k] for k in _PROFILE_FIELDS if k in record},
            "briefs": briefs, "briefs_by_status": by_status}


CREATE_BRIEF_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Short name of the brief."},
        "objective": {"type": "string", "minLength": 1, "maxLength": 2000,
                      "description": "One measurable objective: what should change, by how much, by when."},
        "audience": {"type": "string", "maxLength": 1000, "description": "Who it must reach, concretely."},
        "channels": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 40}, "maxItems": 20,
                     "uniqueItems": True, "description": "Channels, e.g. ['instagram', 'search']."},
        "budget": {"type": "number", "exclusiveMinimum": 0,
                   "description": "Budget in the agency's currency, when known."},
        "deadline": {"type": "string", "format": "date", "description": "YYYY-MM-DD, when known."},
        "notes": {"type": "string", "maxLength": 20_000,
                  "description": "The rest of the brief (markdown): insight, message, mandatories, KPIs."},
        "client": CLIENT_INPUT,
    },
    "required": ["title", "objective"],
    "additionalProperties": False,
}


def create_brief(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    deadline = tool_input.get("deadline")
    if deadline and not (len(deadline) == 10 and deadline[4] == "-" and deadline[7] == "-"):
        raise ToolError(f"deadline: {deadline!r} is not a date; use YYYY-MM-DD.")
    body: dict[str, Any] = {"client": client_slug(ctx, tool_input), "title": tool_input["title"],
                            "objective": tool_input["objective"], "metadata": {"agent": "brief", "run_id": ctx.run_id}}
    for name in ("audience", "channels", "budget", "deadline", "notes"):
        if tool_input.get(name) not in (None, "", []):
            body[name] = tool_input[name]
    result, simulated = erp_write(ctx, "/briefs", body)
    return written(result, simulated, id_key="brief_id")
