"""The publishing queue (the publisher agent's): channel connections per client, posts and their status.

What an agency's publishing desk keeps: which social and owned channels each client has
connected (an expired token is the most common reason a post fails, so the status is data,
not a surprise at publish time), each client's publishing profile (time zone, posting windows,
whether the client signs off posts), and the queue itself. A post is created `scheduled`
through the generic `POST /posts`, which refuses a channel the client has no connected account
for, a time in the past and a text over the channel's limit; it becomes `published` only
through `POST /posts/<id>/publish` and `deleted` only through `DELETE /posts/<id>`, each exactly
once per idempotency key. Metrics of a published post are computed from its id, so every run
and test sees the same numbers.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from . import data
from .domain import Domain, WriteKind

POST_STATUSES = ("scheduled", "published", "failed", "deleted")
CONNECTION_STATUSES = ("connected", "expired", "pending")
LINK = re.compile(r"https?://\S+")
X_LINK_CHARS = 23  # X counts every link as 23 characters


def text_length(channel: str, text: str) -> int:
    """The length the channel counts (X shortens every link to 23 characters)."""
    if channel == "x":
        return len(LINK.sub("x" * X_LINK_CHARS, text))
    return len(text)


# --- seeds ---------------------------------------------------------------------------------


def _connection(cid: str, client: str, channel: str, handle: str, status: str, connected_at: str | None,
                expires_at: str | None, scopes: list[str]) -> dict[str, Any]:
    return {"id": cid, "client": client, "channel": channel, "label": data.CHANNEL_SPECS[channel]["label"],
            "handle": handle, "status": status, "connected_at": connected_at, "expires_at": expires_at,
            "scopes": scopes}


_PUBLISH = ["read", "publish"]
_PUBLISH_INSIGHTS = ["read", "publish", "insights"]

CONNECTIONS: dict[str, list[dict[str, Any]]] = {
    "alpha": [
        _connection("alpha-conn-01", "desert-bloom-cosmetics", "instagram", "desertbloom.me", "connected",
                    "2026-06-02T10:00:00+04:00", "2027-06-02T10:00:00+04:00", _PUBLISH_INSIGHTS),
        _connection("alpha-conn-02", "desert-bloom-cosmetics", "instagram_story", "desertbloom.me", "connected",
                    "2026-06-02T10:00:00+04:00", "2027-06-02T10:00:00+04:00", _PUBLISH_INSIGHTS),
        _connection("alpha-conn-03", "desert-bloom-cosmetics", "tiktok", "desertbloom", "connected",
                    "2026-08-14T09:30:00+04:00", "2027-02-14T09:30:00+04:00", _PUBLISH),
        _connection("alpha-conn-04", "desert-bloom-cosmetics", "snapchat", "desertbloomme", "expired",
                    "2026-03-01T12:00:00+04:00", "2026-11-28T12:00:00+04:00", _PUBLISH),
        _connection("alpha-conn-05", "gulf-bank", "linkedin", "gulf-bank", "connected",
                    "2026-05-20T08:00:00+04:00", "2027-05-20T08:00:00+04:00", _PUBLISH_INSIGHTS),
        _connection("alpha-conn-06", "gulf-bank", "x", "GulfBank", "connected",
                    "2026-05-20T08:05:00+04:00", None, _PUBLISH_INSIGHTS),
        _connection("alpha-conn-07", "gulf-bank", "facebook", "GulfBankUAE", "pending", None, None, []),
        _connection("alpha-conn-08", "gulf-bank", "youtube", "GulfBankOfficial", "connected",
                    "2026-07-01T11:00:00+04:00", None, _PUBLISH),
    ],
    "beta": [
        _connection("beta-conn-01", "thames-outfitters", "instagram", "thamesoutfitters", "connected",
                    "2026-04-11T09:00:00+01:00", "2027-04-11T09:00:00+01:00", _PUBLISH_INSIGHTS),
        _connection("beta-conn-02", "thames-outfitters", "facebook", "ThamesOutfitters", "connected",
                    "2026-04-11T09:05:00+01:00", "2027-04-11T09:05:00+01:00", _PUBLISH_INSIGHTS),
        _connection("beta-conn-03", "thames-outfitters", "email", "news.thamesoutfitters.example", "connected",
                    "2026-02-03T10:00:00+00:00", None, _PUBLISH),
        _connection("beta-conn-04", "covent-kitchen", "instagram", "coventkitchen", "connected",
                    "2026-09-01T08:00:00+01:00", "2027-09-01T08:00:00+01:00", _PUBLISH_INSIGHTS),
        _connection("beta-conn-05", "covent-kitchen", "tiktok", "coventkitchen", "expired",
                    "2026-01-15T08:00:00+00:00", "2026-11-15T08:00:00+00:00", _PUBLISH),
        _connection("beta-conn-06", "covent-kitchen", "blog", "coventkitchen.example/journal", "connected",
                    "2026-09-01T08:30:00+01:00", None, _PUBLISH),
    ],
    "gamma": [
        _connection("gamma-conn-01", "hudson-cloud", "linkedin", "hudson-cloud", "connected",
                    "2026-03-09T09:00:00-05:00", "2027-03-09T09:00:00-05:00", _PUBLISH_INSIGHTS),
        _connection("gamma-conn-02", "hudson-cloud", "x", "HudsonCloud", "connected",
                    "2026-03-09T09:10:00-05:00", None, _PUBLISH_INSIGHTS),
        _connection("gamma-conn-03", "hudson-cloud", "youtube", "HudsonCloudPlatform", "connected",
                    "2026-03-09T09:20:00-05:00", None, _PUBLISH),
        _connection("gamma-conn-04", "hudson-cloud", "blog", "hudson.cloud.example/blog", "connected",
                    "2026-03-09T09:30:00-05:00", None, _PUBLISH),
        _connection("gamma-conn-05", "brooklyn-health", "facebook", "BrooklynHealthNYC", "connected",
                    "2026-05-05T10:00:00-04:00", "2027-05-05T10:00:00-04:00", _PUBLISH_INSIGHTS),
        _connection("gamma-conn-06", "brooklyn-health", "instagram", "brooklynhealth", "pending", None, None, []),
        _connection("gamma-conn-07", "brooklyn-health", "email", "care.brooklynhealth.example", "connected",
                    "2026-05-05T10:30:00-04:00", None, _PUBLISH),
    ],
}

_TIME_ZONES = {"alpha": "Asia/Dubai", "beta": "Europe/London", "gamma": "America/New_York"}

# client -> (approval_required, {channel: local posting windows})
_PROFILES: dict[str, tuple[bool, dict[str, list[str]]]] = {
    "desert-bloom-cosmetics": (True, {"instagram": ["12:00", "21:00"], "tiktok": ["20:00", "22:30"],
                                      "instagram_story": ["09:00", "21:30"]}),
    "gulf-bank": (True, {"linkedin": ["08:30", "12:30"], "x": ["09:00", "17:00"], "youtube": ["19:00"]}),
    "thames-outfitters": (False, {"instagram": ["08:00", "19:00"], "facebook": ["12:00"], "email": ["07:00"]}),
    "covent-kitchen": (False, {"instagram": ["11:00", "17:30"], "blog": ["10:00"]}),
    "hudson-cloud": (True, {"linkedin": ["09:00", "12:00"], "x": ["10:00", "15:00"], "blog": ["08:00"]}),
    "brooklyn-health": (True, {"facebook": ["10:00", "18:00"], "email": ["08:00"]}),
}


def _post(pid: str, client: str, channel: str, text: str, scheduled_at: str, status: str, created_at: str, *,
          media: list[dict[str, Any]] | None = None, published_at: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"id": pid, "client": client, "channel": channel, "text": text, "media": media or [],
                           "scheduled_at": scheduled_at, "status": status, "created_at": created_at}
    if published_at:
        row["published_at"] = published_at
        row["permalink"] = None  # filled by _seeded_posts from the connection's handle
    return row


_IMAGE = {"type": "image", "width": 1080, "height": 1350}
_SQUARE = {"type": "image", "width": 1080, "height": 1080}
_LINK_IMAGE = {"type": "image", "width": 1200, "height": 627}
_VERTICAL_VIDEO = {"type": "video", "width": 1080, "height": 1920, "duration_s": 28}

POSTS: dict[str, list[dict[str, Any]]] = {
    "alpha": [
        _post("alpha-post-s01", "desert-bloom-cosmetics", "instagram",
              "Radiance rooted in the desert. The Desert Bloom winter collection is here, halal-certified and made "
              "for the Gulf sun. #DesertBloom #HalalBeauty", "2026-11-30T12:00:00+04:00", "published",
              "2026-11-25T09:00:00+04:00", media=[_IMAGE], published_at="2026-11-30T12:00:04+04:00"),
        _post("alpha-post-s02", "desert-bloom-cosmetics", "tiktok",
              "Three shades inspired by dunes at dusk. Which one is yours? #DesertBloom",
              "2026-12-18T20:00:00+04:00", "scheduled", "2026-11-28T10:00:00+04:00", media=[_VERTICAL_VIDEO]),
        _post("alpha-post-s03", "desert-bloom-cosmetics", "snapchat", "New shades. Swipe up.",
              "2026-12-01T21:00:00+04:00", "failed", "2026-11-26T10:00:00+04:00", media=[_VERTICAL_VIDEO]),
        _post("alpha-post-s04", "gulf-bank", "linkedin",
              "Your business is growing. Your bank should keep up. Open a Gulf Bank SME account in 10 minutes. "
              "Terms apply. https://gulfbank.example/sme", "2026-12-08T08:30:00+04:00", "scheduled",
              "2026-11-27T14:00:00+04:00", media=[_LINK_IMAGE]),
        _post("alpha-post-s05", "gulf-bank", "x",
              "Home finance with clear rates and Sharia-compliant options. Terms apply. https://gulfbank.example/home",
              "2027-01-12T09:00:00+04:00", "scheduled", "2026-11-29T11:00:00+04:00"),
    ],
    "beta": [
        _post("beta-post-s01", "thames-outfitters", "instagram",
              "Rain is just weather. Our waxed jackets have seen forty years of it, and our repairs desk keeps them "
              "going. #ThamesOutfitters", "2026-11-30T08:00:00+00:00", "published", "2026-11-24T16:00:00+00:00",
              media=[_IMAGE], published_at="2026-11-30T08:00:02+00:00"),
        _post("beta-post-s02", "thames-outfitters", "email",
              "Subject: Forty winters, one jacket\n\nBring yours in: free re-proofing at every shop until January.",
              "2026-12-10T07:00:00+00:00", "scheduled", "2026-11-30T10:00:00+00:00"),
        _post("beta-post-s03", "covent-kitchen", "instagram",
              "Christmas set menu, sorted. Turkey from Norfolk, sprouts we promise you'll like. Contains gluten, "
              "dairy. #CoventKitchen", "2026-12-05T11:00:00+00:00", "scheduled", "2026-11-29T09:00:00+00:00",
              media=[_SQUARE]),
        _post("beta-post-s04", "covent-kitchen", "blog",
              "Meet our suppliers: the Hampshire farm behind our brunch eggs.", "2027-01-20T10:00:00+00:00",
              "deleted", "2026-11-20T09:00:00+00:00"),
    ],
    "gamma": [
        _post("gamma-post-s01", "hudson-cloud", "linkedin",
              "Northwind cut deploy times 42% after moving to Hudson Cloud Platform. Read how their platform team "
              "did it: https://hudson.cloud.example/northwind", "2026-11-30T09:00:00-05:00", "published",
              "2026-11-23T15:00:00-05:00", media=[_LINK_IMAGE], published_at="2026-11-30T09:00:03-05:00"),
        _post("gamma-post-s02", "hudson-cloud", "x",
              "Managed Kubernetes from $0.04/hour on Hudson Cloud Platform. https://hudson.cloud.example/k8s",
              "2026-12-09T10:00:00-05:00", "scheduled", "2026-11-30T12:00:00-05:00"),
        _post("gamma-post-s03", "brooklyn-health", "facebook",
              "Same-day appointments in Park Slope and Bushwick, open late. Book in two taps.",
              "2026-12-07T10:00:00-05:00", "scheduled", "2026-11-30T13:00:00-05:00", media=[_LINK_IMAGE]),
        _post("gamma-post-s04", "brooklyn-health", "email",
              "Subject: Flu shots, no appointment needed\n\nWalk in at any Brooklyn Health clinic. Talk to your "
              "doctor about which vaccines are right for you.", "2027-02-02T08:00:00-05:00", "scheduled",
              "2026-11-30T13:30:00-05:00"),
    ],
}


_PERMALINKS = {
    "instagram": "https://www.instagram.com/p/{code}/",
    "instagram_story": "https://www.instagram.com/stories/{handle}/{num}/",
    "facebook": "https://www.facebook.com/{handle}/posts/{num}",
    "linkedin": "https://www.linkedin.com/feed/update/urn:li:share:{num}/",
    "x": "https://x.com/{handle}/status/{num}",
    "tiktok": "https://www.tiktok.com/@{handle}/video/{num}",
    "snapchat": "https://www.snapchat.com/add/{handle}",
    "youtube": "https://www.youtube.com/watch?v={code}",
    "email": "https://{handle}/archive/{code}",
    "blog": "https://{handle}/{code}",
}


def _account(rows: list[dict[str, Any]], client: str, channel: str) -> dict[str, Any] | None:
    """The client's account on the channel (a client has at most one per channel)."""
    return next((c for c in rows if c["client"] == client and c["channel"] == channel), None)


def _digest(post_id: str) -> bytes:
    return hashlib.sha256(post_id.encode()).digest()


def permalink(channel: str, handle: str, post_id: str) -> str:
    digest = _digest(post_id)
    return _PERMALINKS[channel].format(handle=handle, code=digest[:8].hex(), num=int.from_bytes(digest[:7]))


def metrics(post: dict[str, Any]) -> dict[str, Any]:
    """A published post's engagement, the same every time for the same post (from its id)."""
    digest = _digest(post["id"])
    impressions = 2_000 + int.from_bytes(digest[:3]) % 48_000
    reach = impressions * (60 + digest[3] % 30) // 100
    engagements = impressions * (10 + digest[4] % 60) // 1000
    likes = engagements * (55 + digest[5] % 25) // 100
    comments = engagements * (3 + digest[6] % 7) // 100
    shares = engagements * (4 + digest[7] % 8) // 100
    clicks = engagements - likes - comments - shares
    return {"impressions": impressions, "reach": reach, "engagements": engagements, "likes": likes,
            "comments": comments, "shares": shares, "clicks": clicks,
            "engagement_rate": round(engagements / impressions, 4)}


def _seeded_posts(agency: str) -> list[dict[str, Any]]:
    rows = []
    for row in POSTS[agency]:
        row = dict(row)
        if row["status"] == "published":
            connection = _account(CONNECTIONS[agency], row["client"], row["channel"])
            row["permalink"] = permalink(row["channel"], connection["handle"], row["id"])
        rows.append(row)
    return rows


def seed(agency: str) -> dict[str, list[dict[str, Any]]]:
    clients = [c["slug"] for c in data.CLIENTS[agency]]
    profiles = [{"client": slug, "timezone": _TIME_ZONES[agency], "approval_required": _PROFILES[slug][0],
                 "posting_windows": _PROFILES[slug][1]} for slug in clients]
    return {"channel_connections": [dict(c) for c in CONNECTIONS[agency]], "publishing_profiles": profiles,
            "posts": _seeded_posts(agency)}


# --- checks ----------------------------------------------------------------------------------


def _error(status: int, code: str, message: str) -> Exception:
    from .server import ErpError

    return ErpError(status, code, message)


def parse_time(value: Any, name: str = "scheduled_at") -> datetime:
    """An ISO 8601 datetime with a time zone, or a 400."""
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _error(400, "invalid", f"{name}: {value!r} is not an ISO 8601 datetime such as "
                                     "2027-01-15T09:00:00+04:00.") from None
    if when.tzinfo is None:
        raise _error(400, "invalid", f"{name}: {value!r} has no time zone; add one, e.g. +04:00 or Z.")
    return when


def _check_post(store: Any, agency: str, body: dict[str, Any]) -> None:
    """A post the queue can publish: a known channel the client has connected, a time still to come,
    a text within the channel's limit, media where the channel needs it. Runs on create and on PATCH."""
    if body.get("status") in ("published", "deleted"):
        raise _error(409, "conflict", f"Post {body.get('id')} is {body['status']}; it can no longer be changed. "
                                      "Schedule a new post instead.")
    channel = body["channel"]
    spec = data.CHANNEL_SPECS.get(channel)
    if spec is None:
        raise _error(400, "invalid", f"channel: {channel!r} is not a publishing channel; channels: "
                                     f"{', '.join(data.CHANNEL_SPECS)}.")
    connection = _account(store.table(agency, "channel_connections"), body["client"], channel)
    if connection is None or connection["status"] != "connected":
        state = "has no account connected" if connection is None else f"account is {connection['status']}"
        verb = "reconnect" if connection is not None and connection["status"] == "expired" else "connect"
        raise _error(400, "not_connected", f"channel: the {spec['label']} {state} for {body['client']}; someone "
                                           f"with the client's login must {verb} it in the publishing settings "
                                           "before posts can be scheduled there.")
    when = parse_time(body["scheduled_at"])
    if when <= datetime.now(UTC):
        raise _error(400, "invalid", f"scheduled_at: {body['scheduled_at']} is in the past; choose a time still "
                                     "to come.")
    length = text_length(channel, body["text"])
    if length > spec["max_chars"]:
        raise _error(400, "invalid", f"text: {length} characters is over the {spec['label']} limit of "
                                     f"{spec['max_chars']}; shorten it.")
    if spec["media"] == "required" and not body.get("media"):
        raise _error(400, "invalid", f"media: the {spec['label']} needs an image or a video; add one.")


POSTS_KIND = WriteKind(
    "posts", "post",
    {"client": ((str,), True), "channel": ((str,), True), "text": ((str,), True), "scheduled_at": ((str,), True),
     "media": ((list,), False), "draft_id": ((str,), False), "metadata": ((dict,), False)},
    check=_check_post, status="scheduled")


# --- endpoints ---------------------------------------------------------------------------------


def routes(app: Any) -> list[tuple[str, dict[str, Any]]]:
    store = app.store

    def _client(request: Any) -> str | None:
        slug = request.query.get("client") or None
        if slug:
            store.client(request.agency, slug)  # 404 naming the agency's clients
        return slug

    def _one_of(request: Any, name: str, allowed: tuple[str, ...] | list[str]) -> str | None:
        value = request.query.get(name) or None
        if value is not None and value not in allowed:
            raise _error(400, "invalid", f"{name}: {value!r} is not one of {', '.join(allowed)}.")
        return value

    def list_connections(request: Any) -> tuple[int, Any]:
        client = _client(request)
        channel = _one_of(request, "channel", list(data.CHANNEL_SPECS))
        status = _one_of(request, "status", CONNECTION_STATUSES)
        rows = [c for c in store.table(request.agency, "channel_connections")
                if (not client or c["client"] == client) and (not channel or c["channel"] == channel)
                and (not status or c["status"] == status)]
        return 200, {"count": len(rows), "results": rows}

    def get_profile(request: Any) -> tuple[int, Any]:
        slug = request.params["client"]
        store.client(request.agency, slug)
        return 200, next(p for p in store.table(request.agency, "publishing_profiles") if p["client"] == slug)

    def _body(request: Any) -> Any:
        return request.json() if request.body else None

    def publish(request: Any) -> tuple[int, Any, dict[str, str]]:
        agency, post_id = request.agency, request.params["id"]
        body = _body(request)
        if body not in (None, {}):
            raise _error(400, "invalid", "Publishing takes no fields; send an empty body.")

        def apply(state: dict[str, Any]) -> dict[str, Any]:
            post = store.record(agency, "posts", post_id)
            if post["status"] in ("published", "deleted"):
                extra = f" at {post['published_at']}: {post['permalink']}" if post["status"] == "published" else \
                    "; schedule a new post instead"
                raise _error(409, "conflict", f"Post {post_id} is already {post['status']}{extra}.")
            connection = _account(store.table(agency, "channel_connections"), post["client"], post["channel"])
            if connection is None or connection["status"] != "connected":
                raise _error(409, "not_connected", f"The {post['channel']} account of {post['client']} is not "
                                                   "connected; reconnect it, then publish again.")
            return store.change(state, agency, "posts", post_id, {
                "status": "published", "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "permalink": permalink(post["channel"], connection["handle"], post_id)})

        record, replayed = store.write(agency, "POST", request.path, body, app.idempotency_key(request), apply)
        return 200, record, ({"Idempotent-Replayed": "true"} if replayed else {})

    def delete(request: Any) -> tuple[int, Any, dict[str, str]]:
        agency, post_id = request.agency, request.params["id"]

        def apply(state: dict[str, Any]) -> dict[str, Any]:
            post = store.record(agency, "posts", post_id)
            if post["status"] == "deleted":
                raise _error(409, "conflict", f"Post {post_id} is already deleted.")
            return store.change(state, agency, "posts", post_id, {
                "status": "deleted", "deleted_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "taken_down": post["status"] == "published"})

        record, replayed = store.write(agency, "DELETE", request.path, None, app.idempotency_key(request), apply)
        return 200, record, ({"Idempotent-Replayed": "true"} if replayed else {})

    def post_metrics(request: Any) -> tuple[int, Any]:
        post = store.record(request.agency, "posts", request.params["id"])
        if post["status"] != "published":
            raise _error(409, "conflict", f"Post {post['id']} is {post['status']}; only a published post has "
                                          "metrics.")
        return 200, {"post_id": post["id"], "channel": post["channel"], "as_of": "last sync", **metrics(post)}

    post = r"/posts/(?P<id>[^/]+)"
    return [
        (r"/channel-connections", {"GET": list_connections}),
        (r"/publishing-profiles/(?P<client>[^/]+)", {"GET": get_profile}),
        (post + "/publish", {"POST": publish}),
        (post + "/metrics", {"GET": post_metrics}),
        (post, {"DELETE": delete}),  # after the generic /posts/<id> (GET, PATCH): needs server._route to go on
    ]


DOMAIN = Domain(name="publishing", seed=seed, writes=(POSTS_KIND,), routes=routes)
