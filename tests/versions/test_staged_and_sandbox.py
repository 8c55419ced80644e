# ruff: noqa: F811 - the scripted model fixture is imported by name
"""Issue #15 (findings 3 and 4): `staged` asks for a finished sandbox test before an update is
approved, `auto` with a non-safe analysis opens a sandbox instead of applying, sandbox tests run
for a client and a specialization, and a decision keeps who decided, why, and the review notes.
Sandbox runs go through the real loop and the real anthropic SDK against the fake Messages API."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client as HttpClient

from agents.loop import execute_run
from agents.models import AgentRun
from spokestack.errors import Conflict, InvalidInput, NotAllowed
from tuning.models import TuningChange
from tuning.services import client_create
from versions import services
from versions.models import AgentVersionConfig, SandboxSession, SandboxTest, UpdateNotification, VersionChange

from ..conftest import HOST_A
from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401 - fixtures by name
from .helpers import catalog_before_release, release, skill

BASE = "/api/v1"
ROAS = "Optimises the bid strategy toward a target ROAS from conversion value data."


@pytest.fixture
def pending(in_a):
    """media_buying 2.3.1, staged (the default), performance/ROAS, 2.4.0 released and pending."""
    catalog_before_release()
    services.version_config_update(actor=None, agent_type="media_buying",
                                   changes={"optimization_preferences": ["performance", "roas"]})
    skill("roas_optimizer", ROAS)
    release(["tenant_a"])
    return UpdateNotification.objects.get(agent_type="media_buying", version="2.4.0")


def run_test(fake_model, test: SandboxTest, *, channels=("search",)) -> SandboxTest:
    """Run both sides of a sandbox test here, as a worker would: each asks for a bid strategy, then
    answers (the current version first, so the scripted answers fall in that order)."""
    marker = test.task.split()[-1]
    for answer in ("Plan: maximize conversions on search.", "Plan: maximize reach on social and video."):
        fake_model.script(marker, [tool_turn((f"toolu_{uuid.uuid4().hex[:12]}", "recommend_bid_strategy",
                                              {"monthly_budget": 20000, "channels": list(channels)})),
                                   text_turn(answer)])
    for run in (test.current_run, test.test_run):
        execute_run(run_id=str(run.pk), worker="versions-test")
    return SandboxTest.objects.select_related("current_run", "test_run").get(pk=test.pk)


def test_staged_refuses_approve_until_a_sandbox_test_of_that_version_finished(pending, make_user, scripted):
    admin = make_user("instance_admin")
    assert pending.recommendation == "caution" and pending.status == "pending"
    with pytest.raises(Conflict, match="open a sandbox and run at least one test"):
        services.notification_review(actor=admin, notification_id=pending.pk, action="approve")
    pending.refresh_from_db()
    assert pending.status == "pending" and AgentVersionConfig.objects.get(agent_type="media_buying").current_version \
        == "2.3.1"

    session = services.sandbox_create(actor=admin, agent_type="media_buying", test_version="2.4.0")
    marker = f"[staged-{uuid.uuid4().hex[:8]}]"
    test = services.sandbox_test_add(actor=admin, session_id=session.pk, task=f"Plan Q1 search {marker}")
    with pytest.raises(Conflict, match="sandbox"):  # queued runs are not a finished test
        services.notification_review(actor=admin, notification_id=pending.pk, action="approve")
    test = run_test(scripted, test)
    assert (test.current_run.status, test.test_run.status) == ("succeeded", "succeeded")
    services.sandbox_defer(actor=admin, session_id=session.pk, reason="Ask the media team first")
    note, _ = services.notification_review(actor=admin, notification_id=pending.pk, action="approve",
                                           reason="Tested: bids are fine with an explicit objective")
    assert note.status == "applied"
    assert AgentVersionConfig.objects.get(agent_type="media_buying").current_version == "2.4.0"


def test_manual_approves_without_a_sandbox(pending, make_user):
    services.version_config_update(actor=None, agent_type="media_buying", changes={"policy": "manual"})
    note, _ = services.notification_review(actor=make_user("instance_admin"), notification_id=pending.pk,
                                           action="approve")
    assert note.status == "applied"


def test_staged_approve_over_the_api_is_409_saying_to_open_a_sandbox(pending, make_user, api, in_a):
    response = api(in_a, make_user("instance_admin")).post(f"{BASE}/updates/{pending.pk}/review",
                                                          {"action": "approve"}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert "open a sandbox and run at least one test" in error["message"]
    assert error["details"]["needs"] == "finished_sandbox_test"


@pytest.mark.parametrize(("preferences", "skills", "recommendation"), [
    (["performance", "roas"], [("roas_optimizer", ROAS)], "caution"),
    ([], [("roas_optimizer", ROAS)], "review"),
])
def test_auto_with_a_non_safe_analysis_opens_a_sandbox_instead_of_applying(in_a, preferences, skills,
                                                                          recommendation):
    catalog_before_release()
    services.version_config_update(actor=None, agent_type="media_buying",
                                   changes={"policy": "auto", "optimization_preferences": preferences})
    for name, description in skills:
        skill(name, description)
    history = VersionChange.objects.filter(agent_type="media_buying").count()
    release(["tenant_a"])
    note = UpdateNotification.objects.get(agent_type="media_buying", version="2.4.0")
    assert (note.recommendation, note.status) == (recommendation, "sandbox")
    session = SandboxSession.objects.get(agent_type="media_buying")
    assert (session.status, session.current_version, session.test_version) == ("active", "2.3.1", "2.4.0")
    config = AgentVersionConfig.objects.get(agent_type="media_buying")
    assert (config.current_version, config.sandbox_version) == ("2.3.1", "2.4.0"), "not applied"
    assert VersionChange.objects.filter(agent_type="media_buying").count() == history
    entry = TuningChange.objects.get(entity="version_settings", field="sandbox_version")
    assert f"Policy auto, but the impact analysis recommends {recommendation}" in entry.reason
    assert "was not applied" in entry.reason and entry.actor is None
    assert "## Sandbox opened" in note.content and str(session.pk) in note.content


def test_a_sandbox_test_runs_for_a_client_and_a_normalised_specialization(pending, make_user, scripted):
    admin = make_user("instance_admin")
    shop = client_create(name="Dune Outfitters", vertical="fashion", region="GCC")
    session = services.sandbox_create(actor=admin, agent_type="media_buying", test_version="2.4.0")
    marker = f"[client-{uuid.uuid4().hex[:8]}]"
    test = services.sandbox_test_add(actor=admin, session_id=session.pk, task=f"Plan Eid sales {marker}",
                                     client_id=shop.pk, specialization={"region": "uae", "language": "Arabic"})
    assert (test.client, test.specialization) == (shop, {"region": "GCC", "language": "ar"})
    for run in (test.current_run, test.test_run):
        assert (run.client, run.specialization, run.sandbox) == (shop, {"region": "GCC", "language": "ar"}, True)
    test = run_test(scripted, test)
    system = "\n".join(block["text"] for block in scripted.requests(marker)[0]["system"])
    assert "Dune Outfitters" in system, "the client's tuning reaches the model"
    with pytest.raises(InvalidInput, match="specialization.region"):
        services.sandbox_test_add(actor=admin, session_id=session.pk, task="x", specialization={"region": "mars"})
    with pytest.raises(InvalidInput, match="client_id: no client 999999"):
        services.sandbox_test_add(actor=admin, session_id=session.pk, task="x", client_id=999999)
    assert SandboxTest.objects.count() == 1


def test_account_managers_cannot_add_sandbox_tests_for_any_client(pending, assigned, make_user, api, in_a):
    mine = client_create(name="Mine Cosmetics", vertical="beauty")
    theirs = client_create(name="Theirs Bank", vertical="finance")
    manager = assigned("account_manager", mine)
    session = services.sandbox_create(actor=make_user("instance_admin"), agent_type="media_buying",
                                      test_version="2.4.0")
    for client in (theirs, mine):
        with pytest.raises(NotAllowed):
            services.sandbox_test_add(actor=manager, session_id=session.pk, task="x", client_id=client.pk)
        response = api(in_a, manager).post(f"{BASE}/sandbox/{session.pk}/test", {"task": "x", "client_id": client.pk},
                                           format="json")
        assert response.status_code == 403, response.json()
    assert not SandboxTest.objects.exists() and not AgentRun.objects.filter(client=theirs).exists()


def test_decisions_keep_who_why_and_notes_and_the_reason_reaches_the_audit_log(pending, make_user, api, in_a):
    admin = make_user("instance_admin")
    http = api(in_a, admin)
    session = services.sandbox_create(actor=admin, agent_type="media_buying", test_version="2.4.0")
    test = http.post(f"{BASE}/sandbox/{session.pk}/test",
                     {"task": "Plan a launch", "client_id": client_create(name="Acme", vertical="retail").pk,
                      "specialization": {"region": "eu"}}, format="json")
    assert test.status_code == 202, test.json()
    body = test.json()
    assert (body["client"]["name"], body["specialization"], body["verdict"]) == ("Acme", {"region": "EU"}, "running")
    detail = http.get(f"{BASE}/sandbox/{session.pk}").json()
    assert detail["summary"] == {"tests_run": 1, "finished": 0, "passed": 0, "failed": 0}
    assert detail["time_left"].startswith("23 h") and detail["decided_by"] is None
    bad = http.post(f"{BASE}/sandbox/{session.pk}/reject", {"reason": "x", "notes": ["no"]}, format="json")
    assert bad.status_code == 400 and "notes" in bad.json()["error"]["message"]
    rejected = http.post(f"{BASE}/sandbox/{session.pk}/reject",
                         {"reason": "Reach-first bids hurt ROAS", "notes": "Test 1: maximize_reach by default."},
                         format="json")
    assert rejected.status_code == 200, rejected.json()
    session.refresh_from_db()
    assert (session.status, session.decided_by, session.decision_reason, session.notes) == (
        "rejected", admin, "Reach-first bids hurt ROAS", "Test 1: maximize_reach by default.")
    decision = TuningChange.objects.get(entity="version_settings", field="sandbox_decision")
    assert (decision.reason, decision.actor, decision.new_value["status"]) == ("Reach-first bids hurt ROAS", admin,
                                                                              "rejected")
    detail = http.get(f"{BASE}/sandbox/{session.pk}").json()
    assert (detail["decided_by"], detail["decision_reason"], detail["notes"], detail["time_left"]) == (
        admin.email, "Reach-first bids hurt ROAS", "Test 1: maximize_reach by default.", "")


def test_the_admin_sandbox_page_polls_a_verdict_and_decides_through_a_confirmation(pending, make_user, scripted):
    admin = make_user("instance_admin")
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(admin)
    session = services.sandbox_create(actor=admin, agent_type="media_buying", test_version="2.4.0")
    page = http.get(f"/admin/versions/agentversionconfig/sandbox/{session.pk}/")
    assert page.status_code == 200
    assert "Expires in 23 h" in page.content.decode()
    marker = f"[admin-{uuid.uuid4().hex[:8]}]"
    shop = client_create(name="Dune Outfitters", vertical="fashion")
    added = http.post(f"/admin/versions/agentversionconfig/sandbox/{session.pk}/",
                      {"task": f"Plan Eid sales {marker}", "client": shop.pk, "region": "ksa"})
    assert added.status_code == 302
    test = SandboxTest.objects.get(session=session)
    assert (test.client, test.specialization) == (shop, {"region": "GCC"})
    status = http.get(f"/admin/versions/agentversionconfig/sandbox/{session.pk}/status/").json()
    assert (status["summary"]["tests_run"], status["finished"], status["tests"][0]["verdict"]) == (1, False, "running")
    run_test(scripted, test, channels=("search", "social"))
    status = http.get(f"/admin/versions/agentversionconfig/sandbox/{session.pk}/status/").json()
    assert status["finished"] and status["tests"][0]["verdict"] == "differ", status["tests"]
    assert "Both succeeded; the results differ" in status["html"] and "maximize reach on social" in status["html"]
    assert "{" not in status["html"].split("<pre>")[0], "no dict reprs"

    url = f"/admin/versions/agentversionconfig/sandbox/{session.pk}/reject/"
    assert "Reject 2.4.0?" in http.get(url).content.decode()
    refused = http.post(url, {"reason": "  ", "notes": ""})
    assert refused.status_code == 200 and "Say why you reject this version." in refused.content.decode()
    assert SandboxSession.objects.get(pk=session.pk).status == "active"
    done = http.post(url, {"reason": "Reach-first bids", "notes": "Differs on bid strategy."}, follow=True)
    text = done.content.decode()
    assert "Update rejected: Media buying stays on 2.3.1, pinned there" in text and "rejectd" not in text
    session.refresh_from_db()
    assert (session.decided_by, session.decision_reason, session.notes) == (admin, "Reach-first bids",
                                                                            "Differs on bid strategy.")


def test_approve_refused_in_the_admin_returns_to_the_update_with_the_sandbox_button(pending, make_user):
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(make_user("instance_admin"))
    response = http.post(f"/admin/versions/agentversionconfig/update/{pending.pk}/approve/", follow=True)
    text = response.content.decode()
    assert response.redirect_chain[-1][0].endswith(f"/update/{pending.pk}/")
    assert "open a sandbox and run at least one test" in text and "Test in sandbox" in text


def test_the_sandbox_status_and_decision_pages_answer_only_those_the_policy_allows(pending, assigned, make_user):
    mine = client_create(name="Mine Cosmetics", vertical="beauty")
    session = services.sandbox_create(actor=make_user("instance_admin"), agent_type="media_buying",
                                      test_version="2.4.0")
    base = f"/admin/versions/agentversionconfig/sandbox/{session.pk}"
    for role, status_code, decide_code in (("account_manager", 403, 403), ("client_contact", 403, 403),
                                           ("instance_manager", 200, 403)):
        http = HttpClient(HTTP_HOST=HOST_A)
        user = assigned(role, mine) if role in ("account_manager", "client_contact") else assigned(role)
        http.force_login(user)
        assert http.get(f"{base}/status/").status_code == status_code, role
        for decision in ("promote", "reject", "defer"):
            assert http.get(f"{base}/{decision}/").status_code == decide_code, (role, decision)
            assert http.post(f"{base}/{decision}/", {"reason": "mine"}).status_code == decide_code, (role, decision)
        assert http.post(f"{base}/", {"task": "x", "client": mine.pk}).status_code == 403, role
    session.refresh_from_db()
    assert session.status == "active" and not SandboxTest.objects.exists()
