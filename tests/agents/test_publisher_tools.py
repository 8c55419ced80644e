# ruff: noqa: F811 - the erp fixture is imported by name
"""The publisher agent against a real sample ERP on loopback: channel connections, the publishing
queue, the deterministic specs check, and posts scheduled, published and deleted exactly once per
idempotency key, never in sandbox mode, never for a client outside the run's scope, with
`publish_post` and `delete_post` behind the platform's confirmation patterns."""

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest
from jsonschema import Draft202012Validator

from agents.approvals import approval_rule_for
from agents.knowledge import KNOWLEDGE
from agents.registry import DEFAULT_CONFIRMATION_PATTERNS, ToolError, get_spec
from spokestack.erp import ErpClient, ErpError
from spokestack.sample_erp import data, publishing
from tests.agents.test_tools import call, client_of, erp, make_ctx, writes  # noqa: F401 - erp is a fixture

WRITING = {"schedule_post", "publish_post", "delete_post"}


def ctx_for(base_url, *, client=None, scope=None, settings=None, **kwargs):
    ctx = make_ctx(base_url, client=client_of(client) if client else None, **kwargs)
    return dataclasses.replace(ctx, client_scope=frozenset(scope) if scope is not None else None,
                               settings=settings or {})


def erp_client(base_url, agency="alpha"):
    return ErpClient(base_url=base_url, api_key=data.DEMO_API_KEYS[agency])


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


# --- the spec ---------------------------------------------------------------------------------


def test_the_publisher_spec_is_registered_with_its_eight_tools_and_a_considered_prompt():
    spec = get_spec("publisher")
    assert (spec.agent_type, spec.version, spec.title) == ("publisher", "1.0.0", "Publishing")
    names = [t.name for t in spec.tools]
    assert names[:8] == ["list_channels", "get_schedule", "check_post_specs", "preview_post", "schedule_post",
                         "publish_post", "delete_post", "get_post_status"]
    assert spec.knowledge is KNOWLEDGE and spec.release.notes.startswith("## Publisher 1.0.0")
    assert spec.content_filters and {"delete_*", "publish_*"} <= set(spec.confirmation_patterns)
    for tool in spec.tools[:8]:
        Draft202012Validator.check_schema(tool.input_schema)
        assert tool.input_schema["additionalProperties"] is False
        assert tool.side_effect == (tool.name in WRITING)
        assert len(tool.description.split()) >= 25 and len(tool.description) <= 1024
        assert tool.name in spec.base_prompt
    assert "Think → Act → Create" in spec.base_prompt and "check_post_specs" in spec.base_prompt
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", spec.base_prompt)


def test_publish_and_delete_match_the_platform_confirmation_patterns_and_nothing_else_does():
    spec = get_spec("publisher")
    rules = {t.name: approval_rule_for(tool_name=t.name, patterns=spec.confirmation_patterns,
                                       platform_patterns=DEFAULT_CONFIRMATION_PATTERNS) for t in spec.tools[:8]}
    assert rules["publish_post"] == "platform confirmation pattern 'publish_*'"
    assert rules["delete_post"] == "platform confirmation pattern 'delete_*'"
    assert {name for name, rule in rules.items() if rule} == {"publish_post", "delete_post"}


# --- ERP endpoints ------------------------------------------------------------------------------


def test_erp_channel_connections_profiles_and_specs(erp):
    _, base_url = erp
    client = erp_client(base_url)
    rows = client.get("/channel-connections", params={"client": "gulf-bank"})["results"]
    assert [(r["channel"], r["status"]) for r in rows] == [
        ("linkedin", "connected"), ("x", "connected"), ("facebook", "pending"), ("youtube", "connected")]
    expired = client.get("/channel-connections", params={"status": "expired"})["results"]
    assert [(r["client"], r["channel"]) for r in expired] == [("desert-bloom-cosmetics", "snapchat")]
    with pytest.raises(ErpError) as bad:
        client.get("/channel-connections", params={"status": "broken"})
    assert bad.value.status_code == 400 and "connected, expired, pending" in bad.value.message
    with pytest.raises(ErpError) as unknown:
        client.get("/channel-connections", params={"client": "thames-outfitters"})  # Beta's client
    assert unknown.value.status_code == 404
    profile = client.get("/publishing-profiles/gulf-bank")
    assert profile["timezone"] == "Asia/Dubai" and profile["approval_required"] is True
    assert client.get("/channel-specs", params={"channel": "x"})["results"] == [data.CHANNEL_SPECS["x"]]
    with pytest.raises(ErpError) as no_channel:
        client.get("/channel-specs", params={"channel": "myspace"})
    assert no_channel.value.status_code == 400 and "instagram" in no_channel.value.message


def test_erp_posts_refuse_unconnected_channels_past_times_long_text_and_missing_media(erp):
    _, base_url = erp
    client = erp_client(base_url)
    ok = {"client": "gulf-bank", "channel": "x", "text": "Clear rates. Terms apply.", "scheduled_at": in_hours(24)}
    cases = [({"channel": "facebook"}, "pending for gulf-bank"),
             ({"client": "desert-bloom-cosmetics", "channel": "snapchat", "media": [{"type": "image"}]},
              "expired for desert-bloom-cosmetics"),
             ({"scheduled_at": "2026-01-01T09:00:00+04:00"}, "in the past"),
             ({"scheduled_at": "2027-01-01T09:00:00"}, "has no time zone"),
             ({"scheduled_at": "next tuesday"}, "not an ISO 8601 datetime"),
             ({"text": "x" * 281}, "281 characters is over the X (Twitter) limit of 280"),
             ({"client": "desert-bloom-cosmetics", "channel": "instagram"}, "needs an image or a video"),
             ({"channel": "myspace"}, "not a publishing channel"),
             ({"client": "covent-kitchen"}, "client: no client")]
    for change, message in cases:
        with pytest.raises(ErpError) as refused:
            client.post("/posts", {**ok, **change})
        assert refused.value.status_code == 400 and message in refused.value.message, change
    # X counts a link as 23 characters: 250 letters and a long link fit in 280.
    link_post = client.post("/posts", {**ok, "text": "a" * 250 + " https://gulfbank.example/" + "p" * 80})
    assert link_post["status"] == "scheduled" and link_post["id"] == "alpha-post-0001"
    assert writes(base_url)["count"] == 1


def test_erp_publish_is_exactly_once_and_a_deleted_or_published_post_is_a_409(erp):
    _, base_url = erp
    client = erp_client(base_url)
    first = client.post("/posts/alpha-post-s04/publish", {}, idempotency_key="pub-1")
    again = client.post("/posts/alpha-post-s04/publish", {}, idempotency_key="pub-1")
    assert first == again and first["status"] == "published"
    assert first["permalink"].startswith("https://www.linkedin.com/feed/update/urn:li:share:")
    with pytest.raises(ErpError) as twice:
        client.post("/posts/alpha-post-s04/publish", {}, idempotency_key="pub-2")
    assert twice.value.status_code == 409 and "already published" in twice.value.message
    with pytest.raises(ErpError) as deleted:
        erp_client(base_url, "beta").post("/posts/beta-post-s04/publish", {}, idempotency_key="pub-3")
    assert deleted.value.status_code == 409 and "already deleted" in deleted.value.message
    with pytest.raises(ErpError) as fields:
        client.post("/posts/alpha-post-s02/publish", {"now": True}, idempotency_key="pub-4")
    assert fields.value.status_code == 400
    with pytest.raises(ErpError) as other_agency:
        erp_client(base_url, "beta").post("/posts/alpha-post-s02/publish", {}, idempotency_key="pub-5")
    assert other_agency.value.status_code == 404
    with pytest.raises(ErpError) as changed:
        client.patch("/posts/alpha-post-s04", {"text": "Edited after publishing"}, idempotency_key="patch-1")
    assert changed.value.status_code == 409 and "can no longer be changed" in changed.value.message
    log = writes(base_url)
    assert log["count"] == 1 and len(log["replays"]) == 1


def test_erp_delete_takes_a_published_post_down_exactly_once(erp):
    _, base_url = erp
    client = erp_client(base_url)
    first = client.delete("/posts/alpha-post-s01", idempotency_key="del-1")
    assert client.delete("/posts/alpha-post-s01", idempotency_key="del-1") == first
    assert first["status"] == "deleted" and first["taken_down"] is True
    with pytest.raises(ErpError) as twice:
        client.delete("/posts/alpha-post-s01", idempotency_key="del-2")
    assert twice.value.status_code == 409
    with pytest.raises(ErpError) as other_agency:
        erp_client(base_url, "gamma").delete("/posts/alpha-post-s02", idempotency_key="del-3")
    assert other_agency.value.status_code == 404
    with pytest.raises(ErpError) as metrics:
        client.get("/posts/alpha-post-s02/metrics")
    assert metrics.value.status_code == 409 and "only a published post" in metrics.value.message
    assert writes(base_url)["count"] == 1


# --- reads ----------------------------------------------------------------------------------


def test_list_channels_says_what_can_take_posts_and_what_needs_reconnecting(erp):
    _, base_url = erp
    result = call("publisher", "list_channels", ctx_for(base_url, client="desert-bloom-cosmetics"), {})
    assert result["timezone"] == "Asia/Dubai" and result["approval_required"] is True
    assert result["publishable"] == ["instagram", "instagram_story", "tiktok"]
    assert "snapchat (expired)" in result["needs_reconnecting"]
    assert result["posting_windows"]["instagram"] == ["12:00", "21:00"]
    with pytest.raises(ToolError, match="cannot act for 'gulf-bank'"):
        call("publisher", "list_channels", ctx_for(base_url, client="desert-bloom-cosmetics"), {"client": "gulf-bank"})
    with pytest.raises(ToolError, match="no client 'gulf-bank' this run may act for"):
        call("publisher", "list_channels", ctx_for(base_url, scope={"desert-bloom-cosmetics"}), {"client": "gulf-bank"})


def test_get_schedule_filters_sorts_and_counts(erp):
    _, base_url = erp
    every = call("publisher", "get_schedule", ctx_for(base_url), {})
    assert every["count"] == 5 and every["by_status"] == {"published": 1, "scheduled": 3, "failed": 1}
    assert [p["id"] for p in every["posts"]] == ["alpha-post-s01", "alpha-post-s03", "alpha-post-s04",
                                                 "alpha-post-s02", "alpha-post-s05"]
    december = call("publisher", "get_schedule", ctx_for(base_url),
                    {"from": "2026-12-01", "to": "2026-12-31", "status": "scheduled"})
    assert [p["id"] for p in december["posts"]] == ["alpha-post-s04", "alpha-post-s02"]
    linkedin = call("publisher", "get_schedule", ctx_for(base_url), {"channel": "linkedin"})
    assert [p["id"] for p in linkedin["posts"]] == ["alpha-post-s04"]
    with pytest.raises(ToolError, match="not a date"):
        call("publisher", "get_schedule", ctx_for(base_url), {"from": "01/12/2026"})
    with pytest.raises(ToolError, match="swap them"):
        call("publisher", "get_schedule", ctx_for(base_url), {"from": "2027-01-01", "to": "2026-12-01"})


def test_get_schedule_never_shows_a_client_outside_the_runs_scope(erp):
    _, base_url = erp
    scoped = call("publisher", "get_schedule", ctx_for(base_url, scope={"gulf-bank"}), {})
    assert {p["client"] for p in scoped["posts"]} == {"gulf-bank"} and scoped["count"] == 2
    for_client = call("publisher", "get_schedule", ctx_for(base_url, client="desert-bloom-cosmetics"), {})
    assert {p["client"] for p in for_client["posts"]} == {"desert-bloom-cosmetics"}
    with pytest.raises(ToolError):
        call("publisher", "get_schedule", ctx_for(base_url, scope={"gulf-bank"}), {"client": "desert-bloom-cosmetics"})
    assert call("publisher", "get_schedule", ctx_for(base_url, scope=set()), {})["count"] == 0


def test_get_schedule_max_posts_setting_limits_the_list_not_the_count(erp):
    _, base_url = erp
    result = call("publisher", "get_schedule", ctx_for(base_url, settings={"max_posts": 2}), {})
    assert result["count"] == 5 and len(result["posts"]) == 2 and result["posts_not_shown"] == 3


def test_get_post_status_reports_deterministic_metrics_for_published_posts(erp):
    _, base_url = erp
    ctx = ctx_for(base_url)
    published = call("publisher", "get_post_status", ctx, {"post_id": "alpha-post-s01"})
    assert published["status"] == "published" and published["permalink"].startswith("https://www.instagram.com/p/")
    expected = publishing.metrics({"id": "alpha-post-s01"})
    assert {k: published["metrics"][k] for k in expected} == expected
    assert call("publisher", "get_post_status", ctx, {"post_id": "alpha-post-s01"}) == published
    m = published["metrics"]
    assert m["likes"] + m["comments"] + m["shares"] + m["clicks"] == m["engagements"] <= m["impressions"]
    scheduled = call("publisher", "get_post_status", ctx, {"post_id": "alpha-post-s02"})
    assert scheduled["status"] == "scheduled" and "metrics" not in scheduled
    failed = call("publisher", "get_post_status", ctx, {"post_id": "alpha-post-s03"})
    assert "list_channels" in failed["next_step"]
    with pytest.raises(ToolError, match="not a post id"):
        call("publisher", "get_post_status", ctx, {"post_id": "alpha-post-s01/metrics?x=1"})
    with pytest.raises(ToolError, match="no post 'alpha-post-9999'"):
        call("publisher", "get_post_status", ctx, {"post_id": "alpha-post-9999"})
    with pytest.raises(ToolError, match="no post 'alpha-post-s01'"):
        call("publisher", "get_post_status", ctx_for(base_url, scope={"gulf-bank"}), {"post_id": "alpha-post-s01"})
    with pytest.raises(ToolError):  # another agency's post is as missing as one that does not exist
        call("publisher", "get_post_status", ctx_for(base_url, agency="beta"), {"post_id": "alpha-post-s01"})


# --- the specs check and the preview ---------------------------------------------------------------


def test_check_post_specs_finds_problems_and_warnings(erp):
    _, base_url = erp
    ctx = ctx_for(base_url)
    text = "Glow this Eid. " * 10 + "Shop at https://desertbloom.example " + " ".join(f"#tag{i}" for i in range(31))
    result = call("publisher", "check_post_specs", ctx, {"channel": "instagram", "text": text})
    assert result["passed"] is False
    assert any("31 hashtags" in p and "at most 30" in p for p in result["problems"])
    assert any("needs an image or a video" in p for p in result["problems"])
    assert any("first 125 characters" in w for w in result["warnings"])
    assert any("not clickable" in w for w in result["warnings"])
    assert result["counts"]["hashtags"] == 31 and result["counts"]["links"] == 1
    snap = call("publisher", "check_post_specs", ctx, {
        "channel": "snapchat", "text": "New shades #glow",
        "media": [{"type": "video", "width": 1080, "height": 1920, "duration_s": 75}]})
    assert snap["problems"] == ["1 hashtag (#glow); Snapchat takes no hashtags.",
                                "Media 1: the video is 75s; Snapchat allows 60s."]
    email = call("publisher", "check_post_specs", ctx, {"channel": "email", "text": "Hi", "media": [{"type": "video"}]})
    assert email["problems"] == ["Media 1: Email newsletter takes no video; use an image or a link."]
    x_post = call("publisher", "check_post_specs", ctx,
                  {"channel": "x", "text": "a" * 250 + " https://gulfbank.example/" + "p" * 80})
    assert x_post["passed"] is True and x_post["counts"]["characters"] == 274
    clean = call("publisher", "check_post_specs", ctx, {
        "channel": "instagram", "text": "Radiance rooted in the desert. #DesertBloom",
        "media": [{"type": "image", "width": 1080, "height": 1080}]})
    assert clean == {**clean, "passed": True, "problems": [], "warnings": []}
    assert writes(base_url)["count"] == 0


def test_check_post_specs_warnings_block_setting_fails_a_post_with_warnings(erp):
    _, base_url = erp
    post = {"channel": "linkedin", "text": "Plain numbers, no jargon. " * 10}
    assert call("publisher", "check_post_specs", ctx_for(base_url), post)["passed"] is True
    strict = call("publisher", "check_post_specs", ctx_for(base_url, settings={"warnings_block": True}), post)
    assert strict["passed"] is False and strict["warnings"] and not strict["problems"]
    # The write tools stop on problems only: warnings are the check's verdict, which the prompt requires first.
    scheduled = call("publisher", "schedule_post", ctx_for(base_url, client="gulf-bank"),
                     {**post, "scheduled_at": in_hours(24)})
    assert scheduled["status"] == "scheduled"


def test_preview_post_shows_the_see_more_cut_and_the_clients_local_time(erp):
    _, base_url = erp
    text = "Your business is growing. Your bank should keep up. " * 5
    result = call("publisher", "preview_post", ctx_for(base_url, client="gulf-bank"),
                  {"channel": "linkedin", "text": text, "scheduled_at": "2027-01-12T04:30:00Z"})
    assert result["cut_by_see_more"] is True and result["as_shown"].endswith("… see more")
    assert len(result["as_shown"]) <= 210 + len("… see more") and text.startswith(result["as_shown"][:-10])
    assert result["scheduled_local"] == "Tue 12 Jan 2027 08:30 (Asia/Dubai)" and result["in_posting_window"] is True
    short = call("publisher", "preview_post", ctx_for(base_url, client="thames-outfitters", agency="beta"),
                 {"channel": "x", "text": "Built for drizzle.", "scheduled_at": "2027-06-01T12:00:00+00:00"})
    assert short["as_shown"] == "Built for drizzle." and short["cut_by_see_more"] is False
    assert short["scheduled_local"] == "Tue 01 Jun 2027 13:00 (Europe/London)" and "posting_windows" not in short
    with pytest.raises(ToolError, match="no time zone"):
        call("publisher", "preview_post", ctx_for(base_url, client="gulf-bank"),
             {"channel": "x", "text": "Hi", "scheduled_at": "2027-01-12T09:00:00"})
    assert writes(base_url)["count"] == 0


# --- writes ----------------------------------------------------------------------------------

GOOD_POST = {"channel": "linkedin", "text": "Open a Gulf Bank SME account in 10 minutes. Terms apply.",
             "media": [{"type": "image", "width": 1200, "height": 627}]}


def test_schedule_post_writes_once_per_idempotency_key(erp):
    _, base_url = erp
    tool_input = {**GOOD_POST, "scheduled_at": in_hours(48), "draft_id": "alpha-draft-0001"}
    first = call("publisher", "schedule_post", ctx_for(base_url, client="gulf-bank", key="run-1:sched"), tool_input)
    again = call("publisher", "schedule_post", ctx_for(base_url, client="gulf-bank", key="run-1:sched"), tool_input)
    assert first == again and first["post_id"] == "alpha-post-0001" and first["status"] == "scheduled"
    stored = erp_client(base_url).get("/posts/alpha-post-0001")
    assert stored["draft_id"] == "alpha-draft-0001" and stored["metadata"]["agent"] == "publisher"
    log = writes(base_url)
    assert log["count"] == 1 and len(log["replays"]) == 1


def test_schedule_post_in_sandbox_mode_writes_nothing(erp):
    _, base_url = erp
    result = call("publisher", "schedule_post", ctx_for(base_url, client="gulf-bank", sandbox=True),
                  {**GOOD_POST, "scheduled_at": in_hours(48)})
    assert result["simulated"] is True and result["would_have"]["path"] == "/posts"
    assert writes(base_url)["count"] == 0


def test_schedule_post_refuses_a_failed_check_and_the_erp_refuses_an_expired_channel(erp):
    _, base_url = erp
    ctx = ctx_for(base_url, client="desert-bloom-cosmetics")
    with pytest.raises(ToolError, match="fails the instagram specs"):
        call("publisher", "schedule_post", ctx,
             {"channel": "instagram", "text": "No image", "scheduled_at": in_hours(5)})
    with pytest.raises(ErpError) as expired:
        call("publisher", "schedule_post", ctx, {"channel": "snapchat", "text": "New shades",
                                                 "scheduled_at": in_hours(5),
                                                 "media": [{"type": "image", "width": 1080, "height": 1920}]})
    assert expired.value.status_code == 400 and "reconnect" in expired.value.message
    with pytest.raises(ToolError, match="cannot act for"):
        call("publisher", "schedule_post", ctx, {**GOOD_POST, "scheduled_at": in_hours(5), "client": "gulf-bank"})
    assert writes(base_url)["count"] == 0


def test_schedule_post_min_lead_minutes_setting(erp):
    _, base_url = erp
    soon = {**GOOD_POST, "scheduled_at": in_hours(0.5)}
    strict = ctx_for(base_url, client="gulf-bank", settings={"min_lead_minutes": 60})
    with pytest.raises(ToolError, match="at least 60 minutes ahead"):
        call("publisher", "schedule_post", strict, soon)
    assert call("publisher", "schedule_post", ctx_for(base_url, client="gulf-bank"), soon)["status"] == "scheduled"
    with pytest.raises(ToolError, match="at least 15 minutes ahead"):
        call("publisher", "schedule_post", ctx_for(base_url, client="gulf-bank"), {**GOOD_POST,
                                                                                  "scheduled_at": in_hours(0.1)})


def test_publish_post_publishes_once_and_refuses_what_it_may_not_publish(erp):
    _, base_url = erp
    ctx = ctx_for(base_url, client="gulf-bank", key="run-1:pub")
    first = call("publisher", "publish_post", ctx, {"post_id": "alpha-post-s04"})
    assert first["status"] == "published" and first["permalink"].startswith("https://www.linkedin.com/")
    with pytest.raises(ToolError, match="already published"):
        call("publisher", "publish_post", ctx, {"post_id": "alpha-post-s04"})
    assert writes(base_url)["count"] == 1
    with pytest.raises(ToolError, match="no post 'alpha-post-s04' this run may act on"):
        call("publisher", "publish_post", ctx_for(base_url, scope={"desert-bloom-cosmetics"}),
             {"post_id": "alpha-post-s04"})
    with pytest.raises(ToolError, match="no post 'alpha-post-s02' this run may act on"):  # another client's
        call("publisher", "publish_post", ctx, {"post_id": "alpha-post-s02"})
    with pytest.raises(ToolError, match="already deleted"):
        call("publisher", "publish_post", ctx_for(base_url, agency="beta"), {"post_id": "beta-post-s04"})
    with pytest.raises(ErpError) as expired:  # the failed Snapchat post: its account has expired since
        call("publisher", "publish_post", ctx_for(base_url), {"post_id": "alpha-post-s03"})
    assert expired.value.status_code == 409 and "reconnect" in expired.value.message
    assert writes(base_url)["count"] == 1


def test_publish_post_runs_the_specs_check_before_it_writes(erp):
    _, base_url = erp
    client = erp_client(base_url)
    client.patch("/posts/alpha-post-s05", {"text": "Home finance, clear rates. #a #b #c"}, idempotency_key="p-1")
    with pytest.raises(ToolError, match="fails the x specs, so it was not published: 3 hashtags"):
        call("publisher", "publish_post", ctx_for(base_url), {"post_id": "alpha-post-s05"})
    assert writes(base_url)["count"] == 1  # the PATCH only


def test_publish_post_in_sandbox_mode_reaches_nothing(erp):
    _, base_url = erp
    result = call("publisher", "publish_post", ctx_for(base_url, sandbox=True), {"post_id": "alpha-post-s04"})
    assert result == {"simulated": True, "would_have": {"method": "POST", "path": "/posts/alpha-post-s04/publish",
                                                        "body": {}}}
    assert writes(base_url)["count"] == 0
    assert erp_client(base_url).get("/posts/alpha-post-s04")["status"] == "scheduled"


def test_delete_post_takes_down_once_per_key(erp):
    _, base_url = erp
    ctx = ctx_for(base_url, key="run-1:del")
    first = call("publisher", "delete_post", ctx, {"post_id": "alpha-post-s01"})
    assert first["status"] == "deleted" and first["taken_down"] is True
    with pytest.raises(ToolError, match="already deleted"):
        call("publisher", "delete_post", ctx, {"post_id": "alpha-post-s01"})
    queued = call("publisher", "delete_post", ctx_for(base_url, key="run-1:del2"), {"post_id": "alpha-post-s02"})
    assert queued["taken_down"] is False
    assert writes(base_url)["count"] == 2
    with pytest.raises(ToolError, match="no post"):
        call("publisher", "delete_post", ctx_for(base_url, scope={"desert-bloom-cosmetics"}),
             {"post_id": "alpha-post-s04"})


def test_delete_post_in_sandbox_mode_reaches_nothing(erp):
    _, base_url = erp
    result = call("publisher", "delete_post", ctx_for(base_url, sandbox=True), {"post_id": "alpha-post-s01"})
    assert result["simulated"] is True and result["would_take_down"] is True
    assert result["would_have"] == {"method": "DELETE", "path": "/posts/alpha-post-s01"}
    assert writes(base_url)["count"] == 0
    assert erp_client(base_url).get("/posts/alpha-post-s01")["status"] == "published"
