"""Brief tools: who the client is and what it asked for before, who its audiences are and
where their time goes, and filing or changing a brief.

2.3.1 has `get_client_info` and `create_brief`; 2.4.0 adds the planning reads an agency's
ERP offers (`get_past_briefs`, `get_audience_data`, `get_channel_mix`) and `update_brief`.
The shared handlers behave the same in both versions.

`get_channel_mix` is deterministic: a channel's share is proportional to the audience's
media time on it (its `channel_habits`, size-weighted across the chosen segments) times the
channel's cost efficiency for the objective (from the ERP's benchmarks for the client's
vertical and region), the efficiency dampened by the agency's `efficiency_weight`:

    score(c) = habit(c) × efficiency_index(c) ** efficiency_weight,   share(c) = score(c) / Σ score

where efficiency_index is 1 / CPM (awareness), 1 / CPC (consideration) or 1 / CPA
(conversion), relative to the most efficient candidate channel. Channels under the agency's
`min_channel_share` are dropped and the rest rescaled, so no plan carries token line items.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agents.knowledge import CHANNELS, REGIONS, VERTICALS
from agents.registry import ToolContext, ToolError

from .common import (
    CLIENT_INPUT,
    client_record,
    client_slug,
    erp_write,
    market,
    only_readable,
    readable_clients,
    settings_of,
    written,
)

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
    _check_deadline(tool_input.get("deadline"))
    body: dict[str, Any] = {"client": client_slug(ctx, tool_input), "title": tool_input["title"],
                            "objective": tool_input["objective"], "metadata": {"agent": "brief", "run_id": ctx.run_id}}
    for name in ("audience", "channels", "budget", "deadline", "notes"):
        if tool_input.get(name) not in (None, "", []):
            body[name] = tool_input[name]
    result, simulated = erp_write(ctx, "/briefs", body)
    return written(result, simulated, id_key="brief_id")


def _check_deadline(deadline: str | None) -> None:
    if deadline and not (len(deadline) == 10 and deadline[4] == "-" and deadline[7] == "-"):
        raise ToolError(f"deadline: {deadline!r} is not a date; use YYYY-MM-DD.")


def _newest_first(briefs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """By creation time as instants (seeded briefs carry local offsets, written ones UTC), ids breaking ties."""
    def when(brief: dict[str, Any]) -> float:
        try:
            return datetime.fromisoformat(str(brief.get("created_at"))).timestamp()
        except ValueError:
            return 0.0

    return sorted(briefs, key=lambda b: (when(b), str(b.get("id"))), reverse=True)


# --- get_past_briefs (2.4.0) ------------------------------------------------------------------

BRIEF_STATUSES = ("draft", "in_review", "approved", "archived")

PAST_BRIEFS_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "array", "items": {"type": "string", "enum": list(BRIEF_STATUSES)}, "minItems": 1,
                   "uniqueItems": True, "description": "Only briefs in these statuses, e.g. ['approved'] for "
                                                       "what the client signed off. Default: every status."},
        "limit": {"type": "integer", "minimum": 1, "maximum": 50,
                  "description": "How many briefs to return, newest first (default 10)."},
        "client": CLIENT_INPUT,
    },
    "additionalProperties": False,
}
PAST_BRIEFS_SETTINGS = {
    "include_budgets": {"type": "boolean", "default": True,
                        "description": "Show past budgets; off: budgets are left out so a new brief is not "
                                       "anchored on what the client spent before."},
}
# Not the notes: a brief's markdown body can run to pages, and what was asked is in these fields.
_PAST_BRIEF_FIELDS = ("id", "title", "objective", "audience", "channels", "budget", "deadline", "status",
                      "created_at", "updated_at")


def get_past_briefs(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    slug = client_slug(ctx, tool_input)
    include_budgets = settings_of(ctx, PAST_BRIEFS_SETTINGS)["include_budgets"]
    rows = ctx.erp().get("/briefs", params={"client": slug}).get("results", [])
    # The client filter is the ERP's; a system that ignored it must still not show other clients' briefs.
    rows = [r for r in only_readable(rows, readable_clients(ctx, tool_input)) if r.get("client") == slug]
    wanted = set(tool_input.get("status") or BRIEF_STATUSES)
    briefs = _newest_first([r for r in rows if r.get("status") in wanted])
    fields = [f for f in _PAST_BRIEF_FIELDS if include_budgets or f != "budget"]
    shown = [{k: b[k] for k in fields if b.get(k) is not None} for b in briefs[:tool_input.get("limit", 10)]]
    by_status: dict[str, int] = {}
    channels: dict[str, int] = {}
    for brief in rows:
        by_status[str(brief.get("status"))] = by_status.get(str(brief.get("status")), 0) + 1
    for brief in briefs:
        for channel in brief.get("channels") or []:
            channels[channel] = channels.get(channel, 0) + 1
    result: dict[str, Any] = {"client": slug, "count": len(briefs), "briefs": shown, "briefs_by_status": by_status,
                              "channels_used": dict(sorted(channels.items(), key=lambda kv: (-kv[1], kv[0])))}
    budgets = [b["budget"] for b in briefs if isinstance(b.get("budget"), int | float)]
    if include_budgets and budgets:
        result["budgets"] = {"min": min(budgets), "max": max(budgets), "total": sum(budgets),
                             "approved_total": sum(b["budget"] for b in briefs
                                                   if b.get("status") == "approved" and b.get("budget"))}
    elif not include_budgets:
        result["note"] = "This agency does not show past budgets: take the budget from the request or ask for it."
    if len(shown) < len(briefs):
        result["briefs_not_shown"] = len(briefs) - len(shown)
    return result


# --- get_audience_data (2.4.0) ----------------------------------------------------------------

AUDIENCE_SCHEMA = {
    "type": "object",
    "properties": {
        "language": {"type": "string", "pattern": "^[a-z]{2}$",
                     "description": "Only segments that speak this language (ISO 639-1, e.g. 'ar')."},
        "client": CLIENT_INPUT,
    },
    "additionalProperties": False,
}
AUDIENCE_SETTINGS = {
    "min_segment_size": {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0,
                         "description": "Leave out segments with fewer people than this (too small to buy "
                                        "media against); 0: every segment."},
}


def _weighted_habits(segments: list[dict[str, Any]]) -> dict[str, float]:
    total = sum(s["size"] for s in segments)
    return {c: round(sum(s["channel_habits"].get(c, 0) * s["size"] for s in segments) / total, 4)
            for c in CHANNELS} if total else {}


def _audiences(ctx: ToolContext, slug: str, tool_input: dict, **params: Any) -> list[dict[str, Any]]:
    rows = ctx.erp().get("/audiences", params={"client": slug, **params}).get("results", [])
    return [r for r in only_readable(rows, readable_clients(ctx, tool_input)) if r.get("client") == slug]


def get_audience_data(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    slug = client_slug(ctx, tool_input)
    min_size = settings_of(ctx, AUDIENCE_SETTINGS)["min_segment_size"]
    params = {"min_size": min_size, **({"language": tool_input["language"]} if tool_input.get("language") else {})}
    segments = _audiences(ctx, slug, tool_input, **params)
    result: dict[str, Any] = {"client": slug, "count": len(segments), "segments": segments,
                              "largest_segment_size": max((s["size"] for s in segments), default=0),
                              "languages": sorted({lang for s in segments for lang in s.get("languages", [])}),
                              "channel_habits_weighted": _weighted_habits(segments)}
    if min_size:
        result["note"] = f"Segments under {min_size:,} people are left out by the agency's settings."
    if not segments:
        result["note"] = ("No audience segment matches" + (f" with at least {min_size:,} people" if min_size else "")
                          + (f" speaking {tool_input['language']!r}" if tool_input.get("language") else "")
                          + ". Describe the audience from the request and the client's profile instead.")
    return result


# --- get_channel_mix (2.4.0) ------------------------------------------------------------------

MIX_OBJECTIVES = ("awareness", "consideration", "conversion")
# objective -> (benchmark cost metric, what one unit of it buys)
_OBJECTIVE_METRIC = {"awareness": ("cpm", "impressions"), "consideration": ("cpc", "clicks"),
                     "conversion": ("cpa", "conversions")}

CHANNEL_MIX_SCHEMA = {
    "type": "object",
    "properties": {
        "objective": {"type": "string", "enum": list(MIX_OBJECTIVES),
                      "description": "awareness (reach, CPM), consideration (clicks, CPC) or conversion (CPA)."},
        "audience_ids": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 60},
                         "minItems": 1, "maxItems": 20, "uniqueItems": True,
                         "description": "Segment ids from get_audience_data to plan for; default: all of the "
                                        "client's segments, weighted by size."},
        "channels": {"type": "array", "items": {"type": "string", "enum": list(CHANNELS)}, "minItems": 1,
                     "uniqueItems": True, "description": "Only split across these channels; default: all."},
        "budget": {"type": "number", "exclusiveMinimum": 0,
                   "description": "Budget in USD: adds spend and expected results per channel."},
        "vertical": {"type": "string", "enum": list(VERTICALS),
                     "description": "Benchmark vertical; default: the run's specialization or the client's."},
        "region": {"type": "string", "enum": list(REGIONS),
                   "description": "Benchmark region; default: the run's specialization or the client's."},
        "client": CLIENT_INPUT,
    },
    "required": ["objective"],
    "additionalProperties": False,
}
CHANNEL_MIX_SETTINGS = {
    "efficiency_weight": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                          "description": "How much cost efficiency moves the split away from the audience's "
                                         "habits: 0 follows habits only, 1 weighs efficiency fully."},
    "min_channel_share": {"type": "number", "minimum": 0, "maximum": 0.3, "default": 0.05,
                          "description": "Drop channels that would get less than this share and rescale the rest."},
}


def get_channel_mix(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    settings = settings_of(ctx, CHANNEL_MIX_SETTINGS)
    weight, floor = settings["efficiency_weight"], settings["min_channel_share"]
    objective = tool_input["objective"]
    metric, unit = _OBJECTIVE_METRIC[objective]
    slug = client_slug(ctx, tool_input)
    segments = _audiences(ctx, slug, tool_input)
    if not segments:
        raise ToolError(f"The ERP has no audience data for '{slug}', so there are no channel habits to plan from. "
                        "Write the channel choice from the brief's audience and say it is not data-based.")
    if tool_input.get("audience_ids"):
        known = {s["id"]: s for s in segments}
        unknown = [i for i in tool_input["audience_ids"] if i not in known]
        if unknown:
            raise ToolError(f"No segment {', '.join(map(repr, unknown))} for '{slug}'; its segments are "
                            f"{', '.join(known)}. Call get_channel_mix with those ids, or leave audience_ids out.")
        segments = [known[i] for i in tool_input["audience_ids"]]
    vertical, region = market(ctx, tool_input)
    bench = {row["channel"]: row for row in
             ctx.erp().get("/benchmarks", params={"vertical": vertical, "region": region}).get("results", [])}
    candidates = [c for c in (tool_input.get("channels") or CHANNELS) if c in bench]
    if not candidates:
        raise ToolError(f"The ERP has no benchmarks for those channels; use some of {', '.join(CHANNELS)}.")
    habits = _weighted_habits(segments)
    efficiency = {c: 1 / bench[c][metric] for c in candidates}
    best = max(efficiency.values())
    index = {c: efficiency[c] / best for c in candidates}
    score = {c: habits.get(c, 0) * index[c] ** weight for c in candidates}

    kept, dropped = [c for c in candidates if score[c] > 0], []
    while True:
        total = sum(score[c] for c in kept)
        shares = {c: score[c] / total for c in kept} if total else {}
        small = [c for c in kept if shares[c] < floor]
        if not small or len(small) == len(kept):
            break
        lowest = min(small, key=lambda c: (shares[c], c))  # one at a time: dropping one lifts the others
        dropped.append({"channel": lowest, "share_before_drop": round(shares[lowest], 4),
                        "reason": f"under the agency's minimum of {floor:.0%} a channel"})
        kept.remove(lowest)
    if not shares:
        raise ToolError("The chosen segments spend no time on those channels; leave `channels` out or pick others.")
    rounded = {c: round(shares[c], 3) for c in kept}
    largest = max(kept, key=lambda c: (shares[c], c))
    rounded[largest] = round(1 - sum(v for c, v in rounded.items() if c != largest), 3)

    mix = []
    for channel in sorted(kept, key=lambda c: (-rounded[c], c)):
        row = bench[channel]
        line: dict[str, Any] = {"channel": channel, "share": rounded[channel], "habit_share": habits.get(channel, 0),
                                "efficiency_index": round(index[channel], 3), "score": round(score[channel], 4),
                                metric: row[metric], "benchmark": {k: row[k] for k in ("cpm", "ctr", "cvr", "cpc",
                                                                                       "cpa")}}
        if tool_input.get("budget"):
            spend = tool_input["budget"] * rounded[channel]
            impressions = spend / row["cpm"] * 1000
            line.update(spend=round(spend, 2), expected_impressions=round(impressions),
                        expected_clicks=round(impressions * row["ctr"]),
                        expected_conversions=round(impressions * row["ctr"] * row["cvr"], 1))
        mix.append(line)
    people = sum(s["size"] for s in segments)
    reasoning = [
        f"Audience: {len(segments)} segment(s), {people:,} people (segments may overlap); media time by channel, "
        f"size-weighted: " + ", ".join(f"{c} {habits.get(c, 0):.0%}" for c in candidates) + ".",
        f"Objective {objective}: efficiency is how many {unit} one USD buys at the {vertical}/{region} "
        f"benchmark {metric.upper()} (" + ", ".join(f"{c} ${bench[c][metric]}" for c in candidates) + ").",
        f"share ∝ habit × efficiency_index^{weight:g}: " + ", ".join(
            f"{line['channel']} {line['share']:.1%}" for line in mix) + ".",
    ]
    if dropped:
        reasoning.append("Dropped below the minimum share: " + ", ".join(d["channel"] for d in dropped) + ".")
    result: dict[str, Any] = {
        "client": slug, "objective": objective, "metric": metric, "vertical": vertical, "region": region,
        "currency": "USD", "segments": [{"id": s["id"], "name": s["name"], "size": s["size"]} for s in segments],
        "mix": mix, "dropped": dropped, "reasoning": reasoning,
        "settings": {"efficiency_weight": weight, "min_channel_share": floor}}
    if tool_input.get("budget"):
        result["budget"] = tool_input["budget"]
    return result


# --- update_brief (2.4.0) ---------------------------------------------------------------------

_CHANGEABLE = ("title", "objective", "audience", "channels", "budget", "deadline", "notes", "status")
UPDATE_BRIEF_SCHEMA = {
    "type": "object",
    "properties": {
        "brief_id": {"type": "string", "minLength": 1, "maxLength": 60,
                     "description": "The brief's id, e.g. 'alpha-b01' or 'alpha-brief-0001'."},
        "title": CREATE_BRIEF_SCHEMA["properties"]["title"],
        "objective": CREATE_BRIEF_SCHEMA["properties"]["objective"],
        "audience": CREATE_BRIEF_SCHEMA["properties"]["audience"],
        "channels": CREATE_BRIEF_SCHEMA["properties"]["channels"],
        "budget": CREATE_BRIEF_SCHEMA["properties"]["budget"],
        "deadline": CREATE_BRIEF_SCHEMA["properties"]["deadline"],
        "notes": {"type": "string", "maxLength": 20_000,
                  "description": "Replaces the brief's notes (markdown): send the whole new text."},
        "status": {"type": "string", "enum": list(BRIEF_STATUSES),
                   "description": "draft, in_review (ready for the client), approved, or archived (superseded)."},
        "client": CLIENT_INPUT,
    },
    "required": ["brief_id"],
    "additionalProperties": False,
}
UPDATE_BRIEF_SETTINGS = {
    "allow_approval": {"type": "boolean", "default": True,
                       "description": "Let the agent set a brief to approved; off: approval stays with a person "
                                      "and the agent may move a brief to in_review at most."},
}


def update_brief(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    slug = client_slug(ctx, tool_input)
    brief_id = tool_input["brief_id"]
    changes = {k: tool_input[k] for k in _CHANGEABLE if tool_input.get(k) not in (None, "", [])}
    if not changes:
        raise ToolError(f"Nothing to change: give brief_id and at least one of {', '.join(_CHANGEABLE)}.")
    if changes.get("status") == "approved" and not settings_of(ctx, UPDATE_BRIEF_SETTINGS)["allow_approval"]:
        raise ToolError("In this agency a person approves briefs, not the agent. Set status to in_review and say "
                        "in your answer that the brief is ready for approval.")
    _check_deadline(changes.get("deadline"))
    current = ctx.erp().get(f"/briefs/{brief_id}")  # another agency's id is the ERP's 404
    if current.get("client") != slug:
        # Whose brief it is stays unsaid: the run may not learn about clients outside its own.
        raise ToolError(f"Brief {brief_id!r} is not one of '{slug}'s briefs; this run can only change the "
                        "briefs of its client. Call get_past_briefs for their ids.")
    result, simulated = erp_write(ctx, f"/briefs/{brief_id}", changes, method="PATCH")
    if simulated:
        return {**result, "brief_id": brief_id, "status_before": current.get("status")}
    return {"brief_id": result.get("id"), "status": result.get("status"), "status_before": current.get("status"),
            "changed": sorted(changes), "updated_at": result.get("updated_at")}
