"""RFP tools: read an RFP, find proof in past work, check who can do it, plan it, draft the answer.

`analyze_rfp` is deterministic text analysis (regexes and keyword lists, no model, no ERP), so
the same RFP always yields the same requirements, dates, budget and criteria — which is what a
sandbox comparison between versions needs to show a real difference. Release 2.4.0 fixed it to
read evaluation weights ("Creative approach — 40%") and criteria listed inline in a sentence;
2.3.1 keeps its original behaviour (criteria only from a criteria section, weights left in the
text), selected by `make_analyze_rfp(detect_weights=...)`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from agents.knowledge import VERTICALS
from agents.registry import ToolContext, ToolError

from .common import CLIENT_INPUT, client_slug, erp_write, iso_date, settings_of, written

MAX_ITEMS = 40

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_MONTH = r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|" \
         r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_DATE_PATTERNS = (
    re.compile(r"\b(?P<year>20\d\d)-(?P<mnum>\d\d)-(?P<day>\d\d)\b"),
    re.compile(rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+(?P<year>20\d\d)\b", re.I),
    re.compile(rf"\b{_MONTH}\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>20\d\d)\b", re.I),
)
_DATE_LABELS = (  # first match wins: the most specific words first
    ("questions", ("question", "clarification", "queries", "enquir", "inquir")),
    ("submission", ("submission", "submit", "proposal", "response", "responses", "due", "closing", "deadline")),
    ("presentation", ("presentation", "pitch", "shortlist", "interview")),
    ("award", ("award", "decision", "appointment", "contract signature", "selected")),
    ("project_start", ("kick-off", "kickoff", "kick off", "start", "commence", "begin")),
    ("launch", ("launch", "go-live", "go live", "live date", "in market")),
)

_CURRENCY = r"(?P<cur>AED|USD|GBP|EUR|SAR|QAR|KWD|BHD|OMR|EGP|US\$|\$|£|€)"
_AMOUNT = r"(?P<num>\d[\d,]*(?:\.\d+)?)\s?(?P<mult>k|m|bn|million|thousand|billion)?\b"
_MONEY = (re.compile(rf"{_CURRENCY}\s?{_AMOUNT}", re.I),
          re.compile(rf"\b{_AMOUNT}\s?(?P<cur>AED|USD|GBP|EUR|SAR|QAR|KWD|BHD|OMR|EGP)\b", re.I))
_CURRENCY_CODE = {"$": "USD", "us$": "USD", "£": "GBP", "€": "EUR"}
_MULTIPLIER = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}
# Sentences naming the budget outrank those naming other money (fees, spend), which outrank any amount.
_BUDGET_WORDS = (("budget",), ("fee", "fees", "value", "spend", "cost", "investment", "up to", "not exceed", "cap"))

_REQUIREMENT = re.compile(r"\b(must|shall|required|requires|mandatory|need to|needs to|should|expected to|"
                          r"are to|is to|will be responsible)\b", re.I)
_BULLET = re.compile(r"^\s*(?:[-*•▪◦]|\(?\d{1,2}[.)]|\(?[a-h][.)])\s+(?P<item>.+?)\s*$")
_SECTIONS = (
    ("criteria", ("evaluation", "criteria", "scoring", "assessment", "selection", "how we will choose")),
    ("deliverables", ("deliverable", "outputs", "what you will deliver", "expected outputs")),
    ("requirements", ("requirement", "scope", "scope of work", "specification", "what we need", "services required")),
    ("deadlines", ("timeline", "key dates", "schedule", "deadlines", "timetable")),
    ("budget", ("budget", "commercials", "fees", "pricing")),
)
_DELIVERABLE_KEYWORDS = (
    "strategy", "creative concept", "campaign concept", "creative platform", "media plan", "media buying",
    "social media content", "content calendar", "social content", "video", "tvc", "film", "photography",
    "website", "landing page", "brand identity", "logo", "brand guidelines", "influencer programme",
    "influencer program", "pr", "event", "activation", "report", "reporting", "dashboard", "kpi framework",
    "research", "copywriting", "translation", "crm", "email", "seo", "ooh", "podcast", "paid search",
    "paid social", "messaging framework", "brand platform", "toolkit",
)
_WEIGHT = re.compile(r"(?P<w>\d{1,3}(?:\.\d+)?)\s?(?:%|percent\b|points?\b|pts\b)|weight(?:ing)?\s*[:=]?\s*(?P<w2>\d{1,3})",
                     re.I)
_INLINE_CRITERIA = re.compile(r"\b(?:evaluated|assessed|scored|judged|marked)\s+(?:on|against|by)\s*:?\s*(?P<list>[^.\n]+)",
                              re.I)


def analyze_rfp_text(text: str, *, detect_weights: bool, max_items: int = MAX_ITEMS) -> dict[str, Any]:
    """Requirements, deadlines, budget, evaluation criteria and deliverables found in `text`."""
    lines = [line.rstrip() for line in text.splitlines()]
    sections = _sections(lines)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?;])\s+|\n+", text) if s.strip()]

    requirements = _dedupe(
        sections["requirements"] + [s for s in sentences if _REQUIREMENT.search(s) and not _is_heading(s)])
    deliverables = _dedupe(sections["deliverables"])
    lowered = text.lower()
    mentioned = [k for k in _DELIVERABLE_KEYWORDS if re.search(rf"(?<!\w){re.escape(k)}s?(?!\w)", lowered)]

    if detect_weights:
        raw_criteria = sections["criteria"] + [item for match in _INLINE_CRITERIA.finditer(text)
                                               for item in _split_list(match.group("list"))]
        criteria = [_criterion(item) for item in _dedupe(raw_criteria)]
        weights = [c["weight"] for c in criteria if c["weight"] is not None]
        criteria_result: dict[str, Any] = {"evaluation_criteria": criteria,
                                           "weights_total": round(sum(weights), 2) if weights else None}
        if weights and abs(sum(weights) - 100) > 0.5:
            criteria_result["weights_warning"] = f"The weights add up to {sum(weights):g}, not 100; check the RFP."
    else:
        criteria_result = {"evaluation_criteria": [{"criterion": item} for item in _dedupe(sections["criteria"])]}

    return {
        "requirements": requirements[:max_items],
        "deadlines": _deadlines(sentences),
        "budget": _budget(sentences),
        **criteria_result,
        "deliverables": deliverables[:max_items],
        "deliverables_mentioned": mentioned,
        "counts": {"requirements": len(requirements), "deliverables": len(deliverables),
                   "evaluation_criteria": len(criteria_result["evaluation_criteria"]), "words": len(text.split())},
    }


def _is_heading(line: str) -> bool:
    stripped = line.strip().lstrip("#").strip()
    return bool(stripped) and (line.lstrip().startswith("#") or (stripped.endswith(":") and len(stripped.split()) <= 8)
                               or (stripped.isupper() and len(stripped.split()) <= 6))


def _section_of(heading: str) -> str | None:
    words = heading.lower().strip("#: ").strip()
    for name, keys in _SECTIONS:
        if any(k in words for k in keys):
            return name
    return None


def _sections(lines: list[str]) -> dict[str, list[str]]:
    """Bullet items under each recognised heading ("Deliverables:", "## Evaluation criteria")."""
    found: dict[str, list[str]] = {name: [] for name, _ in _SECTIONS}
    current: str | None = None
    for line in lines:
        if not line.strip():
            continue
        bullet = _BULLET.match(line)
        if bullet and current:
            found[current].append(bullet.group("item").strip())
        elif _is_heading(line):
            current = _section_of(line)
            head, _, rest = line.partition(":")
            if current and rest.strip():  # "Deliverables: strategy, film, social content"
                found[current].extend(_split_list(rest))
        elif not bullet:
            head, colon, rest = line.partition(":")
            inline = _section_of(head) if colon and len(head.split()) <= 3 else None
            if inline and rest.strip():  # "Deliverables: a messaging framework, a landing page and …"
                found[inline].extend(_split_list(rest))
            current = inline or (current if len(line.split()) <= 3 else None)
    return found


def _split_list(text: str) -> list[str]:
    parts = re.split(r",|;|\band\b(?![^()]*\))", text)
    return [p.strip(" .:-–") for p in parts if p.strip(" .:-–")]


def _dedupe(items: list[str]) -> list[str]:
    seen, out = set(), []
    for item in items:
        key = " ".join(item.lower().split())
        if key and key not in seen:
            seen.add(key)
            out.append(item.strip())
    return out


def _criterion(item: str) -> dict[str, Any]:
    match = _WEIGHT.search(item)
    if not match:
        return {"criterion": item, "weight": None}
    weight = float(match.group("w") or match.group("w2"))
    name = (item[:match.start()] + item[match.end():]).strip(" -–—:()[],.")
    name = re.sub(r"\s*\(\s*\)|\s{2,}", " ", name).strip(" -–—:")
    return {"criterion": name or item, "weight": int(weight) if weight.is_integer() else weight}


def _deadlines(sentences: list[str]) -> list[dict[str, str]]:
    found: dict[tuple[str, str], dict[str, str]] = {}
    for sentence in sentences:
        for pattern in _DATE_PATTERNS:
            for match in pattern.finditer(sentence):
                parts = match.groupdict()
                month = int(parts["mnum"]) if parts.get("mnum") else _MONTHS[parts["month"][:3].lower()]
                try:
                    day = date(int(parts["year"]), month, int(parts["day"]))
                except ValueError:
                    continue
                label = _date_label(sentence[:match.start()] or sentence)
                found.setdefault((day.isoformat(), label), {"date": day.isoformat(), "label": label,
                                                            "context": sentence[:200]})
    return sorted(found.values(), key=lambda d: d["date"])


def _date_label(context: str) -> str:
    lowered = context.lower()
    best, position = "date", -1
    for label, words in _DATE_LABELS:  # the label word nearest before the date
        for word in words:
            at = lowered.rfind(word)
            if at > position:
                best, position = label, at
    return best


def _money(match: re.Match[str]) -> dict[str, Any]:
    cur = match.group("cur")
    code = _CURRENCY_CODE.get(cur.lower(), cur.upper())
    value = float(match.group("num").replace(",", "")) * _MULTIPLIER.get((match.group("mult") or "").lower(), 1)
    return {"amount": int(value) if value.is_integer() else value, "currency": code, "text": match.group(0).strip()}


def _budget(sentences: list[str]) -> dict[str, Any] | None:
    mentions = []
    for sentence in sentences:
        amounts = sorted({(m.start(), m.group(0)): _money(m) for p in _MONEY for m in p.finditer(sentence)}.items())
        for _, amount in amounts:
            lowered = sentence.lower()
            rank = next((i for i, words in enumerate(_BUDGET_WORDS) if any(w in lowered for w in words)),
                        len(_BUDGET_WORDS))
            mentions.append({**amount, "context": sentence[:200], "rank": rank})
    if not mentions:
        return None
    best = min(m["rank"] for m in mentions)
    relevant = [m for m in mentions if m["rank"] == best]
    values = [m["amount"] for m in relevant]
    currencies = sorted({m["currency"] for m in relevant})
    return {"min": min(values), "max": max(values), "currency": currencies[0] if len(currencies) == 1 else currencies,
            "mentions": [{k: m[k] for k in ("amount", "currency", "text", "context")} for m in relevant[:10]]}


# --- handlers --------------------------------------------------------------------------------

ANALYZE_RFP_SCHEMA = {
    "type": "object",
    "properties": {"rfp_text": {"type": "string", "minLength": 1, "maxLength": 200_000,
                                "description": "The full text of the RFP or brief, as received."}},
    "required": ["rfp_text"],
    "additionalProperties": False,
}
ANALYZE_RFP_SETTINGS = {
    "max_items": {"type": "integer", "minimum": 5, "maximum": 100, "default": MAX_ITEMS,
                  "description": "The most requirements and deliverables listed (counts still count them all)."},
}


def make_analyze_rfp(*, detect_weights: bool):
    def analyze_rfp(ctx: ToolContext | None, tool_input: dict) -> dict[str, Any]:
        text = tool_input["rfp_text"]
        if len(text.split()) < 5:
            raise ToolError("rfp_text is too short to be an RFP: pass the full text of the document.")
        return analyze_rfp_text(text, detect_weights=detect_weights,
                                max_items=settings_of(ctx, ANALYZE_RFP_SETTINGS)["max_items"])

    return analyze_rfp


QUERY_PAST_PROJECTS_SCHEMA = {
    "type": "object",
    "properties": {
        "industry": {"type": "string", "enum": list(VERTICALS), "description": "Only projects in this industry."},
        "outcome": {"type": "string", "enum": ["won", "lost"], "description": "Only won or only lost pitches."},
        "query": {"type": "string", "maxLength": 200,
                  "description": "Words to rank projects by (services, market, client, e.g. 'ramadan social arabic')."},
        "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 8},
    },
    "additionalProperties": False,
}
QUERY_PAST_PROJECTS_SETTINGS = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 8,
              "description": "The most projects one call returns, whatever `limit` the model asks for."},
    "include_lost": {"type": "boolean", "default": True,
                     "description": "Whether lost pitches are searched; false keeps every result to won work."},
}


def query_past_projects(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    settings = settings_of(ctx, QUERY_PAST_PROJECTS_SETTINGS)
    outcome = tool_input.get("outcome")
    if not settings["include_lost"]:
        if outcome == "lost":
            raise ToolError("This agency does not share lost pitches through this tool; search won projects "
                            "(outcome 'won') or leave outcome out.")
        outcome = "won"
    limit = min(tool_input.get("limit", settings["limit"]), settings["limit"])
    params = {"industry": tool_input.get("industry"), "outcome": outcome, "q": tool_input.get("query"),
              "limit": limit}
    data = ctx.erp().get("/projects", params={k: v for k, v in params.items() if v})
    projects = data.get("results", [])
    won = sum(p.get("outcome") == "won" for p in projects)
    lost = sum(p.get("outcome") == "lost" for p in projects)
    result = {"count": data.get("count", len(projects)), "returned": len(projects),
              "win_rate": round(won / (won + lost), 2) if won + lost else None, "projects": projects}
    if tool_input.get("limit", 0) > limit:
        result["note"] = f"The agency returns at most {limit} projects a call."
    return result


TEAM_SCHEMA = {
    "type": "object",
    "properties": {"capability": {"type": "string", "maxLength": 60,
                                  "description": "Only people with this capability, e.g. 'arabic_copywriting', "
                                                 "'paid_media', 'video', 'strategy'."}},
    "additionalProperties": False,
}
TEAM_SETTINGS = {
    "min_share_free": {"type": "number", "minimum": 0, "maximum": 1, "default": 0,
                       "description": "Leave out people with less free time than this share (0.5: at least half "
                                      "their time free)."},
}


def get_team_capabilities(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    params = {"capability": tool_input["capability"]} if tool_input.get("capability") else None
    members = ctx.erp().get("/team", params=params).get("results", [])
    min_free = settings_of(ctx, TEAM_SETTINGS)["min_share_free"]
    busy = [m for m in members if float((m.get("availability") or {}).get("share_free", 0)) < min_free]
    members = [m for m in members if m not in busy]
    by_capability: dict[str, list[str]] = {}
    for member in members:
        for capability in member.get("capabilities", []):
            by_capability.setdefault(capability, []).append(member["name"])
    result = {"count": len(members), "members": members, "capabilities": dict(sorted(by_capability.items()))}
    if busy:
        result["left_out_as_busy"] = {"people": len(busy), "min_share_free": min_free}
    return result


DRAFT_RESPONSE_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200, "description": "The response's title."},
        "content": {"type": "string", "minLength": 1, "maxLength": 100_000,
                    "description": "The complete response text (markdown), ready for a human to review."},
        "client": CLIENT_INPUT,
    },
    "required": ["title", "content"],
    "additionalProperties": False,
}
DRAFT_RESPONSE_SETTINGS = {
    "min_words": {"type": "integer", "minimum": 0, "maximum": 20_000, "default": 0,
                  "description": "Refuse a response shorter than this many words (0: any length)."},
}


def draft_response(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    words = len(tool_input["content"].split())
    min_words = settings_of(ctx, DRAFT_RESPONSE_SETTINGS)["min_words"]
    if words < min_words:
        raise ToolError(f"The response has {words} words; this agency saves RFP responses of at least {min_words} "
                        "words. Complete every section (each requirement and criterion answered), then call "
                        "draft_response again.")
    body = {"client": client_slug(ctx, tool_input), "title": tool_input["title"], "content": tool_input["content"],
            "channel": "rfp_response", "metadata": {"agent": "rfp", "run_id": ctx.run_id}}
    result, simulated = erp_write(ctx, "/drafts", body)
    return written(result, simulated, id_key="draft_id", extra={"words": len(tool_input["content"].split())})


# --- estimate_timeline (2.4.0) ----------------------------------------------------------------

ESTIMATE_TIMELINE_SCHEMA = {
    "type": "object",
    "properties": {
        "requirements": {"type": "array", "items": {"type": "string"}, "maxItems": 100,
                         "description": "The requirements (from analyze_rfp)."},
        "deliverables": {"type": "array", "items": {"type": "string"}, "maxItems": 100,
                         "description": "The deliverables (from analyze_rfp: deliverables or deliverables_mentioned)."},
        "start_date": {"type": "string", "format": "date",
                       "description": "Earliest start, YYYY-MM-DD (default: today)."},
        "deadline": {"type": "string", "format": "date", "description": "The date the work must be done, YYYY-MM-DD."},
    },
    "required": ["deliverables"],
    "additionalProperties": False,
}
ESTIMATE_TIMELINE_SETTINGS = {
    "buffer_weeks": {"type": "integer", "minimum": 0, "maximum": 8, "default": 0,
                     "description": "Contingency weeks added as a last phase before the deadline check."},
}

# deliverable keyword -> team capability it needs
_CAPABILITY_FOR = (
    (("video", "film", "tvc", "podcast"), "video"), (("production", "shoot", "photography"), "production"),
    (("strategy", "positioning", "research"), "strategy"), (("social", "content calendar", "community"), "social"),
    (("influencer",), "influencer"), (("media plan", "media buying", "paid", "search", "programmatic"), "paid_media"),
    (("copy", "messaging", "tagline", "translation"), "copywriting"), (("arabic",), "arabic_copywriting"),
    (("french",), "french_copywriting"), (("design", "identity", "logo", "website", "landing page"), "design"),
    (("report", "dashboard", "kpi", "analytics", "measurement"), "analytics"), (("pr", "press"), "pr"),
    (("event", "activation"), "events"), (("crm", "email"), "crm"), (("seo",), "seo"), (("ooh",), "ooh"),
)
_HEAVY_PRODUCTION = ("video", "film", "tvc", "photography", "shoot", "website", "podcast")


def _needed_capabilities(items: list[str]) -> list[str]:
    text = " ".join(items).lower()
    needed = {cap for words, cap in _CAPABILITY_FOR if any(re.search(rf"(?<!\w){re.escape(w)}", text) for w in words)}
    return sorted(needed | {"strategy"})


def estimate_timeline(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    requirements = tool_input.get("requirements") or []
    deliverables = tool_input["deliverables"]
    if not deliverables:
        raise ToolError("deliverables is empty: run analyze_rfp first and pass its deliverables.")
    start = iso_date(tool_input.get("start_date"), "start_date") or datetime.now(UTC).date()
    deadline = iso_date(tool_input.get("deadline"), "deadline")

    team = ctx.erp().get("/team").get("results", [])
    staffing, gaps, capacity, ready = {}, [], [], []
    for capability in _needed_capabilities(deliverables + requirements):
        people = [m for m in team if capability in m.get("capabilities", [])]
        if not people:
            gaps.append(capability)
            continue
        free = sum(float(m["availability"]["share_free"]) for m in people)
        first = min(date.fromisoformat(m["availability"]["available_from"]) for m in people)
        staffing[capability] = {"people": [m["name"] for m in people], "share_free": round(free, 2),
                                "available_from": first.isoformat()}
        capacity.append(free)
        ready.append(first)

    # The slowest capability sets the pace: below one free person the making phases stretch.
    slowdown = min(2.0, 1 / max(min(capacity, default=1.0), 0.5)) if capacity else 1.0
    heavy = sum(any(w in d.lower() for w in _HEAVY_PRODUCTION) for d in deliverables)
    phases_weeks = [
        ("Discovery and research", 1 + min(2, len(requirements) // 8)),
        ("Strategy", 1 + (1 if len(requirements) > 10 else 0)),
        ("Creative development", math.ceil((1 + math.ceil(len(deliverables) / 3)) * slowdown)),
        ("Production", math.ceil(max(1, heavy + (len(deliverables) - heavy) / 3) * slowdown)),
        ("Review and launch", 1),
    ]
    buffer = settings_of(ctx, ESTIMATE_TIMELINE_SETTINGS)["buffer_weeks"]
    if buffer:
        phases_weeks.append(("Contingency", buffer))
    begin = max([start, *ready])
    phases, cursor = [], begin
    for name, weeks in phases_weeks:
        end = cursor + timedelta(weeks=weeks)
        phases.append({"phase": name, "weeks": weeks, "start": cursor.isoformat(), "end": end.isoformat()})
        cursor = end
    result: dict[str, Any] = {
        "start": begin.isoformat(), "end": cursor.isoformat(), "total_weeks": sum(w for _, w in phases_weeks),
        "phases": phases, "staffing": staffing, "capability_gaps": gaps, "capacity_slowdown": round(slowdown, 2),
    }
    if begin > start:
        result["start_delayed_by_availability_days"] = (begin - start).days
    if deadline:
        result["deadline"] = deadline.isoformat()
        result["fits_deadline"] = cursor <= deadline
        result["slack_days"] = (deadline - cursor).days
    return result
