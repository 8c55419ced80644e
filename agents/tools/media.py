"""Media-buying tools: bid strategy and forecasts from the ERP's market benchmarks, plans saved
to the ERP, and (2.4.0) audience-expansion estimates.

Benchmarks are per channel × vertical × region, in USD: CPM, CTR, CVR, and the CPC and CPA
they imply. Budgets given to these tools are in USD for that reason; the model converts first.

The one behaviour that differs between versions is the objective `recommend_bid_strategy`
assumes when the model gives none: 2.3.1 optimises for conversions, 2.4.0 for reach
(`make_recommend_bid_strategy(default_objective=...)`).
"""

from __future__ import annotations

from typing import Any

from agents.knowledge import CHANNELS, REGIONS, VERTICALS
from agents.registry import ToolContext, ToolError

from .common import CLIENT_INPUT, client_slug, erp_write, market, settings_of, written

STRATEGIES = ("maximize_conversions", "target_roas", "target_cpa", "maximize_reach")
OBJECTIVES = ("awareness", "reach", "consideration", "conversions", "leads", "sales")
_REACH_OBJECTIVES = ("awareness", "reach", "consideration")
# Smart bidding needs data: below these monthly conversions a target is guesswork.
MIN_CONVERSIONS_FOR_TARGET_CPA = 30
MIN_CONVERSIONS_FOR_TARGET_ROAS = 50

_MARKET_INPUTS = {
    "vertical": {"type": "string", "enum": list(VERTICALS),
                 "description": "Benchmark vertical; default: the run's specialization or the client's."},
    "region": {"type": "string", "enum": list(REGIONS),
               "description": "Benchmark region; default: the run's specialization or the client's."},
    "client": CLIENT_INPUT,
}


def _benchmarks(ctx: ToolContext, vertical: str, region: str) -> dict[str, dict[str, Any]]:
    rows = ctx.erp().get("/benchmarks", params={"vertical": vertical, "region": region}).get("results", [])
    return {row["channel"]: row for row in rows}


def _channel_results(bench: dict[str, dict[str, Any]], spend: dict[str, float]) -> dict[str, dict[str, Any]]:
    results = {}
    for channel, amount in spend.items():
        row = bench.get(channel)
        if row is None:
            raise ToolError(f"The ERP has no benchmark for {channel}; use one of {', '.join(sorted(bench))}.")
        impressions = amount / row["cpm"] * 1000
        clicks = impressions * row["ctr"]
        conversions = clicks * row["cvr"]
        results[channel] = {"spend": round(amount, 2), "impressions": round(impressions), "clicks": round(clicks),
                            "conversions": round(conversions, 1), "cpm": row["cpm"], "ctr": row["ctr"],
                            "cvr": row["cvr"], "cpc": row["cpc"], "cpa": row["cpa"]}
    return results


def _totals(per_channel: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spend = sum(c["spend"] for c in per_channel.values())
    impressions = sum(c["impressions"] for c in per_channel.values())
    clicks = sum(c["clicks"] for c in per_channel.values())
    conversions = sum(c["conversions"] for c in per_channel.values())
    return {"spend": round(spend, 2), "impressions": impressions, "clicks": clicks,
            "conversions": round(conversions, 1),
            "blended_cpm": round(spend / impressions * 1000, 2) if impressions else None,
            "blended_cpc": round(spend / clicks, 2) if clicks else None,
            "blended_cpa": round(spend / conversions, 2) if conversions else None}


# --- recommend_bid_strategy -------------------------------------------------------------------

BID_STRATEGY_SCHEMA = {
    "type": "object",
    "properties": {
        "objective": {"type": "string", "enum": list(OBJECTIVES),
                      "description": "The campaign's objective. Leave it out to use this agent version's default."},
        "monthly_budget": {"type": "number", "exclusiveMinimum": 0, "description": "Monthly budget in USD."},
        "channels": {"type": "array", "items": {"type": "string", "enum": list(CHANNELS)}, "minItems": 1,
                     "uniqueItems": True, "description": "Channels to plan on; default depends on the objective."},
        "average_order_value": {"type": "number", "exclusiveMinimum": 0,
                                "description": "Average order value in USD, needed for a target ROAS."},
        **_MARKET_INPUTS,
    },
    "additionalProperties": False,
}
BID_STRATEGY_SETTINGS = {
    "min_conversions_target_cpa": {
        "type": "integer", "minimum": 1, "maximum": 1000, "default": MIN_CONVERSIONS_FOR_TARGET_CPA,
        "description": "Expected monthly conversions needed before a target CPA is recommended."},
    "min_conversions_target_roas": {
        "type": "integer", "minimum": 1, "maximum": 1000, "default": MIN_CONVERSIONS_FOR_TARGET_ROAS,
        "description": "Expected monthly conversions needed before a target ROAS is recommended."},
}


def make_recommend_bid_strategy(*, default_objective: str):
    if default_objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {default_objective}")

    def recommend_bid_strategy(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
        settings = settings_of(ctx, BID_STRATEGY_SETTINGS)
        min_cpa, min_roas = settings["min_conversions_target_cpa"], settings["min_conversions_target_roas"]
        objective = tool_input.get("objective") or default_objective
        reach = objective in _REACH_OBJECTIVES
        channels = tool_input.get("channels") or (["social", "video", "display"] if reach else ["search", "social"])
        vertical, region = market(ctx, tool_input)
        bench = _benchmarks(ctx, vertical, region)
        budget = tool_input.get("monthly_budget")
        per_channel = _channel_results(bench, {c: (budget or 1000.0) / len(channels) for c in channels})
        totals = _totals(per_channel)
        numbers: dict[str, Any] = {"blended_cpm": totals["blended_cpm"], "blended_cpc": totals["blended_cpc"],
                                   "blended_cpa": totals["blended_cpa"]}
        if budget:
            numbers.update(expected_monthly_impressions=totals["impressions"],
                           expected_monthly_conversions=totals["conversions"])
        conversions = totals["conversions"] if budget else None
        aov = tool_input.get("average_order_value")
        reasoning = [f"Benchmarks for {vertical} in {region} on {', '.join(channels)}: blended CPM "
                     f"${totals['blended_cpm']}, CPA ${totals['blended_cpa']}."]
        if not tool_input.get("objective"):
            reasoning.append(f"No objective given: this version optimises for {default_objective} by default.")
        if reach:
            strategy = "maximize_reach"
            reasoning.append(f"The objective is {objective}: buy the most unique people at a controlled frequency "
                             f"on CPM (about ${totals['blended_cpm']} per thousand).")
        elif conversions is None:
            strategy = "maximize_conversions"
            reasoning.append("Without a budget the expected conversion volume is unknown, so start without a target "
                             f"and let the platform learn; set a target once {min_cpa}+ conversions a month are "
                             "recorded.")
        elif objective == "sales" and aov and conversions >= min_roas:
            strategy = "target_roas"
            numbers["target_roas"] = round(aov / totals["blended_cpa"] * 0.9, 2)
            reasoning.append(f"About {conversions:g} conversions a month is enough data for value bidding; a target "
                             f"ROAS of {numbers['target_roas']} is 90% of what the ${aov:g} order value implies at the "
                             "benchmark CPA, leaving room for the learning phase.")
        elif conversions >= min_cpa:
            strategy = "target_cpa"
            numbers["target_cpa"] = round(totals["blended_cpa"] * 1.1, 2)
            reasoning.append(f"About {conversions:g} conversions a month supports a CPA target; start at "
                             f"${numbers['target_cpa']} (benchmark +10%) and tighten after two weeks.")
        else:
            strategy = "maximize_conversions"
            reasoning.append(f"Only about {conversions:g} conversions a month are expected, below the "
                             f"{min_cpa} a target needs; maximise conversions within budget first.")
        return {"strategy": strategy, "objective": objective,
                "objective_source": "input" if tool_input.get("objective") else "version_default",
                "vertical": vertical, "region": region, "channels": channels, "reasoning": reasoning,
                "numbers": numbers, "benchmarks": {c: bench[c] for c in channels}}

    return recommend_bid_strategy


# --- forecast_budget --------------------------------------------------------------------------

FORECAST_SCHEMA = {
    "type": "object",
    "properties": {
        "budget": {"type": "number", "exclusiveMinimum": 0, "description": "Total budget in USD."},
        "channel_split": {
            "type": "object", "propertyNames": {"enum": list(CHANNELS)}, "minProperties": 1,
            "additionalProperties": {"type": "number", "minimum": 0},
            "description": "Share per channel, as fractions adding up to 1 or percentages adding up to 100, "
                           "e.g. {\"search\": 0.5, \"social\": 0.3, \"display\": 0.2}.",
        },
        **_MARKET_INPUTS,
    },
    "required": ["budget", "channel_split"],
    "additionalProperties": False,
}
FORECAST_SETTINGS = {
    "max_channel_share": {"type": "number", "minimum": 0.2, "maximum": 1, "default": 1,
                          "description": "Refuse a split that puts more than this share of the budget on one "
                                         "channel (1: no cap)."},
}


def normalise_split(split: dict[str, float]) -> dict[str, float]:
    """Shares as fractions of 1, from fractions or percentages (rounding tolerated)."""
    total = sum(split.values())
    if abs(total - 1) <= 0.011 or abs(total - 100) <= 1.1:
        return {c: s / total for c, s in split.items() if s > 0}
    raise ToolError(f"channel_split adds up to {total:g}; give fractions that add up to 1 or percentages that "
                    "add up to 100.")


def forecast_budget(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    split = normalise_split(tool_input["channel_split"])
    cap = settings_of(ctx, FORECAST_SETTINGS)["max_channel_share"]
    over = sorted(channel for channel, share in split.items() if share > cap + 1e-9)
    if over:
        raise ToolError(f"This agency puts at most {cap:.0%} of a budget on one channel; {', '.join(over)} "
                        f"{'is' if len(over) == 1 else 'are'} above it. Spread the split and call forecast_budget "
                        "again.")
    vertical, region = market(ctx, tool_input)
    per_channel = _channel_results(_benchmarks(ctx, vertical, region),
                                   {c: tool_input["budget"] * share for c, share in split.items()})
    for channel, share in split.items():
        per_channel[channel]["share"] = round(share, 4)
    return {"vertical": vertical, "region": region, "currency": "USD", "channels": per_channel,
            "totals": _totals(per_channel),
            "assumptions": "Market benchmarks (CPM, CTR, CVR) for this vertical and region; real results vary "
                           "with creative, targeting and seasonality."}


# --- save_plan --------------------------------------------------------------------------------

SAVE_PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "description": "The plan's name."},
        "budget": {"type": "number", "exclusiveMinimum": 0, "description": "Total budget."},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$",
                     "description": "ISO 4217 code of the budget (default: the agency's currency)."},
        "channels": {
            "type": "array", "minItems": 1, "maxItems": 20,
            "items": {"type": "object", "properties": {
                "channel": {"type": "string", "minLength": 1, "maxLength": 40},
                "share": {"type": "number", "minimum": 0, "maximum": 1},
                "spend": {"type": "number", "minimum": 0},
            }, "required": ["channel"], "additionalProperties": False},
            "description": "The channel split: [{channel, share, spend}].",
        },
        "bid_strategy": {"type": "string", "enum": list(STRATEGIES)},
        "forecast": {"type": "object", "description": "The forecast to keep with the plan (from forecast_budget)."},
        "notes": {"type": "string", "maxLength": 20_000, "description": "Rationale and next steps (markdown)."},
        "client": CLIENT_INPUT,
    },
    "required": ["name", "budget", "channels"],
    "additionalProperties": False,
}
SAVE_PLAN_SETTINGS = {
    "require_forecast": {"type": "boolean", "default": False,
                         "description": "Refuse a plan saved without the forecast it was built on."},
}


def save_plan(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    if settings_of(ctx, SAVE_PLAN_SETTINGS)["require_forecast"] and not tool_input.get("forecast"):
        raise ToolError("This agency saves no media plan without its forecast: run forecast_budget on the chosen "
                        "split and pass its result as `forecast`.")
    body: dict[str, Any] = {"client": client_slug(ctx, tool_input), "name": tool_input["name"],
                            "budget": tool_input["budget"], "channels": tool_input["channels"],
                            "metadata": {"agent": "media_buying", "run_id": ctx.run_id}}
    for name in ("currency", "forecast", "notes"):
        if tool_input.get(name):
            body[name] = tool_input[name]
    if tool_input.get("bid_strategy"):
        body["metadata"]["bid_strategy"] = tool_input["bid_strategy"]
    result, simulated = erp_write(ctx, "/plans", body)
    return written(result, simulated, id_key="plan_id", extra={} if simulated else {"currency": result.get("currency")})


# --- audience_expansion (2.4.0) ----------------------------------------------------------------

# Addressable online adults per region, millions: the ceiling for lookalike audiences.
ADDRESSABLE_MILLIONS = {"GCC": 40, "MENA": 210, "EU": 370, "US": 260, "APAC": 1500}
# Broader audiences buy cheaper but respond less than the seed.
_EXPANSION = {"lookalike": {"cpm": 0.9, "ctr": 0.85, "cvr": 0.8}, "interest": {"cpm": 0.85, "ctr": 0.75, "cvr": 0.65}}
TARGET_FREQUENCY = 3

AUDIENCE_EXPANSION_SCHEMA = {
    "type": "object",
    "properties": {
        "seed_audience_size": {"type": "integer", "minimum": 100,
                               "description": "People in the seed audience (customers, site visitors, engagers)."},
        "expansion": {"type": "string", "enum": ["lookalike", "interest", "both"], "default": "both"},
        "lookalike_percent": {"type": "number", "minimum": 1, "maximum": 10, "default": 3,
                              "description": "Lookalike size as % of the region's addressable adults (1 = closest)."},
        "channel": {"type": "string", "enum": ["social", "display", "video"], "default": "social"},
        "budget": {"type": "number", "exclusiveMinimum": 0, "description": "Budget in USD, to estimate reach."},
        **_MARKET_INPUTS,
    },
    "required": ["seed_audience_size"],
    "additionalProperties": False,
}
AUDIENCE_EXPANSION_SETTINGS = {
    "target_frequency": {"type": "number", "minimum": 1, "maximum": 10, "default": TARGET_FREQUENCY,
                         "description": "The average number of times each person should see the ads; reach is "
                                        "estimated at it."},
}


def audience_expansion(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    vertical, region = market(ctx, tool_input)
    channel = tool_input.get("channel", "social")
    row = _benchmarks(ctx, vertical, region).get(channel)
    if row is None:
        raise ToolError(f"The ERP has no {channel} benchmark for {vertical} in {region}.")
    seed = tool_input["seed_audience_size"]
    population = ADDRESSABLE_MILLIONS[region] * 1_000_000
    percent = tool_input.get("lookalike_percent", 3)
    sizes = {"lookalike": int(population * percent / 100),
             "interest": int(min(seed * 8, population * 0.15))}
    kinds = ["lookalike", "interest"] if tool_input.get("expansion", "both") == "both" else [tool_input["expansion"]]
    budget = tool_input.get("budget")
    frequency = settings_of(ctx, AUDIENCE_EXPANSION_SETTINGS)["target_frequency"]
    options = []
    for kind in kinds:
        factor = _EXPANSION[kind]
        option: dict[str, Any] = {"type": kind, "audience_size": sizes[kind],
                                  "incremental_people": max(0, sizes[kind] - seed),
                                  "expected_cpm": round(row["cpm"] * factor["cpm"], 2),
                                  "expected_ctr": round(row["ctr"] * factor["ctr"], 5),
                                  "expected_cvr": round(row["cvr"] * factor["cvr"], 5)}
        if budget:
            impressions = budget / option["expected_cpm"] * 1000
            option.update(impressions=round(impressions),
                          estimated_reach=round(min(sizes[kind], impressions / frequency)),
                          frequency=round(impressions / min(sizes[kind], impressions / frequency), 2))
        options.append(option)
    if len(options) == 2:
        # People in both audiences count once: assume 40% of the interest audience is in the lookalike.
        combined = sizes["lookalike"] + int(sizes["interest"] * 0.6)
        options.append({"type": "both", "audience_size": combined, "incremental_people": max(0, combined - seed)})
    key = "estimated_reach" if budget else "incremental_people"
    best = max((o for o in options if key in o), key=lambda o: o[key])
    return {"vertical": vertical, "region": region, "channel": channel, "seed_audience_size": seed,
            "options": options, "recommended": best["type"],
            "why": f"Largest {key.replace('_', ' ')} for the {channel} benchmark (CPM ${row['cpm']}); broader "
                   "audiences trade response rate for scale, so keep the seed audience in its own ad set."}
