"""The sample ERP over real loopback HTTP: auth, per-agency isolation, filters, benchmarks,
idempotent writes and the write log, errors, injected latency, failures and late or dropped answers,
persistence, CLI."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from spokestack.sample_erp import DEMO_API_KEYS, start_sample_erp

from ..conftest import ROOT, wait_for

ALPHA, BETA, GAMMA = DEMO_API_KEYS["alpha"], DEMO_API_KEYS["beta"], DEMO_API_KEYS["gamma"]


def call(base_url, method, path, *, key=ALPHA, body=None, raw=None, headers=None, timeout=5):
    """(status, JSON payload, headers) for one request; HTTP errors are answers, not exceptions."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=dict(headers or {}))
    if key:
        request.add_header("X-Api-Key", key)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read()), error.headers


@pytest.fixture
def erp():
    server, base_url = start_sample_erp(allow_reset=True)
    yield base_url
    server.stop()


def writes(base_url, key=ALPHA):
    return call(base_url, "GET", "/writes", key=key)[1]


DRAFT = {"client": "desert-bloom-cosmetics", "content": "Radiance rooted in the desert.", "channel": "instagram"}


# --- auth and isolation --------------------------------------------------------------------


def test_health_is_public_and_names_the_agency_of_a_key(erp):
    assert call(erp, "GET", "/health", key=None)[:2] == (200, {"status": "ok", "service": "spokestack-sample-erp"})
    assert call(erp, "GET", "/health", key=BETA)[1]["agency"] == "beta"
    assert call(erp, "GET", "/health", key="wrong")[0] == 401


@pytest.mark.parametrize("path", ["/agency", "/clients", "/clients/gulf-bank", "/projects", "/projects/alpha-p01",
                                  "/team", "/briefs", "/drafts", "/plans", "/benchmarks", "/writes"])
def test_every_other_endpoint_is_401_without_or_with_a_wrong_key(erp, path):
    status, payload, _ = call(erp, "GET", path, key=None)
    assert status == 401 and "X-Api-Key" in payload["error"]["message"]
    status, payload, _ = call(erp, "GET", path, key="erp-demo-alpha-7f3b")
    assert status == 401 and payload["error"] == {"code": "not_authenticated", "message": "Invalid API key."}
    assert call(erp, "POST", "/drafts", key=None, body=DRAFT)[0] == 401
    assert writes(erp)["count"] == 0


def test_the_key_decides_the_agency_and_its_data(erp):
    assert call(erp, "GET", "/agency", key=ALPHA)[1] == {
        "slug": "alpha", "name": "Agency Alpha", "city": "Dubai", "region": "GCC", "language": "ar", "currency": "AED"}
    names = {key: [c["name"] for c in call(erp, "GET", "/clients", key=key)[1]["results"]]
             for key in (ALPHA, BETA, GAMMA)}
    assert names == {ALPHA: ["Desert Bloom Cosmetics", "Gulf Bank"], BETA: ["Thames Outfitters", "Covent Kitchen"],
                     GAMMA: ["Hudson Cloud", "Brooklyn Health"]}


def test_two_agencies_cannot_see_each_others_data(erp):
    for path in ("/clients/desert-bloom-cosmetics", "/projects/alpha-p01", "/briefs/alpha-b01",
                 "/briefs?client=gulf-bank"):
        assert call(erp, "GET", path, key=ALPHA)[0] == 200
        assert call(erp, "GET", path, key=BETA)[0] == 404, path
    assert {p["id"][:5] for p in call(erp, "GET", "/projects?limit=100", key=BETA)[1]["results"]} == {"beta-"}
    draft = call(erp, "POST", "/drafts", key=ALPHA, body=DRAFT)[1]
    assert call(erp, "GET", f"/drafts/{draft['id']}", key=BETA)[0] == 404
    assert call(erp, "GET", "/drafts", key=BETA)[1]["count"] == 0
    assert writes(erp, BETA)["count"] == 0 and writes(erp, ALPHA)["count"] == 1
    # Beta cannot write for Alpha's client either.
    status, payload, _ = call(erp, "POST", "/drafts", key=BETA, body=DRAFT)
    assert status == 400 and "thames-outfitters" in payload["error"]["message"]


def test_configured_keys_replace_the_demo_keys():
    server, base_url = start_sample_erp(api_keys={"gamma": "s3cret-gamma"})
    try:
        assert call(base_url, "GET", "/agency", key="s3cret-gamma")[1]["slug"] == "gamma"
        assert call(base_url, "GET", "/agency", key=GAMMA)[0] == 401
        assert call(base_url, "GET", "/agency", key=ALPHA)[0] == 401
    finally:
        server.stop()


# --- reads and filters -----------------------------------------------------------------------


def test_client_detail_has_guidelines_competitors_budget_and_arabic_examples(erp):
    client = call(erp, "GET", "/clients/desert-bloom-cosmetics")[1]
    assert client["industry"] == "beauty" and client["region"] == "GCC" and client["annual_budget"] > 0
    assert "miracle" in client["brand_guidelines"]["never"] and "Oud Luxe" in client["competitors"]
    assert "Never: miracle" in client["brand_guidelines"]["text"]
    assert any("ديزرت بلوم" in e["text"] for e in client["approved_examples"] if e["language"] == "ar")
    status, payload, _ = call(erp, "GET", "/clients/nope")
    assert status == 404 and "gulf-bank" in payload["error"]["message"]


def test_projects_filter_by_industry_outcome_and_text_with_a_limit(erp):
    everything = call(erp, "GET", "/projects?industry=&outcome=&q=")[1]
    assert everything["count"] == 8 and [p["year"] for p in everything["results"]] == sorted(
        (p["year"] for p in everything["results"]), reverse=True)
    beauty = call(erp, "GET", "/projects?industry=Beauty")[1]["results"]
    assert beauty and {p["industry"] for p in beauty} == {"beauty"}
    lost = call(erp, "GET", "/projects?outcome=lost")[1]["results"]
    assert lost and all(p["outcome"] == "lost" and p["results"] for p in lost)
    won_finance = call(erp, "GET", "/projects?industry=finance&outcome=won")[1]["results"]
    assert [p["id"] for p in won_finance] == ["alpha-p04"] and won_finance[0]["kpis"]["accounts_opened"] == 12_400
    ranked = call(erp, "GET", "/projects?q=ramadan%20instagram%20creators&limit=2")[1]
    assert ranked["results"][0]["title"] == "Ramadan Glow" and len(ranked["results"]) == 2 and ranked["count"] >= 2
    assert call(erp, "GET", "/projects?q=zeppelin")[1] == {"count": 0, "results": []}
    for bad in ("limit=0", "limit=101", "limit=ten", "outcome=maybe", "industry=retail"):
        status, payload, _ = call(erp, "GET", f"/projects?{bad}")
        assert status == 400 and bad.split("=")[0] in payload["error"]["message"]


def test_team_filters_by_capability(erp):
    team = call(erp, "GET", "/team")[1]
    assert team["count"] == 6 and all(0 <= m["availability"]["share_free"] <= 1 for m in team["results"])
    arabic = call(erp, "GET", "/team?capability=Arabic_Copywriting")[1]["results"]
    assert [m["name"] for m in arabic] == ["Karim Youssef"]
    assert call(erp, "GET", "/team?capability=juggling")[1]["count"] == 0


def test_briefs_filter_by_client(erp):
    assert call(erp, "GET", "/briefs")[1]["count"] == 2
    briefs = call(erp, "GET", "/briefs?client=gulf-bank")[1]["results"]
    assert [b["id"] for b in briefs] == ["alpha-b02"] and briefs[0]["budget"] == 1_200_000


def test_benchmarks_are_consistent_numbers_by_vertical_and_region(erp):
    rows = call(erp, "GET", "/benchmarks?vertical=finance&region=GCC")[1]["results"]
    assert [r["channel"] for r in rows] == ["search", "social", "display", "video", "ctv"]
    for row in rows:
        assert row["cpm"] > 0 and 0 < row["ctr"] < 1 and 0 < row["cvr"] < 1
        assert row["cpc"] == pytest.approx(row["cpm"] / (1000 * row["ctr"]), abs=0.01)
        assert row["cpa"] == pytest.approx(row["cpc"] / row["cvr"], rel=0.01)
    food = call(erp, "GET", "/benchmarks?vertical=food&region=gcc&channel=social")[1]["results"]
    assert len(food) == 1 and food[0]["cpm"] < rows[1]["cpm"]  # finance impressions cost more
    assert call(erp, "GET", "/benchmarks")[1]["count"] == 6 * 5 * 5
    status, payload, _ = call(erp, "GET", "/benchmarks?region=Mars")
    assert status == 400 and "GCC" in payload["error"]["message"]


# --- writes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "body"), [
    ("/drafts", DRAFT),
    ("/plans", {"client": "gulf-bank", "budget": 250_000, "channels": [{"channel": "search", "share": 0.6}]}),
    ("/briefs", {"client": "gulf-bank", "title": "Card launch", "objective": "10k new cards"}),
])
def test_a_write_is_stored_readable_and_logged(erp, path, body):
    status, record, _ = call(erp, "POST", path, body=body, headers={"Idempotency-Key": "run-1:call-1"})
    assert status == 201 and record["id"].startswith("alpha-") and record["status"] == "draft"
    assert call(erp, "GET", f"{path}/{record['id']}")[1] == record
    assert record in call(erp, "GET", f"{path}?client={body['client']}")[1]["results"]
    log = writes(erp)
    assert log["count"] == 1 and log["replays"] == []
    entry = log["results"][0]
    assert entry["method"] == "POST" and entry["path"] == path and entry["idempotency_key"] == "run-1:call-1"
    assert entry["resource_id"] == record["id"] and entry["timestamp"].endswith("+00:00")


def test_a_plan_defaults_to_the_agency_currency(erp):
    assert call(erp, "POST", "/plans", key=BETA, body={"client": "covent-kitchen", "budget": 90_000})[1][
        "currency"] == "GBP"


def test_the_same_idempotency_key_returns_the_first_result_and_writes_once(erp):
    headers = {"Idempotency-Key": "run-7:toolu_01"}
    first = call(erp, "POST", "/drafts", body=DRAFT, headers=headers)
    again = call(erp, "POST", "/drafts", body=DRAFT, headers=headers)
    assert first[0] == again[0] == 201 and first[1] == again[1]
    assert first[2].get("Idempotent-Replayed") is None and again[2]["Idempotent-Replayed"] == "true"
    log = writes(erp)
    assert log["count"] == 1 and len(log["replays"]) == 1 and log["replays"][0]["resource_id"] == first[1]["id"]
    # A new request under a used key is refused rather than silently answered with the old one.
    status, payload, _ = call(erp, "POST", "/drafts", body={**DRAFT, "content": "Other"}, headers=headers)
    assert status == 409 and payload["error"]["code"] == "idempotency_key_reused"
    # Without a key every POST writes; keys are per agency.
    call(erp, "POST", "/drafts", body=DRAFT)
    call(erp, "POST", "/drafts", key=GAMMA, body={"client": "hudson-cloud", "content": "x"}, headers=headers)
    assert writes(erp)["count"] == 2 and writes(erp, GAMMA)["count"] == 1


def test_racing_requests_with_one_key_write_exactly_once(erp):
    results = []

    def post():
        results.append(call(erp, "POST", "/drafts", body=DRAFT, headers={"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=post) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for status, _, _ in results} == {201} and len({r["id"] for _, r, _ in results}) == 1
    assert writes(erp)["count"] == 1 and len(writes(erp)["replays"]) == 11


# --- errors ------------------------------------------------------------------------------------


def test_bad_bodies_are_400_with_a_message_and_write_nothing(erp):
    cases = [
        (b"{not json", "bad_json", "not valid JSON"),
        (b"", "bad_json", "empty"),
        (b'{"client": "gulf-bank", "budget": NaN}', "bad_json", "NaN is not a JSON number"),
        (b"[1, 2]", "invalid", "JSON object"),
        (json.dumps({"client": "gulf-bank"}).encode(), "invalid", "content: this field is required"),
        (json.dumps({**DRAFT, "colour": "red"}).encode(), "invalid", "Unknown field(s) colour"),
        (json.dumps({**DRAFT, "content": 42}).encode(), "invalid", "content: must be a JSON str"),
        (json.dumps({"client": "gulf-bank", "budget": -5}).encode(), "invalid", "budget: must be greater than 0"),
    ]
    for raw, code, message in cases:
        path = "/plans" if b"budget" in raw else "/drafts"
        status, payload, _ = call(erp, "POST", path, raw=raw)
        assert status == 400 and payload["error"]["code"] == code and message in payload["error"]["message"], raw
    assert writes(erp)["count"] == 0


def test_unknown_paths_are_404_and_wrong_methods_405(erp):
    assert call(erp, "GET", "/invoices")[0] == 404
    assert call(erp, "GET", "/drafts/alpha-draft-9999")[0] == 404
    status, payload, headers = call(erp, "DELETE", "/clients")
    assert status == 405 and headers["Allow"] == "GET" and "DELETE" in payload["error"]["message"]


def test_reset_exists_only_when_allowed(erp):
    call(erp, "POST", "/drafts", body=DRAFT)
    assert call(erp, "POST", "/_reset")[:2] == (200, {"reset": True})
    assert writes(erp)["count"] == 0 and call(erp, "GET", "/drafts")[1]["count"] == 0
    server, base_url = start_sample_erp()
    try:
        assert call(base_url, "POST", "/_reset")[0] == 404
    finally:
        server.stop()


# --- the demo's webhook skill target -----------------------------------------------------------


def hook_body(text):
    return {"input": {"text": text}, "context": {"instance": "alpha", "run_id": None, "client_id": 1, "user_id": None}}


def test_competitor_check_names_the_agencys_competitors_in_the_text(erp):
    status, payload, _ = call(erp, "POST", "/hooks/competitor-check",
                              body=hook_body("Softer than oud luxe, and not a Barbour jacket."))
    assert status == 200
    assert payload["competitors_found"] == [{"competitor": "Oud Luxe", "client": "desert-bloom-cosmetics"}]
    assert payload["ok"] is False and "Falcon Bank" in payload["checked"] and "Barbour" not in payload["checked"]
    beta = call(erp, "POST", "/hooks/competitor-check", key=BETA, body=hook_body("Not a Barbour jacket."))[1]
    assert beta["competitors_found"] == [{"competitor": "Barbour", "client": "thames-outfitters"}]
    clean = call(erp, "POST", "/hooks/competitor-check", body=hook_body("Glow gently through the holy month."))[1]
    assert clean["ok"] is True and clean["competitors_found"] == []
    assert writes(erp)["count"] == 0, "a check writes nothing"


def test_competitor_check_needs_a_key_and_the_skill_call_body(erp):
    assert call(erp, "POST", "/hooks/competitor-check", key=None, body=hook_body("x"))[0] == 401
    assert call(erp, "GET", "/hooks/competitor-check")[0] == 405
    for body in ({"text": "Oud Luxe"}, {"input": {"text": 5}}, {"input": "Oud Luxe"}, [1]):
        status, payload, _ = call(erp, "POST", "/hooks/competitor-check", body=body)
        assert status == 400 and '{"input": {"text"' in payload["error"]["message"], body


def test_competitor_check_verifies_the_signature_when_it_knows_the_secret():
    from skills.signing import new_webhook_secret, signature_headers

    secret = new_webhook_secret()
    server, base_url = start_sample_erp(webhook_secrets={"alpha": secret})
    try:
        raw = json.dumps(hook_body("Sahara Glow")).encode()
        signed = signature_headers(secret, msg_id="msg_1", body=raw)
        status, payload, _ = call(base_url, "POST", "/hooks/competitor-check", raw=raw, headers=signed)
        assert status == 200 and payload["competitors_found"][0]["competitor"] == "Sahara Glow"
        wrong = signature_headers(new_webhook_secret(), msg_id="msg_1", body=raw)
        stale = signature_headers(secret, msg_id="msg_1", body=raw, timestamp=1_000_000)
        altered = signature_headers(secret, msg_id="msg_1", body=raw + b" ")
        for headers in (wrong, stale, altered, {}):
            status, payload, _ = call(base_url, "POST", "/hooks/competitor-check", raw=raw, headers=headers)
            assert status == 401 and payload["error"]["code"] == "bad_signature", headers
        # an agency without a configured secret is not verified (the make run ERP knows none)
        assert call(base_url, "POST", "/hooks/competitor-check", key=BETA, raw=raw)[0] == 200
    finally:
        server.stop()
    with pytest.raises(ValueError, match="whsec_"):
        start_sample_erp(webhook_secrets={"alpha": "whsec_not base64!"})


# --- test switches, persistence, lifecycle --------------------------------------------------


def test_an_injected_failure_answers_that_path_and_writes_nothing():
    server, base_url = start_sample_erp(failures={"/drafts": 503, "/projects": 500})
    try:
        status, payload, _ = call(base_url, "POST", "/drafts", body=DRAFT, headers={"Idempotency-Key": "k"})
        assert status == 503 and payload["error"]["code"] == "injected_failure"
        assert call(base_url, "GET", "/projects?industry=beauty")[0] == 500
        assert call(base_url, "GET", "/drafts", key=None)[0] == 401  # auth still comes first
        assert call(base_url, "GET", "/clients")[0] == 200
        assert writes(base_url)["count"] == 0
        server.app.config.failures.clear()  # the switch can be flipped off: the retry then writes once
        assert call(base_url, "POST", "/drafts", body=DRAFT, headers={"Idempotency-Key": "k"})[0] == 201
        assert writes(base_url)["count"] == 1
    finally:
        server.stop()


def test_injected_latency_makes_a_client_time_out_and_stop_stays_prompt():
    server, base_url = start_sample_erp(latency_ms=1500)
    try:
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            call(base_url, "GET", "/clients", timeout=0.2)
    finally:
        server.stop()
    with pytest.raises(urllib.error.URLError):  # stopped: the port refuses connections
        call(base_url, "GET", "/health", key=None, timeout=1)


def test_a_data_dir_keeps_writes_and_idempotency_across_restarts(tmp_path):
    server, base_url = start_sample_erp(data_dir=tmp_path)
    draft = call(base_url, "POST", "/drafts", body=DRAFT, headers={"Idempotency-Key": "persist"})[1]
    server.stop()
    server, base_url = start_sample_erp(data_dir=tmp_path)
    try:
        assert call(base_url, "GET", f"/drafts/{draft['id']}")[1] == draft
        again = call(base_url, "POST", "/drafts", body=DRAFT, headers={"Idempotency-Key": "persist"})
        assert again[1] == draft and again[2]["Idempotent-Replayed"] == "true"
        assert writes(base_url)["count"] == 1
    finally:
        server.stop()


def test_the_command_line_serves_until_sigterm(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "spokestack.sample_erp", "--port", str(port), "--data-dir", str(tmp_path),
         "--api-key", "beta=cli-key", "--quiet"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in line
        base_url = f"http://127.0.0.1:{port}"
        assert call(base_url, "POST", "/briefs", key="cli-key",
                    body={"client": "covent-kitchen", "title": "Lunch", "objective": "More covers"})[0] == 201
        assert call(base_url, "GET", "/clients", key=BETA)[0] == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        process.stdout.close()
        process.stderr.close()
    assert json.loads((tmp_path / "state.json").read_text())["agencies"]["beta"]["briefs"][0]["title"] == "Lunch"
    bad = subprocess.run([sys.executable, "-m", "spokestack.sample_erp", "--port", "0", "--api-key", "delta=k"],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown agencies" in bad.stderr


# --- answer faults: the work is done, the answer comes late or never ------------------------


def test_a_late_answer_writes_at_once_and_a_repeat_in_flight_gets_the_replay(erp):
    status, fault, _ = call(erp, "POST", "/_faults", body={"path": "/drafts", "delay_ms": 1500, "times": 1})
    assert status == 201 and fault == {"path": "/drafts", "delay_ms": 1500, "drop": False, "times": 1}
    first = []
    slow = threading.Thread(target=lambda: first.append(call(erp, "POST", "/drafts", body=DRAFT,
                                                             headers={"Idempotency-Key": "late-1"})))
    started = time.monotonic()
    slow.start()
    wait_for(lambda: writes(erp)["count"] == 1, timeout=1.0)  # written before the answer
    assert not first, "the answer is still on its way"
    again = call(erp, "POST", "/drafts", body=DRAFT, headers={"Idempotency-Key": "late-1"})
    assert time.monotonic() - started < 1.2, "the fault was used up by the first request"
    slow.join(5)
    assert time.monotonic() - started >= 1.5
    assert first[0][0] == again[0] == 201 and first[0][1] == again[1] and again[2]["Idempotent-Replayed"] == "true"
    log = writes(erp)
    assert log["count"] == 1 and [r["idempotency_key"] for r in log["replays"]] == ["late-1"]
    assert call(erp, "GET", "/_faults")[1] == {"count": 0, "results": []}


def test_a_dropped_answer_writes_and_closes_the_connection_unanswered(erp):
    call(erp, "POST", "/_faults", body={"path": "/drafts", "drop": True, "times": 1})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, urllib.error.URLError)):
        call(erp, "POST", "/drafts", body=DRAFT, headers={"Idempotency-Key": "cut-1"})
    assert writes(erp)["count"] == 1
    status, record, headers = call(erp, "POST", "/drafts", body=DRAFT, headers={"Idempotency-Key": "cut-1"})
    assert status == 201 and headers["Idempotent-Replayed"] == "true"
    assert writes(erp)["count"] == 1 and record["id"] == writes(erp)["results"][0]["resource_id"]


def test_faults_are_per_agency_listed_cleared_and_validated(erp):
    call(erp, "POST", "/_faults", body={"path": "/clients", "delay_ms": 400})
    call(erp, "POST", "/_faults", key=BETA, body={"path": "/plans", "drop": True})
    started = time.monotonic()
    assert call(erp, "GET", "/clients", key=BETA)[0] == 200 and time.monotonic() - started < 0.3
    for _ in range(2):  # without `times`, every request
        started = time.monotonic()
        assert call(erp, "GET", "/clients")[0] == 200 and time.monotonic() - started >= 0.4
    assert call(erp, "GET", "/_faults")[1]["results"] == [{"path": "/clients", "delay_ms": 400, "drop": False,
                                                          "times": None}]
    assert call(erp, "DELETE", "/_faults")[:2] == (200, {"count": 0, "results": []})
    assert call(erp, "GET", "/_faults", key=BETA)[1]["count"] == 1
    call(erp, "POST", "/_reset")  # a reset clears every agency's faults too
    assert call(erp, "GET", "/_faults", key=BETA)[1]["count"] == 0
    for body, problem in [({"path": "clients", "delay_ms": 5}, "path"), ({"path": "/_reset", "drop": True}, "path"),
                          ({"path": "/drafts"}, "delay_ms or drop"), ({"path": "/drafts", "delay_ms": -1}, "delay_ms"),
                          ({"path": "/drafts", "delay_ms": 600_001}, "delay_ms"),
                          ({"path": "/drafts", "drop": "yes"}, "drop"), ({"path": "/drafts", "drop": True, "times": 0},
                                                                       "times"),
                          ({"path": "/drafts", "drop": True, "colour": 1}, "colour"), ([1], "object")]:
        status, payload, _ = call(erp, "POST", "/_faults", body=body)
        assert status == 400 and problem in payload["error"]["message"], body
    assert call(erp, "POST", "/_faults", key=None, body={"path": "/drafts", "drop": True})[0] == 401
    server, base_url = start_sample_erp()
    try:
        assert call(base_url, "POST", "/_faults", body={"path": "/drafts", "drop": True})[0] == 404
    finally:
        server.stop()


def test_roas_optimizer_answers_the_upgrade_scenarios_skill_for_a_named_client(erp):
    """Gamma's `roas_optimizer` skill (the demo's upgrade scenario) reaches a real answer."""
    status, payload, _ = call(erp, "POST", "/hooks/roas-optimizer", key=GAMMA,
                              body={"input": {"client": "Hudson Cloud"}, "context": {}})
    assert status == 200 and payload["client"] == "Hudson Cloud"
    assert payload["roas_target"] == 2.5 and payload["average_order_value"] == 240.0
    status, payload, _ = call(erp, "POST", "/hooks/roas-optimizer", key=GAMMA, body={"input": {"client": "Nobody"}})
    assert status == 404 and "No client named 'Nobody'" in payload["error"]["message"]
    status, payload, _ = call(erp, "POST", "/hooks/roas-optimizer", key=GAMMA, body={"input": {}})
    assert status == 400 and '{"input": {"client"' in payload["error"]["message"]
    assert call(erp, "POST", "/hooks/roas-optimizer", key=None, body={"input": {"client": "x"}})[0] == 401


def test_it_receives_the_platforms_event_webhooks_once_per_webhook_id():
    """The demo's event receiver: the platform's signed delivery (skills.signing, as the webhooks
    send it) is verified with the agency's secret, kept once per webhook-id, listed with its key; a
    forged one is refused."""
    from skills.signing import encode_payload, new_webhook_secret, signature_headers

    secret = new_webhook_secret()
    server, base_url = start_sample_erp(webhook_secrets={"alpha": secret})
    try:
        event = {"type": "run.succeeded", "timestamp": "2026-12-02T10:00:00+00:00", "data": {"run_id": "r1"}}
        body = encode_payload(event)
        signed = signature_headers(secret, msg_id="msg_1", body=body)
        for _ in range(2):  # a retry of the same delivery
            assert call(base_url, "POST", "/hooks/events/alpha", key=None, raw=body, headers=signed)[:2] == (
                200, {"received": True})
        forged = {**signed, "webhook-signature": "v1,AAAA"}
        assert call(base_url, "POST", "/hooks/events/alpha", key=None, raw=body, headers=forged)[0] == 401
        listed = call(base_url, "GET", "/events-received")[1]
        assert listed["count"] == 1 and listed["results"][0]["webhook_id"] == "msg_1"
        assert listed["results"][0]["data"] == {"run_id": "r1"}
        assert call(base_url, "GET", "/events-received", key=BETA)[1]["count"] == 0, "another agency's are apart"
        assert call(base_url, "POST", "/hooks/events/nobody", key=None, raw=body)[0] == 404
    finally:
        server.stop()
