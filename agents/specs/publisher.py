"""The publisher agent: gets approved content onto the client's channels through the ERP's publishing
queue — checked against each channel's specs, scheduled rather than pushed, and published or deleted
only with a person's approval (the platform's `publish_*` and `delete_*` confirmation patterns)."""

from __future__ import annotations

from agents.checks import FINANCIAL_PROMISES, HEALTH_CLAIMS, UNVERIFIABLE_GUARANTEES
from agents.registry import AgentSpec, ReleaseInfo, ToolSpec, register
from agents.tools import publisher as tools

from .common import KNOWLEDGE, base_prompt

list_channels = ToolSpec(
    name="list_channels",
    description=(
        "List the client's channel accounts connected to the publishing queue (channel, handle, status connected, "
        "expired or pending, connected and expiry dates, scopes) with the client's time zone, posting windows per "
        "channel and whether the client signs off posts. Call it first: only a connected channel can take a post, "
        "and an expired one needs a person to reconnect it."),
    input_schema=tools.LIST_CHANNELS_SCHEMA,
    handler=tools.list_channels,
)
get_schedule = ToolSpec(
    name="get_schedule",
    description=(
        "Read the publishing queue: posts with their id, client, channel, status (scheduled, published, failed, "
        "deleted), scheduled and published times, permalink and text, earliest first, optionally filtered by "
        "client, date range (from/to, YYYY-MM-DD), status and channel. Use it to avoid double-posting, to find a "
        "free slot and to find a post's id."),
    input_schema=tools.SCHEDULE_SCHEMA,
    handler=tools.get_schedule,
    settings=tools.SCHEDULE_SETTINGS,
)
check_post_specs = ToolSpec(
    name="check_post_specs",
    description=(
        "Check a post deterministically against the channel's published specs from the ERP: characters against the "
        "limit (X counts a link as 23), the 'see more' cut, hashtag count, whether links are clickable, required "
        "media, video length and image sizes. Returns passed, problems (the channel would refuse or break it), "
        "warnings and counts. Run it on every post before preview_post or schedule_post; fix every problem."),
    input_schema=tools.CHECK_SCHEMA,
    handler=tools.check_post_specs,
    settings=tools.CHECK_SETTINGS,
)
preview_post = ToolSpec(
    name="preview_post",
    description=(
        "Show how a post will look without writing anything: the text as the feed shows it before 'see more', "
        "character count against the limit, hashtags and links found, and, given scheduled_at, the time in the "
        "client's time zone and whether it falls in the client's posting window. Use it to show the user the post "
        "before scheduling."),
    input_schema=tools.PREVIEW_SCHEMA,
    handler=tools.preview_post,
)
schedule_post = ToolSpec(
    name="schedule_post",
    description=(
        "Put a post in the client's publishing queue for a future time (a write: once per post, with the final "
        "text). The channel must be connected, the post must have no problems in the channel specs (the same "
        "check as check_post_specs) and the time must be far enough ahead. Returns the post id and status "
        "'scheduled'; in sandbox mode it returns what it would have scheduled. Prefer it to publishing now."),
    input_schema=tools.SCHEDULE_POST_SCHEMA,
    handler=tools.schedule_post,
    side_effect=True,
    settings=tools.SCHEDULE_POST_SETTINGS,
)
publish_post = ToolSpec(
    name="publish_post",
    description=(
        "Publish a scheduled post now, ahead of its time (a write that reaches the public: it needs a person's "
        "approval and pauses the run until it is given). A post with problems in the channel specs check, a deleted "
        "post and an already published one are refused. Returns the status 'published', the time and the permalink; "
        "in sandbox mode it returns what it would have done."),
    input_schema=tools.POST_SCHEMA,
    handler=tools.publish_post,
    side_effect=True,
)
delete_post = ToolSpec(
    name="delete_post",
    description=(
        "Delete a post from the queue; a post already published is taken down from the channel too (a write that "
        "needs a person's approval and pauses the run until it is given). Returns the status 'deleted', when, and "
        "whether it was taken down; in sandbox mode it returns what it would have done. Get the id from "
        "get_schedule."),
    input_schema=tools.DELETE_SCHEMA,
    handler=tools.delete_post,
    side_effect=True,
)
get_post_status = ToolSpec(
    name="get_post_status",
    description=(
        "Read one post's status (scheduled, published, failed, deleted) with its timestamps and permalink; for a "
        "published post also its engagement (impressions, reach, engagements, likes, comments, shares, clicks, "
        "engagement rate). Use it to confirm a publish went out or to report on a post."),
    input_schema=tools.POST_SCHEMA,
    handler=tools.get_post_status,
)

PROMPT = base_prompt(
    role=("You are SpokeStack's publisher agent, the agency's publishing desk. You get approved content onto the "
          "client's channels at the right time, in the right format, and never put anything in public that a "
          "person has not approved."),
    tools="""\
- list_channels: first, for the client's connected accounts, time zone and posting windows.
- get_schedule: before scheduling, to see what is already queued and avoid double-posting; also to find a post's id.
- check_post_specs: on every post, before anything else; fix each problem and check again until it passes.
- preview_post: to show the user how the post will look and when it goes out in the client's time zone.
- schedule_post: the normal way to publish — once per post, in a posting window, after the check passed.
- publish_post: only when the user asks for a post to go out now; it needs a person's approval.
- delete_post: only when the user asks to remove a post; it needs a person's approval and takes a published post down.
- get_post_status: to confirm a post went out and report its engagement.""",
    extra="""\
## Publishing rules
- Never publish or schedule a post that has not passed check_post_specs; the write tools repeat the check and \
refuse a post that fails it.
- Prefer scheduling to publishing now: a queued post can still be stopped. Schedule inside the client's posting \
windows unless the user names a time; give times in the client's time zone.
- publish_post and delete_post need a person's approval; say so, and say what will happen (the channel, the \
account, the text, taken down or not) before you call them. When the client signs off posts \
(approval_required), say that the client's sign-off is needed before the post goes out.
- An expired or pending channel cannot take posts: name it and say who must reconnect it; never work around it \
by using another channel unless the user asks.
- Do not change the approved wording to fit a channel without saying what you changed.""",
    output="""\
A short report: for each post the channel, the account, the status (scheduled, published, deleted), the time in \
the client's time zone, the post id and the permalink when there is one; the specs check result; what still \
needs a person (approvals, reconnections, client sign-off).""",
)

PUBLISHER_1_0_0 = register(AgentSpec(
    agent_type="publisher", version="1.0.0", title="Publishing",
    description="Checks posts against channel specs, schedules them in the ERP's publishing queue, and publishes "
                "or deletes them with a person's approval.",
    base_prompt=PROMPT,
    tools=(list_channels, get_schedule, check_post_specs, preview_post, schedule_post, publish_post, delete_post,
           get_post_status),
    knowledge=KNOWLEDGE, max_tokens=2048, time_limit_s=600, cost_ceiling_usd=1.5,
    content_filters=(UNVERIFIABLE_GUARANTEES, HEALTH_CLAIMS, FINANCIAL_PROMISES),
    release=ReleaseInfo(
        release_date="2026-12-01", optimization_tags=("reliability", "timing"),
        notes="## Publisher 1.0.0\n\n- Channel connections, time zones and posting windows from the agency ERP.\n"
              "- Deterministic `check_post_specs` against each channel's specs, repeated by `schedule_post` and "
              "`publish_post` before they write.\n- `schedule_post` into the ERP's publishing queue with an "
              "idempotency key; `publish_post` and `delete_post` exactly once, each gated by the platform's "
              "`publish_*` / `delete_*` confirmation patterns.\n- `get_post_status` with engagement of published "
              "posts.",
    ),
))
