"""The media-buying agent: bid strategy, budget forecasts and plans from market benchmarks.

2.3.1 optimises for performance (conversions, ROAS). 2.4.0 optimises for reach: with no
objective given, `recommend_bid_strategy` now recommends maximize_reach, and the new
`audience_expansion` tool sizes lookalike and interest audiences. The other tools are the
same objects in both versions.
"""

from __future__ import annotations

from agents.checks import FINANCIAL_PROMISES, UNVERIFIABLE_GUARANTEES
from agents.registry import AgentSpec, ReleaseInfo, ToolChange, ToolSpec, register
from agents.tools import media as tools

from .common import KNOWLEDGE, base_prompt

_BID_DESCRIPTION = (
    "Recommend a bid strategy (maximize_conversions, target_roas, target_cpa or maximize_reach) from the ERP's "
    "market benchmarks for the client's vertical and region. Give the objective, monthly budget (USD), channels and, "
    "for sales, the average order value. Returns the strategy with reasoning and numbers: blended CPM, CPC and "
    "CPA, expected monthly conversions, and a target CPA or ROAS when one is recommended. {default}")

recommend_bid_strategy_v231 = ToolSpec(
    name="recommend_bid_strategy",
    description=_BID_DESCRIPTION.format(default="Without an objective it plans for conversions."),
    input_schema=tools.BID_STRATEGY_SCHEMA,
    handler=tools.make_recommend_bid_strategy(default_objective="conversions"),
    settings=tools.BID_STRATEGY_SETTINGS,
)
recommend_bid_strategy_v240 = ToolSpec(
    name="recommend_bid_strategy",
    description=_BID_DESCRIPTION.format(default="Without an objective it plans for reach (maximize_reach)."),
    input_schema=tools.BID_STRATEGY_SCHEMA,
    handler=tools.make_recommend_bid_strategy(default_objective="reach"),
    settings=tools.BID_STRATEGY_SETTINGS,
)
forecast_budget = ToolSpec(
    name="forecast_budget",
    description=(
        "Forecast what a budget buys: give the total budget in USD and the split across channels (search, social, "
        "display, video, ctv); returns per channel and in total the spend, impressions, clicks, conversions and "
        "CPM/CPC/CPA from the ERP's benchmarks for the vertical and region. Use it to compare splits before you "
        "commit to one."),
    input_schema=tools.FORECAST_SCHEMA,
    handler=tools.forecast_budget,
    settings=tools.FORECAST_SETTINGS,
)
save_plan = ToolSpec(
    name="save_plan",
    description=(
        "Save the final media plan to the ERP (a write: call it once, at the end): name, budget, channel split, bid "
        "strategy, the forecast and notes. Returns the plan id; in sandbox mode it returns what it would have saved."),
    input_schema=tools.SAVE_PLAN_SCHEMA,
    handler=tools.save_plan,
    side_effect=True,
    settings=tools.SAVE_PLAN_SETTINGS,
)
audience_expansion = ToolSpec(
    name="audience_expansion",
    description=(
        "Estimate how far a seed audience (customers, visitors, engagers) can be expanded with lookalike and/or "
        "interest targeting in the client's region: audience size, incremental people, expected CPM/CTR/CVR from "
        "the ERP's benchmarks, and with a budget the reach at the agency's target frequency. Use it when the goal "
        "is reach or awareness, or when a campaign has saturated its current audience."),
    input_schema=tools.AUDIENCE_EXPANSION_SCHEMA,
    handler=tools.audience_expansion,
    settings=tools.AUDIENCE_EXPANSION_SETTINGS,
)

_ROLE = ("You are SpokeStack's media-buying agent, a senior paid-media planner. You turn a budget and an objective "
         "into a plan with a bid strategy, a channel split and a forecast grounded in market benchmarks.")
_TOOLS = """\
- recommend_bid_strategy: first, with the objective, monthly budget and channels.
- forecast_budget: compare one or two channel splits and keep the better one.
{expansion}- save_plan: once, at the end, with the chosen split, bid strategy and forecast."""
_OUTPUT = """\
The plan in markdown: objective and {focus}; bid strategy with the reason and any target; a table of channel, \
share, spend, impressions, clicks, conversions and CPA; {extra}risks and what to test in the first two weeks; \
the plan id from save_plan. Budgets are in USD for the tools; state conversions if the client's currency differs."""

PROMPT_V231 = base_prompt(
    role=_ROLE, tools=_TOOLS.format(expansion=""),
    output=_OUTPUT.format(focus="the KPI it is judged on (conversions, CPA or ROAS)", extra=""),
    extra="## Optimisation\nOptimise for performance: conversions, CPA and ROAS. When the objective is unclear, plan "
          "for conversions and say so.")
PROMPT_V240 = base_prompt(
    role=_ROLE,
    tools=_TOOLS.format(expansion="- audience_expansion: when the objective is reach or awareness, or the audience "
                                  "is small, size lookalike and interest expansion.\n"),
    output=_OUTPUT.format(focus="the KPI it is judged on (reach, frequency, CPM; or conversions if asked)",
                          extra="audience expansion and expected reach; "),
    extra="## Optimisation\nOptimise for reach and brand awareness: unique reach at an effective frequency and a "
          "controlled CPM. When the objective is unclear, plan for reach (maximize_reach) and say so; plan for "
          "conversions only when the task asks for performance.")

_COMMON = {"agent_type": "media_buying", "title": "Media buying",
           "description": "Recommends bid strategies, forecasts budgets and saves media plans.",
           "knowledge": KNOWLEDGE, "max_tokens": 3072, "time_limit_s": 600,
           "cost_ceiling_usd": 2.0,
           "content_filters": (UNVERIFIABLE_GUARANTEES, FINANCIAL_PROMISES)}

MEDIA_BUYING_2_3_1 = register(AgentSpec(
    version="2.3.1", base_prompt=PROMPT_V231,
    tools=(recommend_bid_strategy_v231, forecast_budget, save_plan),
    release=ReleaseInfo(
        release_date="2026-09-15", optimization_tags=("performance", "roas", "conversions"),
        notes="## Media buying 2.3.1\n\n- Bid strategy and budget forecasts from market benchmarks in the agency "
              "ERP.\n- Optimises for performance: conversions, CPA and ROAS.\n- `save_plan` with an idempotency key.",
    ),
    **_COMMON,
))

MEDIA_BUYING_2_4_0 = register(AgentSpec(
    version="2.4.0", base_prompt=PROMPT_V240,
    tools=(recommend_bid_strategy_v240, forecast_budget, save_plan, audience_expansion),
    release=ReleaseInfo(
        release_date="2026-11-18", optimization_tags=("reach", "brand_awareness"),
        notes="## Media buying 2.4.0: optimised for reach\n\n### New\n- **`audience_expansion`** sizes lookalike and "
              "interest expansion of a seed audience, with CPM, CTR and reach from benchmarks.\n\n### Changed\n- "
              "`recommend_bid_strategy` defaults to **maximize_reach** when no objective is given (2.3.1: "
              "conversions).\n- The prompt optimises for reach and brand awareness.\n\n### Impact\nInstances that "
              "optimise for performance, ROAS or conversions should pass an explicit objective or stay on 2.3.1; "
              "test in the sandbox first.",
        tool_changes=(
            ToolChange("added", "audience_expansion", "Estimates lookalike and interest audience expansion and "
                                                      "reach from benchmarks."),
            ToolChange("modified", "recommend_bid_strategy", "Default objective is reach: recommends maximize_reach "
                                                             "when no objective is given."),
        ),
        prompt_changes=("Optimises for reach and brand awareness instead of conversions and ROAS.",
                        "Workflow adds audience_expansion for reach objectives."),
        behaviour_changes=("default bid strategy changes to maximize_reach",
                           "plans report reach and frequency ahead of conversions"),
    ),
    **_COMMON,
))
