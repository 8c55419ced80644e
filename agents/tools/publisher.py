"""Publisher tools: the client's connected channels, the publishing queue, a deterministic check of
a post against its channel's specs, a preview, and scheduling, publishing and deleting posts.

`check_post_specs` is not a model call: the same post against the same channel spec always gets
the same verdict, and `schedule_post` and `publish_post` run the same check before they write, so
nothing reaches a channel that the check would have refused. Posts are reached by id, so every
tool that takes one first reads the post and refuses it unless its client is one the run may
act for (`readable_clients`): an id is not a way around an account manager's client scope.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agents.registry import ToolContext, ToolError

from .common import CLIENT_INPUT, client_slug, erp_write, iso_date, only_readable, readable_clients, settings_of

CHANNELS = ("instagram", "instagram_story", "facebook", "linkedin", "x", "tiktok", "snapchat", "youtube", "email",
            "blog")
POST_STATUSES = ("scheduled", "published", "failed", "deleted")
_HASHTAG = re.compile(r"(?<![\w#])#\w+")
_LINK = re.compile(r"https?://\S+")
_X_LINK_CHARS = 23
_POST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")

CHANNEL_INPUT = {"type": "string", "enum": list(CHANNELS),
                 "description": "The publishing channel, as the ERP names it (e.g. 'instagram', 'linkedin', 'x')."}
POST_ID_INPUT = {"type": "string", "minLength": 1, "maxLength": 80,
                 "description": "The post's id in the publishing queue (e.g. 'alpha-post-0001')."}
TEXT_INPUT = {"type": "string", "minLength": 1, "maxLength": 40_000,
              "description": "The post's full text, hashtags and links included, exactly as it will be published."}
MEDIA_INPUT = {
    "type": "array", "maxItems": 10,
    "description": "The images or videos attached, in order (leave out or [] for a text-only post).",
    "items": {"type": "object", "additionalProperties": False, "required": ["type"], "properties": {
        "type": {"type": "string", "enum": ["image", "video"]},
        "width": {"type": "integer", "minimum": 1, "maximum": 10_000, "description": "Pixels."},
        "height": {"type": "integer", "minimum": 1, "maximum": 10_000, "description": "Pixels."},
        "duration_s": {"type": "number", "minimum": 0, "maximum": 86_400, "description": "A video's length."},
        "url": {"type": "string", "maxLength": 500, "description": "Where the asset is stored."},
    }},
}
WHEN_INPUT = {"type": "string", "format": "date-time", "minLength": 16, "maxLength": 40,
              "description": "ISO 8601 date and time with a time zone, e.g. '2027-01-15T09:00:00+04:00'."}


# --- reads -----------------------------------------------------------------------------------

LIST_CHANNELS_SCHEMA = {"type": "object", "properties": {"client": CLIENT_INPUT}, "additionalProperties": False}


def list_channels(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    slug = client_slug(ctx, tool_input)
    erp = ctx.erp()
    connections = erp.get("/channel-connections", params={"client": slug}).get("results", [])
    profile = erp.get(f"/publishing-profiles/{slug}")
    rows = [{**c, "can_publish": c.get("status") == "connected"} for c in connections]
    result: dict[str, Any] = {
        "client": slug, "timezone": profile.get("timezone"), "approval_required": profile.get("approval_required"),
        "posting_windows": profile.get("posting_windows", {}), "channels": rows,
        "publishable": sorted(c["channel"] for c in rows if c["can_publish"])}
    blocked = [f"{c['channel']} ({c['status']})" for c in rows if not c["can_publish"]]
    if blocked:
        result["needs_reconnecting"] = (f"Not publishable until someone with the client's login reconnects them: "
                                        f"{', '.join(blocked)}. Tell the user; do not schedule there.")
    return result


SCHEDULE_SCHEMA = {
    "type": "object",
    "properties": {
        "client": CLIENT_INPUT,
        "from": {"type": "string", "format": "date", "description": "First day (YYYY-MM-DD, UTC) of posts to list."},
        "to": {"type": "string", "format": "date", "description": "Last day (YYYY-MM-DD, UTC) of posts to list."},
        "status": {"type": "string", "enum": list(POST_STATUSES), "description": "Only posts with this status."},
        "channel": CHANNEL_INPUT,
    },
    "additionalProperties": False,
}
SCHEDULE_SETTINGS = {
    "max_posts": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50,
                  "description": "The most posts one call returns (earliest first); count still counts every match."},
}


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def get_schedule(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    clients = readable_clients(ctx, tool_input)
    first, last = _iso(iso_date(tool_input.get("from"), "from")), _iso(iso_date(tool_input.get("to"), "to"))
    if first and last and first > last:
        raise ToolError(f"from ({first}) is after to ({last}); swap them.")
    params = {"client": next(iter(clients))} if clients is not None and len(clients) == 1 else None
    rows = only_readable(ctx.erp().get("/posts", params=params).get("results", []), clients)
    status, channel = tool_input.get("status"), tool_input.get("channel")
    matching = []
    for post in rows:
        day = _utc(post["scheduled_at"]).date().isoformat()
        if (first and day < first) or (last and day > last) or (status and post.get("status") != status) \
                or (channel and post.get("channel") != channel):
            continue
        matching.append({k: post.get(k) for k in ("id", "client", "channel", "status", "scheduled_at", "published_at",
                                                  "permalink", "text") if post.get(k) is not None})
    matching.sort(key=lambda p: (_utc(p["scheduled_at"]), p["id"]))
    shown = matching[:settings_of(ctx, SCHEDULE_SETTINGS)["max_posts"]]
    by_status: dict[str, int] = {}
    for post in matching:
        by_status[post["status"]] = by_status.get(post["status"], 0) + 1
    result: dict[str, Any] = {"count": len(matching), "by_status": by_status, "posts": shown}
    if len(shown) < len(matching):
        result["posts_not_shown"] = len(matching) - len(shown)
    return result


# --- the deterministic check -------------------------------------------------------------------

CHECK_SCHEMA = {
    "type": "object",
    "properties": {"channel": CHANNEL_INPUT, "text": TEXT_INPUT, "media": MEDIA_INPUT, "client": CLIENT_INPUT},
    "required": ["channel", "text"],
    "additionalProperties": False,
}
CHECK_SETTINGS = {
    "warnings_block": {"type": "boolean", "default": False,
                       "description": "Treat warnings (text cut at 'see more', a link that is not clickable, an "
                                      "image size the channel does not list) as failures: passed is false."},
}


def _spec(ctx: ToolContext, channel: str) -> dict[str, Any]:
    return ctx.erp().get("/channel-specs", params={"channel": channel})["results"][0]


def counted_length(channel: str, text: str) -> int:
    """The length the channel counts: X counts every link as 23 characters."""
    return len(_LINK.sub("x" * _X_LINK_CHARS, text)) if channel == "x" else len(text)


def check_post(spec: dict[str, Any], text: str, media: list[dict[str, Any]], *,
               warnings_block: bool = False) -> dict[str, Any]:
    """Problems (the channel refuses or breaks the post) and warnings (it publishes, but worse)."""
    channel, label = spec["channel"], spec["label"]
    problems: list[str] = []
    warnings: list[str] = []
    length = counted_length(channel, text)
    hashtags = _HASHTAG.findall(text)
    links = _LINK.findall(text)
    if length > spec["max_chars"]:
        problems.append(f"The text is {length} characters; {label} allows {spec['max_chars']}. Cut "
                        f"{length - spec['max_chars']}.")
    if spec.get("truncated_at") and length > spec["truncated_at"]:
        warnings.append(f"Only the first {spec['truncated_at']} characters show before 'see more': put the hook "
                        f"and the call to action there (they end with: {text[:spec['truncated_at']][-40:]!r}).")
    if len(hashtags) > spec["max_hashtags"]:
        allowed = "no hashtags" if not spec["max_hashtags"] else f"at most {spec['max_hashtags']} hashtags"
        problems.append(f"{len(hashtags)} hashtag{'s' if len(hashtags) != 1 else ''} ({', '.join(hashtags)}); "
                        f"{label} takes {allowed}.")
    if links and not spec["links_clickable"]:
        warnings.append(f"Links in a {label} text are not clickable ({', '.join(links)}): say 'link in bio' and "
                        "put the link there.")
    if spec["media"] == "required" and not media:
        problems.append(f"{label} needs an image or a video; attach one.")
    for index, item in enumerate(media, start=1):
        if item["type"] == "video":
            if spec.get("video_max_s") is None:
                problems.append(f"Media {index}: {label} takes no video; use an image or a link.")
            elif item.get("duration_s") is not None and item["duration_s"] > spec["video_max_s"]:
                problems.append(f"Media {index}: the video is {item['duration_s']:g}s; {label} allows "
                                f"{spec['video_max_s']}s.")
        size = f"{item.get('width')}x{item.get('height')}"
        if item.get("width") and item.get("height") and size not in spec["image_sizes"]:
            warnings.append(f"Media {index}: {size} is not a {label} size ({', '.join(spec['image_sizes'])}); it "
                            "will be cropped or letterboxed.")
    passed = not problems and not (warnings_block and warnings)
    return {"channel": channel, "passed": passed, "problems": problems, "warnings": warnings,
            "counts": {"characters": length, "max_chars": spec["max_chars"], "hashtags": len(hashtags),
                       "max_hashtags": spec["max_hashtags"], "links": len(links), "media": len(media)},
            "channel_notes": spec.get("notes", "")}


def check_post_specs(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    if ctx.client is not None or tool_input.get("client"):
        client_slug(ctx, tool_input)  # a wrong client is refused here too, not silently ignored
    spec = _spec(ctx, tool_input["channel"])
    return check_post(spec, tool_input["text"], tool_input.get("media") or [],
                      warnings_block=settings_of(ctx, CHECK_SETTINGS)["warnings_block"])


PREVIEW_SCHEMA = {
    "type": "object",
    "properties": {"channel": CHANNEL_INPUT, "text": TEXT_INPUT, "scheduled_at": WHEN_INPUT, "client": CLIENT_INPUT},
    "required": ["channel", "text"],
    "additionalProperties": False,
}


def _when(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ToolError(f"scheduled_at: {value!r} is not an ISO 8601 datetime; use e.g. "
                        "'2027-01-15T09:00:00+04:00'.") from None
    if when.tzinfo is None:
        raise ToolError(f"scheduled_at: {value!r} has no time zone; add the offset (e.g. +04:00) or Z.")
    return when


def _visible(text: str, cut: int | None) -> tuple[str, bool]:
    """The text as the feed shows it before 'see more' (cut at a word boundary)."""
    if not cut or len(text) <= cut:
        return text, False
    head = text[:cut]
    if " " in head and not text[cut].isspace():
        head = head.rsplit(" ", 1)[0]
    return head.rstrip() + "… see more", True


def preview_post(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    slug = client_slug(ctx, tool_input)
    erp = ctx.erp()
    spec = _spec(ctx, tool_input["channel"])
    profile = erp.get(f"/publishing-profiles/{slug}")
    text = tool_input["text"]
    shown, cut = _visible(text, spec.get("truncated_at"))
    result: dict[str, Any] = {
        "client": slug, "channel": spec["channel"], "label": spec["label"], "as_shown": shown, "cut_by_see_more": cut,
        "characters": counted_length(spec["channel"], text), "max_chars": spec["max_chars"],
        "hashtags": _HASHTAG.findall(text), "links": _LINK.findall(text)}
    if tool_input.get("scheduled_at"):
        zone = profile.get("timezone") or "UTC"
        local = _when(tool_input["scheduled_at"]).astimezone(ZoneInfo(zone))
        result["scheduled_local"] = f"{local:%a %d %b %Y %H:%M} ({zone})"
        windows = profile.get("posting_windows", {}).get(spec["channel"], [])
        if windows:
            result["posting_windows"] = windows
            result["in_posting_window"] = f"{local:%H:%M}" in windows
    return result


# --- writes ----------------------------------------------------------------------------------

SCHEDULE_POST_SCHEMA = {
    "type": "object",
    "properties": {"channel": CHANNEL_INPUT, "text": TEXT_INPUT, "scheduled_at": WHEN_INPUT, "media": MEDIA_INPUT,
                   "draft_id": {"type": "string", "maxLength": 80,
                                "description": "The approved draft this post comes from, when there is one."},
                   "client": CLIENT_INPUT},
    "required": ["channel", "text", "scheduled_at"],
    "additionalProperties": False,
}
SCHEDULE_POST_SETTINGS = {
    "min_lead_minutes": {"type": "integer", "minimum": 0, "maximum": 10_080, "default": 15,
                         "description": "How far ahead a post must be scheduled, in minutes (time for the client "
                                        "or a colleague to see it in the queue before it goes out)."},
}


def _refuse_problems(spec: dict[str, Any], text: str, media: list[dict[str, Any]], what: str) -> None:
    """The write tools' gate: a post the channel would refuse or break is never written. Warnings
    do not stop a write (the `warnings_block` setting is check_post_specs', which the prompt
    requires first)."""
    problems = check_post(spec, text, media)["problems"]
    if problems:
        raise ToolError(f"The post fails the {spec['channel']} specs, so it was not {what}: {' '.join(problems)} "
                        "Fix the text or media and call again.")


def schedule_post(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    slug = client_slug(ctx, tool_input)
    when = _when(tool_input["scheduled_at"])
    lead = settings_of(ctx, SCHEDULE_POST_SETTINGS)["min_lead_minutes"]
    earliest = datetime.now(UTC) + timedelta(minutes=lead)
    if when < earliest:
        raise ToolError(f"scheduled_at: {tool_input['scheduled_at']} is too soon; this agency schedules posts at "
                        f"least {lead} minutes ahead (from {earliest.isoformat(timespec='minutes')}). Pick a later "
                        "time, ideally in the client's posting window (list_channels).")
    media = tool_input.get("media") or []
    _refuse_problems(_spec(ctx, tool_input["channel"]), tool_input["text"], media, "scheduled")
    body: dict[str, Any] = {"client": slug, "channel": tool_input["channel"], "text": tool_input["text"],
                            "scheduled_at": when.isoformat(), "media": media,
                            "metadata": {"agent": "publisher", "run_id": ctx.run_id}}
    if tool_input.get("draft_id"):
        body["draft_id"] = tool_input["draft_id"]
    result, simulated = erp_write(ctx, "/posts", body)
    if simulated:
        return result
    return {"post_id": result.get("id"), "status": result.get("status"), "channel": result.get("channel"),
            "scheduled_at": result.get("scheduled_at"), "created_at": result.get("created_at")}


POST_SCHEMA = {"type": "object", "properties": {"post_id": POST_ID_INPUT}, "required": ["post_id"],
               "additionalProperties": False}


def _readable_post(ctx: ToolContext, post_id: str) -> dict[str, Any]:
    """The post, if its client is one this run may act for (else the same answer as a missing post)."""
    from spokestack.erp import ErpError

    if not _POST_ID.fullmatch(post_id):  # it becomes part of the ERP path
        raise ToolError(f"{post_id[:80]!r} is not a post id (such as 'alpha-post-0001'). Call get_schedule to find "
                        "the post's id.")
    clients = readable_clients(ctx, {})
    try:
        post = ctx.erp().get(f"/posts/{post_id}")
    except ErpError as exc:
        if exc.status_code != 404:
            raise
        post = None
    if post is None or (clients is not None and post.get("client") not in clients):
        raise ToolError(f"There is no post {post_id!r} this run may act on. Call get_schedule to find the post's id.")
    return post


def publish_post(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    post = _readable_post(ctx, tool_input["post_id"])
    if post["status"] in ("published", "deleted"):
        raise ToolError(f"Post {post['id']} is already {post['status']}"
                        + (f" ({post.get('permalink')})." if post["status"] == "published" else
                           "; schedule a new post instead."))
    _refuse_problems(_spec(ctx, post["channel"]), post["text"], post.get("media") or [], "published")
    result, simulated = erp_write(ctx, f"/posts/{post['id']}/publish", {})
    if simulated:
        return result
    return {"post_id": result.get("id"), "status": result.get("status"), "published_at": result.get("published_at"),
            "permalink": result.get("permalink")}


DELETE_SCHEMA = {"type": "object", "properties": {"post_id": POST_ID_INPUT}, "required": ["post_id"],
                 "additionalProperties": False}


def delete_post(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    post = _readable_post(ctx, tool_input["post_id"])
    if post["status"] == "deleted":
        raise ToolError(f"Post {post['id']} is already deleted; nothing to do.")
    result, simulated = erp_write(ctx, f"/posts/{post['id']}", None, method="DELETE")
    if simulated:
        return {**result, "would_take_down": post["status"] == "published"}
    return {"post_id": result.get("id"), "status": result.get("status"), "deleted_at": result.get("deleted_at"),
            "taken_down": result.get("taken_down")}


def get_post_status(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    post = _readable_post(ctx, tool_input["post_id"])
    result = {k: post.get(k) for k in ("id", "client", "channel", "status", "scheduled_at", "published_at",
                                       "permalink", "deleted_at", "created_at", "updated_at", "draft_id")
              if post.get(k) is not None}
    if post["status"] == "published":
        metrics = ctx.erp().get(f"/posts/{post['id']}/metrics")
        result["metrics"] = {k: v for k, v in metrics.items() if k not in ("post_id", "channel")}
    elif post["status"] == "failed":
        result["next_step"] = ("The post failed to go out; check list_channels for the account's status, then "
                               "schedule it again.")
    return result
