"""Brief tools: who the client is and what it asked for before, and filing a new brief."""

from __future__ import annotations

from typing import Any

from agents.registry import ToolContext, ToolError

from .common import CLIENT_INPUT, client_record, client_slug, erp_write, settings_of, written

CLIENT_INFO_SCHEMA = {"type": "object", "properties": {"client": CLIENT_INPUT}, "additionalProperties": False}
CLIENT_INFO_SETTINGS = {
    "max_briefs": {"type": "integer", "minimum": 0, "maximum": 50, "default": 20,
                   "description": "How many of the client's briefs (newest first) are returned; briefs_by_status "
                                  "still counts them all."},
}

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
    result = {"client": {k: record[k] for k in _PROFILE_FIELDS if k in record},
              "briefs": briefs[:settings_of(ctx, CLIENT_INFO_SETTINGS)["max_briefs"]], "briefs_by_status": by_status}
    if len(result["briefs"]) < len(briefs):
        result["briefs_not_shown"] = len(briefs) - len(result["briefs"])
    return result


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
CREATE_BRIEF_SETTINGS = {
    "require_budget": {"type": "boolean", "default": False,
                       "description": "Refuse a brief without a budget: the agency files none without one."},
    "require_deadline": {"type": "boolean", "default": False,
                         "description": "Refuse a brief without a deadline: the agency files none without one."},
}


def create_brief(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    settings = settings_of(ctx, CREATE_BRIEF_SETTINGS)
    missing = [name for name in ("budget", "deadline") if settings[f"require_{name}"] and not tool_input.get(name)]
    if missing:
        raise ToolError(f"This agency files no brief without a {' and a '.join(missing)}. Ask the user for the "
                        f"{' and '.join(missing)} (or take it from the client's profile), then call create_brief "
                        "again with it.")
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
