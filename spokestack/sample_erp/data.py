"""The sample ERP's seeded data: three agencies, their clients, past projects, team and briefs,
plus market benchmarks per channel, vertical and region.

Everything here is literal or computed from literals, so every run, test and demo sees the
same numbers: an agent's answer can be checked against them, and a tool that forecasts a
budget gets the same CPM today as in CI. Agencies never share rows: each record belongs to
exactly one agency's table below. Benchmarks are market data, the same for every agency.

Money is in the agency's currency (`Agency.currency`) except benchmarks, which are in USD.
Rates (`ctr`, `cvr`, `engagement_rate`, ...) are fractions, not percentages.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

VERTICALS = ("beauty", "fashion", "food", "technology", "finance", "healthcare")
REGIONS = ("GCC", "MENA", "EU", "US", "APAC")
CHANNELS = ("search", "social", "display", "video", "ctv")


@dataclass(frozen=True)
class Agency:
    slug: str
    name: str
    city: str
    region: str
    language: str
    currency: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


AGENCIES: dict[str, Agency] = {
    "alpha": Agency("alpha", "Agency Alpha", "Dubai", "GCC", "ar", "AED"),
    "beta": Agency("beta", "Agency Beta", "London", "EU", "en", "GBP"),
    "gamma": Agency("gamma", "Agency Gamma", "New York", "US", "en", "USD"),
}

# agency -> API key, used when none are configured. Documented demo values, not secrets.
DEMO_API_KEYS: dict[str, str] = {
    "alpha": "erp-demo-alpha-7f3a",
    "beta": "erp-demo-beta-2c9e",
    "gamma": "erp-demo-gamma-5d1b",
}


# --- clients ------------------------------------------------------------------------------


def _client(slug: str, name: str, industry: str, region: str, language: str, *, budget: int, voice: str,
            always: list[str], never: list[str], competitors: list[str], examples: list[tuple[str, str, str]],
            contact: str) -> dict[str, Any]:
    text = (f"Voice: {voice} Always: " + "; ".join(always) + ". Never: " + "; ".join(never)
            + ". Do not name or compare with competitors (" + ", ".join(competitors) + ").")
    return {
        "slug": slug, "name": name, "industry": industry, "region": region, "language": language,
        "annual_budget": budget, "contact": contact, "competitors": competitors,
        "brand_guidelines": {"voice": voice, "always": always, "never": never, "text": text},
        "approved_examples": [{"channel": c, "language": lang, "text": t} for c, lang, t in examples],
    }


CLIENTS: dict[str, list[dict[str, Any]]] = {
    "alpha": [
        _client(
            "desert-bloom-cosmetics", "Desert Bloom Cosmetics", "beauty", "GCC", "ar", budget=4_200_000,
            voice="Warm, confident and poetic; celebrates Arabian heritage and modern women.",
            always=["write Arabic first, English second", "mention halal-certified ingredients when relevant",
                    "respect Ramadan and Eid timing"],
            never=["miracle", "anti-aging", "whitening", "guaranteed results", "cheap"],
            competitors=["Oud Luxe", "Sahara Glow"],
            examples=[("instagram", "ar", "جمالك ينبض بروح الصحراء: مجموعة ديزرت بلوم الجديدة بمكونات حلال."),
                      ("instagram", "en", "Radiance rooted in the desert: the new Desert Bloom collection, "
                                          "halal-certified and made for the Gulf sun."),
                      ("email", "en", "This Eid, glow your way. Discover shades inspired by dunes at dusk.")],
            contact="Layla Al Mansoori, Head of Marketing"),
        _client(
            "gulf-bank", "Gulf Bank", "finance", "GCC", "en", budget=9_500_000,
            voice="Trustworthy, clear and quietly ambitious; speaks to families and entrepreneurs.",
            always=["state that terms and conditions apply on offers", "use plain numbers, never jargon",
                    "offer Arabic and English versions"],
            never=["risk-free", "guaranteed returns", "free money", "get rich"],
            competitors=["Emirates Capital", "Falcon Bank"],
            examples=[("linkedin", "en", "Your business is growing. Your bank should keep up. "
                                         "Open a Gulf Bank SME account in 10 minutes. Terms apply."),
                      ("search", "en", "Gulf Bank Home Finance | Clear rates, Sharia-compliant options")],
            contact="Omar Haddad, Chief Marketing Officer"),
    ],
    "beta": [
        _client(
            "thames-outfitters", "Thames Outfitters", "fashion", "EU", "en", budget=2_800_000,
            voice="Witty, understated British; outdoor heritage with city style.",
            always=["mention durability or repairs when talking product", "British spelling"],
            never=["fast fashion", "cheap", "disposable", "eco-friendly without proof"],
            competitors=["Barbour", "Hunter"],
            examples=[("instagram", "en", "Rain is just weather. Our waxed jackets have seen forty years of it."),
                      ("ooh", "en", "Built for drizzle. Tailored for Soho.")],
            contact="Harriet Blake, Brand Director"),
        _client(
            "covent-kitchen", "Covent Kitchen", "food", "EU", "en", budget=1_600_000,
            voice="Generous, playful and honest; food people, not food snobs.",
            always=["list allergens on menu items", "credit suppliers by name when possible"],
            never=["guilt-free", "superfood", "diet", "clean eating"],
            competitors=["Dishoom", "Pret A Manger"],
            examples=[("social", "en", "Saturday brunch, sorted. Eggs from Hampshire, bread baked at 5am."),
                      ("email", "en", "New on the menu: slow-roast lamb flatbread. Contains gluten, dairy.")],
            contact="Marco Rossi, Founder"),
    ],
    "gamma": [
        _client(
            "hudson-cloud", "Hudson Cloud", "technology", "US", "en", budget=12_000_000,
            voice="Precise, calm and developer-friendly; proof over hype.",
            always=["back claims with a number or a customer", "name the product exactly: Hudson Cloud Platform"],
            never=["revolutionary", "best-in-class", "unhackable", "100% uptime"],
            competitors=["AWS", "Azure", "Google Cloud"],
            examples=[("linkedin", "en", "Northwind cut deploy times 42% after moving to Hudson Cloud Platform."),
                      ("search", "en", "Hudson Cloud Platform | Managed Kubernetes from $0.04/hour")],
            contact="Priya Natarajan, VP Marketing"),
        _client(
            "brooklyn-health", "Brooklyn Health", "healthcare", "US", "en", budget=5_400_000,
            voice="Caring, inclusive and plain-spoken; never fear-based.",
            always=["include 'talk to your doctor' on treatment content", "use person-first language"],
            never=["cure", "miracle", "guaranteed", "risk-free", "FDA approved unless verified"],
            competitors=["Mount Sinai", "NYU Langone"],
            examples=[("social", "en", "Same-day appointments in Park Slope and Bushwick. Book in two taps."),
                      ("display", "en", "Your neighborhood care team, open late. Talk to your doctor about "
                                        "which screenings are right for you.")],
            contact="Denise Carter, Director of Communications"),
    ],
}


# --- past projects ------------------------------------------------------------------------


def _project(pid: str, client: str, industry: str, region: str, year: int, outcome: str, title: str,
             summary: str, results: str, kpis: dict[str, float], services: list[str], value: int) -> dict[str, Any]:
    return {"id": pid, "client": client, "industry": industry, "region": region, "year": year,
            "outcome": outcome, "title": title, "summary": summary, "results": results, "kpis": kpis,
            "services": services, "value": value}


PROJECTS: dict[str, list[dict[str, Any]]] = {
    "alpha": [
        _project("alpha-p01", "Desert Bloom Cosmetics", "beauty", "GCC", 2025, "won", "Ramadan Glow",
                 "Bilingual Ramadan campaign across Instagram, Snapchat and TikTok with regional creators.",
                 "Sold out the limited collection in 19 days; best Ramadan on record for the brand.",
                 {"reach": 6_400_000, "engagement_rate": 0.071, "roas": 5.2, "cpa_usd": 9.8},
                 ["social", "influencer", "arabic_copywriting", "video"], 1_150_000),
        _project("alpha-p02", "Saffron Skin", "beauty", "GCC", 2024, "won", "Saffron Skin UAE launch",
                 "Market entry for a Saudi skincare brand: positioning, launch film, retail activation.",
                 "Listed in 140 pharmacies within a quarter; 31% aided awareness in the UAE.",
                 {"aided_awareness": 0.31, "reach": 3_100_000, "store_listings": 140},
                 ["strategy", "video", "production", "pr"], 820_000),
        _project("alpha-p03", "Oasis Perfumes", "beauty", "MENA", 2024, "lost", "Oasis Perfumes pan-MENA pitch",
                 "Pitch for a pan-MENA fragrance relaunch across Egypt, Jordan and the GCC.",
                 "Lost on price: the client chose a network agency with in-house production in Cairo.",
                 {}, ["strategy", "production", "social"], 1_600_000),
        _project("alpha-p04", "Gulf Bank", "finance", "GCC", 2025, "won", "SME in 10 minutes",
                 "Acquisition campaign for digital SME accounts: LinkedIn, search and WhatsApp flows.",
                 "12,400 SME accounts opened against a goal of 9,000; CPA 28% below plan.",
                 {"accounts_opened": 12_400, "cpa_usd": 41.0, "ctr": 0.018, "cvr": 0.046},
                 ["paid_media", "search", "crm", "copywriting"], 1_900_000),
        _project("alpha-p05", "Falcon Insurance", "finance", "GCC", 2023, "lost", "Falcon Insurance motor renewal",
                 "Performance pitch for motor-insurance renewals in the UAE and Saudi Arabia.",
                 "Lost: the client wanted a guaranteed CPA we would not commit to.",
                 {}, ["paid_media", "analytics"], 700_000),
        _project("alpha-p06", "Najd Dates", "food", "GCC", 2024, "won", "Najd Dates gifting season",
                 "Premium gifting campaign for Ramadan and Eid with e-commerce bundles.",
                 "Online revenue up 64% year on year; 4.1x return on ad spend.",
                 {"revenue_growth": 0.64, "roas": 4.1, "reach": 2_200_000},
                 ["social", "paid_media", "arabic_copywriting", "design"], 450_000),
        _project("alpha-p07", "Dune Telecom", "technology", "GCC", 2025, "won", "Dune 5G Home",
                 "Launch of a 5G home-broadband plan: TV, YouTube and programmatic retargeting.",
                 "38,000 sign-ups in eight weeks; brand lift of 7 points on consideration.",
                 {"signups": 38_000, "brand_lift_pts": 7, "cpm_usd": 6.9},
                 ["video", "programmatic", "strategy"], 2_400_000),
        _project("alpha-p08", "Crescent Clinics", "healthcare", "GCC", 2023, "won", "Crescent Clinics women's health",
                 "Awareness series on women's health screenings, in Arabic and English.",
                 "Screening bookings up 52%; featured by the Dubai Health Authority.",
                 {"booking_growth": 0.52, "reach": 1_800_000},
                 ["content", "arabic_copywriting", "social", "pr"], 380_000),
    ],
    "beta": [
        _project("beta-p01", "Thames Outfitters", "fashion", "EU", 2025, "won", "Forty Years of Weather",
                 "Heritage campaign for the brand's 40th anniversary: film, OOH and a repairs service launch.",
                 "Repairs booked by 9,000 customers; full-price sell-through up 18%.",
                 {"sell_through_growth": 0.18, "repairs_booked": 9_000, "reach": 5_200_000},
                 ["strategy", "video", "ooh", "copywriting"], 950_000),
        _project("beta-p02", "Nordlys Knitwear", "fashion", "EU", 2024, "lost", "Nordlys UK entry",
                 "Pitch to launch a Norwegian knitwear label in the UK.",
                 "Lost: the client preferred an influencer-only agency.",
                 {}, ["strategy", "influencer", "social"], 300_000),
        _project("beta-p03", "Covent Kitchen", "food", "EU", 2025, "won", "Brunch, Sorted",
                 "Always-on social and local search for five London sites.",
                 "Weekend covers up 27%; cost per booking £2.10.",
                 {"covers_growth": 0.27, "cpa_gbp": 2.1, "engagement_rate": 0.058},
                 ["social", "search", "photography", "copywriting"], 240_000),
        _project("beta-p04", "Seine Patisserie", "food", "EU", 2024, "won", "Seine Patisserie Paris to London",
                 "Bilingual (French and English) launch of a Parisian bakery chain in London.",
                 "Queues on opening week; 410k organic video views.",
                 {"video_views": 410_000, "reach": 1_300_000},
                 ["social", "pr", "video", "french_copywriting"], 180_000),
        _project("beta-p05", "Albion Building Society", "finance", "EU", 2023, "won", "First Home, Clearly",
                 "First-time-buyer mortgage campaign on search, YouTube and Spotify.",
                 "Mortgage applications up 33%; cost per application 21% below target.",
                 {"applications_growth": 0.33, "cvr": 0.038, "ctr": 0.041},
                 ["search", "paid_media", "audio", "analytics"], 1_200_000),
        _project("beta-p06", "Rhein Fintech", "finance", "EU", 2024, "lost", "Rhein Fintech DACH launch",
                 "German-language launch of a savings app in Germany and Austria.",
                 "Lost: the client chose a Berlin agency with native German copywriters.",
                 {}, ["paid_media", "german_copywriting", "strategy"], 650_000),
        _project("beta-p07", "Lumen Labs", "technology", "EU", 2025, "won", "Lumen Labs developer growth",
                 "Developer-marketing programme: docs SEO, community events and paid search.",
                 "Free-tier sign-ups tripled; CAC down 35%.",
                 {"signups_growth": 2.0, "cac_reduction": 0.35},
                 ["seo", "search", "events", "content"], 520_000),
        _project("beta-p08", "St Bride Health", "healthcare", "EU", 2024, "won", "Know Your Numbers",
                 "NHS-partner campaign encouraging blood-pressure checks in pharmacies.",
                 "84,000 checks in twelve weeks; shortlisted at the Healthcare Communications Awards.",
                 {"checks": 84_000, "reach": 4_000_000},
                 ["content", "social", "ooh", "strategy"], 410_000),
    ],
    "gamma": [
        _project("gamma-p01", "Hudson Cloud", "technology", "US", 2025, "won", "Proof, Not Hype",
                 "B2B demand generation: customer-proof LinkedIn series, search and developer podcasts.",
                 "2,300 qualified pipeline opportunities; $48M pipeline attributed.",
                 {"opportunities": 2_300, "pipeline_usd": 48_000_000, "cpl_usd": 96.0, "ctr": 0.009},
                 ["paid_media", "content", "search", "abm"], 3_100_000),
        _project("gamma-p02", "Stackline AI", "technology", "US", 2024, "lost", "Stackline AI brand platform",
                 "Brand platform pitch for an AI start-up's Series C relaunch.",
                 "Lost: chemistry; the founders chose a smaller studio.",
                 {}, ["strategy", "design", "video"], 800_000),
        _project("gamma-p03", "Brooklyn Health", "healthcare", "US", 2025, "won", "Care Around the Corner",
                 "Neighborhood campaign for same-day appointments: geo-targeted social, search and transit OOH.",
                 "Online bookings up 61%; cost per booking $18.",
                 {"booking_growth": 0.61, "cpa_usd": 18.0, "cvr": 0.052},
                 ["social", "search", "ooh", "spanish_copywriting"], 1_400_000),
        _project("gamma-p04", "Empire Pharmacy", "healthcare", "US", 2023, "lost", "Empire Pharmacy flu season",
                 "Flu-shot campaign pitch for a 200-store pharmacy chain.",
                 "Lost: timeline; we could not staff the six-week launch.",
                 {}, ["paid_media", "social"], 900_000),
        _project("gamma-p05", "Liberty Mutual Savings", "finance", "US", 2024, "won", "Save Like a New Yorker",
                 "High-yield savings acquisition on CTV, podcasts and paid social.",
                 "52,000 accounts opened; cost per account $61 against a $75 target.",
                 {"accounts_opened": 52_000, "cpa_usd": 61.0, "cpm_usd": 31.5},
                 ["ctv", "audio", "paid_media", "analytics"], 2_700_000),
        _project("gamma-p06", "Greenpoint Grocers", "food", "US", 2025, "won", "Greenpoint Grocers delivery",
                 "Local delivery launch across Brooklyn and Queens on social and search.",
                 "Delivery orders up 3.4x; repeat rate 46%.",
                 {"orders_growth": 2.4, "repeat_rate": 0.46, "roas": 3.6},
                 ["social", "search", "crm"], 350_000),
        _project("gamma-p07", "Madison Row", "fashion", "US", 2024, "won", "Madison Row fall drop",
                 "Creator-led fall collection drop with shoppable video.",
                 "Sold 82% of the drop at full price; 9.4M video views.",
                 {"sell_through": 0.82, "video_views": 9_400_000, "roas": 4.8},
                 ["influencer", "video", "social"], 600_000),
        _project("gamma-p08", "Bowery Beauty", "beauty", "US", 2023, "lost", "Bowery Beauty retail launch",
                 "Pitch for a Sephora retail launch of an indie skincare line.",
                 "Lost: the client moved the budget to retail media.",
                 {}, ["strategy", "social", "influencer"], 500_000),
    ],
}


# --- team ---------------------------------------------------------------------------------


def _member(mid: str, name: str, role: str, capabilities: list[str], languages: list[str],
            available: float, available_from: str) -> dict[str, Any]:
    return {"id": mid, "name": name, "role": role, "capabilities": capabilities, "languages": languages,
            "availability": {"share_free": available, "available_from": available_from}}


TEAM: dict[str, list[dict[str, Any]]] = {
    "alpha": [
        _member("alpha-t01", "Noura Al Suwaidi", "Strategy Director", ["strategy", "rfp", "research"],
                ["ar", "en"], 0.4, "2026-12-01"),
        _member("alpha-t02", "Karim Youssef", "Senior Arabic Copywriter",
                ["arabic_copywriting", "copywriting", "social"], ["ar", "en", "fr"], 0.6, "2026-11-24"),
        _member("alpha-t03", "Aisha Rahman", "Head of Paid Media",
                ["paid_media", "search", "programmatic", "analytics"], ["en", "ar"], 0.3, "2026-12-15"),
        _member("alpha-t04", "Rami Khoury", "Creative Director", ["video", "design", "production"],
                ["ar", "en"], 0.2, "2027-01-05"),
        _member("alpha-t05", "Fatima Zahra", "Influencer Lead", ["influencer", "social", "pr"],
                ["ar", "en", "fr"], 0.8, "2026-11-23"),
        _member("alpha-t06", "Daniel Pereira", "Data Analyst", ["analytics", "crm"], ["en"], 1.0, "2026-11-23"),
    ],
    "beta": [
        _member("beta-t01", "Charlotte Hughes", "Planning Director", ["strategy", "rfp", "research"],
                ["en", "fr"], 0.5, "2026-12-01"),
        _member("beta-t02", "Tom Okafor", "Copywriter", ["copywriting", "social", "ooh"], ["en"], 0.7, "2026-11-23"),
        _member("beta-t03", "Sophie Lambert", "Bilingual Copywriter", ["french_copywriting", "copywriting"],
                ["fr", "en"], 0.5, "2026-11-30"),
        _member("beta-t04", "Jonas Weber", "Paid Media Manager", ["paid_media", "search", "audio", "analytics"],
                ["de", "en"], 0.4, "2026-12-08"),
        _member("beta-t05", "Amelia Price", "Head of Content", ["content", "video", "photography", "seo"],
                ["en"], 0.3, "2026-12-14"),
        _member("beta-t06", "Ravi Shah", "Account Director", ["account_management", "events", "pr"],
                ["en", "hi"], 0.6, "2026-11-23"),
    ],
    "gamma": [
        _member("gamma-t01", "Jordan Ellis", "Chief Strategy Officer", ["strategy", "rfp", "abm"],
                ["en"], 0.2, "2026-12-20"),
        _member("gamma-t02", "Maria Gonzalez", "Senior Copywriter", ["copywriting", "spanish_copywriting", "content"],
                ["en", "es"], 0.6, "2026-11-23"),
        _member("gamma-t03", "Kevin Park", "Director of Performance", ["paid_media", "search", "ctv", "analytics"],
                ["en", "ko"], 0.4, "2026-12-01"),
        _member("gamma-t04", "Aaliyah Brooks", "Social Lead", ["social", "influencer", "video"],
                ["en"], 0.7, "2026-11-23"),
        _member("gamma-t05", "Sam Whitfield", "Producer", ["production", "video", "audio"], ["en"], 0.5, "2026-12-07"),
        _member("gamma-t06", "Elena Novak", "Marketing Scientist", ["analytics", "crm", "research"],
                ["en", "de"], 0.9, "2026-11-23"),
    ],
}


# --- briefs -------------------------------------------------------------------------------


def _brief(bid: str, client: str, title: str, objective: str, audience: str, channels: list[str],
           budget: int, deadline: str, status: str, created_at: str) -> dict[str, Any]:
    return {"id": bid, "client": client, "title": title, "objective": objective, "audience": audience,
            "channels": channels, "budget": budget, "deadline": deadline, "status": status,
            "created_at": created_at}


BRIEFS: dict[str, list[dict[str, Any]]] = {
    "alpha": [
        _brief("alpha-b01", "desert-bloom-cosmetics", "Eid al-Adha gifting sets",
               "Sell 20,000 gifting sets in the three weeks before Eid.", "Women 22-40 in the UAE and KSA",
               ["instagram", "snapchat", "tiktok"], 600_000, "2026-05-10", "approved", "2026-03-02T09:00:00+04:00"),
        _brief("alpha-b02", "gulf-bank", "Home finance awareness",
               "Raise consideration of Gulf Bank home finance among expat families by 5 points.",
               "Expat families, household income above AED 30k/month", ["search", "youtube", "linkedin"],
               1_200_000, "2026-09-01", "in_review", "2026-06-15T10:30:00+04:00"),
    ],
    "beta": [
        _brief("beta-b01", "thames-outfitters", "Autumn/Winter repairs push",
               "Make the repairs service known to 60% of existing customers.", "Existing customers, UK",
               ["email", "instagram", "ooh"], 250_000, "2026-09-15", "approved", "2026-07-01T09:00:00+01:00"),
        _brief("beta-b02", "covent-kitchen", "Christmas set menu",
               "Fill 85% of December evening covers across five sites.", "London office teams booking parties",
               ["search", "linkedin", "email"], 90_000, "2026-11-01", "draft", "2026-09-20T14:00:00+01:00"),
    ],
    "gamma": [
        _brief("gamma-b01", "hudson-cloud", "Managed Kubernetes launch",
               "Generate 800 qualified opportunities for the managed Kubernetes tier.",
               "Platform engineering leads at 500-5,000 employee companies", ["linkedin", "search", "podcasts"],
               1_800_000, "2026-10-01", "approved", "2026-07-10T09:00:00-04:00"),
        _brief("gamma-b02", "brooklyn-health", "Flu season reminders",
               "Book 15,000 flu shots across Brooklyn clinics.", "Adults 50+ and parents in Brooklyn",
               ["display", "social", "ctv"], 400_000, "2026-09-20", "in_review", "2026-08-01T11:00:00-04:00"),
    ],
}


# --- media benchmarks -----------------------------------------------------------------------

# A channel's market baseline (EU, an average vertical): CPM in USD, CTR and CVR as fractions.
_CHANNEL_BASE: dict[str, tuple[float, float, float]] = {
    "search": (38.0, 0.032, 0.040),
    "social": (9.5, 0.009, 0.016),
    "display": (3.2, 0.0035, 0.008),
    "video": (14.0, 0.006, 0.009),
    "ctv": (32.0, 0.001, 0.004),
}
# Multipliers on (CPM, CTR, CVR): regulated verticals pay more per impression and convert less.
_VERTICAL_FACTOR: dict[str, tuple[float, float, float]] = {
    "beauty": (1.00, 1.20, 1.15),
    "fashion": (0.95, 1.15, 1.10),
    "food": (0.85, 1.10, 1.25),
    "technology": (1.25, 0.95, 0.90),
    "finance": (1.45, 0.85, 0.80),
    "healthcare": (1.30, 0.90, 0.85),
}
_REGION_FACTOR: dict[str, tuple[float, float, float]] = {
    "US": (1.25, 0.95, 1.05),
    "EU": (1.00, 1.00, 1.00),
    "GCC": (0.90, 1.10, 0.95),
    "MENA": (0.60, 1.15, 0.85),
    "APAC": (0.75, 1.05, 0.90),
}


def benchmark(channel: str, vertical: str, region: str) -> dict[str, Any]:
    """One row: CPM, CTR, CVR and the CPC and CPA they imply (USD)."""
    base, v, r = _CHANNEL_BASE[channel], _VERTICAL_FACTOR[vertical], _REGION_FACTOR[region]
    cpm = round(base[0] * v[0] * r[0], 2)
    ctr = round(base[1] * v[1] * r[1], 5)
    cvr = round(base[2] * v[2] * r[2], 5)
    cpc = round(cpm / (1000 * ctr), 2)
    return {"channel": channel, "vertical": vertical, "region": region, "currency": "USD",
            "cpm": cpm, "ctr": ctr, "cvr": cvr, "cpc": cpc, "cpa": round(cpc / cvr, 2)}


def benchmarks(*, vertical: str | None = None, region: str | None = None,
               channel: str | None = None) -> list[dict[str, Any]]:
    return [benchmark(c, v, r) for v in VERTICALS if vertical in (None, v) for r in REGIONS if region in (None, r)
            for c in CHANNELS if channel in (None, c)]


# --- channel specifications ----------------------------------------------------------------

# What each publishing channel accepts, as its platform documents it (market data, the same for
# every agency): text limits in characters, where the feed cuts the text ("see more"), hashtags,
# links, media (sizes as width x height in pixels, video length in seconds).
def _spec(channel: str, label: str, *, max_chars: int, truncated_at: int | None, max_hashtags: int,
          links: bool, media: str, image_sizes: list[str], video_max_s: int | None, notes: str) -> dict[str, Any]:
    return {"channel": channel, "label": label, "max_chars": max_chars, "truncated_at": truncated_at,
            "max_hashtags": max_hashtags, "links_clickable": links, "media": media, "image_sizes": image_sizes,
            "video_max_s": video_max_s, "notes": notes}


CHANNEL_SPECS: dict[str, dict[str, Any]] = {s["channel"]: s for s in (
    _spec("instagram", "Instagram feed", max_chars=2200, truncated_at=125, max_hashtags=30, links=False,
          media="required", image_sizes=["1080x1080", "1080x1350", "1080x566"], video_max_s=90,
          notes="Links in captions are not clickable: point to the link in bio. 3-5 relevant hashtags work best."),
    _spec("instagram_story", "Instagram story", max_chars=250, truncated_at=None, max_hashtags=10, links=True,
          media="required", image_sizes=["1080x1920"], video_max_s=60,
          notes="Keep text inside the central 1080x1420 safe zone; one link sticker per story."),
    _spec("facebook", "Facebook page post", max_chars=63206, truncated_at=480, max_hashtags=3, links=True,
          media="optional", image_sizes=["1200x630", "1080x1080"], video_max_s=14400,
          notes="Posts under 80 characters get the most engagement; hashtags add little."),
    _spec("linkedin", "LinkedIn company page", max_chars=3000, truncated_at=210, max_hashtags=5, links=True,
          media="optional", image_sizes=["1200x627", "1080x1080"], video_max_s=600,
          notes="Professional tone; the first 210 characters decide whether anyone clicks 'see more'."),
    _spec("x", "X (Twitter)", max_chars=280, truncated_at=None, max_hashtags=2, links=True, media="optional",
          image_sizes=["1600x900", "1080x1080"], video_max_s=140,
          notes="A link counts as 23 characters whatever its length."),
    _spec("tiktok", "TikTok", max_chars=2200, truncated_at=100, max_hashtags=8, links=False, media="required",
          image_sizes=["1080x1920"], video_max_s=600, notes="Video only; the hook must land in the first 2 seconds."),
    _spec("snapchat", "Snapchat", max_chars=80, truncated_at=None, max_hashtags=0, links=True, media="required",
          image_sizes=["1080x1920"], video_max_s=60, notes="Vertical full-screen; captions are short overlays."),
    _spec("youtube", "YouTube video", max_chars=5000, truncated_at=157, max_hashtags=15, links=True,
          media="required", image_sizes=["1280x720"], video_max_s=43200,
          notes="Title up to 100 characters; the first 157 characters of the description show in search."),
    _spec("email", "Email newsletter", max_chars=20000, truncated_at=None, max_hashtags=0, links=True,
          media="optional", image_sizes=["600x300", "600x600"], video_max_s=None,
          notes="Subject line up to 60 characters, preheader up to 100; one clear call to action."),
    _spec("blog", "Blog article", max_chars=40000, truncated_at=None, max_hashtags=0, links=True,
          media="optional", image_sizes=["1200x630"], video_max_s=None,
          notes="Long form: 800-2,000 words, headings every 200-300 words, a meta description up to 155 characters."),
)}


def seed(agency: str) -> dict[str, list[dict[str, Any]]]:
    """A fresh deep copy of one agency's seeded tables (callers may not mutate the module's)."""
    return copy.deepcopy({"clients": CLIENTS[agency], "projects": PROJECTS[agency], "team": TEAM[agency],
                          "briefs": BRIEFS[agency]})
