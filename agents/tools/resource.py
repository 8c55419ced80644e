"""Resourcing tools: who has time, who has the skills, the best staffing for a piece of work, and booking it.

They read the ERP's resourcing module (`/capacity`, `/skills`) and write allocations
(`/allocations`). Hours are the ERP's: it knows contracts, holidays and time off, and checks a
booking against the person's free hours in every week, so a tool never recomputes capacity
itself; the ranking and the proposal are deterministic arithmetic on the ERP's numbers.

Client scoping: allocations belong to a client. Free-hour totals count every booking (a person
busy on another client is still busy), but a run only names the projects of the clients it may
read (`readable_clients`); the rest is summed as `other_clients_hours`, without client or project.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from agents.registry import ToolContext, ToolError

from .common import (
    CLIENT_INPUT,
    client_slug,
    erp_write,
    iso_date,
    only_readable,
    readable_clients,
    settings_of,
    written,
)

MAX_REQUIREMENTS = 10

_DATE = {"type": "string", "format": "date", "minLength": 10, "maxLength": 10}
_SKILL = {"type": "string", "minLength": 2, "maxLength": 40,
          "description": "A skill as the ERP names it, lower_snake_case: 'copywriting', 'arabic_copywriting', "
                         "'paid_media', 'video', 'strategy', 'social', 'analytics'..."}
_PERSON = {"type": "string", "minLength": 3, "maxLength": 40,
           "description": "A team member's id from the ERP, e.g. 'alpha-t02' (from any of the other tools)."}

UTILISATION_SETTING = {
    "max_utilisation": {"type": "number", "minimum": 0.5, "maximum": 1, "default": 1,
                        "description": "The share of a person's available hours that may be booked; 0.9 keeps "
                                       "10% of each week free for unplanned work (free hours shrink accordingly)."},
}


def _range(tool_input: dict, *, required: bool, names: tuple[str, str] = ("from", "to")) -> tuple[str | None, str | None]:
    first, last = names
    start, end = iso_date(tool_input.get(first), first), iso_date(tool_input.get(last), last)
    if required and (start is None or end is None):
        raise ToolError(f"Give both `{first}` and `{last}` (YYYY-MM-DD): the dates the work needs the people.")
    if start and end and end < start:
        raise ToolError(f"{last} ({end}) is before {first} ({start}); swap them or fix the dates.")
    return (start.isoformat() if start else None), (end.isoformat() if end else None)


def _capacity(ctx: ToolContext, **params: Any) -> dict[str, Any]:
    return ctx.erp().get("/capacity", params={k: v for k, v in params.items() if v not in (None, "")})


def _usable(week: dict[str, Any], max_utilisation: float) -> float:
    """A week's free hours under the agency's utilisation cap (never below 0)."""
    return round(max(0.0, week["available"] * max_utilisation - week["booked"]), 2)


def _scoped_week(week: dict[str, Any], clients: frozenset[str] | None) -> dict[str, Any]:
    """The week with bookings of unreadable clients summed, unnamed."""
    shown = only_readable(week.get("bookings", []), clients)
    hidden = round(sum(b["hours"] for b in week.get("bookings", []) if b not in shown), 2)
    out = {k: v for k, v in week.items() if k != "bookings"}
    out["bookings"] = [{k: b[k] for k in ("allocation_id", "client", "project", "status", "hours")} for b in shown]
    if hidden:
        out["other_clients_hours"] = hidden
    return out


# --- get_team_capacity ---------------------------------------------------------------------------

TEAM_CAPACITY_SCHEMA = {
    "type": "object",
    "properties": {
        "from": {**_DATE, "description": "First day to report (YYYY-MM-DD); its week is included. "
                                         "Default: the first week of the planning calendar."},
        "to": {**_DATE, "description": "Last day to report (YYYY-MM-DD). Default: `weeks_shown` weeks from `from`."},
        "role": {"type": "string", "minLength": 2, "maxLength": 60,
                 "description": "Only people whose role contains this, e.g. 'copywriter', 'director'."},
        "person_id": _PERSON,
        "client": {**CLIENT_INPUT, "description": "Only name this client's bookings (others are summed unnamed)."},
    },
    "additionalProperties": False,
}
TEAM_CAPACITY_SETTINGS = {
    "weeks_shown": {"type": "integer", "minimum": 1, "maximum": 18, "default": 4,
                    "description": "How many weeks a call reports when `to` is not given."},
    "show_bookings": {"type": "boolean", "default": True,
                      "description": "Whether each week lists the bookings (client, project, hours) behind the "
                                     "booked hours; false reports the hours only."},
}


def get_team_capacity(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    settings = settings_of(ctx, TEAM_CAPACITY_SETTINGS)
    clients = readable_clients(ctx, tool_input)
    start, end = _range(tool_input, required=False)
    if end is None:
        calendar = ctx.erp().get("/work-calendar")
        weeks = calendar["weeks"]
        first = next((i for i, w in enumerate(weeks) if start is None or w >= _monday(start)), None)
        if first is None:
            raise ToolError(f"from ({start}) is after the planning calendar, which ends {calendar['end']}.")
        start = start or weeks[0]
        last = min(first + settings["weeks_shown"], len(weeks)) - 1
        end = date.fromordinal(date.fromisoformat(weeks[last]).toordinal() + 4).isoformat()
    answer = _capacity(ctx, **{"from": start, "to": end, "role": tool_input.get("role"),
                               "person": tool_input.get("person_id")})
    people = []
    for person in answer["results"]:
        weeks = [_scoped_week(w, clients) for w in person["weeks"]]
        if not settings["show_bookings"]:
            weeks = [{k: v for k, v in w.items() if k not in ("bookings", "other_clients_hours")} for w in weeks]
        people.append({**{k: person[k] for k in ("person_id", "name", "role", "contracted_hours", "employment",
                                                 "target_utilisation", "totals")}, "weeks": weeks})
    if not people:
        asked = ", ".join(f"{k} {tool_input[k]!r}" for k in ("role", "person_id") if tool_input.get(k))
        raise ToolError(f"No team member matches {asked}. Call get_team_capacity without it to see everyone's "
                        "role, or get_skills_matrix to search by skill.")
    over = [{"person_id": p["person_id"], "name": p["name"], "week": w["week"], "over_by": -w["free"]}
            for p in people for w in p["weeks"] if w["free"] < 0]
    return {"weeks": answer["weeks"], "count": len(people), "people": people, "overbooked": over,
            "note": "Hours per week: available = contracted minus holidays and time off; free = available - booked "
                    "(tentative bookings count)."}


def _monday(day: str) -> str:
    value = date.fromisoformat(day)
    return date.fromordinal(value.toordinal() - value.weekday()).isoformat()


# --- get_skills_matrix -------------------------------------------------------------------------------

SKILLS_SCHEMA = {
    "type": "object",
    "properties": {
        "skill": _SKILL,
        "min_level": {"type": "integer", "minimum": 1, "maximum": 5,
                      "description": "Only skills at this level or above (1 learning … 5 expert, can lead)."},
        "person_id": _PERSON,
    },
    "additionalProperties": False,
}


def get_skills_matrix(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    params = {"skill": tool_input.get("skill"), "min_level": tool_input.get("min_level"),
              "person": tool_input.get("person_id")}
    answer = ctx.erp().get("/skills", params={k: v for k, v in params.items() if v})
    rows = answer["results"]
    by_skill: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        for skill, level in row["skills"].items():
            by_skill.setdefault(skill, []).append({"person_id": row["person_id"], "name": row["name"], "level": level})
    for people in by_skill.values():
        people.sort(key=lambda p: (-p["level"], p["person_id"]))
    result = {"levels": answer["levels"], "count": len(rows), "people": rows, "by_skill": dict(sorted(by_skill.items()))}
    if not rows and tool_input.get("skill"):
        result["note"] = (f"Nobody has {tool_input['skill']!r} at level {tool_input.get('min_level', 1)} or above. "
                          "Try a lower min_level or a related skill; call get_skills_matrix without filters to see "
                          "every skill.")
    return result


# --- find_available_people ------------------------------------------------------------------------------

FIND_AVAILABLE_SCHEMA = {
    "type": "object",
    "properties": {
        "skill": _SKILL,
        "min_level": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3,
                      "description": "The lowest skill level that will do (3 proficient)."},
        "hours_per_week": {"type": "number", "exclusiveMinimum": 0, "maximum": 60,
                           "description": "Hours a week the work needs from one person."},
        "from": {**_DATE, "description": "First day of the work (YYYY-MM-DD)."},
        "to": {**_DATE, "description": "Last day of the work (YYYY-MM-DD)."},
        "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
    },
    "required": ["skill", "hours_per_week", "from", "to"],
    "additionalProperties": False,
}


def candidates(ctx: ToolContext, *, skill: str, min_level: int, hours: float, start: str, end: str,
               max_utilisation: float, taken: dict[tuple[str, str], float] | None = None) -> list[dict[str, Any]]:
    """People with the skill, ranked: those free for `hours` every week first, then by skill level, then by
    their tightest week's free hours. `taken` holds hours already promised in this proposal."""
    answer = _capacity(ctx, **{"from": start, "to": end, "skill": skill, "min_level": min_level})
    levels = {row["person_id"]: row["skills"].get(skill, 0)
              for row in ctx.erp().get("/skills", params={"skill": skill}).get("results", [])}
    taken = taken or {}
    found = []
    for person in answer["results"]:
        free = {w["week"]: round(_usable(w, max_utilisation) - taken.get((person["person_id"], w["week"]), 0), 2)
                for w in person["weeks"]}
        short = {week: round(hours - value, 2) for week, value in free.items() if value < hours}
        found.append({"person_id": person["person_id"], "name": person["name"], "role": person["role"],
                      "level": levels.get(person["person_id"], 0), "fits": not short,
                      "min_free": min(free.values()), "free_by_week": free,
                      "weeks_short": short})
    found.sort(key=lambda c: (not c["fits"], -c["level"], -c["min_free"], c["person_id"]))
    return found


def find_available_people(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    start, end = _range(tool_input, required=True)
    settings = settings_of(ctx, UTILISATION_SETTING)
    skill, min_level = tool_input["skill"].strip().lower(), tool_input.get("min_level", 3)
    found = candidates(ctx, skill=skill, min_level=min_level, hours=tool_input["hours_per_week"], start=start,
                       end=end, max_utilisation=settings["max_utilisation"])
    limit = tool_input.get("limit", 5)
    result: dict[str, Any] = {"skill": skill, "min_level": min_level, "hours_per_week": tool_input["hours_per_week"],
                              "from": start, "to": end, "max_utilisation": settings["max_utilisation"],
                              "count": len(found), "fully_free": sum(c["fits"] for c in found),
                              "people": found[:limit]}
    if not found:
        result["note"] = (f"Nobody has {skill!r} at level {min_level} or above. Lower min_level, try a related "
                          "skill (get_skills_matrix lists them), or plan a freelancer.")
    elif not result["fully_free"]:
        result["note"] = ("Nobody is free for all those hours every week: split the work between people "
                          "(propose_allocation does), move the dates, or book fewer hours a week.")
    return result


# --- propose_allocation ---------------------------------------------------------------------------------

PROPOSE_SCHEMA = {
    "type": "object",
    "properties": {
        "requirements": {
            "type": "array", "minItems": 1, "maxItems": MAX_REQUIREMENTS,
            "description": "What the work needs, one item per role.",
            "items": {
                "type": "object",
                "properties": {
                    "skill": _SKILL,
                    "hours_per_week": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
                    "from": {**_DATE, "description": "YYYY-MM-DD"},
                    "to": {**_DATE, "description": "YYYY-MM-DD"},
                    "min_level": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3},
                    "role": {"type": "string", "maxLength": 60, "description": "The role on the project."},
                },
                "required": ["skill", "hours_per_week", "from", "to"],
                "additionalProperties": False,
            },
        },
        "allow_split": {"type": "boolean", "default": True,
                        "description": "Whether a need nobody can cover alone may be split between two people."},
    },
    "required": ["requirements"],
    "additionalProperties": False,
}


def propose_allocation(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    """Scarcest skill first (fewest qualified people), each need to the best fit given what earlier needs took."""
    settings = settings_of(ctx, UTILISATION_SETTING)
    cap = settings["max_utilisation"]
    needs = []
    for index, need in enumerate(tool_input["requirements"]):
        start, end = _range(need, required=True)
        needs.append({**need, "index": index, "skill": need["skill"].strip().lower(), "from": start, "to": end,
                      "min_level": need.get("min_level", 3)})
    pools = {n["index"]: candidates(ctx, skill=n["skill"], min_level=n["min_level"], hours=n["hours_per_week"],
                                    start=n["from"], end=n["to"], max_utilisation=cap) for n in needs}
    taken: dict[tuple[str, str], float] = {}
    assignments, unfilled, warnings = [], [], []
    for need in sorted(needs, key=lambda n: (len(pools[n["index"]]), n["index"])):
        hours, label = need["hours_per_week"], f"{need['skill']} {need['hours_per_week']:g} h/week"
        pool = candidates(ctx, skill=need["skill"], min_level=need["min_level"], hours=hours, start=need["from"],
                          end=need["to"], max_utilisation=cap, taken=taken) if taken else pools[need["index"]]
        picks: list[tuple[dict[str, Any], float]] = []
        if pool and pool[0]["fits"]:
            picks = [(pool[0], hours)]
        elif pool and tool_input.get("allow_split", True):
            first = max(pool, key=lambda c: (c["min_free"], c["level"]))
            share = int(first["min_free"] * 2) / 2  # whole half-hours
            rest = round(hours - share, 2)
            second = next((c for c in pool if c is not first and c["min_free"] >= rest), None)
            if share > 0 and second is not None:
                picks = [(first, share), (second, rest)]
        for person, booked in picks:
            for week in person["free_by_week"]:
                taken[(person["person_id"], week)] = taken.get((person["person_id"], week), 0) + booked
            assignments.append({"requirement": need["index"], "skill": need["skill"], "person_id": person["person_id"],
                                "name": person["name"], "level": person["level"], "role": need.get("role") or
                                person["role"], "hours_per_week": booked, "from": need["from"], "to": need["to"],
                                "split": len(picks) > 1})
        if not picks:
            best = pool[0] if pool else None
            unfilled.append({"requirement": need["index"], "need": label, "from": need["from"], "to": need["to"],
                             "qualified_people": len(pool),
                             "best_candidate": {k: best[k] for k in ("person_id", "name", "level", "weeks_short")}
                             if best else None})
            if best:
                over = ", ".join(f"{w} by {h:g} h" for w, h in best["weeks_short"].items())
                warnings.append(f"Booking {best['name']} for {label} would overbook them: {over}.")
    assignments.sort(key=lambda a: (a["requirement"], -a["hours_per_week"]))
    return {"assignments": assignments, "unfilled": unfilled, "overbooking_warnings": warnings,
            "max_utilisation": cap, "complete": not unfilled,
            "note": "A proposal only: nothing is booked until save_allocation is called for each assignment."}


# --- save_allocation ---------------------------------------------------------------------------------

SAVE_ALLOCATION_SCHEMA = {
    "type": "object",
    "properties": {
        "person_id": _PERSON,
        "project": {"type": "string", "minLength": 2, "maxLength": 120, "description": "The project's name."},
        "hours_per_week": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
        "start": {**_DATE, "description": "First day booked (YYYY-MM-DD)."},
        "end": {**_DATE, "description": "Last day booked (YYYY-MM-DD)."},
        "role": {"type": "string", "minLength": 2, "maxLength": 60, "description": "The role on the project."},
        "notes": {"type": "string", "maxLength": 2000},
        "client": CLIENT_INPUT,
    },
    "required": ["person_id", "project", "hours_per_week", "start", "end"],
    "additionalProperties": False,
}
SAVE_ALLOCATION_SETTINGS = {
    "allow_overbooking": {"type": "boolean", "default": False,
                          "description": "Let the agent book a person past their free hours (the ERP records it as "
                                         "overbooked) instead of being refused."},
    "max_weeks": {"type": "integer", "minimum": 1, "maximum": 18, "default": 18,
                  "description": "The longest allocation the agent may book, in weeks; a longer one is left to a "
                                 "resource manager."},
}


def save_allocation(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    settings = settings_of(ctx, SAVE_ALLOCATION_SETTINGS)
    start, end = _range(tool_input, required=True, names=("start", "end"))
    body: dict[str, Any] = {"person_id": tool_input["person_id"], "client": client_slug(ctx, tool_input),
                            "project": tool_input["project"], "hours_per_week": tool_input["hours_per_week"],
                            "start": start, "end": end, "metadata": {"agent": "resource", "run_id": ctx.run_id}}
    for name in ("role", "notes"):
        if tool_input.get(name):
            body[name] = tool_input[name]
    if settings["allow_overbooking"]:
        body["overbook"] = True
    weeks = (date.fromisoformat(end) - date.fromisoformat(_monday(start))).days // 7 + 1
    if weeks > settings["max_weeks"]:
        raise ToolError(f"This allocation spans {weeks} weeks; this agency lets the agent book at most "
                        f"{settings['max_weeks']} weeks at a time. Book it in parts of at most {settings['max_weeks']} "
                        "weeks, or leave it to a resource manager and say so.")
    result, simulated = erp_write(ctx, "/allocations", body)
    return written(result, simulated, id_key="allocation_id",
                   extra={k: result.get(k) for k in ("person_id", "person_name", "client", "project",
                                                     "hours_per_week", "start", "end")})
