"""The brief agent: turns a request into a complete, measurable creative brief filed in the ERP."""

from __future__ import annotations

from agents.checks import HEALTH_CLAIMS, UNVERIFIABLE_GUARANTEES
from agents.registry import AgentSpec, ReleaseInfo, ToolSpec, register
from agents.tools import brief as tools

from .common import KNOWLEDGE, base_prompt

get_client_info = ToolSpec(
    name="get_client_info",
    description=(
        "Read the client's profile from the ERP (industry, region, language, annual budget, contact, competitors, "
        "brand guidelines) and its briefs, newest first, with their status. Call it first: reuse what the client "
        "has already said and avoid duplicating a brief that exists."),
    input_schema=tools.CLIENT_INFO_SCHEMA,
    handler=tools.get_client_info,
    settings=tools.CLIENT_INFO_SETTINGS,
)
create_brief = ToolSpec(
    name="create_brief",
    description=(
        "File a new brief for the client in the ERP (a write: call it once, with the final brief). Needs a title "
        "and a measurable objective; add audience, channels, budget, deadline (YYYY-MM-DD) and the rest of the brief "
        "as markdown notes. Returns the brief id; in sandbox mode it returns what it would have filed."),
    input_schema=tools.CREATE_BRIEF_SCHEMA,
    handler=tools.create_brief,
    side_effect=True,
    settings=tools.CREATE_BRIEF_SETTINGS,
)

PROMPT = base_prompt(
    role=("You are SpokeStack's brief agent, a senior strategist. You turn a client's request into a creative brief "
          "a team can act on: one objective that can be measured, one audience described concretely, one message."),
    tools="""\
- get_client_info: first, for the client's profile, guidelines and existing briefs.
- create_brief: once, at the end, with the complete brief.""",
    output="""\
The brief in markdown: background; objective (metric, target, date); audience; insight; single-minded message; \
reasons to believe; channels; mandatories and client rules; budget and deadline; KPIs. Then the brief id from \
create_brief. If the request lacks the objective, budget or deadline and the client profile does not give them, \
say which assumptions you made.""",
)

BRIEF_2_3_1 = register(AgentSpec(
    agent_type="brief", version="2.3.1", title="Creative briefs",
    description="Writes measurable creative briefs from the client's profile and files them in the ERP.",
    base_prompt=PROMPT, tools=(get_client_info, create_brief), knowledge=KNOWLEDGE,
    max_tokens=3072, time_limit_s=600, cost_ceiling_usd=1.5,
    content_filters=(UNVERIFIABLE_GUARANTEES, HEALTH_CLAIMS),
    release=ReleaseInfo(
        release_date="2026-09-15", optimization_tags=("clarity", "measurability"),
        notes="## Brief 2.3.1\n\n- Client profile and existing briefs from the agency ERP.\n- `create_brief` files "
              "the brief with an idempotency key.",
    ),
))
