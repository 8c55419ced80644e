"""Commercial data (the commercial agent's): rate card, past pricing, client budgets, estimates, discount requests.

What an agency's finance module keeps and a pricing decision needs:

* the rate card: each role's day rate (what the client pays) and cost rate (what a day of that
  person costs the agency, salary and overhead, or the freelancer's invoice), in the agency's
  currency, with the disciplines the role is the default for and the team members who hold it;
  plus the agency's standard payment terms and sales tax;
* the pricing history: what the agency quoted before, for which services, how many days, at what
  margin, and whether it won, so a new price is anchored on what this client has paid;
* each client's budget for a fiscal year: total, committed, remaining;
* estimates (written): lines role × days × day rate, the total and the margin. The ERP refuses an
  estimate whose lines and total disagree or that prices a role the rate card does not have;
* discount requests (written): a discount on a saved estimate of that client, from 0 to 50%,
  waiting for a commercial director (`pending` → `approved` | `rejected`).

    GET /rate-card                                   roles, terms and tax
    GET /pricing-history?client=&service=&outcome=   newest first
    GET /client-budgets?client=                      per client and fiscal year

Money is in the agency's currency; percentages are percentages (35.0 means 35%).
"""

from __future__ import annotations

import copy
from typing import Any

from . import data
from .domain import NUMBER, Domain, WriteKind

# --- rate card ---------------------------------------------------------------------------------

# The disciplines the effort model plans in; a rate-card role is the default for some of them.
DISCIPLINES = ("strategy", "copywriting", "design", "production", "media", "analytics", "social",
               "account_management")


def _role(role: str, day_rate: int, cost_rate: int, disciplines: list[str], members: list[str]) -> dict[str, Any]:
    # A role nobody on the team holds is bought in: its cost rate is a freelancer's day.
    return {"role": role, "day_rate": day_rate, "cost_rate": cost_rate, "disciplines": disciplines,
            "team_members": members, "sourcing": "in_house" if members else "freelance"}


RATE_CARDS: dict[str, list[dict[str, Any]]] = {
    "alpha": [  # AED
        _role("Strategy Director", 7_500, 3_400, ["strategy"], ["alpha-t01"]),
        _role("Senior Arabic Copywriter", 4_800, 2_100, ["copywriting"], ["alpha-t02"]),
        _role("Head of Paid Media", 6_200, 2_900, ["media"], ["alpha-t03"]),
        _role("Creative Director", 8_000, 3_900, ["design"], ["alpha-t04"]),
        _role("Influencer Lead", 4_200, 1_900, ["social"], ["alpha-t05"]),
        _role("Data Analyst", 3_800, 1_700, ["analytics"], ["alpha-t06"]),
        _role("Account Manager", 3_600, 1_600, ["account_management"], []),
        _role("Video Producer", 5_000, 3_300, ["production"], []),
    ],
    "beta": [  # GBP
        _role("Planning Director", 1_350, 600, ["strategy"], ["beta-t01"]),
        _role("Copywriter", 850, 380, ["copywriting"], ["beta-t02"]),
        _role("Bilingual Copywriter", 950, 430, [], ["beta-t03"]),
        _role("Paid Media Manager", 950, 430, ["media", "analytics"], ["beta-t04"]),
        _role("Head of Content", 1_150, 520, ["production"], ["beta-t05"]),
        _role("Account Director", 1_050, 470, ["account_management"], ["beta-t06"]),
        _role("Senior Designer", 900, 560, ["design"], []),
        _role("Social Media Executive", 600, 380, ["social"], []),
    ],
    "gamma": [  # USD
        _role("Chief Strategy Officer", 2_600, 1_200, ["strategy"], ["gamma-t01"]),
        _role("Senior Copywriter", 1_400, 640, ["copywriting"], ["gamma-t02"]),
        _role("Director of Performance", 1_800, 820, ["media"], ["gamma-t03"]),
        _role("Social Lead", 1_200, 540, ["social"], ["gamma-t04"]),
        _role("Producer", 1_500, 700, ["production"], ["gamma-t05"]),
        _role("Marketing Scientist", 1_700, 780, ["analytics"], ["gamma-t06"]),
        _role("Art Director", 1_500, 950, ["design"], []),
        _role("Account Manager", 1_100, 700, ["account_management"], []),
    ],
}

# Standard terms per agency: how invoices are split and when they are due, and the sales tax
# added on top of a fee (estimates are net of tax).
def _terms(text: str, instalments: list[tuple[str, int]], payment_days: int, tax: str, tax_pct: float,
           version: str, valid_from: str) -> dict[str, Any]:
    return {"payment_terms": text, "instalments": [{"when": when, "share_pct": pct} for when, pct in instalments],
            "payment_days": payment_days, "tax": {"name": tax, "rate_pct": tax_pct},
            "rate_card_version": version, "valid_from": valid_from}


TERMS: dict[str, dict[str, Any]] = {
    "alpha": _terms("50% on signature, 50% on delivery", [("on signature", 50), ("on delivery", 50)], 30,
                    "VAT", 5.0, "2026-H2", "2026-12-01"),
    "beta": _terms("Monthly in arrears, in equal parts over the project", [("monthly in arrears", 100)], 30,
                   "VAT", 20.0, "2026-H2", "2026-12-01"),
    "gamma": _terms("40% on signature, 30% at midpoint, 30% on delivery",
                    [("on signature", 40), ("at midpoint", 30), ("on delivery", 30)], 45,
                    "Sales tax", 0.0, "FY2027", "2027-01-01"),
}


# --- pricing history ---------------------------------------------------------------------------


def _priced(pid: str, client: str, project: str, services: list[str], fee: int, days: int, margin_pct: float,
            outcome: str, year: int, *, discount_pct: float = 0.0, project_id: str | None = None,
            notes: str = "") -> dict[str, Any]:
    return {"id": pid, "client": client, "project": project, "project_id": project_id, "services": services,
            "fee": fee, "days": days, "fee_per_day": round(fee / days, 2), "margin_pct": margin_pct,
            "discount_pct": discount_pct, "outcome": outcome, "year": year, "notes": notes}


PRICING_HISTORY: dict[str, list[dict[str, Any]]] = {
    "alpha": [
        _priced("alpha-ph01", "desert-bloom-cosmetics", "Ramadan Glow", ["social", "influencer", "copywriting",
                "video"], 1_150_000, 250, 41.5, "won", 2025, project_id="alpha-p01"),
        _priced("alpha-ph02", "desert-bloom-cosmetics", "Eid al-Adha gifting sets", ["social", "copywriting",
                "design"], 560_000, 120, 38.0, "won", 2026),
        _priced("alpha-ph03", "desert-bloom-cosmetics", "Always-on social retainer", ["social", "copywriting"],
                420_000, 105, 33.0, "won", 2024, discount_pct=8.0,
                notes="Discounted 8% for a 12-month commitment; margin under the floor, approved by the MD."),
        _priced("alpha-ph04", "gulf-bank", "SME in 10 minutes", ["paid_media", "search", "crm", "copywriting"],
                1_900_000, 410, 39.0, "won", 2025, project_id="alpha-p04"),
        _priced("alpha-ph05", "gulf-bank", "Home finance awareness", ["strategy", "video", "paid_media"],
                1_250_000, 230, 44.0, "lost", 2026,
                notes="Lost on price: the winning agency came in about 15% lower with less senior time."),
        _priced("alpha-ph06", "gulf-bank", "Digital onboarding content", ["content", "copywriting", "design"],
                380_000, 85, 36.5, "won", 2024),
    ],
    "beta": [
        _priced("beta-ph01", "thames-outfitters", "Forty Years of Weather", ["strategy", "video", "ooh",
                "copywriting"], 950_000, 820, 37.5, "won", 2025, project_id="beta-p01"),
        _priced("beta-ph02", "thames-outfitters", "Autumn/Winter repairs push", ["email", "social", "ooh"],
                180_000, 175, 40.0, "won", 2026),
        _priced("beta-ph03", "thames-outfitters", "Spring capsule launch", ["social", "influencer"],
                140_000, 150, 42.0, "lost", 2024, notes="Lost: the client chose an influencer-only agency."),
        _priced("beta-ph04", "covent-kitchen", "Brunch, Sorted", ["social", "search", "photography",
                "copywriting"], 240_000, 260, 34.0, "won", 2025, discount_pct=5.0, project_id="beta-p03",
                notes="5% discount for a 12-month always-on retainer."),
        _priced("beta-ph05", "covent-kitchen", "Christmas set menu", ["search", "email"], 72_000, 70, 36.0,
                "won", 2026),
    ],
    "gamma": [
        _priced("gamma-ph01", "hudson-cloud", "Proof, Not Hype", ["paid_media", "content", "search", "abm"],
                3_100_000, 1_750, 43.0, "won", 2025, project_id="gamma-p01"),
        _priced("gamma-ph02", "hudson-cloud", "Managed Kubernetes launch", ["strategy", "content", "paid_media"],
                1_450_000, 820, 39.5, "won", 2026),
        _priced("gamma-ph03", "hudson-cloud", "Developer conference 2024", ["events", "video", "social"],
                640_000, 380, 31.0, "lost", 2024,
                notes="Lost: priced production in-house at a freelancer's cost; too high against a studio."),
        _priced("gamma-ph04", "brooklyn-health", "Care Around the Corner", ["social", "search", "ooh",
                "copywriting"], 1_400_000, 900, 38.0, "won", 2025, project_id="gamma-p03"),
        _priced("gamma-ph05", "brooklyn-health", "Flu season reminders", ["display", "social", "ctv"], 400_000,
                260, 35.5, "won", 2026, discount_pct=5.0),
    ],
}


# --- client budgets ----------------------------------------------------------------------------


def _budget(client: str, fiscal_year: str, start: str, end: str, total: int, committed: int,
            notes: str = "") -> dict[str, Any]:
    return {"client": client, "fiscal_year": fiscal_year, "period_start": start, "period_end": end,
            "total": total, "committed": committed, "remaining": total - committed, "updated_at": "2026-11-30",
            "notes": notes}


CLIENT_BUDGETS: dict[str, list[dict[str, Any]]] = {
    "alpha": [
        _budget("desert-bloom-cosmetics", "FY2027", "2027-01-01", "2027-12-31", 1_800_000, 650_000,
                "Agency fees only; media is bought direct. Ramadan is the biggest line."),
        _budget("gulf-bank", "FY2026", "2026-01-01", "2026-12-31", 2_400_000, 2_310_000,
                "Nearly spent; new work in December waits for FY2027."),
        _budget("gulf-bank", "FY2027", "2027-01-01", "2027-12-31", 3_000_000, 400_000,
                "Approved by the CMO on 2026-11-20."),
    ],
    "beta": [
        _budget("thames-outfitters", "FY2027", "2027-02-01", "2028-01-31", 620_000, 260_000,
                "The client's year starts in February."),
        _budget("covent-kitchen", "FY2027", "2027-01-01", "2027-12-31", 150_000, 60_000),
    ],
    "gamma": [
        _budget("hudson-cloud", "FY2027", "2026-10-01", "2027-09-30", 4_200_000, 2_900_000,
                "Federal fiscal calendar: the year began in October."),
        _budget("brooklyn-health", "FY2027", "2027-01-01", "2027-12-31", 900_000, 250_000),
    ],
}


def seed(agency: str) -> dict[str, list[dict[str, Any]]]:
    return copy.deepcopy({"rate_card": RATE_CARDS[agency], "pricing_history": PRICING_HISTORY[agency],
                          "client_budgets": CLIENT_BUDGETS[agency]})


# --- the ERP's checks on writes ----------------------------------------------------------------

MAX_DISCOUNT_PCT = 50
_CENT = 0.011  # money compared to the cent, with room for float rounding


def _amount(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _error(message: str) -> Exception:
    from .server import ErpError  # the server imports this module: import its error on use

    return ErpError(400, "invalid", message)


def _check_estimate(store: Any, agency: str, body: dict[str, Any]) -> None:
    """Lines are role × days × day rate with roles on the rate card, and the total is their sum less
    the discount, to the cent: an estimate that does not add up never reaches a client."""
    lines = body.get("lines")
    if not lines:
        raise _error("lines: at least one line (role, days, day_rate, amount).")
    roles = {row["role"].casefold() for row in store.table(agency, "rate_card")}
    subtotal = 0.0
    for i, line in enumerate(lines):
        where = f"lines[{i}]"
        if not isinstance(line, dict):
            raise _error(f"{where}: must be an object with role, days, day_rate and amount.")
        role, days, rate, amount = (line.get(k) for k in ("role", "days", "day_rate", "amount"))
        if not isinstance(role, str) or role.casefold() not in roles:
            names = ", ".join(row["role"] for row in store.table(agency, "rate_card"))
            raise _error(f"{where}.role: {role!r} is not on the rate card; roles: {names}.")
        for name, value in (("days", days), ("day_rate", rate), ("amount", amount)):
            if not isinstance(value, NUMBER) or isinstance(value, bool) or value < 0:
                raise _error(f"{where}.{name}: must be a number of at least 0.")
        if days <= 0:
            raise _error(f"{where}.days: must be greater than 0.")
        if abs(days * rate - amount) > _CENT:
            raise _error(f"{where}.amount: {_amount(amount)} is not days × day_rate ({_amount(days * rate)}).")
        subtotal += amount
    discount = body.get("discount_pct") or 0
    if not 0 <= discount <= MAX_DISCOUNT_PCT:
        raise _error(f"discount_pct: from 0 to {MAX_DISCOUNT_PCT}.")
    expected = round(subtotal * (1 - discount / 100), 2)
    if abs(body["total"] - expected) > _CENT:
        sums = f"the lines add up to {_amount(subtotal)}, less {discount}% is {_amount(expected)}" if discount else \
            f"the lines add up to {_amount(expected)}"
        raise _error(f"total: {_amount(body['total'])} does not match the lines ({sums}).")
    currency = data.AGENCIES[agency].currency
    if body.get("currency", currency) != currency:
        raise _error(f"currency: estimates are in the agency's currency, {currency}.")
    margin = body.get("margin_pct")
    if margin is not None and not -100 <= margin < 100:
        raise _error("margin_pct: a percentage below 100.")


def _check_discount_request(store: Any, agency: str, body: dict[str, Any]) -> None:
    """A discount is on a saved estimate of the same client, and within what anyone may ask for."""
    pct = body["discount_pct"]
    if not 0 < pct <= MAX_DISCOUNT_PCT:
        raise _error(f"discount_pct: greater than 0 and at most {MAX_DISCOUNT_PCT}.")
    estimate = next((row for row in store.records(agency, "estimates") if row["id"] == body["estimate_id"]), None)
    if estimate is None or estimate.get("client") != body["client"]:
        raise _error(f"estimate_id: no estimate {body['estimate_id']!r} for client {body['client']!r}; save the "
                     "estimate first (POST /estimates).")


def _currency(agency: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"currency": data.AGENCIES[agency].currency}


ESTIMATES = WriteKind(
    "estimates", "estimate",
    {"client": ((str,), True), "title": ((str,), True), "lines": ((list,), True), "total": (NUMBER, True),
     "currency": ((str,), False), "discount_pct": (NUMBER, False), "margin_pct": (NUMBER, False),
     "valid_days": ((int,), False), "payment_terms": ((str,), False), "notes": ((str,), False),
     "metadata": ((dict,), False)},
    check=_check_estimate, defaults=_currency, statuses=("draft", "sent", "accepted", "rejected"),
)
DISCOUNT_REQUESTS = WriteKind(
    "discount_requests", "discount",
    {"client": ((str,), True), "estimate_id": ((str,), True), "discount_pct": (NUMBER, True),
     "reason": ((str,), True), "metadata": ((dict,), False)},
    check=_check_discount_request, status="pending", statuses=("pending", "approved", "rejected"),
)


# --- endpoints ---------------------------------------------------------------------------------


def routes(app: Any) -> list[tuple[str, dict[str, Any]]]:
    def rate_card(request: Any) -> tuple[int, Any]:
        rows = app.store.table(request.agency, "rate_card")
        return 200, {"agency": request.agency, "currency": data.AGENCIES[request.agency].currency,
                     **copy.deepcopy(TERMS[request.agency]), "count": len(rows), "roles": rows}

    def pricing_history(request: Any) -> tuple[int, Any]:
        from .server import ErpError

        client = request.query.get("client") or None
        if client:
            app.store.client(request.agency, client)  # 404 for a client the agency does not have
        outcome = request.query.get("outcome") or None
        if outcome not in (None, "won", "lost"):
            raise ErpError(400, "invalid", f"outcome: {outcome!r} is not one of won, lost.")
        service = (request.query.get("service") or "").strip().casefold() or None
        everything = app.store.table(request.agency, "pricing_history")
        rows = [row for row in everything if (not client or row["client"] == client)
                and (not outcome or row["outcome"] == outcome)
                and (not service or service in {s.casefold() for s in row["services"]})]
        rows.sort(key=lambda row: (-row["year"], row["id"]))
        # The services the history knows, so a filter that matched nothing can be corrected.
        services = sorted({s for row in everything for s in row["services"]})
        return 200, {"count": len(rows), "results": rows, "services": services}

    def client_budgets(request: Any) -> tuple[int, Any]:
        client = request.query.get("client") or None
        if client:
            app.store.client(request.agency, client)
        rows = [row for row in app.store.table(request.agency, "client_budgets") if not client or row["client"] == client]
        rows.sort(key=lambda row: (row["client"], row["fiscal_year"]))
        return 200, {"count": len(rows), "currency": data.AGENCIES[request.agency].currency, "results": rows}

    return [(r"/rate-card", {"GET": rate_card}), (r"/pricing-history", {"GET": pricing_history}),
            (r"/client-budgets", {"GET": client_budgets})]


DOMAIN = Domain(name="commercial", seed=seed, writes=(ESTIMATES, DISCOUNT_REQUESTS), routes=routes)
