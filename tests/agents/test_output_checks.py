# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""Content filters and rules are checked on every final output (issue #14, found 2 and 3): the
platform's filters of each core agent, the instance's filters and terms to avoid, the client's
never and competitor rules, by one deterministic matcher (the one behind check_brand_rules).
A violation is recorded on the run, streamed as `run.checked`, shown in the admin and the API,
and per instance setting flags the run for review or makes the agent revise once;
`audit_all_outputs` puts every output of the agent in the same review queue, which feedback
empties. Through the real loop, the real anthropic SDK and the local fake Messages API; one
test through the real Celery worker."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django_tenants.utils import schema_context

from agents.checks import AUDIT_ALL_REASON, ContentFilter, check_text
from agents.loop import execute_run
from agents.models import AgentRun, RunEvent
from agents.registry import agent_types, get_spec, versions
from agents.services import run_create
from feedback.services import feedback_give
from tuning.services import client_create, client_rule_add, client_tuning_update, instance_tuning_update

from ..conftest import HOST_A
from ..skills.conftest import admin_a, client_a, scripted, text_turn, tool_turn  # noqa: F401
from .test_runtime_live import api_call, sse_events, stack  # noqa: F401 - the live stack, by fixture name

BAD = ("Guaranteed results: our SALE serum, a miracle for anti-ageing, "
       "softer than Sahara Glow.")
CLEAN = "Radiance rooted in the desert, made for the Gulf sun."


def _run(scripted, client, turns, actor=None):
    marker = f"[check-{uuid.uuid4().hex[:8]}]"
    scripted.script(marker, turns)
    run = run_create(actor=actor, agent_type="copy", task=f"Write a caption {marker}", client_id=client.pk,
                     sandbox=True).run
    execute_run(run_id=str(run.pk), worker="checks-test")
    run.refresh_from_db()
    return run, scripted.requests(marker)


def _events(run, type_):
    return [e.payload for e in RunEvent.objects.filter(run=run, type=type_).order_by("seq")]


@pytest.fixture
def ruled(client_a):
    """Every kind of rule the check reads: an instance filter and a term to avoid, the client's
    never rule and competitor rule (and the copy agent's platform filters)."""
    instance_tuning_update(actor=None, changes={"content_filters": ["miracle"], "terminology_avoid": ["anti-ageing"]},
                           reason="legal")
    client_rule_add(actor=None, client=client_a, kind="never", text="Never use discount language such as 'sale'")
    client_tuning_update(actor=None, client=client_a, changes={
        "competitor_rules": [{"competitor": "Sahara Glow", "instruction": "Never name them."}]})
    return client_a


# --- tier 1: every core agent declares checkable filters ---------------------------------------


def test_every_core_agent_version_declares_checkable_platform_filters():
    for agent_type in agent_types():
        for version in versions(agent_type):
            filters = get_spec(agent_type, version).content_filters
            assert filters, f"{agent_type} {version} declares no platform content filter"
            for item in filters:
                assert isinstance(item, ContentFilter) and item.name and item.phrases
                # each filter catches its own examples, deterministically
                for phrase in item.phrases:
                    verdict = check_text(f"Copy that says {phrase.upper()} here.", [
                        {"kind": "filter", "text": str(item), "source": "platform_filter", "name": item.name,
                         "phrases": list(item.phrases)}])
                    assert not verdict["passed"], (agent_type, phrase)
                    assert verdict["violations"][0]["rule"] == item.name


def test_the_platform_filters_are_in_the_prompt_the_model_receives(in_a, scripted, client_a):
    _, sent = _run(scripted, client_a, [text_turn(CLEAN)])
    system = "\n".join(block["text"] for block in sent[0]["system"])
    assert "Content you must never produce" in system
    assert str(get_spec("copy").content_filters[0]) in system


# --- the check of the final output -------------------------------------------------------------


def test_a_violating_output_is_flagged_naming_every_rule_it_breaks(in_a, scripted, ruled):
    run, _ = _run(scripted, ruled, [text_turn(BAD)])
    assert run.status == "succeeded" and run.output == BAD, "flag: the run succeeds"
    assert run.review_status == "pending"
    violations = run.checks["violations"]
    found = {(v["source"], v["match"]) for v in violations}
    assert found == {("platform_filter", "Guaranteed results"), ("never_rule", "SALE"),
                     ("instance_filter", "miracle"), ("terminology_avoid", "anti-ageing"),
                     ("competitor_rule", "Sahara Glow")}
    for v in violations:
        assert BAD[v["span"][0]:v["span"][1]] == v["match"]
    assert run.checks["passed"] is False and run.checks["on_rule_violation"] == "flag"
    for words in ("5 rules", "unverifiable guarantees", "Never use discount language", "miracle", "anti-ageing",
                  "Sahara Glow"):
        assert words in run.review_reason
    checked = _events(run, "run.checked")
    assert len(checked) == 1 and checked[0]["review_status"] == "pending"
    assert checked[0]["violations"] == violations
    types = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    assert types[-2:] == ["run.checked", "run.succeeded"]


def test_a_clean_output_passes_and_stays_out_of_the_queue(in_a, scripted, ruled):
    run, _ = _run(scripted, ruled, [text_turn(CLEAN)])
    assert run.status == "succeeded" and run.review_status == "" and run.review_reason == ""
    assert run.checks["passed"] is True and run.checks["violations"] == []
    assert run.checks["checked"] == {"competitor_rule": 1, "instance_filter": 1, "never_rule": 1,
                                     "platform_filter": 2, "terminology_avoid": 1}
    assert _events(run, "run.checked")[0]["passed"] is True


def test_wholesale_does_not_break_sale_but_discounts_break_discount(in_a, scripted, client_a):
    client_rule_add(actor=None, client=client_a, kind="never", text="Never use discount language such as 'sale'")
    clean, _ = _run(scripted, client_a, [text_turn("Wholesale enquiries welcome.")])
    assert clean.checks["passed"] is True
    flagged, _ = _run(scripted, client_a, [text_turn("Huge discounts this week.")])
    assert [v["match"] for v in flagged.checks["violations"]] == ["discounts"]


def test_revise_asks_the_agent_once_with_the_violations_and_checks_the_revision(in_a, scripted, ruled):
    instance_tuning_update(actor=None, changes={"on_rule_violation": "revise"}, reason="legal")
    run, sent = _run(scripted, ruled, [text_turn(BAD), text_turn(CLEAN)])
    assert run.status == "succeeded" and run.output == CLEAN
    assert len(sent) == 2, "one extra turn"
    ask = sent[1]["messages"][-1]
    assert ask["role"] == "user"
    text = ask["content"][0]["text"]
    for words in ('"Guaranteed results"', '"SALE"', '"miracle"', '"anti-ageing"', '"Sahara Glow"', "Revise the answer once"):
        assert words in text
    assert run.review_status == "" and run.checks["passed"] is True and run.checks["revised"] is True
    assert len(run.checks["violations_before_revision"]) == 5
    checked = _events(run, "run.checked")
    assert [c["passed"] for c in checked] == [False, True] and checked[0]["revision_requested"] is True


def test_a_revision_that_still_violates_is_flagged_and_not_revised_again(in_a, scripted, ruled):
    instance_tuning_update(actor=None, changes={"on_rule_violation": "revise"}, agent_type="copy", reason="legal")
    run, sent = _run(scripted, ruled, [text_turn(BAD), text_turn("Still risk-free, still on sale.")])
    assert len(sent) == 2 and run.status == "succeeded"
    assert run.review_status == "pending" and "even after one revision" in run.review_reason
    assert {v["match"] for v in run.checks["violations"]} == {"risk-free", "sale"}


def test_check_brand_rules_in_a_run_checks_what_the_final_output_is_checked_against(in_a, scripted, ruled):
    run, sent = _run(scripted, ruled, [tool_turn(("toolu_cb1", "check_brand_rules", {"text": BAD})),
                                       text_turn(CLEAN)])
    result = json.loads(sent[1]["messages"][-1]["content"][0]["content"])
    assert result["passed"] is False
    assert {(v["source"], v["match"]) for v in result["violations"]} == {
        (v["source"], v["match"]) for v in _run(scripted, ruled, [text_turn(BAD)])[0].checks["violations"]}
    assert run.checks["passed"] is True


# --- the review queue --------------------------------------------------------------------------


def test_audit_all_outputs_queues_every_output_until_feedback_and_the_api_filters_it(
        in_a, scripted, client_a, assigned, api, instance_a):
    other = client_create(name="Thames Outfitters", vertical="retail", region="EU", language="en")
    manager = assigned("account_manager", client_a)
    other_manager = assigned("account_manager", other)
    instance_tuning_update(actor=None, changes={"audit_all_outputs": True}, agent_type="copy", reason="compliance")
    run, _ = _run(scripted, client_a, [text_turn(CLEAN)])
    theirs, _ = _run(scripted, other, [text_turn(CLEAN)])
    assert run.checks["passed"] is True
    assert run.review_status == "pending" and run.review_reason == AUDIT_ALL_REASON

    mine = api(instance_a, manager)
    queue = mine.get("/api/v1/agent/runs?review=pending")
    assert queue.status_code == 200
    assert [r["run_id"] for r in queue.json()["results"]] == [str(run.pk)], "only their client's runs"
    assert queue.json()["results"][0]["review_reason"] == AUDIT_ALL_REASON
    detail = mine.get(f"/api/v1/agent/status/{run.pk}").json()
    assert detail["review_status"] == "pending" and detail["checks"]["passed"] is True

    stranger = api(instance_a, other_manager)
    assert [r["run_id"] for r in stranger.get("/api/v1/agent/runs?review=pending").json()["results"]] == [
        str(theirs.pk)]
    assert stranger.get(f"/api/v1/agent/status/{run.pk}").status_code == 404
    assert api(instance_a).get("/api/v1/agent/runs?review=pending").status_code == 401
    bad = mine.get("/api/v1/agent/runs?review=maybe")
    assert bad.status_code == 400 and "pending" in json.dumps(bad.json())

    feedback_give(actor=manager, run_id=run.pk, verdict="approved")
    run.refresh_from_db()
    assert run.review_status == "reviewed" and run.reviewed_at is not None
    assert mine.get("/api/v1/agent/runs?review=pending").json()["results"] == []
    assert [r["run_id"] for r in mine.get("/api/v1/agent/runs?review=reviewed").json()["results"]] == [str(run.pk)]


def test_a_clean_run_of_an_agent_not_audited_has_nothing_to_review(in_a, scripted, client_a):
    instance_tuning_update(actor=None, changes={"audit_all_outputs": True}, agent_type="brief", reason="compliance")
    run, _ = _run(scripted, client_a, [text_turn(CLEAN)])
    assert run.review_status == ""


def test_the_admin_shows_the_queue_and_the_violations(in_a, scripted, ruled, admin_a, assigned):
    run, _ = _run(scripted, ruled, [text_turn(BAD)], actor=admin_a)
    clean, _ = _run(scripted, ruled, [text_turn(CLEAN)], actor=admin_a)
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(admin_a)
    queue = http.get("/admin/agents/agentrun/?review=pending")
    assert queue.status_code == 200
    body = queue.content.decode()
    assert "Needs review" in body and str(run.pk)[:8] in body and str(clean.pk)[:8] not in body
    page = http.get(f"/admin/agents/agentrun/{run.pk}/change/").content.decode()
    assert "Output check" in page and "Needs review:" in page
    assert "&ldquo;Sahara Glow&rdquo;" in page and "platform content filter &ldquo;unverifiable guarantees&rdquo;" in page

    other = client_create(name="Thames Outfitters", vertical="retail", region="EU", language="en")
    stranger = HttpClient(HTTP_HOST=HOST_A)
    stranger.force_login(assigned("account_manager", other))
    theirs = stranger.get("/admin/agents/agentrun/?review=pending")
    assert theirs.status_code == 200 and str(run.pk)[:8] not in theirs.content.decode()


# --- through the real worker -------------------------------------------------------------------


@pytest.mark.live
def test_a_flagged_run_through_the_worker_streams_its_check_and_waits_in_the_queue(stack):
    marker = f"[live-check-{uuid.uuid4().hex[:8]}]"
    stack["model"].script(marker, [
        {"content": [{"type": "text", "text": "A risk-free glow, clinically proven."}], "stop_reason": "end_turn"}])
    status, body = api_call(stack, "POST", "/api/v1/agent/execute", {
        "agent_type": "copy", "task": f"Write a caption {marker}", "client_id": stack["client"].pk})
    assert status == 202, body
    run_id = body["run_id"]
    events = sse_events(stack, run_id)
    types = [e["type"] for e in events]
    assert types[-2:] == ["run.checked", "run.succeeded"], types
    checked = events[-2]["payload"]
    assert checked["review_status"] == "pending"
    assert {v["match"] for v in checked["violations"]} == {"risk-free", "clinically proven"}
    _, queue = api_call(stack, "GET", "/api/v1/agent/runs?review=pending")
    assert [r["run_id"] for r in queue["results"]] == [run_id]
    _, detail = api_call(stack, "GET", f"/api/v1/agent/status/{run_id}")
    assert detail["review_status"] == "pending" and "unproven health claims" in detail["review_reason"]
    with schema_context(stack["instance"].schema_name):
        assert AgentRun.objects.get(pk=run_id).checks["passed"] is False
    connection.set_schema_to_public()
