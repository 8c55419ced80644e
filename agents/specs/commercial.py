"""The commercial agent: prices work from the agency's rate card, checks the margin against the
agency's floor and the client's budget, and saves estimates; a discount waits for a person.

`request_discount_approval` is gated on top of the platform's patterns: a discount gives away
margin the agency cannot take back, so a person approves the call before it runs (the loop asks
through agents/approvals.py, like any `delete_*` or `publish_*` call).
"""

from __future__ import annotations

from agents.checks import FINANCIAL_PROMISES, UNVERIFIABLE_GUARANTEES
from agents.delegation import handoff_tool
from agents.registry import DEFAULT_CONFIRMATION_PATTERNS, AgentSpec, ReleaseInfo, ToolSpec, register
from agents.tools import commercial as tools

from . import resource  # noqa: F401 - registered first: the handoff tool describes it
from .common import KNOWLEDGE, base_prompt

get_rate_card = ToolSpec(
    name="get_rate_card",
    description=(
        "Read the agency's rate card from the ERP: each role's day rate (what the client pays) and cost rate (what a "
        "day costs the agency), the disciplines it covers, whether it is in-house or freelance and who holds it, "
        "plus the currency, standard payment terms and sales tax. Call it first when pricing anything; filter with "
        "`role` (a name or a discipline such as 'strategy')."),
    input_schema=tools.RATE_CARD_SCHEMA,
    handler=tools.get_rate_card,
    settings=tools.RATE_CARD_SETTINGS,
)
estimate_effort = ToolSpec(
    name="estimate_effort",
    description=(
        "Estimate the days of work for a list of deliverables (strategy, campaign_concept, hero_video, short_video, "
        "social_post, blog_article, email, landing_page, media_plan, influencer_campaign, photo_shoot, report), each "
        "with a quantity and a complexity, with the agency's deterministic effort model. Returns days per rate-card "
        "role (ready to pass as lines to calculate_margin, draft_estimate and save_estimate), the indicative fee, "
        "days per deliverable and the assumptions used: quote the assumptions to the user."),
    input_schema=tools.ESTIMATE_EFFORT_SCHEMA,
    handler=tools.estimate_effort,
    settings=tools.ESTIMATE_EFFORT_SETTINGS,
)
calculate_margin = ToolSpec(
    name="calculate_margin",
    description=(
        "Compute revenue, cost (at the rate card's cost rates), margin and margin % for estimate lines (role and "
        "days, optionally a day rate other than the card's) and an optional discount %. Says whether the price is "
        "below the agency's floor margin and the largest discount that stays within it. Call it on every price "
        "before you present or save it; never work out a margin yourself."),
    input_schema=tools.CALCULATE_MARGIN_SCHEMA,
    handler=tools.calculate_margin,
    settings=tools.CALCULATE_MARGIN_SETTINGS,
)
get_past_pricing = ToolSpec(
    name="get_past_pricing",
    description=(
        "Look up what the agency quoted before, from the ERP's pricing history: per quote the client, project, "
        "services, fee, days, fee per day, margin %, discount and whether it was won or lost, newest first, with a "
        "summary (win rate, average margin, fee per day and discount of won work). Filter by client, service or "
        "outcome. Use it to anchor a price on what this client has accepted and to learn from lost bids."),
    input_schema=tools.PAST_PRICING_SCHEMA,
    handler=tools.get_past_pricing,
    settings=tools.PAST_PRICING_SETTINGS,
)
draft_estimate = ToolSpec(
    name="draft_estimate",
    description=(
        "Build the estimate document from lines (role and days) without saving anything: priced lines from the "
        "rate card, subtotal, discount, total, tax, total with tax, margin, payment terms and schedule, validity. "
        "Use it to show the user the estimate before it is final; save the agreed version with save_estimate."),
    input_schema=tools.DRAFT_ESTIMATE_SCHEMA,
    handler=tools.draft_estimate,
    settings=tools.DRAFT_ESTIMATE_SETTINGS,
)
compare_to_budget = ToolSpec(
    name="compare_to_budget",
    description=(
        "Compare an estimate's total (before tax) with the client's budget in the ERP for a fiscal year (default: the "
        "latest on file): total, committed and remaining budget, and a verdict: fits, tight (a large share of what "
        "is left) or over (with the amount over). Call it before presenting a price to the client."),
    input_schema=tools.COMPARE_TO_BUDGET_SCHEMA,
    handler=tools.compare_to_budget,
    settings=tools.COMPARE_TO_BUDGET_SETTINGS,
)
save_estimate = ToolSpec(
    name="save_estimate",
    description=(
        "Save the final estimate to the ERP as a draft for the account team (a write: call it once, with the final "
        "lines). Prices the lines from the rate card at full price (a discount is requested separately with "
        "request_discount_approval) and stores total, currency, margin and terms. Returns the estimate id; in "
        "sandbox mode it returns what it would have saved."),
    input_schema=tools.SAVE_ESTIMATE_SCHEMA,
    handler=tools.save_estimate,
    side_effect=True,
)
request_discount_approval = ToolSpec(
    name="request_discount_approval",
    description=(
        "Ask a commercial director to approve a discount on a saved estimate (a write, and a person approves the "
        "call before it runs). Needs the estimate id from save_estimate, the discount % and the reason. Returns the "
        "request id, pending, with the total and margin before and after the discount. Call it when a price must "
        "go below the floor margin; never quote the discounted price before it is approved."),
    input_schema=tools.DISCOUNT_SCHEMA,
    handler=tools.request_discount_approval,
    side_effect=True,
)

PROMPT = base_prompt(
    role=("You are SpokeStack's commercial agent, an agency's commercial director. You price work so the agency is "
          "paid fairly and stays profitable: estimates built from the rate card and a transparent effort model, "
          "margins checked against the agency's floor, and prices the client's budget can carry."),
    tools="""\
- get_rate_card: first, for roles, day rates, currency, terms and tax.
- estimate_effort: turn the scope into days per role; keep its assumptions.
- get_past_pricing: what this client accepted before and why bids were lost.
- calculate_margin: on every price you consider, with any discount; it says whether the margin is below the floor.
- compare_to_budget: the total against the client's remaining budget.
- draft_estimate: the estimate document to show, without saving.
- save_estimate: once, with the final lines, at full price.
- request_discount_approval: only when a discount is needed; it waits for a person's approval.
- hand_off_to_resource: last, when the task also asks to staff the work: pass the saved estimate's id, roles, days \
and dates in the summary.""",
    extra="""\
## Pricing rules
- Every number comes from a tool: rates from the rate card, days from estimate_effort or the user, margins from \
calculate_margin. Show the assumptions behind the days.
- Never price below the agency's floor margin without an approved discount: save the estimate at full price, then \
ask for the discount with request_discount_approval and say it is pending until a person approves it.
- When the price is over the client's budget, offer a smaller scope (fewer deliverables, lower complexity) before \
a discount.
- Never promise results, returns or performance in an estimate; price the work, not an outcome.
- Money is in the agency's currency, before tax unless you say "with tax".""",
    output="""\
The estimate in markdown: scope and deliverables; a table of roles, days, day rates and amounts; subtotal, discount, \
total, tax and total with tax; margin % against the floor; fit with the client's budget; payment terms; the \
assumptions. Then the estimate id from save_estimate and any discount request id with its status.""",
)

COMMERCIAL_1_0_0 = register(AgentSpec(
    agent_type="commercial", version="1.0.0", title="Commercial",
    description="Prices work from the rate card: effort, margins, budgets, estimates and discount approvals.",
    base_prompt=PROMPT,
    tools=(get_rate_card, estimate_effort, calculate_margin, get_past_pricing, draft_estimate, compare_to_budget,
           save_estimate, request_discount_approval,
           handoff_tool("resource", when="when the estimate is saved and the work needs people booked for it.")),
    knowledge=KNOWLEDGE, max_tokens=4096, time_limit_s=600, cost_ceiling_usd=2.0,
    confirmation_patterns=(*DEFAULT_CONFIRMATION_PATTERNS, "request_discount_approval"),
    content_filters=(FINANCIAL_PROMISES, UNVERIFIABLE_GUARANTEES),
    release=ReleaseInfo(
        release_date="2026-12-01", optimization_tags=("margin", "pricing_accuracy"),
        notes="## Commercial 1.0.0\n\n- Rate card, pricing history and client budgets from the agency ERP.\n"
              "- `estimate_effort`: a deterministic effort model (12 deliverable types × complexity) mapped to the "
              "rate card's roles, with its assumptions.\n- `calculate_margin` checks every price against the "
              "agency's floor (`min_margin_pct`, default 35%).\n- `draft_estimate` builds the document without "
              "saving; `save_estimate` saves it (the ERP refuses totals that do not match the lines).\n"
              "- `request_discount_approval` is gated: a person approves it before it runs.",
    ),
))
