"""Audience data per client (the brief agent's): segments, sizes, channel habits.

What an agency's planning system keeps per client: the audience segments research and the
client's first-party data define, with how many people each is, who they are (age range,
interests, languages) and where their media time goes. `channel_habits` is the share of the
segment's media time per benchmark channel (`data.CHANNELS`), so a channel mix can weigh it
against the market benchmarks; the shares of a segment add up to 1. `top_platforms` names the
platforms inside those channels. Sizes are people in the client's market; segments may overlap.

    GET /audiences[?client=<slug>&language=<code>&min_size=<people>]   largest first
    GET /audiences/<id>                                                 one segment (another agency's: 404)
"""

from __future__ import annotations

import copy
import re
from typing import Any

from . import data
from .domain import Domain

SOURCE = "Client CRM and agency panel research, 2026-Q4"


def _segment(sid: str, client: str, name: str, description: str, *, size: int, ages: tuple[int, int],
             locations: list[str], interests: list[str], languages: list[str], habits: dict[str, float],
             platforms: list[str], updated_at: str) -> dict[str, Any]:
    return {"id": sid, "client": client, "name": name, "description": description, "size": size,
            "age_min": ages[0], "age_max": ages[1], "locations": locations, "interests": interests,
            "languages": languages, "channel_habits": habits, "top_platforms": platforms, "source": SOURCE,
            "updated_at": updated_at}


def _habits(search: float, social: float, display: float, video: float, ctv: float) -> dict[str, float]:
    return {"search": search, "social": social, "display": display, "video": video, "ctv": ctv}


AUDIENCES: dict[str, list[dict[str, Any]]] = {
    "alpha": [
        _segment("alpha-aud-01", "desert-bloom-cosmetics", "Gulf beauty enthusiasts",
                 "Women who follow beauty creators and buy skincare and make-up online every month.",
                 size=1_850_000, ages=(22, 34), locations=["UAE", "KSA"],
                 interests=["skincare", "make-up tutorials", "modest fashion", "beauty creators"],
                 languages=["ar", "en"], habits=_habits(0.12, 0.52, 0.07, 0.24, 0.05),
                 platforms=["instagram", "snapchat", "tiktok"], updated_at="2026-11-30"),
        _segment("alpha-aud-02", "desert-bloom-cosmetics", "Ramadan and Eid gift shoppers",
                 "Women and men buying beauty and fragrance gift sets in the four weeks before Eid.",
                 size=920_000, ages=(28, 45), locations=["UAE", "KSA", "Kuwait"],
                 interests=["gifting", "fragrance", "luxury", "online shopping"],
                 languages=["ar", "en"], habits=_habits(0.30, 0.34, 0.12, 0.16, 0.08),
                 platforms=["instagram", "google", "youtube"], updated_at="2026-11-30"),
        _segment("alpha-aud-03", "desert-bloom-cosmetics", "Professional women 35-50",
                 "Working women who choose halal-certified, gentle skincare and shop in malls and online.",
                 size=640_000, ages=(35, 50), locations=["UAE"],
                 interests=["wellness", "halal beauty", "family", "travel"],
                 languages=["ar", "en"], habits=_habits(0.18, 0.34, 0.10, 0.22, 0.16),
                 platforms=["instagram", "youtube", "shahid"], updated_at="2026-12-01"),
        _segment("alpha-aud-04", "gulf-bank", "Expat families",
                 "Expat households with children, renting today and considering buying a home.",
                 size=410_000, ages=(30, 45), locations=["Dubai", "Abu Dhabi", "Sharjah"],
                 interests=["home ownership", "schools", "savings", "property"],
                 languages=["en", "hi", "ar"], habits=_habits(0.32, 0.26, 0.08, 0.20, 0.14),
                 platforms=["google", "youtube", "facebook"], updated_at="2026-12-01"),
        _segment("alpha-aud-05", "gulf-bank", "SME founders",
                 "Owners of companies with 1-50 staff, in their first five years of trading.",
                 size=185_000, ages=(28, 50), locations=["UAE"],
                 interests=["entrepreneurship", "trade licences", "cash flow", "e-commerce"],
                 languages=["en", "ar"], habits=_habits(0.38, 0.30, 0.12, 0.14, 0.06),
                 platforms=["linkedin", "google", "whatsapp"], updated_at="2026-12-02"),
    ],
    "beta": [
        _segment("beta-aud-01", "thames-outfitters", "Urban outdoor commuters",
                 "City professionals who cycle or walk to work and spend weekends outdoors.",
                 size=2_300_000, ages=(25, 40), locations=["London", "Manchester", "Bristol"],
                 interests=["cycling", "weekend hiking", "menswear", "repairs"],
                 languages=["en"], habits=_habits(0.20, 0.40, 0.10, 0.22, 0.08),
                 platforms=["instagram", "youtube", "google"], updated_at="2026-11-30"),
        _segment("beta-aud-02", "thames-outfitters", "Heritage loyalists",
                 "Long-standing customers who buy quality outerwear to keep for decades.",
                 size=780_000, ages=(45, 65), locations=["UK"],
                 interests=["countryside", "country shows", "quality clothing", "gardening"],
                 languages=["en"], habits=_habits(0.28, 0.16, 0.18, 0.12, 0.26),
                 platforms=["google", "itvx", "facebook"], updated_at="2026-12-01"),
        _segment("beta-aud-03", "covent-kitchen", "London brunch crowd",
                 "Young Londoners who eat out at weekends and discover restaurants on social.",
                 size=1_100_000, ages=(24, 38), locations=["London"],
                 interests=["brunch", "food markets", "independent restaurants", "coffee"],
                 languages=["en"], habits=_habits(0.20, 0.50, 0.07, 0.18, 0.05),
                 platforms=["instagram", "tiktok", "google maps"], updated_at="2026-11-30"),
        _segment("beta-aud-04", "covent-kitchen", "Office party planners",
                 "Office managers and team leads booking group meals and Christmas parties.",
                 size=260_000, ages=(28, 50), locations=["London"],
                 interests=["team events", "corporate hospitality", "group dining"],
                 languages=["en"], habits=_habits(0.42, 0.28, 0.14, 0.10, 0.06),
                 platforms=["google", "linkedin", "email"], updated_at="2026-12-01"),
    ],
    "gamma": [
        _segment("gamma-aud-01", "hudson-cloud", "Platform engineering leads",
                 "Engineers who run Kubernetes and choose the tooling for their company's platform.",
                 size=340_000, ages=(28, 45), locations=["US"],
                 interests=["kubernetes", "devops", "observability", "open source"],
                 languages=["en"], habits=_habits(0.36, 0.24, 0.12, 0.24, 0.04),
                 platforms=["google", "youtube", "linkedin", "reddit"], updated_at="2026-11-30"),
        _segment("gamma-aud-02", "hudson-cloud", "CTOs at mid-size companies",
                 "Technology leaders at 500-5,000 employee companies who sign cloud contracts.",
                 size=95_000, ages=(35, 55), locations=["US"],
                 interests=["cloud cost", "security", "compliance", "ai infrastructure"],
                 languages=["en"], habits=_habits(0.30, 0.32, 0.10, 0.16, 0.12),
                 platforms=["linkedin", "google", "podcasts"], updated_at="2026-12-01"),
        _segment("gamma-aud-03", "brooklyn-health", "Brooklyn adults 50+",
                 "Residents over 50 due for screenings and flu shots, many caring for a partner.",
                 size=610_000, ages=(50, 75), locations=["Brooklyn"],
                 interests=["preventive care", "community", "local news", "medicare"],
                 languages=["en", "es"], habits=_habits(0.22, 0.14, 0.20, 0.10, 0.34),
                 platforms=["google", "facebook", "local tv"], updated_at="2026-11-30"),
        _segment("gamma-aud-04", "brooklyn-health", "Young Brooklyn parents",
                 "Parents of children under ten looking for same-day and weekend care nearby.",
                 size=380_000, ages=(27, 42), locations=["Brooklyn"],
                 interests=["pediatrics", "family activities", "same-day care", "schools"],
                 languages=["en", "es"], habits=_habits(0.30, 0.38, 0.10, 0.16, 0.06),
                 platforms=["instagram", "google", "facebook"], updated_at="2026-12-02"),
    ],
}


def seed(agency: str) -> dict[str, list[dict[str, Any]]]:
    return {"audiences": copy.deepcopy(AUDIENCES[agency])}


def routes(app: Any) -> list[tuple[str, dict[str, Any]]]:
    from .server import ErpError

    def list_audiences(request: Any) -> tuple[int, Any]:
        rows = app.store.table(request.agency, "audiences")
        client = request.query.get("client") or None
        if client:
            app.store.client(request.agency, client)  # 404 naming the agency's clients
            rows = [r for r in rows if r["client"] == client]
        language = (request.query.get("language") or "").strip().lower()
        if language:
            if not re.fullmatch(r"[a-z]{2}", language):
                raise ErpError(400, "invalid", f"language: {language!r} is not a two-letter language code "
                                               "such as 'ar' or 'en'.")
            rows = [r for r in rows if language in r["languages"]]
        raw_size = request.query.get("min_size") or "0"
        if not raw_size.isdigit():
            raise ErpError(400, "invalid", "min_size: must be a whole number of people (0 or more).")
        rows = sorted((r for r in rows if r["size"] >= int(raw_size)), key=lambda r: (-r["size"], r["id"]))
        return 200, {"count": len(rows), "results": rows}

    def get_audience(request: Any) -> tuple[int, Any]:
        for row in app.store.table(request.agency, "audiences"):
            if row["id"] == request.params["id"]:
                return 200, row
        raise ErpError(404, "not_found", f"No audience {request.params['id']!r}.")

    return [(r"/audiences", {"GET": list_audiences}), (r"/audiences/(?P<id>[^/]+)", {"GET": get_audience})]


def _check_seed() -> None:
    """The seed keeps its own promises: real client slugs, habits over the benchmark channels adding to 1."""
    for agency, rows in AUDIENCES.items():
        slugs = {c["slug"] for c in data.CLIENTS[agency]}
        for row in rows:
            if row["client"] not in slugs or not row["id"].startswith(f"{agency}-aud-"):
                raise ValueError(f"{row['id']}: not a segment of one of {agency}'s clients")
            if set(row["channel_habits"]) != set(data.CHANNELS) or abs(sum(row["channel_habits"].values()) - 1) > 1e-9:
                raise ValueError(f"{row['id']}: channel_habits must share 1 over {', '.join(data.CHANNELS)}")


_check_seed()

DOMAIN = Domain(name="audiences", seed=seed, routes=routes)
