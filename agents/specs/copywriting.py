"""The copy agent: on-brand copy from the client's guidelines and approved examples, checked
deterministically against the client's never and competitor rules before it is saved."""

from __future__ import annotations

from agents.checks import HEALTH_CLAIMS, UNVERIFIABLE_GUARANTEES
from agents.registry import AgentSpec, ReleaseInfo, ToolSpec, register
from agents.tools import copywriting as tools

from .common import KNOWLEDGE, base_prompt

get_brand_guidelines = ToolSpec(
    name="get_brand_guidelines",
    description=(
        "Read the client's brand guidelines from the ERP: voice, always and never lists, competitors, market and "
        "language, plus the rules the agency keeps for this client in the platform. Call it before writing "
        "anything for a client."),
    input_schema=tools.GUIDELINES_SCHEMA,
    handler=tools.get_brand_guidelines,
)
get_approved_examples = ToolSpec(
    name="get_approved_examples",
    description=(
        "Fetch copy the client has approved before (channel, language, text), optionally only for one channel or "
        "language. Use them to match rhythm, length and vocabulary; never copy them word for word."),
    input_schema=tools.EXAMPLES_SCHEMA,
    handler=tools.get_approved_examples,
    settings=tools.EXAMPLES_SETTINGS,
)
check_brand_rules = ToolSpec(
    name="check_brand_rules",
    description=(
        "Check a text deterministically against the client's never rules and competitor names (case-insensitive "
        "phrase matching). Returns passed (true/false) and each violation with the rule, the phrase and the exact "
        "span, plus the always rules as reminders. Run it on every final text; if it fails, rewrite the flagged "
        "spans and check again. Pass the ERP guidelines' never list and competitors as extra_never and "
        "extra_competitors to check those too."),
    input_schema=tools.CHECK_SCHEMA,
    handler=tools.check_brand_rules,
)
save_draft = ToolSpec(
    name="save_draft",
    description=(
        "Save the final copy to the ERP as a draft for the client's review (a write: call it once per piece, after "
        "check_brand_rules passed). Returns the draft id; in sandbox mode it returns what it would have saved."),
    input_schema=tools.SAVE_DRAFT_SCHEMA,
    handler=tools.save_draft,
    side_effect=True,
)

PROMPT = base_prompt(
    role=("You are SpokeStack's copy agent, a senior copywriter at a creative agency. You write copy that sounds "
          "like the client's brand, fits the channel and the market, and never breaks the client's rules."),
    tools="""\
- get_brand_guidelines: first, for voice, always/never lists and competitors.
- get_approved_examples: for the channel and language you are writing for.
- check_brand_rules: on every final text (include the guidelines' never list and competitors); fix and re-check \
until it passes.
- save_draft: once per approved piece, at the end.""",
    output="""\
The copy itself first (each variant labelled with channel and language, within the channel's length limits), \
then one line per variant on why it fits the brief and the brand, then the brand check result and the draft ids. \
For Arabic and English pairs, write the Arabic natively, not as a translation.""",
)

COPY_2_3_1 = register(AgentSpec(
    agent_type="copy", version="2.3.1", title="Copywriting",
    description="Writes on-brand copy, checks it against the client's rules and saves drafts.",
    base_prompt=PROMPT,
    tools=(get_brand_guidelines, get_approved_examples, check_brand_rules, save_draft),
    knowledge=KNOWLEDGE, max_tokens=2048, time_limit_s=600, cost_ceiling_usd=1.5,
    content_filters=(UNVERIFIABLE_GUARANTEES, HEALTH_CLAIMS),
    release=ReleaseInfo(
        release_date="2026-09-15", optimization_tags=("brand_consistency", "engagement"),
        notes="## Copy 2.3.1\n\n- Guidelines and approved examples from the agency ERP.\n- Deterministic "
              "`check_brand_rules` on never rules and competitor names.\n- `save_draft` with an idempotency key.",
    ),
))
