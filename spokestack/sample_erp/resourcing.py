"""Team capacity and allocations (the resource agent's): contracts, work calendar, skills matrix, bookings.

Modelled on what agency resourcing systems (Float, Resource Guru, Forecast, the resourcing
module of an agency ERP) keep: each person's contracted hours, public holidays and personal
time off, a skills matrix (skill x level 1-5), and allocations ("bookings") of a person to a
client's project for some hours a week between two dates.

How hours are counted, the same way everywhere (capacity reads, the allocation check):
* A person's day is `contracted_hours / 5` on Monday to Friday. A public holiday or a day of
  personal time off is a day with no capacity; a partial holiday (the UAE's shorter Ramadan
  days) takes `hours_off_per_day` from it.
* An allocation books `hours_per_week / 5` on each working day between its start and end
  (both inclusive); like the tools agencies use, nothing is booked on a day off, so a week with
  a holiday books less. `cancelled` allocations book nothing; `tentative` ones count (they are
  flagged), because a tentative hold is time a planner must not promise twice.
* free = available - booked, per week (week = the Monday's date). Negative free is overbooking.

The planning calendar runs from the Monday 2026-11-30 to the Friday 2027-04-02 (18 weeks);
capacity is only known inside it, so an allocation must lie inside it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from . import data
from .domain import NUMBER, Domain, WriteKind
from .server import ErpError

CALENDAR_START = date(2026, 11, 30)  # a Monday
CALENDAR_END = date(2027, 4, 2)  # the Friday of the 18th week
WEEKS = tuple((CALENDAR_START + timedelta(weeks=i)).isoformat() for i in range(18))
LEVELS = {1: "learning", 2: "working knowledge", 3: "proficient", 4: "advanced", 5: "expert, can lead"}
STATUSES = ("tentative", "confirmed", "cancelled")


# --- seeds ------------------------------------------------------------------------------------

def _contract(person_id: str, hours: float, employment: str, target: float) -> dict[str, Any]:
    return {"person_id": person_id, "contracted_hours": hours, "employment": employment,
            "target_utilisation": target, "working_days": "Mon-Fri"}


CONTRACTS: dict[str, list[dict[str, Any]]] = {
    "alpha": [_contract("alpha-t01", 40, "full_time", 0.6), _contract("alpha-t02", 40, "full_time", 0.85),
              _contract("alpha-t03", 40, "full_time", 0.75), _contract("alpha-t04", 40, "full_time", 0.7),
              _contract("alpha-t05", 30, "contractor", 0.9), _contract("alpha-t06", 40, "full_time", 0.85)],
    "beta": [_contract("beta-t01", 37.5, "full_time", 0.6), _contract("beta-t02", 37.5, "full_time", 0.85),
             _contract("beta-t03", 30, "part_time", 0.85), _contract("beta-t04", 37.5, "full_time", 0.8),
             _contract("beta-t05", 37.5, "full_time", 0.75), _contract("beta-t06", 37.5, "full_time", 0.6)],
    "gamma": [_contract("gamma-t01", 40, "full_time", 0.5), _contract("gamma-t02", 40, "full_time", 0.85),
              _contract("gamma-t03", 40, "full_time", 0.75), _contract("gamma-t04", 40, "full_time", 0.85),
              _contract("gamma-t05", 40, "full_time", 0.85), _contract("gamma-t06", 32, "part_time", 0.8)],
}

# Levels per person; every capability in data.TEAM is here, with a few secondary skills.
SKILLS: dict[str, dict[str, dict[str, int]]] = {
    "alpha": {
        "alpha-t01": {"strategy": 5, "rfp": 4, "research": 4},
        "alpha-t02": {"arabic_copywriting": 5, "copywriting": 4, "social": 3, "content": 2},
        "alpha-t03": {"paid_media": 5, "search": 4, "programmatic": 4, "analytics": 3},
        "alpha-t04": {"video": 5, "design": 4, "production": 4},
        "alpha-t05": {"influencer": 5, "social": 4, "pr": 3},
        "alpha-t06": {"analytics": 4, "crm": 3, "research": 2},
    },
    "beta": {
        "beta-t01": {"strategy": 5, "rfp": 4, "research": 4},
        "beta-t02": {"copywriting": 4, "social": 3, "ooh": 4, "content": 3},
        "beta-t03": {"french_copywriting": 5, "copywriting": 4},
        "beta-t04": {"paid_media": 4, "search": 4, "audio": 3, "analytics": 3},
        "beta-t05": {"content": 5, "video": 4, "photography": 4, "seo": 3},
        "beta-t06": {"account_management": 5, "events": 4, "pr": 3},
    },
    "gamma": {
        "gamma-t01": {"strategy": 5, "rfp": 5, "abm": 4},
        "gamma-t02": {"copywriting": 5, "spanish_copywriting": 5, "content": 4},
        "gamma-t03": {"paid_media": 5, "search": 5, "ctv": 4, "analytics": 4},
        "gamma-t04": {"social": 5, "influencer": 4, "video": 3, "copywriting": 2},
        "gamma-t05": {"production": 5, "video": 4, "audio": 4},
        "gamma-t06": {"analytics": 5, "crm": 4, "research": 4, "paid_media": 2},
    },
}


def _holiday(name: str, start: str, end: str | None = None, hours_off_per_day: float | None = None) -> dict:
    # hours_off_per_day None: the whole day is off
    return {"name": name, "start": start, "end": end or start, "hours_off_per_day": hours_off_per_day}


WORK_CALENDAR: dict[str, list[dict[str, Any]]] = {
    "alpha": [_holiday("UAE National Day", "2026-12-02", "2026-12-03"),
              _holiday("New Year's Day", "2027-01-01"),
              _holiday("Ramadan working hours (two hours shorter days, estimated dates)", "2027-02-08",
                        "2027-03-09", hours_off_per_day=2),
              _holiday("Eid al-Fitr (estimated dates)", "2027-03-10", "2027-03-12")],
    "beta": [_holiday("Christmas Day", "2026-12-25"), _holiday("Boxing Day (substitute day)", "2026-12-28"),
             _holiday("New Year's Day", "2027-01-01"), _holiday("Good Friday", "2027-03-26"),
             _holiday("Easter Monday", "2027-03-29")],
    "gamma": [_holiday("Christmas Day", "2026-12-25"), _holiday("New Year's Day", "2027-01-01"),
              _holiday("Martin Luther King Jr. Day", "2027-01-18"), _holiday("Presidents' Day", "2027-02-15")],
}

TIME_OFF: dict[str, list[dict[str, Any]]] = {
    "alpha": [{"person_id": "alpha-t01", "kind": "annual_leave", "start": "2026-12-21", "end": "2026-12-25"},
              {"person_id": "alpha-t03", "kind": "training", "start": "2027-01-11", "end": "2027-01-12"}],
    "beta": [{"person_id": "beta-t05", "kind": "annual_leave", "start": "2027-01-04", "end": "2027-01-08"},
             {"person_id": "beta-t02", "kind": "annual_leave", "start": "2027-02-15", "end": "2027-02-19"}],
    "gamma": [{"person_id": "gamma-t01", "kind": "annual_leave", "start": "2026-12-28", "end": "2026-12-31"},
              {"person_id": "gamma-t04", "kind": "conference", "start": "2027-03-01", "end": "2027-03-05"}],
}

_INTERNAL = None  # an allocation to the agency's own work (new business): no client


def _alloc(aid: str, person: str, client: str | None, project: str, role: str, hours: float, start: str,
           end: str, status: str = "confirmed") -> dict[str, Any]:
    return {"id": aid, "person_id": person, "client": client, "project": project, "role": role,
            "hours_per_week": hours, "start": start, "end": end, "status": status,
            "created_at": "2026-11-20T09:00:00+00:00"}


ALLOCATIONS: dict[str, list[dict[str, Any]]] = {
    "alpha": [
        _alloc("alpha-al01", "alpha-t01", "gulf-bank", "Home finance awareness", "Strategy lead", 16,
               "2026-11-30", "2027-01-29"),
        _alloc("alpha-al02", "alpha-t01", _INTERNAL, "New business: pitches", "Pitch lead", 8,
               "2026-11-30", "2027-04-02"),
        _alloc("alpha-al03", "alpha-t02", "desert-bloom-cosmetics", "Ramadan 2027 campaign", "Arabic copy lead", 16,
               "2027-01-04", "2027-03-12"),
        _alloc("alpha-al04", "alpha-t03", "gulf-bank", "SME always-on media", "Paid media lead", 36,
               "2026-11-30", "2026-12-11"),
        _alloc("alpha-al05", "alpha-t03", "gulf-bank", "SME always-on media", "Paid media lead", 28,
               "2026-12-14", "2027-04-02"),
        _alloc("alpha-al06", "alpha-t04", "desert-bloom-cosmetics", "Ramadan 2027 films", "Creative director", 40,
               "2026-11-30", "2027-01-01"),
        _alloc("alpha-al07", "alpha-t04", "desert-bloom-cosmetics", "Ramadan 2027 films", "Creative director", 30,
               "2027-01-04", "2027-03-05"),
        _alloc("alpha-al08", "alpha-t05", "desert-bloom-cosmetics", "Ramadan creators programme", "Influencer lead",
               8, "2027-01-04", "2027-03-12", status="tentative"),
    ],
    "beta": [
        _alloc("beta-al01", "beta-t01", "thames-outfitters", "Spring/Summer 2027 platform", "Planning lead", 15,
               "2026-11-30", "2027-02-26"),
        _alloc("beta-al02", "beta-t01", _INTERNAL, "New business: pitches", "Pitch lead", 4,
               "2026-11-30", "2027-04-02"),
        _alloc("beta-al03", "beta-t02", "covent-kitchen", "Christmas set menu", "Copywriter", 12,
               "2026-11-30", "2026-12-18"),
        _alloc("beta-al04", "beta-t03", "thames-outfitters", "Paris pop-up copy", "French copywriter", 15,
               "2026-11-30", "2027-01-29"),
        _alloc("beta-al05", "beta-t04", "thames-outfitters", "Repairs always-on search", "Paid media manager", 22,
               "2026-11-30", "2027-04-02"),
        _alloc("beta-al06", "beta-t05", "covent-kitchen", "Christmas content shoot", "Head of content", 26,
               "2026-11-30", "2026-12-11"),
        _alloc("beta-al07", "beta-t05", "thames-outfitters", "SS27 lookbook", "Head of content", 26,
               "2026-12-14", "2027-03-12"),
        _alloc("beta-al08", "beta-t06", "covent-kitchen", "Account management", "Account director", 15,
               "2026-11-30", "2027-04-02"),
    ],
    "gamma": [
        _alloc("gamma-al01", "gamma-t01", "hudson-cloud", "Managed Kubernetes launch", "Strategy lead", 24,
               "2026-11-30", "2027-02-26"),
        _alloc("gamma-al02", "gamma-t01", _INTERNAL, "New business: pitches", "Pitch lead", 8,
               "2026-11-30", "2027-04-02"),
        _alloc("gamma-al03", "gamma-t02", "brooklyn-health", "Flu season reminders", "Senior copywriter", 16,
               "2026-11-30", "2027-01-29"),
        _alloc("gamma-al04", "gamma-t03", "hudson-cloud", "Managed Kubernetes launch media", "Performance lead", 24,
               "2026-11-30", "2027-03-31"),
        _alloc("gamma-al05", "gamma-t04", "brooklyn-health", "Neighborhood social", "Social lead", 12,
               "2026-11-30", "2027-03-26"),
        _alloc("gamma-al06", "gamma-t05", "hudson-cloud", "Developer podcast series", "Producer", 20,
               "2026-12-07", "2027-02-26", status="tentative"),
        _alloc("gamma-al07", "gamma-t06", "brooklyn-health", "Flu season measurement", "Marketing scientist", 4,
               "2026-11-30", "2027-01-29"),
    ],
}


def seed(agency: str) -> dict[str, list[dict[str, Any]]]:
    names = {m["id"]: m["name"] for m in data.TEAM[agency]}
    return {
        "contracts": [dict(row) for row in CONTRACTS[agency]],
        "skills_matrix": [{"person_id": pid, "name": names[pid], "skills": dict(levels)}
                          for pid, levels in SKILLS[agency].items()],
        "work_calendar": [dict(row) for row in WORK_CALENDAR[agency]],
        "time_off": [dict(row) for row in TIME_OFF[agency]],
        "allocations": [dict(row) for row in ALLOCATIONS[agency]],
    }


# --- the hours arithmetic ------------------------------------------------------------------------

def parse_day(value: Any, name: str) -> date:
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ErpError(400, "invalid", f"{name}: {value!r} is not a date; use YYYY-MM-DD.")


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _in_calendar(day: date, name: str) -> None:
    if not CALENDAR_START <= day <= CALENDAR_END:
        raise ErpError(400, "invalid", f"{name}: {day.isoformat()} is outside the planning calendar "
                                       f"({CALENDAR_START.isoformat()} to {CALENDAR_END.isoformat()}).")


def _days(start: str, end: str) -> list[date]:
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _round(hours: float) -> float:
    return round(hours + 0.0, 2)


class Calendar:
    """One agency's hours, per person and day, from its seeded contracts, holidays and time off."""

    def __init__(self, store: Any, agency: str) -> None:
        self.team = {m["id"]: m for m in store.table(agency, "team")}
        self.contracts = {c["person_id"]: c for c in store.table(agency, "contracts")}
        self.holidays: dict[date, tuple[str, float | None]] = {}
        for row in store.table(agency, "work_calendar"):
            for day in _days(row["start"], row["end"]):
                self.holidays[day] = (row["name"], row["hours_off_per_day"])
        self.leave: dict[tuple[str, date], str] = {}
        for row in store.table(agency, "time_off"):
            for day in _days(row["start"], row["end"]):
                self.leave[(row["person_id"], day)] = row["kind"]

    def day_hours(self, person_id: str) -> float:
        return self.contracts[person_id]["contracted_hours"] / 5

    def available(self, person_id: str, day: date) -> tuple[float, str | None]:
        """(hours the person can work that day, why fewer than a normal day)."""
        if day.weekday() >= 5:
            return 0.0, None
        if (person_id, day) in self.leave:
            return 0.0, self.leave[(person_id, day)]
        if day in self.holidays:
            name, off = self.holidays[day]
            return (0.0 if off is None else max(0.0, self.day_hours(person_id) - off)), name
        return self.day_hours(person_id), None

    def works(self, person_id: str, day: date) -> bool:
        """Whether an allocation books hours that day (a working day that is not wholly off)."""
        return day.weekday() < 5 and (person_id, day) not in self.leave and not (
            day in self.holidays and self.holidays[day][1] is None)

    def booked_by_week(self, allocation: dict[str, Any]) -> dict[str, float]:
        """Monday -> hours the allocation books that week (inside the calendar)."""
        per_day = float(allocation["hours_per_week"]) / 5
        weeks: dict[str, float] = {}
        for day in _days(allocation["start"], allocation["end"]):
            if CALENDAR_START <= day <= CALENDAR_END and self.works(allocation["person_id"], day):
                week = monday(day).isoformat()
                weeks[week] = weeks.get(week, 0.0) + per_day
        return {week: _round(hours) for week, hours in weeks.items()}

    def week(self, person_id: str, week: str) -> dict[str, Any]:
        start = date.fromisoformat(week)
        contracted = self.contracts[person_id]["contracted_hours"]
        available, reasons = 0.0, []
        for day in (start + timedelta(days=i) for i in range(5)):
            hours, why = self.available(person_id, day)
            available += hours
            if why and why not in reasons:
                reasons.append(why)
        return {"week": week, "contracted": contracted, "time_off": _round(contracted - available),
                "time_off_reasons": reasons, "available": _round(available)}


def live_allocations(store: Any, agency: str) -> list[dict[str, Any]]:
    return [a for a in store.records(agency, "allocations") if a.get("status") != "cancelled"]


def capacity(store: Any, agency: str, *, weeks: list[str], people: list[str],
             exclude: str | None = None) -> list[dict[str, Any]]:
    """Per person (in `people` order), per week: available, booked (with each booking), free."""
    calendar = Calendar(store, agency)
    bookings: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for allocation in live_allocations(store, agency):
        if allocation["id"] == exclude or allocation["person_id"] not in people:
            continue
        for week, hours in calendar.booked_by_week(allocation).items():
            bookings.setdefault((allocation["person_id"], week), []).append({
                "allocation_id": allocation["id"], "client": allocation.get("client"),
                "project": allocation.get("project"), "status": allocation.get("status"), "hours": hours})
    rows = []
    for person_id in people:
        member, contract = calendar.team[person_id], calendar.contracts[person_id]
        person_weeks = []
        for week in weeks:
            row = calendar.week(person_id, week)
            booked = _round(sum(b["hours"] for b in bookings.get((person_id, week), [])))
            row.update(booked=booked, free=_round(row["available"] - booked),
                       bookings=bookings.get((person_id, week), []))
            person_weeks.append(row)
        available = _round(sum(w["available"] for w in person_weeks))
        booked = _round(sum(w["booked"] for w in person_weeks))
        rows.append({"person_id": person_id, "name": member["name"], "role": member["role"],
                     "contracted_hours": contract["contracted_hours"], "employment": contract["employment"],
                     "target_utilisation": contract["target_utilisation"], "weeks": person_weeks,
                     "totals": {"available": available, "booked": booked, "free": _round(available - booked),
                                "utilisation": round(booked / available, 3) if available else None}})
    return rows


# --- endpoints --------------------------------------------------------------------------------------

def _weeks_between(request: Any) -> list[str]:
    """The calendar's Mondays from `from` to `to` (query params, YYYY-MM-DD; default the whole calendar)."""
    first = parse_day(request.query.get("from") or CALENDAR_START.isoformat(), "from")
    last = parse_day(request.query.get("to") or CALENDAR_END.isoformat(), "to")
    if last < first:
        raise ErpError(400, "invalid", f"to: {last.isoformat()} is before from ({first.isoformat()}).")
    weeks = [w for w in WEEKS if monday(first).isoformat() <= w <= last.isoformat()]
    if not weeks:
        raise ErpError(400, "invalid", f"No week of the planning calendar ({CALENDAR_START.isoformat()} to "
                                       f"{CALENDAR_END.isoformat()}) is between {first.isoformat()} and "
                                       f"{last.isoformat()}.")
    return weeks


def _min_level(request: Any) -> int:
    raw = request.query.get("min_level") or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 5:
        raise ErpError(400, "invalid", "min_level: a whole number from 1 (learning) to 5 (expert).")
    return int(raw)


def _people(app: Any, request: Any) -> list[str]:
    """Team ids matching the query's person, role, skill and min_level (the team's order)."""
    agency = request.agency
    team = app.store.table(agency, "team")
    person = request.query.get("person") or None
    if person and person not in {m["id"] for m in team}:
        raise ErpError(404, "not_found", f"No team member {person!r}.")
    role = (request.query.get("role") or "").strip().lower()
    skill = (request.query.get("skill") or "").strip().lower()
    min_level = _min_level(request)
    levels = {row["person_id"]: row["skills"] for row in app.store.table(agency, "skills_matrix")}
    return [m["id"] for m in team
            if (not person or m["id"] == person) and (not role or role in m["role"].lower())
            and (not skill or levels.get(m["id"], {}).get(skill, 0) >= min_level)]


def routes(app: Any) -> list[tuple[str, dict[str, Any]]]:
    def get_capacity(request: Any) -> tuple[int, Any]:
        """GET /capacity?from=&to=&person=&role=&skill=&min_level=: per person and week."""
        weeks, people = _weeks_between(request), _people(app, request)
        rows = capacity(app.store, request.agency, weeks=weeks, people=people)
        return 200, {"weeks": weeks, "count": len(rows), "results": rows}

    def get_skills(request: Any) -> tuple[int, Any]:
        """GET /skills?skill=&min_level=&person=: the skills matrix (person x skill level 1-5)."""
        agency = request.agency
        skill = (request.query.get("skill") or "").strip().lower()
        min_level, person = _min_level(request), request.query.get("person") or None
        team = {m["id"]: m for m in app.store.table(agency, "team")}
        if person and person not in team:
            raise ErpError(404, "not_found", f"No team member {person!r}.")
        rows = []
        for row in app.store.table(agency, "skills_matrix"):
            if person and row["person_id"] != person:
                continue
            skills = {s: lv for s, lv in row["skills"].items() if lv >= min_level and (not skill or s == skill)}
            if skills:
                rows.append({"person_id": row["person_id"], "name": row["name"],
                             "role": team[row["person_id"]]["role"], "skills": skills})
        return 200, {"levels": {str(k): v for k, v in LEVELS.items()}, "count": len(rows), "results": rows}

    def get_calendar(request: Any) -> tuple[int, Any]:
        """GET /work-calendar: the planning weeks, public holidays and personal time off."""
        agency = request.agency
        return 200, {"start": CALENDAR_START.isoformat(), "end": CALENDAR_END.isoformat(), "weeks": list(WEEKS),
                     "holidays": app.store.table(agency, "work_calendar"),
                     "time_off": app.store.table(agency, "time_off")}

    return [(r"/capacity", {"GET": get_capacity}), (r"/skills", {"GET": get_skills}),
            (r"/work-calendar", {"GET": get_calendar})]


# --- the allocations collection ----------------------------------------------------------------------

def check_allocation(store: Any, agency: str, body: dict[str, Any]) -> None:
    """The person exists, the dates are in the calendar, and (unless `overbook`) the hours fit the
    person's free hours in every week: 409 naming each week over and by how much."""
    team = {m["id"]: m for m in store.table(agency, "team")}
    person = body["person_id"]
    if person not in team:
        people = ", ".join(f"{pid} ({m['name']})" for pid, m in team.items())
        raise ErpError(400, "invalid", f"person_id: no team member {person!r}. Team: {people}.")
    start, end = parse_day(body["start"], "start"), parse_day(body["end"], "end")
    if end < start:
        raise ErpError(400, "invalid", f"end: {body['end']} is before start ({body['start']}).")
    _in_calendar(start, "start")
    _in_calendar(end, "end")
    hours = body["hours_per_week"]
    contracted = next(c["contracted_hours"] for c in store.table(agency, "contracts") if c["person_id"] == person)
    if not 0 < hours <= contracted:
        raise ErpError(400, "invalid", f"hours_per_week: must be more than 0 and at most {team[person]['name']}'s "
                                       f"contracted {contracted:g} hours.")
    if body.get("status") == "cancelled" or body.get("overbook"):
        return
    calendar = Calendar(store, agency)
    needed = calendar.booked_by_week({**body, "person_id": person})
    if not needed:
        raise ErpError(400, "invalid", f"{team[person]['name']} has no working day between {body['start']} and "
                                       f"{body['end']} (weekend, holiday or time off): nothing can be booked.")
    weeks = capacity(store, agency, weeks=sorted(needed), people=[person], exclude=body.get("id"))[0]["weeks"]
    over = [(w["week"], w["free"], needed[w["week"]]) for w in weeks if needed[w["week"]] > w["free"] + 1e-9]
    if over:
        # Short first, details after: callers may show only the start of an error message.
        detail = ", ".join(f"{week} +{_round(need - free):g} h ({max(free, 0):g} free, {need:g} needed)"
                           for week, free, need in over)
        raise ErpError(409, "over_capacity", f"{team[person]['name']} ({person}) is over capacity in {len(over)} "
                                             f"week(s): {detail}. Book fewer hours a week, other dates or another "
                                             "person.")


def _allocation_defaults(agency: str, body: dict[str, Any]) -> dict[str, Any]:
    member = next((m for m in data.TEAM[agency] if m["id"] == body.get("person_id")), None)
    return {"person_name": member["name"], "role": member["role"]} if member else {}


ALLOCATIONS_KIND = WriteKind(
    "allocations", "allocation",
    {"person_id": ((str,), True), "client": ((str,), True), "project": ((str,), True),
     "hours_per_week": (NUMBER, True), "start": ((str,), True), "end": ((str,), True), "role": ((str,), False),
     "notes": ((str,), False), "overbook": ((bool,), False), "metadata": ((dict,), False)},
    check=check_allocation, defaults=_allocation_defaults, status="tentative", statuses=STATUSES,
)

DOMAIN = Domain(name="resourcing", seed=seed, writes=(ALLOCATIONS_KIND,), routes=routes)
