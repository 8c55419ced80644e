"""Content data (the content agent's): content calendar, channel specs, review requests.

An agency's content operation runs on a calendar: every planned piece has a date, a channel, a
format, a topic, an owner on the team and a status from planned to published, grouped by
campaign. Drafts are written against it and go to a named reviewer with a due date before they
are approved. So the ERP offers:

    GET /content-calendar?client=&from=&to=&channel=&status=&format=   planned pieces, by date
    GET /channel-specs[?channel=]                                      what each channel accepts
    GET/POST /reviews, GET/PATCH /reviews/<id>                         review requests for drafts

A review request names a draft of the same client and a reviewer on the agency's team; the
ERP refuses one for a draft that does not exist (404) or belongs to another client (400).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from . import data
from .domain import Domain, WriteKind

STATUSES = ("planned", "in_progress", "in_review", "approved", "published")
FORMATS = ("blog_article", "newsletter", "linkedin_article", "social_post", "carousel", "story", "video_script")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _entry(eid: str, client: str, day: str, channel: str, fmt: str, topic: str, status: str, owner: str,
           campaign: str, *, words: int | None = None, language: str = "en") -> dict[str, Any]:
    return {"id": eid, "client": client, "date": day, "channel": channel, "format": fmt, "topic": topic,
            "status": status, "owner": owner, "campaign": campaign, "target_words": words, "language": language}


# agency -> (client, date, channel, format, topic, status, owner, campaign, target words, language)
_CALENDAR: dict[str, list[tuple[Any, ...]]] = {
    "alpha": [
        ("desert-bloom-cosmetics", "2026-12-03", "instagram", "social_post",
         "Winter skincare for the Gulf sun: a three-step routine", "published", "alpha-t05", "Winter Glow", None, "ar"),
        ("desert-bloom-cosmetics", "2026-12-10", "blog", "blog_article",
         "Halal-certified beauty: what the label means", "approved", "alpha-t02", "Winter Glow", 1200, "en"),
        ("desert-bloom-cosmetics", "2026-12-17", "email", "newsletter",
         "December edit: gifting sets for the season", "in_review", "alpha-t02", "Winter Glow", 400, "ar"),
        ("desert-bloom-cosmetics", "2027-01-14", "tiktok", "video_script",
         "Desert dusk make-up look in 60 seconds", "in_progress", "alpha-t05", "Winter Glow", None, "ar"),
        ("desert-bloom-cosmetics", "2027-01-28", "blog", "blog_article",
         "Caring for your skin while fasting in Ramadan", "planned", "alpha-t02", "Ramadan 2027", 1000, "ar"),
        ("desert-bloom-cosmetics", "2027-02-04", "instagram", "carousel",
         "Ramadan night routine: five gentle steps", "planned", "alpha-t05", "Ramadan 2027", None, "ar"),
        ("desert-bloom-cosmetics", "2027-02-18", "email", "newsletter",
         "Ramadan Kareem: care from iftar to suhoor", "planned", "alpha-t02", "Ramadan 2027", 450, "ar"),
        ("desert-bloom-cosmetics", "2027-03-04", "snapchat", "story",
         "Eid al-Fitr looks countdown", "planned", "alpha-t05", "Ramadan 2027", None, "ar"),
        ("gulf-bank", "2026-12-02", "linkedin", "linkedin_article",
         "What SMEs should know about opening an account online", "published", "alpha-t02", "SME in 10 minutes",
         900, "en"),
        ("gulf-bank", "2026-12-09", "blog", "blog_article",
         "Home finance explained: fixed and variable rates", "approved", "alpha-t01", "Home finance awareness",
         1500, "en"),
        ("gulf-bank", "2026-12-16", "linkedin", "social_post",
         "A year-end checklist for small business owners", "in_review", "alpha-t02", "SME in 10 minutes", None, "en"),
        ("gulf-bank", "2027-01-06", "email", "newsletter",
         "January money reset for families", "in_progress", "alpha-t02", "Home finance awareness", 500, "en"),
        ("gulf-bank", "2027-01-20", "youtube", "video_script",
         "How Sharia-compliant home finance works", "planned", "alpha-t04", "Home finance awareness", None, "en"),
        ("gulf-bank", "2027-02-03", "x", "social_post",
         "An SME account in 10 minutes: a customer's story", "planned", "alpha-t02", "SME in 10 minutes", None, "en"),
        ("gulf-bank", "2027-02-24", "linkedin", "linkedin_article",
         "Ramadan and business cash flow: planning ahead", "planned", "alpha-t01", "SME in 10 minutes", 1000, "en"),
        ("gulf-bank", "2027-03-17", "blog", "blog_article",
         "Your first home in the UAE, step by step", "planned", "alpha-t02", "Home finance awareness", 1800, "ar"),
    ],
    "beta": [
        ("thames-outfitters", "2026-12-01", "blog", "blog_article",
         "How to re-wax a jacket at home", "published", "beta-t05", "Repairs for life", 1100, "en"),
        ("thames-outfitters", "2026-12-08", "instagram", "social_post",
         "Forty winters in one jacket", "published", "beta-t02", "Forty Years of Weather", None, "en"),
        ("thames-outfitters", "2026-12-15", "email", "newsletter",
         "The Christmas repairs deadline", "approved", "beta-t02", "Repairs for life", 350, "en"),
        ("thames-outfitters", "2027-01-12", "linkedin", "linkedin_article",
         "Why we repair: the economics of a forty-year jacket", "in_review", "beta-t05", "Repairs for life",
         1200, "en"),
        ("thames-outfitters", "2027-01-26", "youtube", "video_script",
         "Inside the repairs workshop", "in_progress", "beta-t05", "Repairs for life", None, "en"),
        ("thames-outfitters", "2027-02-09", "instagram", "carousel",
         "Spring layers for the city", "planned", "beta-t02", "Spring 2027", None, "en"),
        ("thames-outfitters", "2027-02-23", "blog", "blog_article",
         "A field guide to British spring weather", "planned", "beta-t05", "Spring 2027", 1400, "en"),
        ("thames-outfitters", "2027-03-09", "email", "newsletter",
         "Spring collection: a first look", "planned", "beta-t02", "Spring 2027", 400, "en"),
        ("covent-kitchen", "2026-12-04", "instagram", "social_post",
         "The Christmas set menu, course by course", "published", "beta-t02", "Christmas set menu", None, "en"),
        ("covent-kitchen", "2026-12-11", "email", "newsletter",
         "Book your team's Christmas lunch", "published", "beta-t02", "Christmas set menu", 300, "en"),
        ("covent-kitchen", "2026-12-18", "facebook", "social_post",
         "Meet our Hampshire egg farmer", "approved", "beta-t03", "Brunch, Sorted", None, "en"),
        ("covent-kitchen", "2027-01-08", "blog", "blog_article",
         "Our suppliers, by name", "in_review", "beta-t05", "Brunch, Sorted", 900, "en"),
        ("covent-kitchen", "2027-01-22", "tiktok", "video_script",
         "Flatbread from dough to plate", "in_progress", "beta-t05", "Brunch, Sorted", None, "en"),
        ("covent-kitchen", "2027-02-05", "instagram_story", "story",
         "Pancake Day specials", "planned", "beta-t02", "Brunch, Sorted", None, "en"),
        ("covent-kitchen", "2027-02-19", "email", "newsletter",
         "A preview of the spring menu", "planned", "beta-t03", "Spring menu", 350, "en"),
        ("covent-kitchen", "2027-03-12", "blog", "blog_article",
         "Cooking with wild garlic", "planned", "beta-t05", "Spring menu", 1000, "en"),
    ],
    "gamma": [
        ("hudson-cloud", "2026-12-02", "blog", "blog_article",
         "Northwind's migration: deploys 42% faster", "published", "gamma-t02", "Proof, Not Hype", 1600, "en"),
        ("hudson-cloud", "2026-12-09", "linkedin", "linkedin_article",
         "Platform engineering in 2027: five numbers", "approved", "gamma-t06", "Proof, Not Hype", 1200, "en"),
        ("hudson-cloud", "2026-12-16", "email", "newsletter",
         "Hudson Cloud Platform: the December release", "in_review", "gamma-t02", "Managed Kubernetes launch",
         600, "en"),
        ("hudson-cloud", "2027-01-13", "youtube", "video_script",
         "Managed Kubernetes in ten minutes", "in_progress", "gamma-t04", "Managed Kubernetes launch", None, "en"),
        ("hudson-cloud", "2027-01-27", "linkedin", "social_post",
         "Customer proof: the cost per cluster", "planned", "gamma-t02", "Proof, Not Hype", None, "en"),
        ("hudson-cloud", "2027-02-10", "blog", "blog_article",
         "Right-sizing Kubernetes node pools", "planned", "gamma-t06", "Managed Kubernetes launch", 2000, "en"),
        ("hudson-cloud", "2027-02-24", "x", "social_post",
         "Release day: autoscaling in one thread", "planned", "gamma-t04", "Managed Kubernetes launch", None, "en"),
        ("hudson-cloud", "2027-03-10", "email", "newsletter",
         "Q1 customer roundup", "planned", "gamma-t02", "Proof, Not Hype", 500, "en"),
        ("brooklyn-health", "2026-12-03", "instagram", "social_post",
         "Flu shots without the wait", "published", "gamma-t04", "Flu season reminders", None, "en"),
        ("brooklyn-health", "2026-12-10", "blog", "blog_article",
         "Flu shots for adults 50+: what to expect", "approved", "gamma-t02", "Flu season reminders", 900, "en"),
        ("brooklyn-health", "2026-12-17", "facebook", "social_post",
         "Holiday hours at our clinics", "in_review", "gamma-t04", "Care Around the Corner", None, "en"),
        ("brooklyn-health", "2027-01-07", "email", "newsletter",
         "Meet the Bushwick care team", "in_progress", "gamma-t02", "Care Around the Corner", 450, "en"),
        ("brooklyn-health", "2027-01-21", "blog", "blog_article",
         "Blood pressure checks: a plain-language guide", "planned", "gamma-t02", "Heart Health Month", 1100, "en"),
        ("brooklyn-health", "2027-02-01", "instagram", "carousel",
         "Heart Health Month: four everyday habits", "planned", "gamma-t04", "Heart Health Month", None, "en"),
        ("brooklyn-health", "2027-02-15", "linkedin", "linkedin_article",
         "Primary care access in Brooklyn: what 2026 taught us", "planned", "gamma-t06", "Care Around the Corner",
         1000, "en"),
        ("brooklyn-health", "2027-03-03", "email", "newsletter",
         "Spring allergy season: when to see us", "planned", "gamma-t02", "Care Around the Corner", 400, "en"),
        ("brooklyn-health", "2027-03-17", "instagram", "social_post",
         "Citas el mismo día en Bushwick", "planned", "gamma-t02", "Care Around the Corner", None, "es"),
    ],
}


def _seed(agency: str) -> dict[str, list[dict[str, Any]]]:
    rows = [_entry(f"{agency}-cc{n:02d}", client, day, channel, fmt, topic, status, owner, campaign,
                   words=words, language=language)
            for n, (client, day, channel, fmt, topic, status, owner, campaign, words, language)
            in enumerate(_CALENDAR[agency], start=1)]
    return {"content_calendar": rows}


def _error(status: int, message: str) -> Exception:
    from .server import ErpError  # the server imports this module's DOMAIN lazily; import back lazily too

    return ErpError(status, "not_found" if status == 404 else "invalid", message)


def _parse_date(name: str, value: str) -> date:
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise _error(400, f"{name}: {value!r} is not a date; use YYYY-MM-DD (e.g. 2027-01-15).") from None


def _channel(value: str) -> str:
    wanted = value.strip().lower()
    if wanted not in data.CHANNEL_SPECS:
        raise _error(400, f"channel: {value!r} is not a channel the ERP has specs for; known channels: "
                          f"{', '.join(data.CHANNEL_SPECS)}.")
    return wanted


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value.strip().lower() not in allowed:
        raise _error(400, f"{name}: {value!r} is not one of {', '.join(allowed)}.")
    return value.strip().lower()


# --- review requests ----------------------------------------------------------------------


def _check_review(store: Any, agency: str, body: dict[str, Any]) -> None:
    """A review is for an existing draft of the same client, by someone on the agency's team,
    due on a real date."""
    _parse_date("due_date", body["due_date"])
    team = store.team(agency, capability=None)
    if body["reviewer"] not in {m["id"] for m in team}:
        people = ", ".join(f"{m['id']} ({m['name']}, {m['role']})" for m in team)
        raise _error(400, f"reviewer: {body['reviewer']!r} is not on the agency's team; use a team member id: "
                          f"{people}.")
    draft = next((d for d in store.records(agency, "drafts") if d["id"] == body["draft_id"]), None)
    if draft is None:
        raise _error(404, f"No draft {body['draft_id']!r}. Save the draft first (POST /drafts) and use the id it "
                          "returns.")
    if draft.get("client") != body["client"]:
        raise _error(400, f"draft_id: draft {body['draft_id']!r} belongs to client {draft.get('client')!r}, not "
                          f"{body['client']!r}.")


REVIEWS = WriteKind(
    "reviews", "review",
    {"client": ((str,), True), "draft_id": ((str,), True), "reviewer": ((str,), True), "due_date": ((str,), True),
     "notes": ((str,), False), "metadata": ((dict,), False)},
    check=_check_review, status="requested", statuses=("requested", "approved", "changes_requested", "cancelled"),
)


# --- endpoints ----------------------------------------------------------------------------


def _routes(app: Any) -> list[tuple[str, dict[str, Any]]]:
    def content_calendar(request: Any) -> tuple[int, Any]:
        query = request.query
        client = (query.get("client") or "").strip()
        if client:
            app.store.client(request.agency, client)  # 404 naming the agency's clients
        start = _parse_date("from", query["from"]) if query.get("from") else None
        end = _parse_date("to", query["to"]) if query.get("to") else None
        if start and end and start > end:
            raise _error(400, f"from ({start}) is after to ({end}); give a range that runs forward.")
        channel = _channel(query["channel"]) if query.get("channel") else None
        status = _one_of("status", query["status"], STATUSES) if query.get("status") else None
        fmt = _one_of("format", query["format"], FORMATS) if query.get("format") else None
        rows = [row for row in app.store.table(request.agency, "content_calendar")
                if (not client or row["client"] == client)
                and (start is None or date.fromisoformat(row["date"]) >= start)
                and (end is None or date.fromisoformat(row["date"]) <= end)
                and channel in (None, row["channel"]) and status in (None, row["status"])
                and fmt in (None, row["format"])]
        rows.sort(key=lambda row: (row["date"], row["id"]))
        return 200, {"count": len(rows), "results": rows}

    def channel_specs(request: Any) -> tuple[int, Any]:
        wanted = request.query.get("channel")
        rows = [data.CHANNEL_SPECS[_channel(wanted)]] if wanted else list(data.CHANNEL_SPECS.values())
        return 200, {"count": len(rows), "results": rows}

    return [(r"/content-calendar", {"GET": content_calendar}), (r"/channel-specs", {"GET": channel_specs})]


DOMAIN = Domain(name="content", seed=_seed, writes=(REVIEWS,), routes=_routes)
