"""Inputs that broke things (issue 13, finding 8): each answers a 4xx with the error envelope, not a 500
or an HTML page, and an answer carrying what PostgreSQL cannot store is kept without it, marked.

* request bodies: U+0000 (raw, or escaped as \\u0000, in a value or a key) and lone surrogates are
  400 `unstorable_character` naming where; JSON nested deeper than 64 levels is 400, also 10 000
  levels (a RecursionError in `json` before); a body over DATA_UPLOAD_MAX_MEMORY_SIZE is 413;
* query parameters: impossible dates, non-ASCII digits, out-of-range pages and sizes are 400
  naming the parameter; a page past the last is 404; U+0000 in a path, query or header is 400;
* every /api/ error is the envelope: unknown paths (404), wrong methods (405), unexpected
  exceptions (500, in DEBUG too); outside /api/ the HTML pages stay;
* the platform host serves no instance API (404 envelope), only health;
* `scrub_unstorable`, and webhook answers scrubbed before the skill call is stored.
"""

from __future__ import annotations

import json

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import include, path
from rest_framework.test import APIClient
from rest_framework.views import APIView

from agents.models import AgentRun
from skills.executor import SkillContext, skill_execute
from skills.models import SkillCall
from skills.services import skill_create
from spokestack.hygiene import MAX_JSON_DEPTH, first_unstorable, json_depth_exceeds, scrub_unstorable
from tuning.services import client_create

from ..conftest import HOST_A, run_async
from ..loopback_server import Reply


def assert_envelope(response, status: int, code: str | None = None, *, mentions: tuple[str, ...] = ()) -> dict:
    assert response.status_code == status, response.content[:400]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}, error
    if code is not None:
        assert error["code"] == code, error
    for text in mentions:
        assert text in error["message"], error["message"]
    return error


@pytest.fixture
def admin_a(in_a, make_user):
    return make_user("instance_admin")


@pytest.fixture
def client_a(in_a):
    return client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")


def post_raw(api_client, url: str, body: str | bytes, method: str = "post"):
    return getattr(api_client, method)(url, data=body, content_type="application/json")


# --- request bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "where"), [
    ('{"agent_type": "copy", "task": "Write a tagline.\\u0000"}', "body.task"),
    ('{"agent_type": "copy", "task": "x", "metadata": {"ref\\u0000": "1"}}', "body.metadata.ref\\u0000"),
    ('{"agent_type": "copy", "task": "x", "metadata": {"notes": ["ok", "bad\\u0000"]}}', "body.metadata.notes[1]"),
    ('{"agent_type": "copy", "task": "half a pair \\ud800"}', "body.task"),
    ('["ok", "\\u0000"]', "body[1]"),
    ('"\\u0000"', "body"),
])
def test_unstorable_characters_in_an_execute_body_are_400_naming_where(in_a, admin_a, api, body, where):
    response = post_raw(api(in_a, admin_a), "/api/v1/agent/execute", body)
    error = assert_envelope(response, 400, "unstorable_character", mentions=(where, "U+0000"))
    assert error["details"] == {"where": where}
    assert AgentRun.objects.count() == 0


def test_a_raw_nul_byte_in_a_json_string_is_400(in_a, admin_a, api):
    response = post_raw(api(in_a, admin_a), "/api/v1/agent/execute", b'{"agent_type": "copy", "task": "a\x00b"}')
    assert_envelope(response, 400, "malformed_request")
    assert AgentRun.objects.count() == 0


def test_nul_in_a_tuning_field_is_400_and_changes_nothing(in_a, admin_a, api):
    client = api(in_a, admin_a)
    response = post_raw(client, "/api/v1/tuning", '{"brand_voice": "Warm\\u0000", "reason": "x"}', method="put")
    assert_envelope(response, 400, "unstorable_character", mentions=("body.brand_voice",))
    assert client.get("/api/v1/tuning").json()["brand_voice"] == ""


def test_ten_thousand_levels_of_nesting_is_400_not_a_recursion_error(in_a, admin_a, api):
    deep = "[" * 10_000 + "]" * 10_000
    response = post_raw(api(in_a, admin_a), "/api/v1/agent/execute",
                        '{"agent_type": "copy", "task": "x", "metadata": {"deep": ' + deep + "}}")
    assert_envelope(response, 400, "malformed_request", mentions=("nested more than 64 levels",))
    assert AgentRun.objects.count() == 0


def test_the_depth_limit_is_64_levels(in_a, admin_a, api):
    client = api(in_a, admin_a)

    def body(depth: int) -> str:  # the object itself is the first level
        return '{"name": "deep", "extra": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"

    assert MAX_JSON_DEPTH == 64
    assert_envelope(post_raw(client, "/api/v1/tokens", body(65)), 400, "malformed_request")
    assert post_raw(client, "/api/v1/tokens", body(64)).status_code == 201


def test_a_body_over_the_upload_limit_is_413(in_a, admin_a, api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    response = api(in_a, admin_a).post("/api/v1/agent/execute", {"agent_type": "copy", "task": "x" * 3_000},
                                       format="json")
    error = assert_envelope(response, 413, "too_large", mentions=("2000 bytes",))
    assert error["details"] == {"max_bytes": 2_000}
    assert AgentRun.objects.count() == 0


# --- query parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(("query", "parameter"), [
    ("created_after=2026-02-30T00:00:00Z", "created_after"),
    ("created_before=2026-13-01T00:00:00Z", "created_before"),
    ("created_after=yesterday", "created_after"),
    ("created_after=٢٠٢٦-٠١-٠١T00:00:00Z", "created_after"),
    ("created_after=9999-12-31T23:00:00-05:00", "created_after"),
    ("client_id=١٢", "client_id"),
    ("client_id=²", "client_id"),
    ("client_id=-1", "client_id"),
    ("client_id=99999999999999999999999", "client_id"),
    ("status=sleeping", "status"),
    ("page=٣", "page"),
    ("page=abc", "page"),
    ("page=0", "page"),
    ("page_size=٣", "page_size"),
    ("page_size=0", "page_size"),
    ("page_size=201", "page_size"),
])
def test_bad_query_parameters_of_the_runs_list_are_400_naming_the_parameter(in_a, admin_a, api, query, parameter):
    response = api(in_a, admin_a).get(f"/api/v1/agent/runs?{query}")
    error = assert_envelope(response, 400, "invalid", mentions=(f"{parameter}: ",))
    assert parameter in error["details"]


def test_good_query_parameters_of_the_runs_list_still_filter(in_a, admin_a, client_a, api):
    client = api(in_a, admin_a)
    assert client.post("/api/v1/agent/execute", {"agent_type": "copy", "task": "x", "client_id": client_a.pk},
                       format="json").status_code == 202
    for query in (f"client_id={client_a.pk}", "created_after=2020-02-29T00:00:00Z", "created_after=2020-01-01T00:00:00",
                  "page=1&page_size=1", "page=last", "status=queued"):
        response = client.get(f"/api/v1/agent/runs?{query}")
        assert response.status_code == 200, (query, response.json())
        assert response.json()["count"] == 1, query
    assert client.get("/api/v1/agent/runs?created_before=2020-01-01T00:00:00Z").json()["count"] == 0


def test_a_page_past_the_last_is_404(in_a, admin_a, api):
    response = api(in_a, admin_a).get("/api/v1/agent/runs?page=7")
    assert_envelope(response, 404, "not_found", mentions=("page: there is no page 7",))


def test_other_lists_and_filters_validate_their_parameters(in_a, admin_a, client_a, api):
    client = api(in_a, admin_a)
    run_id = client.post("/api/v1/agent/execute", {"agent_type": "copy", "task": "x"}, format="json").json()["run_id"]
    cases = [
        (f"/api/v1/agent/runs/{run_id}/events?after=٣", "after"),
        ("/api/v1/approvals?status=maybe", "status"),
        ("/api/v1/clients?page=٢", "page"),
        ("/api/v1/tuning/audit?page_size=x", "page_size"),
        ("/api/v1/agents/copy/prompt-preview?client_id=١", "client_id"),
        (f"/api/v1/clients/{client_a.pk}/feedback/suggestions?status=nonsense", "status"),
        ("/api/v1/updates?status=nonsense", "status"),
    ]
    for url, parameter in cases:
        assert_envelope(client.get(url), 400, "invalid", mentions=(f"{parameter}: ",))
    events = client.get(f"/api/v1/agent/runs/{run_id}/events", HTTP_LAST_EVENT_ID="٣")
    assert_envelope(events, 400, "invalid", mentions=("Last-Event-ID: ",))


@pytest.mark.parametrize(("url", "headers", "where"), [
    ("/api/v1/agent/runs?agent_type=%00", {}, "query parameter 'agent_type'"),
    ("/api/v1/agent/runs?%00=1", {}, "query parameter"),
    ("/api/v1/agents/co%00py/versions", {}, "path"),
    ("/api/v1/agent/runs", {"HTTP_IDEMPOTENCY_KEY": "k\x00"}, "header Idempotency-Key"),
])
def test_nul_in_a_path_query_or_header_is_400(in_a, admin_a, api, url, headers, where):
    response = api(in_a, admin_a).get(url, **headers)
    assert_envelope(response, 400, "unstorable_character", mentions=(where,))


def test_nul_outside_the_api_is_a_400_page(db, client):
    response = client.get("/admin/?q=%00", HTTP_HOST=HOST_A)
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")


# --- the envelope for every /api/ error ---------------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/no-such-thing", "/api/v2/agent/runs", "/api/", "/api/v1/agent/runs/x/y/z"])
def test_unknown_api_paths_are_404_envelopes(in_a, admin_a, api, url):
    assert_envelope(api(in_a, admin_a).get(url), 404, "not_found", mentions=("No API path", "/api/docs/"))
    assert_envelope(api(in_a).post(url, {}, format="json"), 404, "not_found")


def test_unknown_paths_outside_the_api_keep_the_html_page(db, client):
    response = client.get("/no-such-page", HTTP_HOST=HOST_A)
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_a_wrong_method_is_a_405_envelope(in_a, admin_a, api):
    response = api(in_a, admin_a).put("/api/v1/agent/runs", {}, format="json")
    assert_envelope(response, 405, "method_not_allowed", mentions=("PUT",))
    assert "GET" in response["Allow"]


class Crash(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        raise RuntimeError("a bug")


def plain_crash(request):
    raise RuntimeError("a bug outside DRF")


def plain_404(request):
    return HttpResponse("<h1>gone</h1>", status=404)


urlpatterns = [
    path("api/v1/crash", Crash.as_view()),
    path("api/v1/plain-crash", plain_crash),
    path("api/v1/plain-404", plain_404),
    path("crash", plain_crash),
    path("", include("spokestack.urls")),
]


@pytest.mark.parametrize("debug", [False, True])
def test_unexpected_exceptions_under_the_api_are_500_envelopes(db, settings, debug):
    settings.ROOT_URLCONF = __name__
    settings.DEBUG = debug
    client = Client(HTTP_HOST=HOST_A, raise_request_exception=False)
    for url in ("/api/v1/crash", "/api/v1/plain-crash"):
        error = assert_envelope(client.get(url), 500, "server_error")
        assert "a bug" not in error["message"]
    assert_envelope(client.get("/api/v1/plain-404"), 404, "not_found")
    page = client.get("/crash")
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


def test_the_envelope_and_the_nul_refusal_hold_under_asgi(live_db, settings):
    """daphne runs Django through ASGIHandler, where the middleware chain is async."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    from .test_outages import asgi_get

    settings.DEBUG = True  # Django's technical 404 page otherwise

    async def requests():
        try:
            return await asgi_get(HOST_A, "/api/v1/no-such-thing"), await asgi_get(HOST_A, "/api/v1/agents/co\x00py")
        finally:
            await sync_to_async(connections.close_all)()

    (missing_status, missing_headers, missing_body), (nul_status, _, nul_body) = run_async(requests())
    assert missing_status == 404 and missing_headers["content-type"] == "application/json", missing_body[:300]
    assert json.loads(missing_body)["error"]["code"] == "not_found"
    assert nul_status == 400 and json.loads(nul_body)["error"]["code"] == "unstorable_character"


# --- the platform host --------------------------------------------------------------------


@pytest.mark.parametrize(("method", "url"), [
    ("post", "/api/v1/agent/execute"), ("get", "/api/v1/agent/runs"), ("get", "/api/v1/me"),
    ("get", "/api/v1/clients"), ("get", "/api/v1/tuning"), ("get", "/api/schema/"),
])
def test_the_platform_host_serves_no_instance_api(db, method, url):
    client = APIClient(HTTP_HOST="localhost")
    response = getattr(client, method)(url, {"agent_type": "copy", "task": "x"} if method == "post" else None,
                                       format="json")
    assert_envelope(response, 404, "not_found", mentions=("platform host", "instance's own host"))


def test_the_platform_host_keeps_health(db):
    response = APIClient(HTTP_HOST="localhost").get("/api/v1/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


# --- scrub_unstorable ------------------------------------------------------------------------


def test_scrub_unstorable_removes_nul_and_lone_surrogates_everywhere_and_counts_them():
    value = {"a\x00b": ["x\x00y", {"k": "\ud800ok\udfff"}, ("t\x00",)], "n": 1, "f": 1.5, "none": None, "ok": "é€😀"}
    cleaned, removed = scrub_unstorable(value)
    assert cleaned == {"ab": ["xy", {"k": "ok"}, ["t"]], "n": 1, "f": 1.5, "none": None, "ok": "é€😀"}
    assert removed == 5
    assert list(cleaned) == ["ab", "n", "f", "none", "ok"]  # key order kept
    json.dumps(cleaned).encode()
    assert value["a\x00b"][0] == "x\x00y"  # the input is not changed


def test_scrub_unstorable_returns_clean_values_as_they_are():
    value = {"a": ["b", {"c": 1}], "emoji": "😀"}
    assert scrub_unstorable(value) == (value, 0)
    assert scrub_unstorable(value)[0] is value
    assert scrub_unstorable("\x00") == ("", 1)
    assert scrub_unstorable(42) == (42, 0)
    assert scrub_unstorable(None) == (None, 0)


def test_scrub_unstorable_walks_any_depth_without_recursion():
    deep: list = ["bottom\x00"]
    for _ in range(20_000):
        deep = [deep]
    cleaned, removed = scrub_unstorable(deep)
    assert removed == 1
    assert json_depth_exceeds(cleaned)
    assert first_unstorable(deep) == "[0]" * 20_000 + "[0]"


def test_first_unstorable_names_the_path():
    assert first_unstorable({"a": [1, {"b": "ok"}, {"c": "x\x00"}]}) == "a[2].c"
    assert first_unstorable({"k\x00": 1}) == "k\\u0000"
    assert first_unstorable("\ud800") == "$"
    assert first_unstorable({"fine": ["yes"]}) is None


# --- answers from outside ----------------------------------------------------------------------


def nul_reply(status: int, data) -> Reply:
    return Reply(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


def test_a_webhook_answer_with_nul_is_kept_without_it_and_marked(in_a, loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/hook", lambda request: nul_reply(200, {"name\x00": "Acme\x00 Ltd", "tags": ["a\x00"]}))
    skill = skill_create(actor=None, name="lookup", description="Look something up.",
                         input_schema={"type": "object"}, agent_types=["copy"],
                         webhook_url=f"http://127.0.0.1:{loopback_server.port}/hook").skill
    outcome = skill_execute(skill=skill, arguments={}, context=SkillContext(instance="tenant_a"))
    assert not outcome.is_error
    assert outcome.result == {"name": "Acme Ltd", "tags": ["a"]}
    assert outcome.removed == 3 and outcome.response["removed_characters"] == 3
    assert outcome.response["data"] == outcome.result
    assert SkillCall.objects.get(skill=skill).ok


def test_a_webhook_error_with_nul_is_stored_without_it(in_a, loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/hook", lambda request: nul_reply(422, {"error": "bad\x00 input"}))
    skill = skill_create(actor=None, name="lookup", description="Look something up.",
                         input_schema={"type": "object"}, agent_types=["copy"],
                         webhook_url=f"http://127.0.0.1:{loopback_server.port}/hook").skill
    outcome = skill_execute(skill=skill, arguments={}, context=SkillContext(instance="tenant_a"))
    assert outcome.is_error and "\x00" not in outcome.result and outcome.removed >= 1
    call = SkillCall.objects.get(skill=skill)
    assert not call.ok and "\x00" not in call.error


def test_a_webhook_answer_nested_too_deeply_is_an_error_not_a_crash(in_a, loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    deep = b"[" * 10_000 + b"]" * 10_000
    loopback_server.route("/hook", lambda request: Reply(200, deep, {"Content-Type": "application/json"}))
    skill = skill_create(actor=None, name="lookup", description="Look something up.",
                         input_schema={"type": "object"}, agent_types=["copy"],
                         webhook_url=f"http://127.0.0.1:{loopback_server.port}/hook").skill
    outcome = skill_execute(skill=skill, arguments={}, context=SkillContext(instance="tenant_a"))
    assert outcome.is_error and "nested too deeply" in outcome.result


def test_a_model_answer_with_nul_is_kept_without_it_and_counted(fake_model, monkeypatch):
    """agents.model is where every model answer enters (runs and feedback analysis): its text
    deltas and its content (tool inputs included) come out without U+0000."""
    import uuid

    from django.test import override_settings

    from agents.model import ModelRequest, StreamCallbacks, call_model, reset_client
    from agents.registry import DEFAULT_MODEL

    marker = f"nul-{uuid.uuid4().hex[:10]}"
    fake_model.script(marker, [{"content": [
        {"type": "text", "text": "Sun\x00 and sand."},
        {"type": "tool_use", "name": "save_brief", "input": {"title\x00": "Spring\x00", "tags": ["a\x00"]}}],
        "stop_reason": "tool_use"}])
    deltas: list[str] = []
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_model.base_url)
    with override_settings(ANTHROPIC_API_KEY="sk-ant-test-not-a-real-key"):
        reset_client()
        try:
            turn = call_model(ModelRequest(model=DEFAULT_MODEL, fallback_model="", system=[], tools=[],
                                           messages=[{"role": "user", "content": f"Go ({marker})"}], max_tokens=100,
                                           metadata={}),
                              callbacks=StreamCallbacks(on_text=deltas.append))
        finally:
            reset_client()
    assert turn.removed == 4
    assert turn.content[0] == {"type": "text", "text": "Sun and sand."}
    assert turn.content[1]["input"] == {"title": "Spring", "tags": ["a"]}
    assert "\x00" not in "".join(deltas) and "".join(deltas) == "Sun and sand."
