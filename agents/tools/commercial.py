"""Commercial tools: the agency's rate card, an effort model, margins against the agency's floor,
past pricing, client budgets, and estimates and discount requests saved to the ERP.

Every number is computed here from the ERP's rate card, never by the model: a margin or a total
the model works out in its head is the one that ends up wrong on a client's estimate. The
estimate the ERP keeps must add up (it refuses lines × rates that disagree with the total), so
`draft_estimate` and `save_estimate` price lines with the same function.

Money is in the agency's currency (the rate card's); percentages are percentages (35 means 35%).
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from agents.registry import ToolContext, ToolError
from spokestack.erp import ErpError

from .common import (
    CLIENT_INPUT,
    client_record,
    client_slug,
    erp_write,
    only_readable,
    readable_clients,
    settings_of,
    written,
)

# --- the rate card and pricing lines ----------------------------------------------------------


def _rate_card(ctx: ToolContext) -> dict[str, Any]:
    return ctx.erp().get("/rate-card")


def _find_role(card: dict[str, Any], name: str) -> dict[str, Any]:
    """The rate-card row for `name`: a role (any case), else the role that is the default for a
    discipline of that name ('strategy' → the strategy lead)."""
    wanted = name.strip().casefold()
    for row in card["roles"]:
        if row["role"].casefold() == wanted:
            return row
    for row in card["roles"]:
        if wanted.replace(" ", "_") in row.get("disciplines", []):
            return row
    roles = ", ".join(row["role"] for row in card["roles"])
    raise ToolError(f"{name!r} is not on the agency's rate card. Use one of these roles: {roles}.")


def _money(value: float) -> float:
    return round(value, 2)


def _price_lines(card: dict[str, Any], lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each line as role × days × day rate (the card's unless given), with its cost at the card's cost rate."""
    priced = []
    for line in lines:
        row = _find_role(card, line["role"])
        rate = line.get("day_rate")
        rate = row["day_rate"] if rate is None else rate
        days = line["days"]
        item: dict[str, Any] = {"role": row["role"], "days": days, "day_rate": rate, "amount": _money(days * rate),
                                "cost_rate": row["cost_rate"], "cost": _money(days * row["cost_rate"])}
        if rate != row["day_rate"]:
            item["card_day_rate"] = row["day_rate"]
        if line.get("description"):
            item["description"] = line["description"]
        priced.append(item)
    return priced


def _margin_pct(revenue: float, cost: float) -> float | None:
    return round((revenue - cost) / revenue * 100, 1) if revenue else None


def _totals(priced: list[dict[str, Any]], discount_pct: float) -> dict[str, Any]:
    subtotal = _money(sum(line["amount"] for line in priced))
    cost = _money(sum(line["cost"] for line in priced))
    total = _money(subtotal * (1 - discount_pct / 100))
    return {"subtotal": subtotal, "discount_pct": discount_pct, "discount_amount": _money(subtotal - total),
            "total": total, "cost": cost, "margin": _money(total - cost), "margin_pct": _margin_pct(total, cost)}


_LINE = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "minLength": 1, "maxLength": 80,
                 "description": "A role on the rate card (e.g. 'Strategy Director'), or a discipline such as "
                                "'strategy' for the role that covers it."},
        "days": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000, "description": "Days of that role."},
        "day_rate": {"type": "number", "minimum": 0, "maximum": 1_000_000,
                     "description": "A day rate other than the rate card's; leave it out to use the card's."},
        "description": {"type": "string", "maxLength": 300, "description": "What the days are for."},
    },
    "required": ["role", "days"],
    "additionalProperties": False,
}
_LINES = {"type": "array", "items": _LINE, "minItems": 1, "maxItems": 40,
          "description": "Estimate lines: role and days (from estimate_effort), optionally a day rate."}
_DISCOUNT = {"type": "number", "minimum": 0, "maximum": 50,
             "description": "A discount on the fee, in percent (10 means 10%)."}


# --- get_rate_card ----------------------------------------------------------------------------

RATE_CARD_SCHEMA = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "maxLength": 80,
                 "description": "Only roles whose name contains this text or that cover this discipline."},
    },
    "additionalProperties": False,
}
RATE_CARD_SETTINGS = {
    "show_cost_rates": {"type": "boolean", "default": True,
                        "description": "Show each role's cost rate and rate-card margin; off, only sell rates are "
                                       "shown (margins are still computed by calculate_margin)."},
}


def get_rate_card(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    card = _rate_card(ctx)
    show_cost = settings_of(ctx, RATE_CARD_SETTINGS)["show_cost_rates"]
    wanted = (tool_input.get("role") or "").strip().casefold()
    roles = []
    for row in card["roles"]:
        if wanted and wanted not in row["role"].casefold() and wanted.replace(" ", "_") not in row["disciplines"]:
            continue
        item = {"role": row["role"], "day_rate": row["day_rate"], "disciplines": row["disciplines"],
                "sourcing": row["sourcing"], "team_members": row["team_members"]}
        if show_cost:
            item["cost_rate"] = row["cost_rate"]
            item["card_margin_pct"] = _margin_pct(row["day_rate"], row["cost_rate"])
        roles.append(item)
    result: dict[str, Any] = {
        "currency": card["currency"], "rate_card_version": card["rate_card_version"],
        "valid_from": card["valid_from"], "roles": roles, "payment_terms": card["payment_terms"],
        "payment_days": card["payment_days"], "tax": card["tax"]}
    if not show_cost:
        result["note"] = "Cost rates are not shown in this agency; calculate_margin uses them for margins."
    if wanted and not roles:
        result["note"] = f"No role matches {tool_input['role']!r}; roles: {', '.join(r['role'] for r in card['roles'])}."
    return result


# --- estimate_effort --------------------------------------------------------------------------

# Days per discipline for one deliverable of medium complexity, and the share of that effort each
# further unit of the same deliverable takes (the second cut-down of a film reuses the shoot).
EFFORT_MODEL: dict[str, tuple[dict[str, float], float]] = {
    "strategy": ({"strategy": 6, "analytics": 2}, 0.8),
    "campaign_concept": ({"strategy": 2, "design": 5, "copywriting": 4}, 0.6),
    "hero_video": ({"design": 3, "copywriting": 2, "production": 8}, 0.5),
    "short_video": ({"design": 1, "copywriting": 0.5, "production": 2.5}, 0.6),
    "social_post": ({"copywriting": 0.25, "design": 0.5, "social": 0.25}, 1.0),
    "blog_article": ({"copywriting": 1.5, "strategy": 0.25, "design": 0.25}, 0.9),
    "email": ({"copywriting": 0.75, "design": 0.75}, 0.7),
    "landing_page": ({"copywriting": 1.5, "design": 3, "production": 2}, 0.6),
    "media_plan": ({"media": 5, "analytics": 1.5, "strategy": 1}, 0.5),
    "influencer_campaign": ({"social": 6, "copywriting": 1}, 0.7),
    "photo_shoot": ({"design": 1.5, "production": 3}, 0.7),
    "report": ({"analytics": 2, "media": 0.5}, 0.8),
}
DELIVERABLE_TYPES = tuple(EFFORT_MODEL)
COMPLEXITY = {"low": 0.7, "medium": 1.0, "high": 1.5}
ACCOUNT_MANAGEMENT_SHARE = 0.10  # of the delivery days, for the account team

ESTIMATE_EFFORT_SCHEMA = {
    "type": "object",
    "properties": {
        "deliverables": {
            "type": "array", "minItems": 1, "maxItems": 30,
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": list(DELIVERABLE_TYPES), "description": "What is delivered."},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 100, "description": "How many."},
                    "complexity": {"type": "string", "enum": list(COMPLEXITY),
                                   "description": "low, medium (default) or high."},
                },
                "required": ["type", "quantity"],
                "additionalProperties": False,
            },
            "description": "The deliverables to estimate, each with a type, quantity and complexity.",
        },
    },
    "required": ["deliverables"],
    "additionalProperties": False,
}
ESTIMATE_EFFORT_SETTINGS = {
    "contingency_pct": {"type": "integer", "minimum": 0, "maximum": 50, "default": 10,
                        "description": "Contingency added to every role's days, in percent."},
}


def _half_days_up(days: float) -> float:
    return math.ceil(days * 2 - 1e-9) / 2


def estimate_effort(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    contingency = settings_of(ctx, ESTIMATE_EFFORT_SETTINGS)["contingency_pct"]
    by_discipline: dict[str, float] = {}
    by_deliverable = []
    for item in tool_input["deliverables"]:
        base, repeat = EFFORT_MODEL[item["type"]]
        complexity = item.get("complexity") or "medium"
        units = 1 + (item["quantity"] - 1) * repeat
        days = 0.0
        for discipline, per_unit in base.items():
            share = per_unit * COMPLEXITY[complexity] * units
            by_discipline[discipline] = by_discipline.get(discipline, 0.0) + share
            days += share
        by_deliverable.append({"type": item["type"], "quantity": item["quantity"], "complexity": complexity,
                               "days": round(days, 2)})
    delivery_days = sum(by_discipline.values())
    by_discipline["account_management"] = by_discipline.get("account_management", 0.0) + \
        delivery_days * ACCOUNT_MANAGEMENT_SHARE
    card = _rate_card(ctx)
    per_role: dict[str, dict[str, Any]] = {}
    for discipline, days in by_discipline.items():
        row = _find_role(card, discipline)
        line = per_role.setdefault(row["role"], {"role": row["role"], "disciplines": [], "days": 0.0,
                                                 "day_rate": row["day_rate"]})
        line["disciplines"].append(discipline)
        line["days"] += days * (1 + contingency / 100)
    lines = []
    for line in per_role.values():
        line["days"] = _half_days_up(line["days"])
        lines.append(line)
    total_days = sum(line["days"] for line in lines)
    return {
        "currency": card["currency"], "lines": lines, "total_days": total_days,
        "indicative_fee": _money(sum(line["days"] * line["day_rate"] for line in lines)),
        "by_deliverable": by_deliverable,
        "assumptions": [
            "Days per deliverable are the agency's standard effort model for medium complexity; low is x0.7, "
            "high is x1.5.",
            "Each further unit of the same deliverable takes a share of the first (e.g. 50% for hero videos, "
            "100% for social posts).",
            f"Account management adds {round(ACCOUNT_MANAGEMENT_SHARE * 100)}% of the delivery days.",
            f"Contingency of {contingency}% is added to every role.",
            "Days are rounded up to half days; rates are the rate card's "
            f"({card['rate_card_version']}, {card['currency']}), before any discount and tax.",
            "Media spend, production costs and third-party fees are not included."],
    }


# --- calculate_margin -------------------------------------------------------------------------

CALCULATE_MARGIN_SCHEMA = {
    "type": "object",
    "properties": {"lines": _LINES, "discount_pct": _DISCOUNT},
    "required": ["lines"],
    "additionalProperties": False,
}
CALCULATE_MARGIN_SETTINGS = {
    "min_margin_pct": {"type": "number", "minimum": 0, "maximum": 90, "default": 35,
                       "description": "The agency's floor margin in percent: a price below it needs an approved "
                                      "discount."},
}


def _max_discount_within(subtotal: float, cost: float, floor_pct: float) -> float:
    """The largest discount (percent, one decimal, rounded down) that keeps the margin at the floor."""
    if not subtotal:
        return 0.0
    lowest_revenue = cost / (1 - floor_pct / 100)
    return max(0.0, math.floor((1 - lowest_revenue / subtotal) * 1000) / 10)


def calculate_margin(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    floor = settings_of(ctx, CALCULATE_MARGIN_SETTINGS)["min_margin_pct"]
    card = _rate_card(ctx)
    priced = _price_lines(card, tool_input["lines"])
    totals = _totals(priced, tool_input.get("discount_pct") or 0)
    for line in priced:
        line["margin_pct"] = _margin_pct(line["amount"], line["cost"])
    margin_pct = totals["margin_pct"]
    below = margin_pct is None or margin_pct < floor
    headroom = _max_discount_within(totals["subtotal"], totals["cost"], floor)
    if not below:
        verdict = f"At or above the agency's floor of {floor}% margin."
    elif totals["discount_pct"]:
        verdict = (f"Below the agency's floor of {floor}% margin. Save the estimate without the discount and ask "
                   f"for it with request_discount_approval; the largest discount within the floor is {headroom}%.")
    else:
        verdict = (f"Below the agency's floor of {floor}% margin: use rate-card day rates or a mix with more "
                   "in-house roles (freelance roles cost more).")
    return {"currency": card["currency"], "lines": priced,
            **{k: totals[k] for k in ("subtotal", "discount_pct", "discount_amount")}, "revenue": totals["total"],
            **{k: totals[k] for k in ("cost", "margin", "margin_pct")}, "floor_pct": floor, "below_floor": below, "max_discount_pct_within_floor": headroom, "verdict": verdict}


# --- get_past_pricing -------------------------------------------------------------------------

PAST_PRICING_SCHEMA = {
    "type": "object",
    "properties": {
        "client": CLIENT_INPUT,
        "service": {"type": "string", "maxLength": 60,
                    "description": "Only work that included this service, e.g. 'social', 'video', 'paid_media'."},
        "outcome": {"type": "string", "enum": ["won", "lost"], "description": "Only won or only lost quotes."},
    },
    "additionalProperties": False,
}
PAST_PRICING_SETTINGS = {
    "max_rows": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10,
                 "description": "How many past quotes (newest first) are returned; the summary counts them all."},
}


def _average(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def get_past_pricing(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    clients = readable_clients(ctx, tool_input)
    params = {k: tool_input[k] for k in ("service", "outcome") if tool_input.get(k)}
    if clients is not None and len(clients) == 1:
        params["client"] = next(iter(clients))
    answer = ctx.erp().get("/pricing-history", params=params)
    rows = only_readable(answer.get("results", []), clients)
    won = [row for row in rows if row["outcome"] == "won"]
    lost = [row for row in rows if row["outcome"] == "lost"]
    max_rows = settings_of(ctx, PAST_PRICING_SETTINGS)["max_rows"]
    result: dict[str, Any] = {
        "count": len(rows), "quotes": rows[:max_rows],
        "summary": {"won": len(won), "lost": len(lost),
                    "win_rate": round(len(won) / len(rows), 2) if rows else None,
                    "avg_margin_pct_won": _average([row["margin_pct"] for row in won]),
                    "avg_fee_per_day_won": _average([row["fee_per_day"] for row in won]),
                    "avg_discount_pct_won": _average([row["discount_pct"] for row in won])},
    }
    if len(rows) > max_rows:
        result["quotes_not_shown"] = len(rows) - max_rows
    if not rows:
        result["note"] = ("No past quotes match. Services in the pricing history: "
                          f"{', '.join(answer.get('services', []))}.")
    return result


# --- draft_estimate and save_estimate -----------------------------------------------------------

PAYMENT_TERMS = {
    "half_upfront": [{"when": "on signature", "share_pct": 50}, {"when": "on delivery", "share_pct": 50}],
    "full_upfront": [{"when": "on signature", "share_pct": 100}],
    "on_delivery": [{"when": "on delivery", "share_pct": 100}],
}
DRAFT_ESTIMATE_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200, "description": "The estimate's title."},
        "lines": _LINES,
        "discount_pct": _DISCOUNT,
        "notes": {"type": "string", "maxLength": 5000, "description": "Scope, assumptions and exclusions."},
        "client": CLIENT_INPUT,
    },
    "required": ["title", "lines"],
    "additionalProperties": False,
}
DRAFT_ESTIMATE_SETTINGS = {
    "payment_terms": {"type": "string", "enum": ["agency_standard", *PAYMENT_TERMS], "default": "agency_standard",
                      "description": "The payment schedule of estimates: the agency's standard terms from the ERP, "
                                     "half up front, all up front, or all on delivery."},
    "validity_days": {"type": "integer", "minimum": 7, "maximum": 180, "default": 30,
                      "description": "How many days an estimate is valid for."},
}


def _schedule(total_with_tax: float, instalments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    schedule, left = [], total_with_tax
    for i, part in enumerate(instalments):
        amount = left if i == len(instalments) - 1 else _money(total_with_tax * part["share_pct"] / 100)
        left = _money(left - amount)
        schedule.append({**part, "amount": _money(amount)})
    return schedule


def _estimate(tool_input: dict, card: dict[str, Any], *, terms: str, validity_days: int) -> dict[str, Any]:
    priced = _price_lines(card, tool_input["lines"])
    totals = _totals(priced, tool_input.get("discount_pct") or 0)
    tax_pct = card["tax"]["rate_pct"]
    tax = _money(totals["total"] * tax_pct / 100)
    instalments = card["instalments"] if terms == "agency_standard" else PAYMENT_TERMS[terms]
    terms_text = card["payment_terms"] if terms == "agency_standard" else \
        ", ".join(f"{part['share_pct']}% {part['when']}" for part in instalments)
    return {
        "title": tool_input["title"], "currency": card["currency"],
        "lines": [{k: v for k, v in line.items() if k not in ("cost", "cost_rate")} for line in priced],
        **{k: totals[k] for k in ("subtotal", "discount_pct", "discount_amount", "total")},
        "tax": {**card["tax"], "amount": tax}, "total_with_tax": _money(totals["total"] + tax),
        "margin": {k: totals[k] for k in ("cost", "margin", "margin_pct")},
        "payment_terms": f"{terms_text}; invoices due in {card['payment_days']} days",
        "payment_schedule": _schedule(_money(totals["total"] + tax), instalments),
        "valid_days": validity_days, "rate_card_version": card["rate_card_version"],
        **({"notes": tool_input["notes"]} if tool_input.get("notes") else {}),
    }


def draft_estimate(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    settings = settings_of(ctx, DRAFT_ESTIMATE_SETTINGS)
    slug = client_slug(ctx, tool_input)
    client = client_record(ctx, slug)
    estimate = _estimate(tool_input, _rate_card(ctx), terms=settings["payment_terms"],
                         validity_days=settings["validity_days"])
    return {"client": slug, "client_name": client.get("name"), **estimate, "saved": False,
            "next": "Check the margin with calculate_margin, then save the final version with save_estimate."}


SAVE_ESTIMATE_SCHEMA = {
    "type": "object",
    "properties": {
        "title": DRAFT_ESTIMATE_SCHEMA["properties"]["title"],
        "lines": _LINES,
        "notes": DRAFT_ESTIMATE_SCHEMA["properties"]["notes"],
        "payment_terms": {"type": "string", "maxLength": 300,
                          "description": "The payment terms as draft_estimate gave them; default: the agency's."},
        "valid_days": {"type": "integer", "minimum": 7, "maximum": 180,
                       "description": "Validity in days, as draft_estimate gave it; default 30."},
        "client": CLIENT_INPUT,
    },
    "required": ["title", "lines"],
    "additionalProperties": False,
}


def save_estimate(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    slug = client_slug(ctx, tool_input)
    card = _rate_card(ctx)
    # Saved at full price: a discount is asked for separately (request_discount_approval).
    validity = tool_input.get("valid_days") or DRAFT_ESTIMATE_SETTINGS["validity_days"]["default"]
    estimate = _estimate(tool_input, card, terms="agency_standard", validity_days=validity)
    body: dict[str, Any] = {
        "client": slug, "title": estimate["title"], "currency": estimate["currency"],
        "lines": [{k: line[k] for k in ("role", "days", "day_rate", "amount", "description") if k in line}
                  for line in estimate["lines"]],
        "total": estimate["total"], "margin_pct": estimate["margin"]["margin_pct"],
        "payment_terms": tool_input.get("payment_terms") or estimate["payment_terms"],
        "valid_days": estimate["valid_days"], "metadata": {"agent": "commercial", "run_id": ctx.run_id}}
    if tool_input.get("notes"):
        body["notes"] = tool_input["notes"]
    result, simulated = erp_write(ctx, "/estimates", body)
    return written(result, simulated, id_key="estimate_id",
                   extra={"total": result.get("total"), "currency": result.get("currency"),
                          "margin_pct": result.get("margin_pct")})


# --- compare_to_budget ------------------------------------------------------------------------

COMPARE_TO_BUDGET_SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {"type": "number", "exclusiveMinimum": 0,
                   "description": "The estimate's total (before tax) in the agency's currency."},
        "fiscal_year": {"type": "string", "maxLength": 10,
                        "description": "The client's fiscal year, e.g. 'FY2027'; default: the latest on file."},
        "client": CLIENT_INPUT,
    },
    "required": ["amount"],
    "additionalProperties": False,
}
COMPARE_TO_BUDGET_SETTINGS = {
    "max_share_of_remaining_pct": {"type": "number", "minimum": 1, "maximum": 100, "default": 80,
                                   "description": "An estimate above this share of the client's remaining budget "
                                                  "is 'tight' even when it fits."},
}


def compare_to_budget(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    slug = client_slug(ctx, tool_input)
    answer = ctx.erp().get("/client-budgets", params={"client": slug})
    budgets = answer.get("results", [])
    if not budgets:
        raise ToolError(f"The ERP has no budget on file for '{slug}'. Ask the account team for the client's "
                        "budget instead of assuming one.")
    wanted = (tool_input.get("fiscal_year") or "").strip().upper()
    if wanted:
        budget = next((b for b in budgets if b["fiscal_year"].upper() == wanted), None)
        if budget is None:
            raise ToolError(f"No {wanted} budget for '{slug}'; fiscal years on file: "
                            f"{', '.join(b['fiscal_year'] for b in budgets)}.")
    else:
        budget = max(budgets, key=lambda b: b["period_end"])
    limit = settings_of(ctx, COMPARE_TO_BUDGET_SETTINGS)["max_share_of_remaining_pct"]
    amount, remaining = tool_input["amount"], budget["remaining"]
    share = round(amount / remaining * 100, 1) if remaining > 0 else None
    if amount > remaining:
        verdict = "over"
        summary = f"Over the remaining {budget['fiscal_year']} budget by {_money(amount - remaining)}."
    elif share is not None and share > limit:
        verdict = "tight"
        summary = f"Fits, but takes {share}% of what is left (the agency flags more than {limit}%)."
    else:
        verdict = "fits"
        summary = f"Fits: {share}% of the remaining {budget['fiscal_year']} budget."
    result: dict[str, Any] = {
        "client": slug, "currency": answer.get("currency"), "amount": amount, "budget": budget, "verdict": verdict,
        "summary": summary, "share_of_remaining_pct": share,
        "share_of_total_pct": round(amount / budget["total"] * 100, 1) if budget["total"] else None,
        "remaining_after": _money(remaining - amount), "over_by": _money(max(0.0, amount - remaining)),
        "limit_share_of_remaining_pct": limit}
    others = [b["fiscal_year"] for b in budgets if b is not budget]
    if others:
        result["other_fiscal_years"] = others
    return result


# --- request_discount_approval ------------------------------------------------------------------

DISCOUNT_SCHEMA = {
    "type": "object",
    "properties": {
        "estimate_id": {"type": "string", "minLength": 1, "maxLength": 80,
                        "description": "The saved estimate's id (from save_estimate)."},
        "discount_pct": {"type": "number", "exclusiveMinimum": 0, "maximum": 50,
                         "description": "The discount asked for, in percent (10 means 10%)."},
        "reason": {"type": "string", "minLength": 1, "maxLength": 2000,
                   "description": "Why the discount is worth it: competition, volume, length of commitment."},
        "client": CLIENT_INPUT,
    },
    "required": ["estimate_id", "discount_pct", "reason"],
    "additionalProperties": False,
}


def request_discount_approval(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    """No setting caps the discount here: the call is gated, so a person has already said yes to
    this discount before the handler runs; a cap checked after that approval would overrule them.
    The ERP refuses anything above 50%."""
    pct = tool_input["discount_pct"]
    slug = client_slug(ctx, tool_input)
    estimate_id = tool_input["estimate_id"].strip()
    try:
        estimate = ctx.erp().get(f"/estimates/{quote(estimate_id, safe='')}")
    except ErpError as exc:
        if not (ctx.sandbox and exc.status_code == 404):
            raise
        estimate = None  # a sandbox run's estimate was simulated, never saved
    if estimate is not None and estimate.get("client") != slug:
        # The same answer as an id that does not exist: nothing about another client's estimate.
        raise ToolError(f"There is no estimate '{estimate_id}' for '{slug}'. Use an estimate_id that save_estimate "
                        "returned for this client.")
    body = {"client": slug, "estimate_id": estimate_id, "discount_pct": pct, "reason": tool_input["reason"],
            "metadata": {"agent": "commercial", "run_id": ctx.run_id}}
    result, simulated = erp_write(ctx, "/discount_requests", body)
    effect: dict[str, Any] = {"estimate_id": estimate_id, "discount_pct": pct}
    if estimate is not None:
        total = estimate["total"]
        effect.update(total_before=total, total_after=_money(total * (1 - pct / 100)))
        if estimate.get("margin_pct") is not None:
            cost = total * (1 - estimate["margin_pct"] / 100)
            effect.update(margin_pct_before=estimate["margin_pct"],
                          margin_pct_after=_margin_pct(total * (1 - pct / 100), cost))
    else:
        effect["note"] = "Sandbox: the estimate was not saved, so the discount's effect is not computed."
    if simulated:
        return {**result, **effect}
    return written(result, simulated, id_key="request_id",
                   extra={**effect, "next": "A commercial director decides in the ERP; quote the discounted price "
                                            "only once the request is approved."})
