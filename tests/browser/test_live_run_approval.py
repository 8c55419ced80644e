# ruff: noqa: F811 - the scripted model fixture is imported by name
"""Issue #15 (finding 2) in the browser: the live run page shows every state. A call held for
approval is shown with its exact input, the rule and the deadline; an agency admin approves it on
the run page and watches the run resume and finish, and the feedback widget appears without a
reload; a client contact sees the same request but no Approve, Reject or Cancel; a queued run is
cancelled from its page after a confirmation."""

import os
import uuid

import pytest
from django_tenants.utils import schema_context

from ..conftest import HOST_A, PASSWORD, host_of, wait_for
from ..skills.conftest import admin_a, client_a, scripted, text_turn, tool_turn  # noqa: F401 - fixtures by name
from .support import SCREENSHOTS, log_in

os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")
DRAFT = {"content": "Glow gently this Ramadan."}



@pytest.mark.browser
@pytest.mark.live
def test_approve_a_gated_call_on_the_live_run_page_and_watch_the_run_finish(live_instance, daphne_server, browser,
                                                                            page, scripted):
    from agents.loop import execute_run
    from agents.models import AgentRun, ApprovalRequest, RunStatus
    from agents.services import run_create
    from feedback.models import Feedback
    from spokestack.accounts.services import user_create
    from tuning.services import client_assign, client_create, instance_tuning_update

    schema = live_instance.instance.schema_name
    marker = f"[gate-{uuid.uuid4().hex[:8]}]"
    scripted.script(marker, [tool_turn((f"toolu_{uuid.uuid4().hex[:12]}", "save_draft", DRAFT)),
                             text_turn("Saved the draft for review.")])
    with schema_context(schema):
        user_create(email="owner@agency.example", password=PASSWORD, role="instance_admin")
        contact = user_create(email="contact@bloom.example", password=PASSWORD, role="client_contact")
        bloom = client_create(name="Desert Bloom", vertical="beauty", region="GCC")
        client_assign(user=contact, client=bloom, role="client_contact")
        instance_tuning_update(actor=None, changes={"require_approval_for": ["save_draft"]}, reason="legal review")
        run = run_create(actor=None, agent_type="copy", task=f"{marker}: write and save a caption.",
                         client_id=bloom.pk, sandbox=True).run
        # Run here, unless the session's worker (started by an earlier test) took the task first.
        assert execute_run(run_id=str(run.pk), worker="browser-test") in ("awaiting_approval", "skipped")
        wait_for(lambda: AgentRun.objects.get(pk=run.pk).status == RunStatus.AWAITING_APPROVAL, timeout=30)
        # A run whose task has not reached a worker yet (written as run_create leaves it, without the
        # enqueue, so that a worker of the session cannot take it before the test cancels it).
        queued = AgentRun.objects.create(agent_type="copy", agent_version=run.agent_version, client=bloom,
                                         task="A caption that is never run.")
    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    run_url = f"/admin/agents/agentrun/{run.pk}/change/"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # A client contact follows the run but may neither decide nor cancel.
    contact_page = browser.new_context().new_page()
    log_in(contact_page, base, "contact@bloom.example", run_url)
    contact_page.wait_for_selector(".run-status[data-status=awaiting_approval]", timeout=15_000)
    assert "Waiting for approval: save_draft" in contact_page.locator("#run-approvals").inner_text()
    assert contact_page.locator("form.approval-decide").count() == 0
    assert contact_page.locator("#run-cancel").count() == 0
    assert contact_page.locator("text=Approve and run").count() == 0
    assert contact_page.locator(".approval-link").count() == 0  # the approval queue is not theirs to open
    contact_page.wait_for_selector(".tool-call[data-tool=save_draft]")
    contact_page.screenshot(path=str(SCREENSHOTS / "live_run_awaiting_contact.png"), full_page=True)

    # The agency admin sees the exact call, the rule and the deadline, and approves it.
    log_in(page, base, "owner@agency.example", run_url)
    page.wait_for_selector(".run-status[data-status=awaiting_approval]", timeout=15_000)
    approval = page.locator("#run-approvals .approval[data-status=pending]")
    assert '"content": "Glow gently this Ramadan."' in approval.locator(".approval-input").inner_text()
    assert "save_draft" in approval.locator(".approval-rule").inner_text()
    assert "without a decision the call is not made" in approval.locator(".approval-deadline").inner_text()
    assert page.locator("#run-cancel button").is_visible()
    assert page.locator("#run-feedback").count() == 0
    assert "/admin/agents/approvalrequest/" in page.locator(".approval-link").get_attribute("href")
    page.wait_for_selector(".tool-call[data-tool=save_draft]")
    page.screenshot(path=str(SCREENSHOTS / "live_run_awaiting_approval.png"), full_page=True)
    approval.locator("textarea[name=note]").fill("Checked with legal.")
    approval.locator("button[name=_approve]").click()
    page.wait_for_selector("ul.messagelist")
    assert "Approved save_draft" in page.locator("ul.messagelist").inner_text()
    # Queued again; the session's worker, when one runs, may take it at once.
    page.wait_for_selector(", ".join(f".run-status[data-status={status}]" for status in (
        "queued", "running", "succeeded")), timeout=15_000)
    decided = page.locator("#run-approvals .approval[data-status=approved]")
    assert "by owner@agency.example" in decided.inner_text() and "Checked with legal." in decided.inner_text()
    assert page.locator("form.approval-decide").count() == 0
    with schema_context(schema):
        assert ApprovalRequest.objects.get(run=run).status == "approved"

    # The resumed run (queued by the decision; run here unless a worker of the session already took
    # it) streams to the open page: it finishes, Cancel goes and the feedback widget comes, without a reload.
    with schema_context(schema):
        outcome = execute_run(run_id=str(run.pk), worker="browser-test")
    assert outcome in ("succeeded", "skipped")
    page.wait_for_selector(".run-status[data-status=succeeded]", timeout=30_000)
    page.wait_for_selector("#run-feedback #feedback-approve", timeout=15_000)
    if outcome == "succeeded":  # the scripted model answered here (a session worker answers with its own model)
        assert "Saved the draft for review." in page.locator("#run-output").inner_text()
    assert page.locator("#run-cancel").count() == 0
    tool = page.locator(".tool-call[data-tool=save_draft]")
    assert "running…" not in tool.inner_text() and "awaiting approval" not in tool.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "live_run_finished_after_approval.png"), full_page=True)

    # Feedback given is shown on the run page afterwards.
    page.click("#feedback-approve")
    page.wait_for_selector("#feedback-given li[data-verdict=approved]")
    assert "owner@agency.example" in page.locator("#feedback-given").inner_text()
    with schema_context(schema):
        assert Feedback.objects.filter(run=run, current=True, verdict="approved").count() == 1

    # Cancel, with a confirmation, while the run is queued.
    page.goto(f"{base}/admin/agents/agentrun/{queued.pk}/change/")
    page.wait_for_selector(".run-status[data-status=queued]", timeout=15_000)
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click("#run-cancel button")
    page.wait_for_selector("ul.messagelist")
    assert dialogs and "Cancel this run?" in dialogs[0]
    page.wait_for_selector(".run-status[data-status=cancelled]", timeout=15_000)
    assert page.locator("#run-cancel").count() == 0
    with schema_context(schema):
        assert AgentRun.objects.get(pk=queued.pk).status == RunStatus.CANCELLED
    contact_page.context.close()


def test_the_run_page_decide_and_cancel_urls_refuse_other_clients_and_lower_roles(in_a, admin_a, client_a, scripted,
                                                                                  assigned):
    """Without a browser: another client's account manager neither sees nor touches the run's
    approval or Cancel (404, nothing changes); a client contact of the run's client sees the call
    but is refused the decision and the cancel (403); its own account manager decides on the page."""
    from django.test import Client as HttpClient

    from agents.loop import execute_run
    from agents.models import ApprovalRequest, ApprovalStatus, RunStatus
    from agents.services import run_create
    from tuning.services import client_create, instance_tuning_update

    instance_tuning_update(actor=None, changes={"require_approval_for": ["save_draft"]}, reason="legal")
    marker = f"page-{uuid.uuid4().hex[:8]}"
    scripted.script(marker, [tool_turn(("toolu_pg1", "save_draft", DRAFT)), text_turn()])
    run = run_create(actor=admin_a, agent_type="copy", task=f"{marker}: caption", client_id=client_a.pk,
                     sandbox=True).run
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    approval = ApprovalRequest.objects.get(run=run)

    def as_user(user):
        http = HttpClient(HTTP_HOST=HOST_A)
        http.force_login(user)
        return http

    page_url = f"/admin/agents/agentrun/{run.pk}/change/"
    decide_url = f"/admin/agents/agentrun/{run.pk}/approvals/{approval.pk}/decide/"
    cancel_url = f"/admin/agents/agentrun/{run.pk}/cancel/"
    stranger = as_user(assigned("account_manager", client_create(name="Another Brand")))
    assert stranger.get(page_url).status_code == 404
    assert stranger.post(decide_url, {"_approve": "1"}).status_code == 404
    assert stranger.post(cancel_url).status_code == 404
    contact = as_user(assigned("client_contact", client_a))
    page = contact.get(page_url).content.decode()
    assert "Waiting for approval: save_draft" in page and "Glow gently this Ramadan." in page
    assert "approval-decide" not in page and 'id="run-cancel"' not in page
    assert contact.post(decide_url, {"_approve": "1"}).status_code == 403
    assert contact.post(cancel_url).status_code == 403
    approval.refresh_from_db()
    run.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING and run.status == RunStatus.AWAITING_APPROVAL
    assert not run.cancel_requested

    manager = as_user(assigned("account_manager", client_a))
    page = manager.get(page_url).content.decode()
    assert "approval-decide" in page and 'id="run-cancel"' in page
    assert manager.get(decide_url).status_code == 405  # a decision is a POST with the CSRF token
    done = manager.post(decide_url, {"note": "Legal says no", "_reject": "1"}, follow=True)
    assert "Rejected save_draft" in done.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED and approval.note == "Legal says no"
    late = manager.post(decide_url, {"_approve": "1"}, follow=True).content.decode()
    assert "already rejected" in late
