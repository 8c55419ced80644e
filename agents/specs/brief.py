"""The brief agent: turns a request into a complete, measurable creative brief filed in the ERP."""

from __future__ import annotations

from agents.checks import HEALTH_CLAIMS, UNVERIFIABLE_GUARANTEES
from agents.registry import AgentSpec, ReleaseInfo, ToolChange, ToolSpec, register
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


# --- 2.4.0: the planning reads an agency ERP offers, and changing a filed brief -----------------

get_past_briefs = ToolSpec(
    name="get_past_briefs",
    description=(
        "List the client's earlier briefs from the ERP, newest first: title, objective, audience, channels, budget, "
        "deadline and status, with counts by status, the channels used most and the budget range. Call it before "
        "writing a brief to reuse what worked, keep budgets consistent and avoid a duplicate; filter by status "
        "(e.g. ['approved']) and call it for a brief's id before update_brief."),
    input_schema=tools.PAST_BRIEFS_SCHEMA,
    handler=tools.get_past_briefs,
    settings=tools.PAST_BRIEFS_SETTINGS,
)
get_audience_data = ToolSpec(
    name="get_audience_data",
    description=(
        "Read the client's audience segments from the ERP, largest first: size in people, age range, locations, "
        "interests, languages, top platforms and channel habits (share of media time per channel: search, social, "
        "display, video, ctv), plus the size-weighted habits of all segments. Call it to describe the brief's "
        "audience with real numbers and before get_channel_mix; filter by language when the brief is for one."),
    input_schema=tools.AUDIENCE_SCHEMA,
    handler=tools.get_audience_data,
    settings=tools.AUDIENCE_SETTINGS,
)
get_channel_mix = ToolSpec(
    name="get_channel_mix",
    description=(
        "Recommend a channel split for an objective (awareness, consideration or conversion) from the audience's "
        "channel habits and the market benchmarks for the client's vertical and region. Returns each channel's "
        "share with the numbers behind it (habit share, benchmark CPM/CPC/CPA, efficiency index), channels "
        "dropped as too small, and, with a budget in USD, spend and expected results per channel. Deterministic: "
        "quote its numbers in the brief's channels section."),
    input_schema=tools.CHANNEL_MIX_SCHEMA,
    handler=tools.get_channel_mix,
    settings=tools.CHANNEL_MIX_SETTINGS,
)
update_brief = ToolSpec(
    name="update_brief",
    description=(
        "Change a brief the client already has in the ERP (a write): any of title, objective, audience, channels, "
        "budget, deadline, notes, and its status (draft, in_review, approved, archived). Only the run's client's "
        "briefs; send only the fields that change. Use it instead of create_brief when the request revises an "
        "existing brief, and to archive one a new brief supersedes. In sandbox mode it returns what it would send."),
    input_schema=tools.UPDATE_BRIEF_SCHEMA,
    handler=tools.update_brief,
    side_effect=True,
    settings=tools.UPDATE_BRIEF_SETTINGS,
)

PROMPT_V240 = base_prompt(
    role=("You are SpokeStack's brief agent, a senior strategist. You turn a client's request into a creative brief "
          "a team can act on: one objective that can be measured, one audience described concretely and sized, one "
          "message, and a channel plan with its reasons."),
    tools="""- get_client_info: first, for the client's profile and brand guidelines.
- get_past_briefs: next, for what the client asked before (objectives, budgets, channels, status). Reuse what was \
approved; if the request revises a brief that exists, change that one instead of filing a duplicate.
- get_audience_data: for the audience section: the segments that fit the request, with their size, ages, \
languages and interests. Name the segments you chose and why.
- get_channel_mix: after choosing the segments and the objective type (awareness, consideration or conversion), \
for the channel split; pass the segment ids, and the budget in USD when there is one. Use its shares and quote \
its reasoning numbers; do not invent another split.
- create_brief: once, at the end, to file a new brief.
- update_brief: instead of create_brief when the task revises an existing brief (send only what changes), or to \
move a brief's status (in_review when it is ready for the client; archived when a new brief supersedes it).""",
    output="""The brief in markdown: background (with what earlier briefs asked); objective (metric, target, date); audience \
(segments, sizes, languages); insight; single-minded message; reasons to believe; channels (the split from \
get_channel_mix and why); mandatories and client rules; budget and deadline; KPIs. Then the brief id from \
create_brief or update_brief and its status. If the request lacks the objective, budget or deadline and neither \
the profile nor earlier briefs give them, say which assumptions you made.""",
)

BRIEF_2_4_0 = register(AgentSpec(
    agent_type="brief", version="2.4.0", title="Creative briefs",
    description="Writes measurable creative briefs from the client's profile, past briefs, audience data and a "
                "data-based channel mix, and files or revises them in the ERP.",
    base_prompt=PROMPT_V240,
    tools=(get_client_info, get_past_briefs, get_audience_data, get_channel_mix, create_brief, update_brief),
    knowledge=KNOWLEDGE, max_tokens=4096, time_limit_s=600, cost_ceiling_usd=2.0,
    content_filters=(UNVERIFIABLE_GUARANTEES, HEALTH_CLAIMS),
    release=ReleaseInfo(
        release_date="2026-12-01", optimization_tags=("clarity", "measurability", "audience_fit", "media_planning"),
        notes="## Brief 2.4.0\n\n### New\n- **`get_past_briefs`**: the client's earlier briefs with status filter, "
              "newest first, with the channels used most and the budget range.\n- **`get_audience_data`**: the "
              "client's audience segments from the ERP (size, ages, interests, languages, channel habits).\n"
              "- **`get_channel_mix`**: a deterministic channel split for awareness, consideration or conversion "
              "from the audience's habits and the market benchmarks, with the numbers behind it.\n"
              "- **`update_brief`**: revise a filed brief or move its status (idempotent, simulated in sandbox "
              "mode, only the run's client's briefs).\n\n### Prompt\n- The workflow reads past briefs and audience "
              "data before writing, plans channels with `get_channel_mix`, and revises an existing brief instead "
              "of filing a duplicate.\n\n### Unchanged\n- `get_client_info` and `create_brief` behave as in 2.3.1.",
        tool_changes=(
            ToolChange("added", "get_past_briefs", "The client's earlier briefs, filtered by status, newest first, "
                                                   "with channels used and budget range."),
            ToolChange("added", "get_audience_data", "The client's audience segments: size, ages, interests, "
                                                     "languages and channel habits."),
            ToolChange("added", "get_channel_mix", "A channel split per objective from audience habits and market "
                                                   "benchmarks, with its reasoning numbers."),
            ToolChange("added", "update_brief", "Changes fields or the status of one of the client's briefs (PATCH, "
                                                "idempotent, sandboxed)."),
        ),
        prompt_changes=("Workflow adds get_past_briefs and get_audience_data before writing and get_channel_mix "
                        "for the channels section.",
                        "A revision of an existing brief uses update_brief instead of create_brief.",
                        "The output's audience and channels sections cite segment sizes and the channel split."),
        behaviour_changes=("Briefs name sized audience segments and a channel split with its numbers.",
                           "A request that revises an existing brief changes it instead of filing a duplicate.",
                           "Runs make more ERP reads (past briefs, audiences, benchmarks) before the one write."),
    ),
))
