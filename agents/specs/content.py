"""The content agent: long-form and multi-channel content (blog articles, newsletters, LinkedIn
articles, one campaign's piece adapted per channel), planned from the client's content calendar,
fitted to each channel's limits, checked for readability and brand rules, saved and sent to review.

The copy agent stays for short copy; the brand guidelines and brand check are its very tools
(one matcher for every agent), so a text that passes here passes there."""

from __future__ import annotations

from agents.checks import HEALTH_CLAIMS, UNVERIFIABLE_GUARANTEES
from agents.delegation import handoff_tool
from agents.registry import AgentSpec, ReleaseInfo, ToolSpec, register
from agents.tools import content as tools

from . import publisher  # noqa: F401 - registered first: the handoff tool describes it
from .common import KNOWLEDGE, base_prompt
from .copywriting import check_brand_rules, get_brand_guidelines

get_content_calendar = ToolSpec(
    name="get_content_calendar",
    description=(
        "Read the client's content calendar from the ERP: each planned piece's id, date, channel, format, topic, "
        "status (planned, in_progress, in_review, approved, published), owner (a team member id), campaign, target "
        "word count and language, earliest first, with a count per status. Filter by from/to dates (YYYY-MM-DD), "
        "channel, status or format. Call it when the task refers to planned content, a campaign or a date, and pass "
        "the entry's id to save_draft."),
    input_schema=tools.CALENDAR_SCHEMA,
    handler=tools.get_content_calendar,
    settings=tools.CALENDAR_SETTINGS,
)
get_channel_specs = ToolSpec(
    name="get_channel_specs",
    description=(
        "Read what each publishing channel accepts, from the ERP: maximum characters, where the feed cuts the text "
        "('see more'), maximum hashtags, whether links are clickable, media and image sizes, video length and the "
        "platform's notes. Pass `channel` for one (an unknown channel's error lists the known ones) or leave it out "
        "for all. Call it before adapting content to a channel."),
    input_schema=tools.CHANNEL_SPECS_SCHEMA,
    handler=tools.get_channel_specs,
)
check_readability = ToolSpec(
    name="check_readability",
    description=(
        "Measure a text's readability deterministically (no model): words, sentences, paragraphs, average and "
        "longest sentence, Flesch reading ease and grade level (English only; other languages such as Arabic get "
        "lengths only), passive-voice hints, sentences and paragraphs over the agency's limits and, with `channel`, "
        "its length against that channel's limit and 'see more' cut from the ERP. Returns passed and the issues to "
        "fix. Run it on every final text; fix the issues and check again."),
    input_schema=tools.READABILITY_SCHEMA,
    handler=tools.check_readability,
    settings=tools.READABILITY_SETTINGS,
)
save_draft = ToolSpec(
    name="save_draft",
    description=(
        "Save a finished piece to the ERP as a draft for the client's review (a write: call it once per piece, after "
        "check_readability and check_brand_rules passed), with its format, channel, language, campaign and the "
        "calendar entry it fulfils. Returns the draft id; in sandbox mode it returns what it would have saved."),
    input_schema=tools.SAVE_DRAFT_SCHEMA,
    handler=tools.save_draft,
    side_effect=True,
)
schedule_for_review = ToolSpec(
    name="schedule_for_review",
    description=(
        "Send a saved draft to a reviewer on the agency's team with a due date (a write: once per draft, after "
        "save_draft). Needs the draft id from save_draft, the reviewer's team member id (a calendar entry's owner, "
        "or someone the task names) and due_date as YYYY-MM-DD; the ERP refuses a draft of another client. Returns "
        "the review id; in sandbox mode it returns what it would have sent."),
    input_schema=tools.REVIEW_SCHEMA,
    handler=tools.schedule_for_review,
    side_effect=True,
)

PROMPT = base_prompt(
    role=("You are SpokeStack's content agent, a senior content strategist and editor at a creative agency. You "
          "write long-form and multi-channel content — blog articles, newsletters, LinkedIn articles, and one "
          "campaign's idea adapted to each channel — that sounds like the client, reads easily and fits every "
          "channel it runs on."),
    tools="""\
- get_brand_guidelines: first, for voice, always/never lists, competitors and language.
- get_content_calendar: when the task names a campaign, a date or planned content; take the topic, channel, format, \
target words and owner from the entry, and pass its id to save_draft.
- get_channel_specs: before writing for a channel, for its character limit, 'see more' cut, hashtags and media.
- check_readability: on every final text, with its channel; fix every issue it lists and check again.
- check_brand_rules: on every final text (include the guidelines' never list and competitors); fix and re-check \
until it passes.
- save_draft: once per finished piece, only after both checks passed.
- schedule_for_review: once per saved draft, when the task asks for review; the reviewer is a team member id \
(the calendar entry's owner unless the task names someone else).
- hand_off_to_publisher: last, when approved pieces are to go out on the client's channels: pass the draft ids, \
channels and dates in the summary.""",
    extra="""\
## Long form
- Open with the reader's problem or a concrete fact, not with the brand. One idea per paragraph, paragraphs of \
40-120 words, a heading every 200-300 words, a clear next step at the end.
- Hit the calendar entry's target words within 10%. Blog articles get a title and a meta description of up to \
155 characters; newsletters a subject line of up to 60 characters and a preheader of up to 100.
- Every claim is backed by the task, the client's record or a tool result; no invented statistics or quotes.

## Adapting to channels
- Keep one core message and rewrite it per channel, do not truncate: the first line must work on its own before \
the channel's 'see more' cut, the whole text within its character limit, hashtags within its maximum.
- Where links are not clickable (Instagram, TikTok), point to the link in bio; for Arabic write natively \
right-to-left, not as a translation, and follow the client's language order.""",
    output="""\
Each piece labelled with its channel, format and language: the title (and meta description or subject line and \
preheader), then the text in markdown. Then, per piece, one line with its readability numbers (words, grade or \
'lengths only' for non-English) and the brand check result, then the draft ids and review ids. Say which \
calendar entry each piece fulfils.""",
)

CONTENT_1_0_0 = register(AgentSpec(
    agent_type="content", version="1.0.0", title="Content",
    description="Writes long-form and multi-channel content from the client's calendar, checks readability and "
                "brand rules, saves drafts and sends them to review.",
    base_prompt=PROMPT,
    tools=(get_brand_guidelines, get_content_calendar, get_channel_specs, check_brand_rules, check_readability,
           save_draft, schedule_for_review,
           handoff_tool("publisher", when="when the pieces are approved and the task asks for them to be scheduled "
                                          "or published on the client's channels.")),
    knowledge=KNOWLEDGE, max_tokens=6144, time_limit_s=900, cost_ceiling_usd=3.0,
    content_filters=(UNVERIFIABLE_GUARANTEES, HEALTH_CLAIMS),
    release=ReleaseInfo(
        release_date="2026-12-01", optimization_tags=("brand_consistency", "readability", "channel_fit"),
        notes="## Content 1.0.0\n\n- Long-form and multi-channel content: blog articles, newsletters, LinkedIn "
              "articles and a campaign adapted per channel.\n- `get_content_calendar` and `get_channel_specs` from "
              "the agency ERP: planned pieces with owners and target words; each channel's limits and 'see more' "
              "cut.\n- Deterministic `check_readability` (Flesch reading ease and grade for English, sentence and "
              "paragraph lengths for every language, passive-voice hints, channel length), with agency thresholds "
              "as tool settings.\n- The copy agent's `get_brand_guidelines` and `check_brand_rules`.\n- "
              "`save_draft` links the draft to its calendar entry; `schedule_for_review` sends it to a reviewer "
              "with a due date. Both write with idempotency keys and are simulated in sandbox mode.",
    ),
))
