# ruff: noqa: F811 - the scripted model fixture is imported by name
"""Issue 22 parts 1–2: eval cases, the expectation checker, eval runs as sandbox runs (driven here
pass by pass as the task would, each run through the real loop against the fake Messages API),
the API and its isolation (instance B, another client's account manager)."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import override_settings

from agents.loop import execute_run
from agents.models import AgentRun, RunStatus
from agents.services import run_create
from spokestack.errors import Conflict, InvalidInput, NotFound
from tuning.services import client_create, client_rule_add
from versions.evals import services
from versions.evals.checks import OFFLINE_RUBRIC, case_verdict
from versions.models import EvalCase, EvalResult, EvalRun

from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401 - fixtures by name

BASE = "/api/v1/evals"


def marker() -> str:
    return f"eval-{uuid.uuid4().hex[:10]}"


def finished(model, *, client=None, text="Glow, naturally: Desert Bloom's new oud.", tools=("save_draft",)):
    """A sandbox copy run executed here: it calls `tools`, then answers `text`."""
    m = marker()
    turns = [tool_turn(*[(f"toolu_{uuid.uuid4().hex[:12]}", name, {"content": text}) for name in tools])] \
        if tools else []
    model.script(m, [*turns, text_turn(text)])
    run = run_create(actor=None, agent_type="copy", task=f"{m}: write a caption", sandbox=True,
                     client_id=client.pk if client else None).run
    assert execute_run(run_id=str(run.pk), worker="evals-test") == RunStatus.SUCCEEDED
    return AgentRun.objects.get(pk=run.pk)


def case(expectations, *, task="write a caption", client=None) -> EvalCase:
    return services.eval_case_create(actor=None, data={"agent_type": "copy", "task": task, "expectations": expectations,
                                                       "client_id": client.pk if client else None})


@pytest.fixture
def bloom(in_a):
    client = client_create(name="Desert Bloom", vertical="beauty")
    client_rule_add(actor=None, client=client, kind="never", text="Never call the products 'cheap'")
    return client


# --- the checker -------------------------------------------------------------------------------


@pytest.mark.parametrize(("expectations", "passes", "message"), [
    ({"tools_required": ["save_draft"]}, True, None),
    ({"tools_required": ["schedule_post"]}, False, "tool schedule_post was not called (called: save_draft)"),
    ({"tools_forbidden": ["schedule_post"]}, True, None),
    ({"tools_forbidden": ["save_draft"]}, False, "tool save_draft was called, which this case forbids"),
    ({"phrases_required": ["DESERT BLOOM"]}, True, None),
    ({"phrases_required": ["sale"]}, False, "required phrase 'sale' not found"),
    ({"phrases_forbidden": ["sale"]}, True, None),
    ({"phrases_forbidden": ["GLOW"]}, False, "forbidden phrase 'GLOW' found"),
    ({"min_chars": 10, "max_chars": 100}, True, None),
    ({"min_chars": 100}, False, "fewer than the minimum 100"),
    ({"max_chars": 10}, False, "more than the maximum 10"),
    ({"artifact_schema": {"type": "object", "required": ["simulated"]}}, True, None),
    ({"artifact_schema": {"type": "object", "required": ["campaign_id"]}}, False,
     "the artifact does not match the schema at (the artifact): 'campaign_id' is a required property"),
    ({"brand_rules_pass": True}, True, None),
])
def test_each_expectation_passes_or_fails_with_its_message(bloom, scripted, expectations, passes, message):
    run = finished(scripted, client=bloom)
    verdict = case_verdict(case(expectations, client=bloom), run)
    assert verdict.passed is passes, verdict.failures
    if message:
        assert any(message in f["message"] for f in verdict.failures), verdict.failures
    assert verdict.checked == list(dict.fromkeys(expectations))


def test_brand_rules_fail_with_the_clients_rule_named(bloom, scripted):
    run = finished(scripted, client=bloom, text="Our cheap oud, for everyone.")
    verdict = case_verdict(case({"brand_rules_pass": True}, client=bloom), run)
    assert not verdict.passed
    assert verdict.failures[0]["expectation"] == "brand_rules_pass"
    assert "'cheap'" in verdict.failures[0]["message"] and "Never call the products" in verdict.failures[0]["message"]


def test_rubric_is_skipped_offline_and_graded_by_the_model_when_configured(bloom, scripted):
    run = finished(scripted, client=bloom)
    m = marker()
    graded = case({"rubric": "Warm and short."}, task=f"{m}: write a caption", client=bloom)
    with override_settings(ANTHROPIC_API_KEY=""):
        verdict = case_verdict(graded, run)
    assert verdict.passed and verdict.skipped == [{"expectation": "rubric", "message": OFFLINE_RUBRIC}]
    scripted.script(m, [text_turn("FAIL: it is not warm")])
    verdict = case_verdict(graded, run)
    assert not verdict.passed and verdict.failures == [{"expectation": "rubric", "message": "rubric not met: it is not warm"}]


def test_a_failed_run_fails_the_case_saying_so(bloom, scripted):
    run = finished(scripted, client=bloom)
    AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error="model unavailable")
    run.refresh_from_db()
    verdict = case_verdict(case({}, client=bloom), run)
    assert verdict.failures == [{"expectation": "run", "message": "the run failed: model unavailable"}]


@pytest.mark.parametrize(("expectations", "field"), [
    ({"tools_required": "x", "nonsense": 1}, "nonsense"),
    ({"min_chars": -1}, "expectations.min_chars"),
    ({"min_chars": 50, "max_chars": 10}, "expectations.max_chars"),
    ({"artifact_schema": {"type": "nope"}}, "expectations.artifact_schema"),
    ({"brand_rules_pass": "yes"}, "expectations.brand_rules_pass"),
    ({"phrases_forbidden": [""]}, "expectations.phrases_forbidden"),
])
def test_bad_expectations_are_refused_naming_the_field(in_a, expectations, field):
    with pytest.raises(InvalidInput, match=field.replace(".", r"\.")):
        case(expectations)


# --- cases from a run --------------------------------------------------------------------------


def test_a_case_from_a_succeeded_run_takes_its_output_as_reference_and_proposes_expectations(bloom, scripted):
    run = finished(scripted, client=bloom, text="x" * 100)
    made = services.eval_case_from_run(actor=None, run_id=str(run.pk))
    assert (made.agent_type, made.client, made.reference, made.source_run_id) == ("copy", bloom, "x" * 100, run.pk)
    assert made.expectations == {"brand_rules_pass": True, "tools_required": ["save_draft"], "min_chars": 50,
                                 "max_chars": 150}
    assert case_verdict(made, run).passed
    AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    with pytest.raises(Conflict, match="only a succeeded run"):
        services.eval_case_from_run(actor=None, run_id=str(run.pk))
    with pytest.raises(InvalidInput, match="run_id"):
        services.eval_case_from_run(actor=None, run_id="nope")


# --- eval runs ---------------------------------------------------------------------------------


def five_cases(client) -> list[EvalCase]:
    """Five cases, each with its own marker, each forbidding 'oud'."""
    cases = []
    for i in range(5):
        m = marker()
        expectations = {"tools_required": ["save_draft"], "brand_rules_pass": True, "min_chars": 10,
                        "phrases_forbidden": ["oud"]}
        cases.append(case(expectations, task=f"{m}: caption {i}", client=client))
    return cases


def script_answers(model, cases, *, bad: set[int]):
    for i, c in enumerate(cases):
        text = "Our oud, naturally." if i in bad else "Glow, naturally: Desert Bloom."
        model.script(c.task.split(":")[0], [tool_turn((f"toolu_{uuid.uuid4().hex[:12]}", "save_draft",
                                                       {"content": text})), text_turn(text)])


def drive(eval_run: EvalRun) -> EvalRun:
    """What the task does, here: a pass starts the runs, the runs execute, a pass records them."""
    assert services.eval_run_advance(eval_run_id=str(eval_run.pk)) is not None
    for result in EvalResult.objects.filter(eval_run=eval_run):
        execute_run(run_id=str(result.run_id), worker="evals-test")
    assert services.eval_run_advance(eval_run_id=str(eval_run.pk)) is None
    return EvalRun.objects.get(pk=eval_run.pk)


def test_an_eval_run_of_five_cases_with_one_failing(bloom, scripted, make_user):
    cases = five_cases(bloom)
    script_answers(scripted, cases, bad={2})
    manager = make_user("instance_manager")
    eval_run = services.eval_run_start(actor=manager, agent_type="copy")
    assert (eval_run.status, eval_run.cases_total) == ("queued", 5)
    eval_run = drive(eval_run)
    assert (eval_run.status, eval_run.cases_done, eval_run.cases_passed) == ("succeeded", 5, 4)
    assert eval_run.summary["pass_rate"] == 0.8 and eval_run.summary["previous"] is None
    assert eval_run.summary["failing"] == [{"case_id": cases[2].pk, "title": str(cases[2]), "failures": [
        {"expectation": "phrases_forbidden", "message": "forbidden phrase 'oud' found"}]}]
    runs = AgentRun.objects.filter(metadata__eval_run=str(eval_run.pk))
    assert runs.count() == 5 and all(r.sandbox and r.agent_version == eval_run.version for r in runs)
    result = EvalResult.objects.get(eval_run=eval_run, case=cases[0])
    assert result.tools_used == ["save_draft"] and result.output_excerpt.startswith("Glow")
    assert result.duration_s is not None


def test_the_summary_names_newly_failing_and_newly_passing_cases(bloom, scripted):
    cases = five_cases(bloom)
    script_answers(scripted, cases, bad={2})
    first = drive(services.eval_run_start(actor=None, agent_type="copy"))
    script_answers(scripted, cases, bad={0})
    second = drive(services.eval_run_start(actor=None, agent_type="copy"))
    assert second.summary["previous"]["eval_run_id"] == str(first.pk)
    assert second.summary["newly_failing"] == [cases[0].pk] and second.summary["newly_passing"] == [cases[2].pk]


def test_a_duplicate_task_neither_starts_nor_counts_a_case_twice(bloom, scripted):
    cases = five_cases(bloom)
    script_answers(scripted, cases, bad=set())
    eval_run = services.eval_run_start(actor=None, agent_type="copy")
    services.eval_run_advance(eval_run_id=str(eval_run.pk))
    services.eval_run_advance(eval_run_id=str(eval_run.pk))  # a second delivery
    assert EvalResult.objects.filter(eval_run=eval_run).count() == 5
    assert AgentRun.objects.filter(metadata__eval_run=str(eval_run.pk)).count() == 5
    for result in EvalResult.objects.filter(eval_run=eval_run):
        execute_run(run_id=str(result.run_id), worker="evals-test")
    pending = list(EvalResult.objects.filter(eval_run=eval_run).select_related("run"))
    # a worker killed after judging: the same verdict recorded again changes nothing
    assert services._record(result=pending[0], status="passed", failures=[], run=pending[0].run)
    assert not services._record(result=pending[0], status="passed", failures=[], run=pending[0].run)
    services.eval_run_advance(eval_run_id=str(eval_run.pk))
    assert services.eval_run_advance(eval_run_id=str(eval_run.pk)) is None
    eval_run.refresh_from_db()
    assert (eval_run.status, eval_run.cases_done, eval_run.cases_passed) == ("succeeded", 5, 5)


def test_a_what_if_overlay_rule_fails_the_case_that_uses_the_banned_phrase(bloom, scripted):
    cases = five_cases(bloom)
    script_answers(scripted, cases, bad=set())
    eval_run = drive(services.eval_run_start(actor=None, agent_type="copy", tuning_overlay={
        "rules": [{"kind": "never", "text": "Never say 'naturally'"}]}))
    assert eval_run.cases_passed == 0
    assert "'naturally'" in eval_run.summary["failing"][0]["failures"][0]["message"]
    assert not client_rule_exists(bloom, "naturally"), "a what-if saves nothing"
    # the rule was told, as the client's would be: in every case's system prompt, and in no plain run's
    sent = scripted.requests(cases[0].task.split(":")[0])[0]
    assert "Never say 'naturally'" in json.dumps(sent["system"])
    assert eval_run.summary["overlay_applied_to"] == "each case's prompt and the brand check of its output"
    script_answers(scripted, cases, bad=set())
    plain = drive(services.eval_run_start(actor=None, agent_type="copy"))
    assert plain.cases_passed == 5, "the what-if left nothing behind"
    assert "naturally" not in json.dumps(scripted.requests(cases[0].task.split(":")[0])[-1]["system"])


def client_rule_exists(client, phrase):
    from tuning.models import ContentRule

    return ContentRule.objects.filter(client=client, text__icontains=phrase).exists()


def test_starting_refuses_an_empty_set_an_unknown_version_and_a_bad_overlay(in_a):
    with pytest.raises(Conflict, match="no enabled eval cases"):
        services.eval_run_start(actor=None, agent_type="copy")
    case({})
    with pytest.raises(InvalidInput, match="version: copy has no version '9.9.9'"):
        services.eval_run_start(actor=None, agent_type="copy", version="9.9.9")
    with pytest.raises(InvalidInput, match=r"tuning_overlay.rules\[0\]"):
        services.eval_run_start(actor=None, agent_type="copy", tuning_overlay={"rules": [{"kind": "always"}]})
    with pytest.raises(InvalidInput, match="agent_type: no agent type 'nope'"):
        services.eval_run_start(actor=None, agent_type="nope")


# --- the API and isolation ---------------------------------------------------------------------


def test_the_case_api_round_trip_and_bad_input(bloom, api, make_user, instance_a):
    http = api(instance_a, make_user("instance_admin"))
    created = http.post(f"{BASE}/cases", {"agent_type": "copy", "task": "Write a caption.", "client_id": bloom.pk,
                                          "expectations": {"phrases_forbidden": ["cheap"]}}, format="json")
    assert created.status_code == 201, created.content
    cid = created.json()["id"]
    assert http.get(f"{BASE}/cases?agent_type=copy").json()["results"][0]["id"] == cid
    changed = http.patch(f"{BASE}/cases/{cid}", {"expectations": {"max_chars": 200}}, format="json")
    assert changed.status_code == 200 and changed.json()["expectations"] == {"max_chars": 200}
    bad = http.patch(f"{BASE}/cases/{cid}", {"expectations": {"max_chars": "long"}}, format="json")
    assert bad.status_code == 400 and "expectations.max_chars" in bad.json()["error"]["message"]
    assert http.post(f"{BASE}/cases", {"agent_type": "copy"}, format="json").status_code == 400
    unknown = http.post(f"{BASE}/cases", {"agent_type": "copy", "task": "x", "colour": 1}, format="json")
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]["message"]
    assert http.post(f"{BASE}/runs", {"agent_type": "copy", "version": "0.0.1"}, format="json").status_code == 400
    started = http.post(f"{BASE}/runs", {"agent_type": "copy"}, format="json")
    assert started.status_code == 202 and started.json()["progress"] == {"done": 0, "total": 1}
    detail = http.get(f"{BASE}/runs/{started.json()['id']}").json()
    assert detail["status"] == "queued" and detail["results"] == []
    assert http.delete(f"{BASE}/cases/{cid}").status_code == 204
    assert http.get(f"{BASE}/cases/{cid}").status_code == 404


def test_another_instance_sees_nothing(bloom, api, make_user, instance_a, instance_b, scripted):
    made = case({}, client=bloom)
    cases = five_cases(bloom)
    script_answers(scripted, cases, bad=set())
    eval_run = drive(services.eval_run_start(actor=None, agent_type="copy"))
    from django.db import connection

    connection.set_tenant(instance_b)
    admin_b = make_user("instance_admin", email="admin-b-evals@example.com")
    connection.set_tenant(instance_a)
    http = api(instance_b, admin_b)
    assert http.get(f"{BASE}/cases/{made.pk}").status_code == 404
    assert http.get(f"{BASE}/cases").json()["results"] == []
    assert http.get(f"{BASE}/runs/{eval_run.pk}").status_code == 404
    assert http.patch(f"{BASE}/cases/{made.pk}", {"title": "x"}, format="json").status_code == 404
    assert http.delete(f"{BASE}/cases/{made.pk}").status_code == 404


def test_an_account_manager_sees_and_writes_only_their_clients_cases_and_results(bloom, scripted, api, assigned,
                                                                                 instance_a):
    other = client_create(name="Other Co", vertical="beauty")
    mine, theirs = case({}, client=bloom, task=f"{marker()}: mine"), case({}, client=other, task=f"{marker()}: theirs")
    for c in (mine, theirs):
        scripted.script(c.task.split(":")[0], [text_turn("A caption.")])
    eval_run = drive(services.eval_run_start(actor=None, agent_type="copy"))
    am = assigned("account_manager", bloom)
    http = api(instance_a, am)
    assert [c["id"] for c in http.get(f"{BASE}/cases").json()["results"]] == [mine.pk]
    assert http.get(f"{BASE}/cases/{theirs.pk}").status_code == 404
    assert http.patch(f"{BASE}/cases/{theirs.pk}", {"title": "x"}, format="json").status_code == 404
    assert http.delete(f"{BASE}/cases/{theirs.pk}").status_code == 404
    moved = http.patch(f"{BASE}/cases/{mine.pk}", {"client_id": other.pk}, format="json")
    assert moved.status_code == 400 and "client_id" in moved.json()["error"]["message"]
    no_client = http.post(f"{BASE}/cases", {"agent_type": "copy", "task": "x"}, format="json")
    assert no_client.status_code == 400 and "client_id" in no_client.json()["error"]["message"]
    assert http.post(f"{BASE}/cases", {"agent_type": "copy", "task": "x", "client_id": bloom.pk},
                     format="json").status_code == 201
    detail = http.get(f"{BASE}/runs/{eval_run.pk}").json()
    assert [r["case_id"] for r in detail["results"]] == [mine.pk] and detail["progress"] == {"done": 1, "total": 1}
    assert http.get(f"{BASE}/runs").json()["results"][0]["pass_rate"] is None
    assert http.post(f"{BASE}/runs", {"agent_type": "copy"}, format="json").status_code == 403
    with pytest.raises(NotFound):
        services.eval_case_update(actor=am, case_id=theirs.pk, changes={"title": "x"})


def test_the_admin_pages_show_cases_and_an_eval_runs_results(bloom, scripted, make_user):
    from django.test import Client as HttpClient

    from ..conftest import HOST_A

    cases = five_cases(bloom)
    script_answers(scripted, cases, bad={2})
    eval_run = drive(services.eval_run_start(actor=None, agent_type="copy"))
    admin = make_user("instance_admin")
    browser = HttpClient(HTTP_HOST=HOST_A)
    browser.force_login(admin)
    page = browser.get(f"/admin/versions/evalrun/{eval_run.pk}/change/")
    assert page.status_code == 200
    assert b"4/5" in page.content and b"forbidden phrase &#x27;oud&#x27; found" in page.content
    assert browser.get("/admin/versions/evalcase/").status_code == 200
    form = browser.get(f"/admin/versions/evalcase/{cases[2].pk}/change/")
    assert form.status_code == 200 and b'name="phrases_forbidden"' in form.content
    answer = browser.post("/admin/versions/evalcase/", {"action": "run_eval_set", "_selected_action": [cases[0].pk]})
    assert answer.status_code == 302 and EvalRun.objects.count() == 2


def test_case_changes_are_audited_and_roll_back(bloom):
    from tuning.models import Entity, TuningChange
    from tuning.services import tuning_rollback

    made = services.eval_case_create(actor=None, data={"agent_type": "copy", "task": "A caption.",
                                                       "client_id": bloom.pk,
                                                       "expectations": {"phrases_forbidden": ["oud"]}})
    services.eval_case_update(actor=None, case_id=made.pk, changes={"expectations": {"max_chars": 80}})
    entries = list(TuningChange.objects.filter(entity=Entity.EVAL_CASE).order_by("id"))
    assert [(e.action, e.client_id) for e in entries] == [("create", bloom.pk), ("update", bloom.pk)]
    tuning_rollback(actor=None, change=entries[1])
    assert EvalCase.objects.get(pk=made.pk).expectations == {"phrases_forbidden": ["oud"]}
    services.eval_case_delete(actor=None, case_id=made.pk)
    tuning_rollback(actor=None, change=TuningChange.objects.get(entity=Entity.EVAL_CASE, action="delete"))
    assert EvalCase.objects.get(task="A caption.").expectations == {"phrases_forbidden": ["oud"]}


def test_the_run_page_makes_an_eval_case_in_one_click_for_whom_may(bloom, scripted, make_user, assigned):
    from django.test import Client as HttpClient

    from ..conftest import HOST_A

    m = marker()
    scripted.script(m, [text_turn("Glow gently, Desert Bloom.")])
    run = run_create(actor=None, agent_type="copy", task=f"{m}: a caption.", client_id=bloom.pk, sandbox=True).run
    assert execute_run(run_id=str(run.pk), worker="evals-test") == "succeeded"
    admin = HttpClient(HTTP_HOST=HOST_A)
    admin.force_login(make_user("instance_admin"))
    page = admin.get(f"/admin/agents/agentrun/{run.pk}/change/").content.decode()
    assert "Make an eval case" in page
    made = admin.post(f"/admin/versions/evalcase/from-run/{run.pk}/", follow=True)
    case = EvalCase.objects.get(source_run=run)
    assert made.redirect_chain[-1][0] == f"/admin/versions/evalcase/{case.pk}/change/"
    assert "Eval case made from this run" in made.content.decode()
    assert case.reference == "Glow gently, Desert Bloom." and case.client == bloom
    contact = HttpClient(HTTP_HOST=HOST_A)  # a client contact may see the run, not make cases
    contact.force_login(assigned("client_contact", bloom))
    assert "Make an eval case" not in contact.get(f"/admin/agents/agentrun/{run.pk}/change/").content.decode()
    assert contact.post(f"/admin/versions/evalcase/from-run/{run.pk}/").status_code == 403
    assert EvalCase.objects.filter(source_run=run).count() == 1


def test_a_case_stuck_past_the_timeout_fails_saying_so_and_a_lost_task_is_swept(bloom, scripted):
    from datetime import timedelta

    from django.utils import timezone

    cases = five_cases(bloom)[:2]
    EvalCase.objects.exclude(pk__in=[c.pk for c in cases]).update(enabled=False)
    script_answers(scripted, cases, bad=set())
    eval_run = services.eval_run_start(actor=None, agent_type="copy")
    services.eval_run_advance(eval_run_id=str(eval_run.pk))
    first, second = EvalResult.objects.filter(eval_run=eval_run).order_by("pk")
    execute_run(run_id=str(first.run_id), worker="evals-test")  # the second never runs (an approval nobody gives)
    # the task was lost after that pass: the sweep queues the run again once its last pass is stale
    assert services.eval_runs_sweep() == 0
    assert services.eval_runs_sweep(now=timezone.now() + timedelta(seconds=31)) == 1
    AgentRun.objects.filter(pk=second.run_id).update(created_at=timezone.now() - timedelta(minutes=16))
    assert services.eval_run_advance(eval_run_id=str(eval_run.pk)) is None
    eval_run.refresh_from_db()
    assert (eval_run.status, eval_run.cases_done, eval_run.cases_passed) == ("succeeded", 2, 1)
    second.refresh_from_db()
    assert second.failures == [{"expectation": "run", "message": "the run did not finish within 15 minutes (it is "
                                                                 "queued)"}]
    assert services.eval_runs_sweep(now=timezone.now() + timedelta(hours=1)) == 0  # finished: nothing to sweep
