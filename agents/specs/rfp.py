"""The RFP agent: reads an RFP, finds proof in past work, checks the team, drafts the response.

2.3.1 is the baseline. 2.4.0 adds `estimate_timeline` and fixes `analyze_rfp` (evaluation
weights and inline criteria); everything else is the same objects.
"""

from __future__ import annotations

from agents.checks import FINANCIAL_PROMISES, UNVERIFIABLE_GUARANTEES
from agents.registry import AgentSpec, ReleaseInfo, ToolChange, ToolSpec, register
from agents.tools import rfp as tools

from .common import KNOWLEDGE, base_prompt

_ANALYZE_DESCRIPTION = (
    "Analyse the text of an RFP deterministically (no guessing): returns requirements (must/shall/should "
    "sentences and items under requirement or scope headings), deadlines (dates with their meaning: questions, "
    "submission, presentation, award, start, launch), the budget (amounts, min/max, currency), evaluation "
    "criteria{weights}, and deliverables (listed and mentioned). Call it first, once, with the full RFP text; "
    "build the response's structure on its output.")

analyze_rfp_v231 = ToolSpec(
    name="analyze_rfp",
    description=_ANALYZE_DESCRIPTION.format(weights=" (from a criteria section)"),
    input_schema=tools.ANALYZE_RFP_SCHEMA,
    handler=tools.make_analyze_rfp(detect_weights=False),
    settings=tools.ANALYZE_RFP_SETTINGS,
)
analyze_rfp_v240 = ToolSpec(
    name="analyze_rfp",
    description=_ANALYZE_DESCRIPTION.format(
        weights=" with their weights (e.g. 'Creative approach 40%' gives weight 40; weights_total checks they add "
                "up to 100), from a criteria section or a sentence such as 'evaluated on price, team and approach'"),
    input_schema=tools.ANALYZE_RFP_SCHEMA,
    handler=tools.make_analyze_rfp(detect_weights=True),
    settings=tools.ANALYZE_RFP_SETTINGS,
)
query_past_projects = ToolSpec(
    name="query_past_projects",
    description=(
        "Search the agency's past projects and pitches in the ERP, newest first or ranked by `query` words. "
        "Filter by industry (the RFP's vertical) and outcome (won for credentials, lost to learn why). Returns "
        "each project's client, region, year, outcome, summary, results, KPIs, services and value, plus the win "
        "rate of what was returned. Use it to pick 2–3 relevant case studies with real numbers."),
    input_schema=tools.QUERY_PAST_PROJECTS_SCHEMA,
    handler=tools.query_past_projects,
    settings=tools.QUERY_PAST_PROJECTS_SETTINGS,
)
get_team_capabilities = ToolSpec(
    name="get_team_capabilities",
    description=(
        "List the agency team from the ERP: each person's role, capabilities, languages and availability "
        "(share of time free and the date they are free from), plus an index capability → people. Filter by one "
        "capability (e.g. 'arabic_copywriting', 'paid_media', 'video') to check the agency can staff a requirement; "
        "propose only people who appear here."),
    input_schema=tools.TEAM_SCHEMA,
    handler=tools.get_team_capabilities,
    settings=tools.TEAM_SETTINGS,
)
draft_response = ToolSpec(
    name="draft_response",
    description=(
        "Save the finished RFP response to the ERP as a draft for human review (a write: call it once, with the "
        "complete markdown text, at the end). Needs the client the response is for: the run's client, or pass "
        "`client` with its slug. Returns the draft id; in sandbox mode it returns what it would have saved."),
    input_schema=tools.DRAFT_RESPONSE_SCHEMA,
    handler=tools.draft_response,
    side_effect=True,
    settings=tools.DRAFT_RESPONSE_SETTINGS,
)
estimate_timeline = ToolSpec(
    name="estimate_timeline",
    description=(
        "Estimate a delivery timeline for the RFP from its requirements and deliverables and the team's real "
        "availability in the ERP: phases (discovery, strategy, creative development, production, review and "
        "launch) with weeks and dates, who covers each needed capability, capability gaps, and whether it fits "
        "the deadline. Call it after analyze_rfp, passing its requirements, deliverables and submission or "
        "launch date as deadline."),
    input_schema=tools.ESTIMATE_TIMELINE_SCHEMA,
    handler=tools.estimate_timeline,
    settings=tools.ESTIMATE_TIMELINE_SETTINGS,
)

_ROLE = ("You are SpokeStack's RFP agent, a senior new-business lead at a creative and marketing agency. You turn "
         "a client's request for proposal into a winning, compliant response built on the agency's real work, "
         "people and numbers.")
_TOOLS = """\
- analyze_rfp: first, with the full RFP text. Everything you write answers its requirements and criteria.
- query_past_projects: find credentials in the same industry (and won outcomes); lost pitches tell you what to avoid.
- get_team_capabilities: staff the work with real people and check availability for the dates the RFP sets.
{timeline}- draft_response: last, once, with the complete response."""
_OUTPUT = """\
A response in markdown: executive summary; our understanding of the brief; approach and ideas mapped to each \
requirement; relevant experience (2–3 case studies with results); team; {timeline_out}commercials against the budget; \
a compliance matrix (each requirement and evaluation criterion → where it is answered). End with the draft id \
from draft_response and a short list of open questions for the client."""

PROMPT_V231 = base_prompt(role=_ROLE, tools=_TOOLS.format(timeline=""),
                          output=_OUTPUT.format(timeline_out="timeline; "))
PROMPT_V240 = base_prompt(
    role=_ROLE,
    tools=_TOOLS.format(timeline="- estimate_timeline: after the team check, to give phases and dates the team "
                                 "can actually meet; flag any capability gap.\n"),
    output=_OUTPUT.format(timeline_out="timeline from estimate_timeline (phases, weeks, dates); "),
    extra="## Scoring\nWeight your effort by the evaluation weights analyze_rfp found: the heaviest criteria get "
          "the most space and the clearest proof.")

_COMMON = {"agent_type": "rfp", "title": "RFP responses",
           "description": "Analyses RFPs, finds credentials and team, and drafts the agency's response.",
           "knowledge": KNOWLEDGE, "max_tokens": 4096, "time_limit_s": 900, "cost_ceiling_usd": 3.0,
           "content_filters": (UNVERIFIABLE_GUARANTEES, FINANCIAL_PROMISES)}

RFP_2_3_1 = register(AgentSpec(
    version="2.3.1", base_prompt=PROMPT_V231,
    tools=(analyze_rfp_v231, query_past_projects, get_team_capabilities, draft_response),
    release=ReleaseInfo(
        release_date="2026-09-15", optimization_tags=("win_rate", "compliance"),
        notes="## RFP 2.3.1\n\n- Requirement, deadline, budget and deliverable extraction in `analyze_rfp`.\n"
              "- Past projects and team capabilities from the agency ERP.\n- `draft_response` saves to the ERP "
              "with an idempotency key.",
    ),
    **_COMMON,
))

RFP_2_4_0 = register(AgentSpec(
    version="2.4.0", base_prompt=PROMPT_V240,
    tools=(analyze_rfp_v240, query_past_projects, get_team_capabilities, draft_response, estimate_timeline),
    release=ReleaseInfo(
        release_date="2026-11-18", optimization_tags=("win_rate", "compliance", "delivery_planning"),
        notes="## RFP 2.4.0\n\n### New\n- **`estimate_timeline`**: phases, weeks and dates from the RFP's "
              "requirements and the team's real availability, with capability gaps and a deadline check.\n\n"
              "### Fixed\n- `analyze_rfp` now reads evaluation **weights** (\"Creative approach — 40%\") and criteria "
              "listed inline (\"evaluated on price, team and approach\"), and warns when weights do not add up "
              "to 100.\n\n### Prompt\n- Effort is weighted by the evaluation weights; the response includes a "
              "timeline from `estimate_timeline`.",
        tool_changes=(
            ToolChange("added", "estimate_timeline", "Estimates phases, weeks and dates from requirements, "
                                                     "deliverables and team availability."),
            ToolChange("modified", "analyze_rfp", "Detects evaluation weights and inline criteria; criteria are "
                                                  "{criterion, weight} with weights_total."),
        ),
        prompt_changes=("Workflow adds estimate_timeline after the team check.",
                        "Effort is weighted by the RFP's evaluation weights."),
        behaviour_changes=("analyze_rfp returns evaluation criteria as {criterion, weight} and may find more "
                           "criteria than 2.3.1 (inline lists).",
                           "Responses include a timeline with phases and dates."),
    ),
    **_COMMON,
))
