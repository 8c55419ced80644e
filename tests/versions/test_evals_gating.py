# ruff: noqa: F811 - the scripted model fixture is imported by name
"""Issue 22 part 3: evals deciding things. Opening a sandbox for an update runs the eval set on
both versions (driven here pass by pass, each run through the real loop against the fake Messages
API, the model answering one case differently under the candidate's prompt); the update review and
the sandbox show both side by side and the recommendation hears of it; `staged` refuses approval
while the candidate passes fewer cases, naming them; a fixed version passes. An instance may
require a what-if eval before a rule or an avoided term is saved."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from django.test import Client as HttpClient

from agents import registry
from agents.specs import media_buying
from spokestack.errors import Conflict
from tuning.models import ContentRule, InstanceTuning, TuningChange
from tuning.services import client_create, client_rule_add, instance_tuning_update, tuning_rollback
from versions import services
from versions.evals import services as evals
from versions.evals.gating import eval_comparison
from versions.models import AgentVersionConfig, EvalCase, EvalRun, UpdateNotification

from ..conftest import HOST_A
from ..skills.conftest import scripted, text_turn  # noqa: F401 - fixtures by name
from .helpers import catalog_before_release, release
from .test_evals import drive

BASE = "/api/v1"
REACH_PROMPT = "Optimise for reach and brand awareness"  # in 2.4.0's system prompt only
GOOD = "Plan: maximize_conversions on search at a target CPA of 38 USD, for 20,000 USD a month."
BROKEN = "Plan: maximize_reach on social and video, for 20,000 USD a month."


@pytest.fixture
def pending(in_a):
    """media_buying 2.3.1 (staged, the default), 2.4.0 released and pending review."""
    catalog_before_release()
    release(["tenant_a"])
    return UpdateNotification.objects.get(agent_type="media_buying", version="2.4.0")


def media_cases(model, *, broken: int | None = 3) -> list[EvalCase]:
    """Five media-buying cases expecting a conversions plan. The model answers each the same way on
    any version, except case `broken`, which under 2.4.0's prompt plans for reach (its breaking change)."""
    cases = []
    for i in range(5):
        marker = f"mb-eval-{uuid.uuid4().hex[:10]}"
        model.script(marker, [text_turn(GOOD)], by_position=True)
        if i == broken:
            model.script(marker, [text_turn(BROKEN)], by_position=True, system_contains=REACH_PROMPT)
        cases.append(evals.eval_case_create(actor=None, data={
            "agent_type": "media_buying", "title": f"Plan {i}: conversions by default", "task": f"{marker}: plan Q{i}",
            "expectations": {"phrases_required": ["maximize_conversions"], "phrases_forbidden": ["maximize_reach"]}}))
    return cases


def drive_session(session) -> tuple[EvalRun, EvalRun]:
    runs = {r.version: r for r in EvalRun.objects.filter(sandbox_session=session)}
    assert set(runs) == {session.current_version, session.test_version}
    return drive(runs[session.current_version]), drive(runs[session.test_version])


def fixed_spec():
    """media_buying 2.4.1: 2.4.0's tools with the performance default back in the prompt (the
    breaking change rolled back); tests register it in their own process only."""
    core = {"remember", "search_knowledge"}  # added again by register()
    return dataclasses.replace(media_buying.MEDIA_BUYING_2_4_0, version="2.4.1", base_prompt=media_buying.PROMPT_V231,
                               tools=tuple(t for t in media_buying.MEDIA_BUYING_2_4_0.tools if t.name not in core))


@pytest.fixture
def fixed_release():
    registry.register(fixed_spec())
    yield "2.4.1"
    registry._REGISTRY["media_buying"].pop("2.4.1", None)
    from django_tenants.utils import schema_context

    from versions.catalog.models import CatalogVersion

    with schema_context("public"):
        CatalogVersion.objects.filter(agent_type="media_buying", version="2.4.1").delete()


def test_a_sandbox_for_an_update_runs_the_eval_set_on_both_versions_and_staged_refuses_the_worse(
        pending, scripted, make_user, fixed_release):
    admin = make_user("instance_admin")
    cases = media_cases(scripted)
    _, session = services.notification_review(actor=admin, notification_id=pending.pk, action="sandbox")
    current, test = drive_session(session)
    assert (current.cases_passed, current.cases_total, test.cases_passed, test.cases_total) == (5, 5, 4, 5)

    comparison = eval_comparison(agent_type="media_buying", current_version="2.3.1", test_version="2.4.0")
    assert comparison["state"] == "fewer"
    assert comparison["regressions"] == [{"case_id": cases[3].pk, "title": "Plan 3: conversions by default",
                                          "failures": [{"expectation": "phrases_required",
                                                        "message": "required phrase 'maximize_conversions' not found"},
                                                       {"expectation": "phrases_forbidden",
                                                        "message": "forbidden phrase 'maximize_reach' found"}]}]
    pending.refresh_from_db()  # the recommendation heard of it
    assert pending.recommendation == "caution" and "Evals: 2.4.0 passes 4/5 eval cases, 2.3.1 5/5" in pending.reason
    assert pending.analysis["evals"]["regressions"][0]["case_id"] == cases[3].pk

    with pytest.raises(Conflict, match="failing on the candidate only: “Plan 3: conversions by default”") as refused:
        services.sandbox_promote(actor=admin, session_id=session.pk, reason="looks fine")
    assert refused.value.details["needs"] == "eval_not_worse"
    services.sandbox_defer(actor=admin, session_id=session.pk, reason="wait for a fix")
    with pytest.raises(Conflict, match="Policy staged: 2.4.0 passes 4/5 eval cases, 2.3.1 5/5"):
        services.notification_review(actor=admin, notification_id=pending.pk, action="approve")
    assert AgentVersionConfig.objects.get(agent_type="media_buying").current_version == "2.3.1"

    # the fix: 2.4.1 rolls the breaking change back; its sandbox passes every case and approval goes through
    release(["tenant_a"])
    fixed = UpdateNotification.objects.get(agent_type="media_buying", version=fixed_release)
    _, session = services.notification_review(actor=admin, notification_id=fixed.pk, action="sandbox")
    current, test = drive_session(session)
    assert (current.cases_passed, test.cases_passed) == (5, 5)
    assert eval_comparison(agent_type="media_buying", current_version="2.3.1",
                           test_version=fixed_release)["state"] == "ok"
    config = services.sandbox_promote(actor=admin, session_id=session.pk, reason="5/5 on both")
    assert config.current_version == fixed_release


def test_staged_waits_for_running_evals_and_manual_does_not_ask(pending, scripted, make_user):
    admin = make_user("instance_admin")
    media_cases(scripted)
    with pytest.raises(Conflict, match="run the eval set on 2.3.1 and 2.4.0 before you approve"):
        services.notification_review(actor=admin, notification_id=pending.pk, action="approve")
    _, session = services.notification_review(actor=admin, notification_id=pending.pk, action="sandbox")
    with pytest.raises(Conflict, match="wait for the eval set to finish.*2.3.1 0/5, 2.4.0 0/5"):
        services.sandbox_promote(actor=admin, session_id=session.pk)
    services.version_config_update(actor=None, agent_type="media_buying", changes={"policy": "manual"})
    assert services.sandbox_promote(actor=admin, session_id=session.pk).current_version == "2.4.0"


def test_the_sandbox_page_and_the_api_show_both_versions_side_by_side(pending, scripted, make_user, api, instance_a):
    admin = make_user("instance_admin")
    cases = media_cases(scripted)
    _, session = services.notification_review(actor=admin, notification_id=pending.pk, action="sandbox")
    drive_session(session)
    body = api(instance_a, admin).get(f"{BASE}/sandbox/{session.pk}").json()
    assert (body["evals"]["state"], body["evals"]["current"]["passed"], body["evals"]["test"]["passed"]) == \
        ("fewer", 5, 4)
    assert [r["case_id"] for r in body["evals"]["regressions"]] == [cases[3].pk]
    browser = HttpClient(HTTP_HOST=HOST_A)
    browser.force_login(admin)
    page = browser.get(f"/admin/versions/agentversionconfig/sandbox/{session.pk}/").content.decode()
    assert 'data-state="fewer"' in page and 'id="eval-test-score">4/5' in page
    assert "Plan 3: conversions by default" in page and "forbidden phrase &#x27;maximize_reach&#x27; found" in page
    update = browser.get(f"/admin/versions/agentversionconfig/update/{pending.pk}/").content.decode()
    assert 'data-state="fewer"' in update and 'id="eval-current-score">5/5' in update

    # run again on demand (cases changed): two more eval runs, same session; the newest pair is shown
    assert api(instance_a, admin).post(f"{BASE}/sandbox/{session.pk}/evals").status_code == 202
    assert EvalRun.objects.filter(sandbox_session=session).count() == 4
    update = browser.get(f"/admin/versions/agentversionconfig/update/{pending.pk}/").content.decode()
    assert 'data-state="running"' in update


def test_who_sees_and_runs_a_sandboxs_evals(pending, scripted, make_user, api, instance_a, instance_b, assigned):
    from django.db import connection

    media_cases(scripted)
    _, session = services.notification_review(actor=make_user("instance_admin"), notification_id=pending.pk,
                                              action="sandbox")
    manager = api(instance_a, make_user("instance_manager"))
    assert manager.get(f"{BASE}/sandbox/{session.pk}").json()["evals"]["state"] == "running"
    assert manager.post(f"{BASE}/sandbox/{session.pk}/evals").status_code == 403
    account_manager = assigned("account_manager", client_create(name="Gulf Bank", vertical="finance"))
    for path in (f"{BASE}/sandbox/{session.pk}", f"{BASE}/sandbox/{session.pk}/evals"):
        call = api(instance_a, account_manager)
        assert (call.post(path) if path.endswith("evals") else call.get(path)).status_code == 403
    connection.set_tenant(instance_b)
    admin_b = make_user("instance_admin", email="admin-b-gating@example.com")
    connection.set_tenant(instance_a)
    other = api(instance_b, admin_b)
    assert other.get(f"{BASE}/sandbox/{session.pk}").status_code == 404
    assert other.post(f"{BASE}/sandbox/{session.pk}/evals").status_code == 404
    connection.set_tenant(instance_a)
    assert EvalRun.objects.filter(sandbox_session=session).count() == 2


# --- a what-if before a tuning change is saved ----------------------------------------------------


@pytest.fixture
def bloom_with_cases(in_a, scripted):
    client = client_create(name="Desert Bloom", vertical="beauty")
    cases = []
    for i in range(2):
        marker = f"wi-{uuid.uuid4().hex[:10]}"
        scripted.script(marker, [text_turn("Glow, naturally: Desert Bloom's new oud.")], by_position=True)
        cases.append(evals.eval_case_create(actor=None, data={
            "agent_type": "copy", "task": f"{marker}: caption {i}", "client_id": client.pk,
            "expectations": {"brand_rules_pass": True}}))
    return client, cases


def test_an_instance_requiring_evals_refuses_a_rule_until_its_what_if_finished(bloom_with_cases, make_user):
    client, cases = bloom_with_cases
    admin = make_user("instance_admin")
    rule = {"kind": "never", "text": "Never say 'naturally'"}
    client_rule_add(actor=admin, client=client, agent_type="copy", **rule)  # not required yet
    evals.require_eval_set(actor=admin, enabled=True, reason="evals first")
    other = {"kind": "never", "text": "Never say 'glow'"}
    with pytest.raises(Conflict, match="requires a what-if eval before this change is saved") as refused:
        client_rule_add(actor=admin, client=client, agent_type="copy", **other)
    assert refused.value.details["tuning_overlay"] == {"client_id": client.pk, "rules": [other]}
    what_if = evals.eval_run_start(actor=admin, agent_type="copy", tuning_overlay=refused.value.details["tuning_overlay"])
    assert what_if.case_ids == [c.pk for c in cases]  # that client's cases
    with pytest.raises(Conflict, match="still running"):
        client_rule_add(actor=admin, client=client, agent_type="copy", **other)
    what_if = drive(what_if)
    assert what_if.cases_passed == 0  # the outputs say "Glow": the rule would break both cases
    assert not ContentRule.objects.filter(text=other["text"]).exists(), "a what-if saves nothing"
    client_rule_add(actor=admin, client=client, agent_type="copy", **other)  # now it may be saved
    # an avoided term for the agent: its own what-if (all copy cases, no client)
    with pytest.raises(Conflict, match="what-if eval"):
        instance_tuning_update(actor=admin, agent_type="copy", changes={"terminology_avoid": ["oud"]})
    drive(evals.eval_run_start(actor=admin, agent_type="copy",
                               tuning_overlay={"rules": [{"kind": "avoid_term", "text": "oud"}]}))
    instance_tuning_update(actor=admin, agent_type="copy", changes={"terminology_avoid": ["oud"]})
    # the switch is audited and rolls back
    entry = TuningChange.objects.filter(field="require_eval_for_tuning").latest("id")
    tuning_rollback(actor=admin, change=entry)
    assert not InstanceTuning.objects.get(agent_type="").require_eval_for_tuning
    client_rule_add(actor=admin, client=client, agent_type="copy", kind="never", text="Never say 'cheap'")


def test_the_what_if_page_runs_and_saves_the_change(bloom_with_cases, make_user, assigned):
    client, _ = bloom_with_cases
    admin = make_user("instance_admin")
    evals.require_eval_set(actor=admin, enabled=True)
    browser = HttpClient(HTTP_HOST=HOST_A)
    browser.force_login(admin)
    client_page = browser.get(f"/admin/tuning/client/{client.pk}/change/").content.decode()
    assert "what-if-link" in client_page
    page = browser.get(f"/admin/versions/evalrun/what-if/?client={client.pk}")
    assert page.status_code == 200 and "requires a finished what-if" in page.content.decode()
    answer = browser.post("/admin/versions/evalrun/what-if/", {
        "agent_type": "copy", "client": client.pk, "kind": "never", "text": "Never say 'oud'"})
    eval_run = EvalRun.objects.get(tuning_overlay__client_id=client.pk)
    assert answer.status_code == 302 and str(eval_run.pk) in answer["Location"]
    assert "Save this change" not in browser.get(answer["Location"]).content.decode()  # not finished yet
    drive(eval_run)
    run_page = browser.get(answer["Location"]).content.decode()
    assert "0/2 cases passed with this change" in run_page and "Save this change" in run_page
    # an account manager of another client may look at eval runs, but neither saves this change nor starts one
    stranger = assigned("account_manager", client_create(name="Gulf Bank", vertical="finance"))
    other = HttpClient(HTTP_HOST=HOST_A)
    other.force_login(stranger)
    assert "Save this change" not in other.get(answer["Location"]).content.decode()
    other.post(f"/admin/versions/evalrun/{eval_run.pk}/save-what-if/")
    assert not ContentRule.objects.filter(text="Never say 'oud'").exists()
    assert other.get("/admin/versions/evalrun/what-if/").status_code == 403
    browser.post(f"/admin/versions/evalrun/{eval_run.pk}/save-what-if/")
    assert ContentRule.objects.filter(client=client, text="Never say 'oud'", agent_type="copy").exists()

