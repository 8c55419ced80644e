# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""The approval queue in the instance admin: counts on the landing page, the exact call, decide
with a note (first wins), scoping by role and client, isolation between instances; and the
skills admin: same rules as the API, write-only secret, Test button, metrics columns."""

import uuid

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from agents.loop import execute_run
from agents.models import ApprovalRequest, ApprovalStatus, RunStatus
from agents.services import run_cancel, run_create
from skills.models import Skill
from skills.services import skill_create
from tuning.services import client_create, instance_tuning_update

from ..conftest import HOST_A, HOST_B
from ..skills.conftest import admin_a, client_a, scripted, text_turn, tool_turn  # noqa: F401

DRAFT = {"content": "Glow gently this Ramadan."}


def browser(user, host=HOST_A):
    http = HttpClient(HTTP_HOST=host)
    http.force_login(user)
    return http


@pytest.fixture
def waiting(in_a, admin_a, client_a, scripted):
    instance_tuning_update(actor=None, changes={"require_approval_for": ["save_draft"]}, reason="legal")
    marker = f"adm-{uuid.uuid4().hex[:8]}"
    scripted.script(marker, [tool_turn(("toolu_ad1", "save_draft", DRAFT)), text_turn()])
    run = run_create(actor=admin_a, agent_type="copy", task=f"{marker}: caption", client_id=client_a.pk,
                     sandbox=True).run
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    return ApprovalRequest.objects.get()


def test_landing_page_counts_and_the_queue_shows_the_exact_call(waiting, admin_a):
    http = browser(admin_a)
    landing = http.get("/admin/")
    assert landing.status_code == 200
    assert b'id="approvals-pending"><strong>1</strong>' in landing.content
    queue = http.get("/admin/agents/approvalrequest/")
    assert queue.status_code == 200 and b"save_draft" in queue.content and b"Desert Bloom" in queue.content
    page = http.get(f"/admin/agents/approvalrequest/{waiting.pk}/change/")
    assert page.status_code == 200
    assert b"Glow gently this Ramadan." in page.content and b"instance/client approval rule" in page.content
    assert b"Approve and run" in page.content


def test_decide_in_the_admin_first_decision_wins(waiting, admin_a):
    http = browser(admin_a)
    url = f"/admin/agents/approvalrequest/{waiting.pk}/change/"
    done = http.post(url, {"note": "Legal says no", "_reject": "Reject"})
    assert done.status_code == 302
    waiting.refresh_from_db()
    assert waiting.status == ApprovalStatus.REJECTED and waiting.note == "Legal says no"
    late = http.post(url, {"note": "", "_approve": "Approve"}, follow=True)
    assert b"already rejected" in late.content
    waiting.refresh_from_db()
    assert waiting.status == ApprovalStatus.REJECTED
    assert b'id="approvals-pending"><strong>0</strong>' in http.get("/admin/").content


def test_admin_scoping_by_role_and_client(waiting, make_user, assigned):
    mine = browser(assigned("account_manager", waiting.client))
    assert b"save_draft" in mine.get("/admin/agents/approvalrequest/").content
    assert mine.post(f"/admin/agents/approvalrequest/{waiting.pk}/change/", {"_approve": "1"}).status_code == 302
    waiting.refresh_from_db()
    assert waiting.status == ApprovalStatus.APPROVED


def test_other_account_managers_and_contacts_cannot_see_or_decide(waiting, make_user, assigned):
    other = browser(assigned("account_manager", client_create(name="Another Brand")))
    assert b"save_draft" not in other.get("/admin/agents/approvalrequest/").content
    assert other.post(f"/admin/agents/approvalrequest/{waiting.pk}/change/", {"_approve": "1"}).status_code in (
        302, 404)
    contact = browser(assigned("client_contact", waiting.client))
    assert contact.get("/admin/agents/approvalrequest/").status_code == 403
    waiting.refresh_from_db()
    assert waiting.status == ApprovalStatus.PENDING


def test_a_cancelled_run_leaves_the_queue_and_cannot_be_approved(waiting, admin_a, api):
    run_cancel(actor=admin_a, run=waiting.run)
    http = api(connection.tenant, admin_a)
    response = http.post(f"/api/v1/approvals/{waiting.pk}/approve", {}, format="json")
    assert response.status_code == 409 and "already cancelled" in response.json()["error"]["message"]
    assert b'id="approvals-pending"><strong>0</strong>' in browser(admin_a).get("/admin/").content


def test_instance_b_admin_cannot_reach_a_approvals_or_skills(waiting, instance_b, make_user):
    skill = skill_create(actor=None, name="conflict_check", description="x", input_schema={"type": "object"},
                         execution_type="internal", handler="check_conflicts", agent_types=["copy"]).skill
    connection.set_tenant(instance_b)
    other = browser(make_user("instance_admin"), host=HOST_B)
    assert b"save_draft" not in other.get("/admin/agents/approvalrequest/").content
    assert other.get(f"/admin/agents/approvalrequest/{waiting.pk}/change/").status_code in (302, 404)
    assert other.post(f"/admin/agents/approvalrequest/{waiting.pk}/change/", {"_approve": "1"}).status_code in (
        302, 404)
    assert b"conflict_check" not in other.get("/admin/skills/skill/").content
    assert other.get(f"/admin/skills/skill/{skill.pk}/change/").status_code in (302, 404)


def test_approval_list_query_count_does_not_grow(waiting, admin_a, api, scripted, client_a):
    http = api(connection.tenant, admin_a)
    http.get("/api/v1/approvals")  # warm: the token's first use is recorded
    with CaptureQueriesContext(connection) as one:
        assert http.get("/api/v1/approvals").status_code == 200
    for n in range(3):
        marker = f"adm-q{n}-{uuid.uuid4().hex[:6]}"
        scripted.script(marker, [tool_turn((f"toolu_q{n}", "save_draft", DRAFT)), text_turn()])
        run = run_create(actor=admin_a, agent_type="copy", task=f"{marker}: c", client_id=client_a.pk,
                         sandbox=True).run
        execute_run(run_id=str(run.pk), worker="w1")
    with CaptureQueriesContext(connection) as four:
        body = http.get("/api/v1/approvals").json()
    assert body["count"] == 4 and len(four) == len(one)


# --- skills admin -----------------------------------------------------------------------


def skill_form(**overrides):
    data = {"name": "crm_lookup", "description": "Look up a brand.", "input_schema": '{"type": "object"}',
            "execution_type": "webhook", "agent_types": ["copy"], "enabled": "on", "webhook_url":
            "https://hooks.example.com/crm", "auth_type": "bearer", "auth_header": "X-Api-Key",
            "auth_secret": "tok-admin-secret", "handler": "", "timeout_s": "10"}
    data.update(overrides)
    return data


def test_skill_admin_create_shows_the_signing_secret_once_and_keeps_the_token_write_only(in_a, admin_a):
    http = browser(admin_a)
    created = http.post("/admin/skills/skill/add/", skill_form(), follow=True)
    assert created.status_code == 200
    skill = Skill.objects.get()
    signing = skill.signing_secret.reveal()
    assert signing.encode() in created.content
    assert skill.auth_secret.reveal() == "tok-admin-secret"
    page = http.get(f"/admin/skills/skill/{skill.pk}/change/")
    assert b"tok-admin-secret" not in page.content and signing.encode() not in page.content
    kept = http.post(f"/admin/skills/skill/{skill.pk}/change/", skill_form(auth_secret="", description="Changed."))
    assert kept.status_code == 302
    skill.refresh_from_db()
    assert skill.description == "Changed." and skill.auth_secret.reveal() == "tok-admin-secret"
    listing = http.get("/admin/skills/skill/")
    assert b"Test</a>" in listing.content and b"P95 ms" in listing.content


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"name": "save_draft"}, b"is a core tool of the copy agent"),
    ({"webhook_url": "http://169.254.169.254/"}, b"metadata"),
    ({"input_schema": '{"type": "object", "properties": {"a": {"type": 5}}}'}, b"not a valid JSON Schema"),
    ({"description": "x" * 2001}, b"2000"),
])
def test_skill_admin_refuses_what_the_api_refuses(in_a, admin_a, overrides, problem):
    page = browser(admin_a).post("/admin/skills/skill/add/", skill_form(**overrides))
    assert page.status_code == 200 and problem in page.content
    assert not Skill.objects.exists()


def test_skill_admin_permissions(in_a, make_user):
    skill_create(actor=None, name="conflict_check", description="x", input_schema={"type": "object"},
                 execution_type="internal", handler="check_conflicts", agent_types=["copy"])
    manager = browser(make_user("instance_manager"))
    assert manager.get("/admin/skills/skill/").status_code == 200
    assert manager.get("/admin/skills/skill/add/").status_code == 403
    skill = Skill.objects.get()
    assert manager.post(f"/admin/skills/skill/{skill.pk}/test/", {"sample_input": "{}"}).status_code == 403
    contact = browser(make_user("client_contact"))
    assert contact.get("/admin/skills/skill/").status_code == 403


def test_skill_admin_test_button_runs_an_internal_skill(in_a, admin_a, client_a):
    client_create(name="Glow Rival", vertical="beauty")
    skill = skill_create(actor=None, name="conflict_check", description="x", input_schema={"type": "object"},
                         execution_type="internal", handler="check_conflicts", agent_types=["copy"]).skill
    page = browser(admin_a).post(f"/admin/skills/skill/{skill.pk}/test/",
                                 {"sample_input": f'{{"client": "{client_a.slug}"}}'})
    assert page.status_code == 200 and b"Glow Rival" in page.content and b"OK in" in page.content

