# ruff: noqa: F811 - the erp fixture is imported by name
"""The content agent's tools and ERP endpoints against a real sample ERP on loopback: the
calendar's real rows back (filtered, scoped to the run's clients), channel specs, a deterministic
readability check whose verdict follows the agency's settings, and drafts and review requests
written exactly once per idempotency key and never in sandbox mode."""

import dataclasses
import json
import urllib.error
import urllib.request
from datetime import date

import pytest

from agents.registry import ToolContext, ToolError, get_spec
from agents.tools import copywriting
from spokestack.erp import ErpError
from spokestack.sample_erp import data
from spokestack.sample_erp.content import DOMAIN, FORMATS, STATUSES
from spokestack.sample_erp.server import start_sample_erp

from .test_tools import call, client_of, erp, make_ctx, writes  # noqa: F401 - erp is a fixture

ARTICLE = """\
# Why we repair

Rain is just weather. Our waxed jackets have seen forty years of it, and the stitching was built to be replaced \
rather than thrown away.

When a seam goes, we fix it. The jacket is returned within two weeks, and it is worn for another decade by most \
of our customers who send them in.
"""


def http(base_url: str, method: str, path: str, body=None, *, agency: str = "alpha", key: str | None = None):
    """(status, JSON) of one raw request: the ERP's own status codes, not the client's mapping."""
    headers = {"X-Api-Key": data.DEMO_API_KEYS[agency], "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(base_url + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback test server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def scoped(ctx: ToolContext, **changes) -> ToolContext:
    return dataclasses.replace(ctx, **changes)


def a_draft(base_url: str, client: str = "gulf-bank", agency: str = "alpha") -> str:
    status, draft = http(base_url, "POST", "/drafts", {"client": client, "content": "A draft."}, agency=agency)
    assert status == 201
    return draft["id"]


# --- the seeded calendar ------------------------------------------------------------------


@pytest.mark.parametrize("agency", sorted(data.AGENCIES))
def test_every_calendar_entry_is_a_real_client_channel_owner_and_date(agency):
    rows = DOMAIN.seed(agency)["content_calendar"]
    clients = {c["slug"] for c in data.CLIENTS[agency]}
    team = {m["id"] for m in data.TEAM[agency]}
    for slug in clients:
        assert 6 <= sum(r["client"] == slug for r in rows) <= 10, slug
    for row in rows:
        assert row["client"] in clients and row["owner"] in team and row["channel"] in data.CHANNEL_SPECS
        assert row["format"] in FORMATS and row["status"] in STATUSES
        assert date(2026, 11, 30) <= date.fromisoformat(row["date"]) <= date(2027, 3, 31)
    assert len({r["id"] for r in rows}) == len(rows)


# --- ERP endpoints ------------------------------------------------------------------------


def test_content_calendar_endpoint_filters_and_sorts_by_date(erp):
    _, base_url = erp
    status, body = http(base_url, "GET", "/content-calendar?client=gulf-bank&from=2027-01-01&status=planned")
    assert status == 200
    assert [r["id"] for r in body["results"]] == ["alpha-cc13", "alpha-cc14", "alpha-cc15", "alpha-cc16"]
    assert body["results"][0] == {
        "id": "alpha-cc13", "client": "gulf-bank", "date": "2027-01-20", "channel": "youtube",
        "format": "video_script", "topic": "How Sharia-compliant home finance works", "status": "planned",
        "owner": "alpha-t04", "campaign": "Home finance awareness", "target_words": None, "language": "en"}
    _, everything = http(base_url, "GET", "/content-calendar")
    dates = [r["date"] for r in everything["results"]]
    assert everything["count"] == 16 and dates == sorted(dates)
    _, blogs = http(base_url, "GET", "/content-calendar?channel=BLOG&to=2026-12-31&format=blog_article")
    assert [r["id"] for r in blogs["results"]] == ["alpha-cc10", "alpha-cc02"]


@pytest.mark.parametrize("query, status, message", [
    ("from=2027/01/01", 400, "from: '2027/01/01' is not a date; use YYYY-MM-DD"),
    ("to=2027-02-30", 400, "to: '2027-02-30' is not a date"),
    ("from=2027-03-01&to=2027-01-01", 400, "from (2027-03-01) is after to (2027-01-01)"),
    ("channel=tv", 400, "channel: 'tv' is not a channel the ERP has specs for; known channels: instagram, "),
    ("status=done", 400, "status: 'done' is not one of planned, in_progress, in_review, approved, published."),
    ("format=podcast", 400, "format: 'podcast' is not one of blog_article"),
    ("client=thames-outfitters", 404, "No client 'thames-outfitters'. Clients: desert-bloom-cosmetics, gulf-bank."),
])
def test_content_calendar_endpoint_refuses_bad_filters_readably(erp, query, status, message):
    _, base_url = erp
    got, body = http(base_url, "GET", f"/content-calendar?{query}")
    assert got == status and message in body["error"]["message"]


def test_channel_specs_endpoint_lists_all_or_one_and_names_the_known_ones(erp):
    _, base_url = erp
    status, body = http(base_url, "GET", "/channel-specs")
    assert status == 200 and body["count"] == len(data.CHANNEL_SPECS) == 10
    _, one = http(base_url, "GET", "/channel-specs?channel=LinkedIn")
    assert one["results"] == [data.CHANNEL_SPECS["linkedin"]]
    status, error = http(base_url, "GET", "/channel-specs?channel=tv")
    assert status == 400 and "known channels: instagram, instagram_story, facebook" in error["error"]["message"]
    assert http(base_url, "POST", "/channel-specs", {})[0] == 405


def test_reviews_endpoint_checks_draft_client_reviewer_and_due_date(erp):
    _, base_url = erp
    draft = a_draft(base_url)
    review = {"client": "gulf-bank", "draft_id": draft, "reviewer": "alpha-t01", "due_date": "2027-01-15"}
    cases = [
        ({**review, "draft_id": "alpha-draft-0099"}, 404, "No draft 'alpha-draft-0099'. Save the draft first"),
        ({**review, "client": "desert-bloom-cosmetics"}, 400,
         f"draft_id: draft '{draft}' belongs to client 'gulf-bank', not 'desert-bloom-cosmetics'."),
        ({**review, "reviewer": "beta-t05"}, 400, "reviewer: 'beta-t05' is not on the agency's team; use a team "
                                                  "member id: alpha-t01 (Noura Al Suwaidi, Strategy Director)"),
        ({**review, "due_date": "15/01/2027"}, 400, "due_date: '15/01/2027' is not a date; use YYYY-MM-DD"),
        ({k: v for k, v in review.items() if k != "reviewer"}, 400, "reviewer: this field is required."),
        ({**review, "client": "covent-kitchen"}, 400, "client: no client 'covent-kitchen'."),
    ]
    for body, status, message in cases:
        got, answer = http(base_url, "POST", "/reviews", body)
        assert got == status and message in answer["error"]["message"], (body, answer)
    status, created = http(base_url, "POST", "/reviews", review, key="k-review")
    assert status == 201 and created["id"] == "alpha-review-0001" and created["status"] == "requested"
    assert http(base_url, "POST", "/reviews", review, key="k-review")[1] == created
    assert writes(base_url)["count"] == 2  # the draft and one review
    status, patched = http(base_url, "PATCH", f"/reviews/{created['id']}", {"status": "changes_requested"})
    assert status == 200 and patched["status"] == "changes_requested"
    status, bad = http(base_url, "PATCH", f"/reviews/{created['id']}", {"status": "published"})
    assert status == 400 and "requested, approved, changes_requested, cancelled" in bad["error"]["message"]
    assert http(base_url, "PATCH", f"/reviews/{created['id']}", {"due_date": "2027-13-01"})[0] == 400
    assert http(base_url, "GET", f"/reviews/{created['id']}", agency="beta")[0] == 404
    assert http(base_url, "GET", "/reviews?client=gulf-bank")[1]["count"] == 1


def test_another_agency_cannot_review_a_draft_it_does_not_have(erp):
    _, base_url = erp
    draft = a_draft(base_url)  # alpha's
    status, body = http(base_url, "POST", "/reviews", {"client": "thames-outfitters", "draft_id": draft,
                                                      "reviewer": "beta-t05", "due_date": "2027-01-15"},
                        agency="beta")
    assert status == 404 and f"No draft '{draft}'" in body["error"]["message"]


# --- get_content_calendar -----------------------------------------------------------------


def test_get_content_calendar_returns_the_clients_entries_with_counts(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, agency="beta", client=client_of("thames-outfitters"))
    result = call("content", "get_content_calendar", ctx, {"from": "2027-01-01", "to": "2027-02-28"})
    assert [e["id"] for e in result["entries"]] == ["beta-cc04", "beta-cc05", "beta-cc06", "beta-cc07"]
    assert result["count"] == 4 and result["by_status"] == {"in_review": 1, "in_progress": 1, "planned": 2}
    assert result["entries"][0]["topic"] == "Why we repair: the economics of a forty-year jacket"
    assert result["entries"][0]["target_words"] == 1200
    none = call("content", "get_content_calendar", ctx, {"channel": "snapchat"})
    assert none["count"] == 0 and "widen the dates" in none["note"]


def test_get_content_calendar_reaches_only_the_clients_the_run_may_read(erp):
    _, base_url = erp
    manager = scoped(make_ctx(base_url, agency="gamma"), client_scope=frozenset({"brooklyn-health"}))
    result = call("content", "get_content_calendar", manager, {"status": "planned"})
    assert {e["client"] for e in result["entries"]} == {"brooklyn-health"} and result["count"] == 5
    with pytest.raises(ToolError, match="no client 'hudson-cloud' this run may act for"):
        call("content", "get_content_calendar", manager, {"client": "hudson-cloud"})
    nobody = scoped(make_ctx(base_url, agency="gamma"), client_scope=frozenset())
    assert call("content", "get_content_calendar", nobody, {})["count"] == 0
    admin = call("content", "get_content_calendar", make_ctx(base_url, agency="gamma"), {"status": "planned"})
    assert {e["client"] for e in admin["entries"]} == {"brooklyn-health", "hudson-cloud"} and admin["count"] == 9


def test_get_content_calendar_limit_setting_caps_the_entries(erp):
    _, base_url = erp
    ctx = scoped(make_ctx(base_url, agency="gamma"), settings={"limit": 3})
    result = call("content", "get_content_calendar", ctx, {})
    assert len(result["entries"]) == 3 and result["count"] == 17 and result["entries_not_shown"] == 14
    assert [e["date"] for e in result["entries"]] == ["2026-12-02", "2026-12-03", "2026-12-09"]


# --- get_channel_specs --------------------------------------------------------------------


def test_get_channel_specs_returns_the_erp_specs(erp):
    _, base_url = erp
    ctx = make_ctx(base_url)
    one = call("content", "get_channel_specs", ctx, {"channel": "linkedin"})
    assert one["count"] == 1 and (one["channels"][0]["max_chars"], one["channels"][0]["truncated_at"]) == (3000, 210)
    assert call("content", "get_channel_specs", ctx, {})["count"] == 10
    with pytest.raises(ErpError, match="HTTP 400: channel: 'tv' is not a channel the ERP has specs for; known "
                                       "channels: instagram") as error:
        call("content", "get_channel_specs", ctx, {"channel": "tv"})
    assert error.value.status_code == 400


# --- check_readability --------------------------------------------------------------------


def test_check_readability_measures_an_english_text():
    result = call("content", "check_readability", None, {"text": ARTICLE})
    assert (result["words"], result["sentences"], result["paragraphs"], result["headings"]) == (55, 4, 2, 1)
    assert result["average_sentence_words"] == 13.8 and result["longest_sentence"]["words"] == 23
    assert (result["reading_ease"], result["reading_ease_band"], result["grade"]) == (85.2, "easy", 4.8)
    assert [h["phrase"] for h in result["passive_voice_hints"]] == ["was built", "be replaced", "is returned",
                                                                    "is worn"]
    assert result["passed"] is True and result["issues"] == []
    assert call("content", "check_readability", None, {"text": ARTICLE}) == result  # deterministic


def test_check_readability_computes_no_flesch_score_for_arabic():
    text = "جمالك ينبض بروح الصحراء. مجموعة ديزرت بلوم الجديدة بمكونات حلال."
    result = call("content", "check_readability", None, {"text": text})
    assert result["language"] == "ar" and result["reading_ease"] is None and result["grade"] is None
    assert "not computed for 'ar'" in result["note"] and (result["words"], result["sentences"]) == (10, 2)
    assert call("content", "check_readability", None, {"text": ARTICLE, "language": "fr"})["reading_ease"] is None


ONE_PARAGRAPH = ARTICLE.replace("away.\n\nWhen", "away. When")


@pytest.mark.parametrize("settings, text, issue", [
    ({"max_grade": 4}, ARTICLE, "Grade level 4.8 is above the agency's maximum of 4"),
    ({"max_sentence_words": 22}, ARTICLE, "1 sentence(s) over 22 words"),
    ({"max_paragraph_words": 40}, ONE_PARAGRAPH, "1 paragraph(s) over 40 words"),
])
def test_check_readability_settings_change_the_verdict(settings, text, issue):
    assert call("content", "check_readability", None, {"text": text})["passed"] is True  # the defaults pass it
    ctx = ToolContext(instance=None, run_id="r", tool_use_id="t", idempotency_key="r:t", settings=settings)
    result = call("content", "check_readability", ctx, {"text": text})
    assert result["passed"] is False and any(i.startswith(issue) for i in result["issues"]), result["issues"]
    assert result["thresholds"] == {**{"max_grade": 10, "max_sentence_words": 28, "max_paragraph_words": 150},
                                    **settings}


def test_check_readability_fits_the_text_to_the_channel(erp):
    _, base_url = erp
    ctx = make_ctx(base_url)
    post = call("content", "check_readability", ctx, {"text": ARTICLE, "channel": "instagram"})
    fit = post["channel_fit"]
    assert (fit["characters"], fit["max_chars"], fit["truncated_at"]) == (len(ARTICLE.strip()), 2200, 125)
    assert fit["visible_before_cut"] == ARTICLE[:125] and post["passed"] is True
    tagged = ARTICLE + " #rain #repairs #wax"
    tweet = call("content", "check_readability", ctx, {"text": tagged, "channel": "x"})
    assert tweet["passed"] is False and tweet["channel_fit"]["over_by"] == len(tagged.strip()) - 280
    assert any("over X (Twitter)'s limit of 280" in i for i in tweet["issues"])
    assert any(i == "3 hashtags; X (Twitter) takes at most 2." for i in tweet["issues"])
    with pytest.raises(ErpError, match="known channels"):
        call("content", "check_readability", ctx, {"text": ARTICLE, "channel": "billboard"})


def test_check_readability_needs_words():
    with pytest.raises(ToolError, match="no words"):
        call("content", "check_readability", None, {"text": "## 2027\n\n---"})


# --- brand tools are the copy agent's -------------------------------------------------------


def test_brand_tools_are_the_copy_agents_own():
    spec = get_spec("content", "1.0.0")
    assert spec.tool("get_brand_guidelines").handler is copywriting.get_brand_guidelines
    assert spec.tool("check_brand_rules").handler is copywriting.check_brand_rules
    assert [t.name for t in spec.tools][:7] == ["get_brand_guidelines", "get_content_calendar", "get_channel_specs",
                                                "check_brand_rules", "check_readability", "save_draft",
                                                "schedule_for_review"]


def test_get_brand_guidelines_for_a_content_run(erp):
    _, base_url = erp
    result = call("content", "get_brand_guidelines", make_ctx(base_url, agency="gamma"), {"client": "hudson-cloud"})
    assert "revolutionary" in result["brand_guidelines"]["never"] and result["competitors"][0] == "AWS"


# --- save_draft ---------------------------------------------------------------------------


def test_save_draft_links_the_calendar_entry_and_writes_once(erp):
    _, base_url = erp
    client = client_of("thames-outfitters")
    tool_input = {"content": ARTICLE, "title": "Why we repair", "calendar_entry_id": "beta-cc04"}
    first = call("content", "save_draft", make_ctx(base_url, agency="beta", client=client, key="k1"), tool_input)
    again = call("content", "save_draft", make_ctx(base_url, agency="beta", client=client, key="k1"), tool_input)
    assert first == again and first["draft_id"] == "beta-draft-0001" and first["status"] == "draft"
    log = writes(base_url, "beta")
    assert log["count"] == 1 and len(log["replays"]) == 1
    _, saved = http(base_url, "GET", "/drafts/beta-draft-0001", agency="beta")
    assert (saved["channel"], saved["language"], saved["title"]) == ("linkedin", "en", "Why we repair")
    assert saved["metadata"] == {"agent": "content", "run_id": "run-1", "words": 58, "format": "linkedin_article",
                                 "calendar_entry_id": "beta-cc04", "campaign": "Repairs for life"}


def test_save_draft_refuses_a_calendar_entry_of_another_client(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, agency="beta", client=client_of("covent-kitchen"))
    with pytest.raises(ToolError, match="covent-kitchen has no calendar entry 'beta-cc04'"):
        call("content", "save_draft", ctx, {"content": "x", "calendar_entry_id": "beta-cc04"})
    assert writes(base_url, "beta")["count"] == 0


def test_save_draft_in_sandbox_mode_writes_nothing(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("gulf-bank"), sandbox=True)
    result = call("content", "save_draft", ctx, {"content": "Plan your cash flow for Ramadan.", "format": "newsletter",
                                                 "channel": "email"})
    assert result == {"simulated": True, "would_have": {"method": "POST", "path": "/drafts", "body": {
        "client": "gulf-bank", "content": "Plan your cash flow for Ramadan.", "channel": "email",
        "metadata": {"agent": "content", "run_id": "run-1", "words": 6, "format": "newsletter"}}}}
    assert writes(base_url)["count"] == 0


# --- schedule_for_review ------------------------------------------------------------------


def test_schedule_for_review_writes_once_per_key(erp):
    _, base_url = erp
    draft = a_draft(base_url)
    client = client_of("gulf-bank")
    tool_input = {"draft_id": draft, "reviewer": "alpha-t01", "due_date": "2027-01-15",
                  "notes": "Check the rate examples."}
    first = call("content", "schedule_for_review", make_ctx(base_url, client=client, key="k2"), tool_input)
    again = call("content", "schedule_for_review", make_ctx(base_url, client=client, key="k2"), tool_input)
    assert first == again
    assert (first["review_id"], first["status"], first["draft_id"], first["reviewer"], first["due_date"]) == (
        "alpha-review-0001", "requested", draft, "alpha-t01", "2027-01-15")
    assert writes(base_url)["count"] == 2  # the draft and one review


def test_schedule_for_review_in_sandbox_mode_writes_nothing(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("gulf-bank"), sandbox=True)
    result = call("content", "schedule_for_review", ctx, {"draft_id": "alpha-draft-0001", "reviewer": "alpha-t01",
                                                          "due_date": "2027-01-15"})
    assert result == {"simulated": True, "would_have": {"method": "POST", "path": "/reviews", "body": {
        "client": "gulf-bank", "draft_id": "alpha-draft-0001", "reviewer": "alpha-t01", "due_date": "2027-01-15",
        "metadata": {"agent": "content", "run_id": "run-1"}}}}
    assert writes(base_url)["count"] == 0


def test_schedule_for_review_errors_are_the_erps_readable_messages(erp):
    _, base_url = erp
    draft = a_draft(base_url, client="desert-bloom-cosmetics")
    ctx = make_ctx(base_url, client=client_of("gulf-bank"))
    with pytest.raises(ErpError, match=f"HTTP 400: draft_id: draft '{draft}' belongs to client "
                                       "'desert-bloom-cosmetics', not 'gulf-bank'"):
        call("content", "schedule_for_review", ctx, {"draft_id": draft, "reviewer": "alpha-t01",
                                                     "due_date": "2027-01-15"})
    with pytest.raises(ErpError, match="HTTP 404: No draft 'nope'"):
        call("content", "schedule_for_review", ctx, {"draft_id": "nope", "reviewer": "alpha-t01",
                                                     "due_date": "2027-01-15"})
    with pytest.raises(ErpError, match="due_date: '2027-1-5' is not a date"):
        call("content", "schedule_for_review", ctx, {"draft_id": draft, "reviewer": "alpha-t01",
                                                     "due_date": "2027-1-5"})
    assert writes(base_url)["count"] == 1  # the draft only


@pytest.mark.parametrize("tool_name, tool_input", [
    ("save_draft", {"content": "c"}),
    ("schedule_for_review", {"draft_id": "d", "reviewer": "r", "due_date": "2027-01-15"}),
    ("get_brand_guidelines", {}),
])
def test_a_client_tool_without_a_client_asks_for_one(erp, tool_name, tool_input):
    _, base_url = erp
    with pytest.raises(ToolError, match="slug"):
        call("content", tool_name, make_ctx(base_url), tool_input)
    assert writes(base_url)["count"] == 0


def test_a_scoped_run_cannot_write_for_another_client(erp):
    _, base_url = erp
    ctx = scoped(make_ctx(base_url), client_scope=frozenset({"gulf-bank"}))
    with pytest.raises(ToolError, match="no client 'desert-bloom-cosmetics' this run may act for"):
        call("content", "save_draft", ctx, {"content": "c", "client": "desert-bloom-cosmetics"})
    assert writes(base_url)["count"] == 0


def test_erp_outage_is_a_readable_error(egress_loopback):
    server, base_url = start_sample_erp(failures={"/content-calendar": 503})
    egress_loopback(server.server_port)
    try:
        with pytest.raises(ErpError, match="GET /content-calendar with HTTP 503"):
            call("content", "get_content_calendar", make_ctx(base_url, client=client_of("gulf-bank")), {})
    finally:
        server.stop()
