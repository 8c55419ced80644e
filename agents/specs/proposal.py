"""The proposal orchestrator: answers an RFP end to end by delegating each part to the agent made
for it (DESIGN §13, guide §11.1) and assembling the proposal. It has one tool of its own."""

from __future__ import annotations

from agents.checks import FINANCIAL_PROMISES, UNVERIFIABLE_GUARANTEES
from agents.delegation import delegation_tool
from agents.registry import AgentSpec, ReleaseInfo, ToolSpec, register
from agents.tools import proposal as tools

from . import commercial, content, resource, rfp  # noqa: F401 - registered first: its tools describe them
from .common import KNOWLEDGE, base_prompt

save_proposal = ToolSpec(
    name="save_proposal",
    description=(
        "Save the assembled proposal to the ERP as a draft for the account team's review (a write: call it once, "
        "at the end, with the complete markdown and the run ids of the delegated work). Returns the proposal id; in "
        "sandbox mode it returns what it would have saved."),
    input_schema=tools.SAVE_PROPOSAL_SCHEMA,
    handler=tools.save_proposal,
    side_effect=True,
    settings=tools.SAVE_PROPOSAL_SETTINGS,
)

PROMPT = base_prompt(
    role=("You are SpokeStack's proposal lead. You answer a client's RFP end to end by briefing the agency's "
          "specialist agents — RFP analysis, pricing, resourcing and copy — and assembling what they return into one "
          "proposal the client can score easily. You do not analyse, price or staff anything yourself."),
    tools="""\
- delegate_to_rfp: the RFP's requirements, deadlines, budget, evaluation criteria and credentials (pass the full RFP \
text as context).
- delegate_to_commercial: an estimate with rate card, effort, margin and budget fit for the scope (pass the \
deliverables and the budget as context).
- delegate_to_resource: the team and allocation that can deliver it in time (pass the skills and dates needed).
- delegate_to_content: the cover letter and executive summary in the client's voice (pass the key points).
Delegate the independent parts in the same turn: they run at once. Read each result; if one failed, say so in the \
proposal rather than inventing its part.
- save_proposal: once, at the end, with the assembled proposal and the run ids of the delegated work.""",
    output="""\
The proposal in markdown: cover letter; executive summary; our understanding; approach mapped to each requirement; \
team and allocation; timeline; commercials (fee, what it includes, payment terms, budget fit); credentials; \
compliance matrix (requirement → section). Then the proposal id from save_proposal, the run id of each delegated \
part, and open questions for the client.""",
)

PROPOSAL_1_0_0 = register(AgentSpec(
    agent_type="proposal", version="1.0.0", title="Proposals",
    description="Answers an RFP end to end by delegating analysis, pricing, resourcing and copy, then assembling "
                "the proposal.",
    base_prompt=PROMPT,
    tools=(delegation_tool("rfp"), delegation_tool("commercial"), delegation_tool("resource"),
           delegation_tool("content"), save_proposal),
    knowledge=KNOWLEDGE, max_tokens=8192, max_tokens_limit=16384, time_limit_s=900, cost_ceiling_usd=12.0,
    content_filters=(UNVERIFIABLE_GUARANTEES, FINANCIAL_PROMISES),
    release=ReleaseInfo(
        release_date="2026-12-01", optimization_tags=("win_rate", "speed_to_proposal"),
        notes="## Proposals 1.0.0\n\n- New orchestrator: delegates RFP analysis to `rfp`, pricing to `commercial`, "
              "resourcing to `resource` and the cover copy to `content`, in parallel child runs.\n- Assembles and "
              "saves the proposal with `save_proposal` (an idempotency key; simulated in sandbox mode).\n- Its cost "
              "includes its delegated runs' (the ceiling counts them too).",
    ),
))
