"""Issue #16 part 4 in the browser: an admin runs an agent from the admin, continues the finished run
in a thread, replies "Make it shorter"; the second turn streams on its own page, under the
conversation so far, and the Reply box appears when it ends, without a reload. The Threads
changelist opens the conversation at its latest turn.

Everything is real: daphne (pages, websocket), the Redis channel layer, the session's Celery worker
and the real anthropic SDK against the local fake Messages API, which answers with the offline
model (nothing is scripted)."""

import uuid

import pytest
from django_tenants.utils import schema_context

from ..conftest import host_of
from .support import SCREENSHOTS, erp_wired_client, log_in


@pytest.mark.browser
@pytest.mark.live
def test_continue_a_run_in_a_thread_and_reply_in_the_admin(live_instance, celery_worker, daphne_server, sample_erp,
                                                           fake_model, egress_loopback, page):
    from agents.models import AgentRun, Thread

    instance = live_instance.instance
    client = erp_wired_client(live_instance, sample_erp, egress_loopback)
    marker = f"[browser-thread-{uuid.uuid4().hex[:8]}]"
    base = f"http://{host_of(instance)}:{daphne_server}"
    log_in(page, base, live_instance.admin.email, "/admin/agents/agentrun/run/")
    page.select_option("#id_agent_type", "copy")
    page.select_option("#id_client", str(client.pk))
    page.fill("#id_task", f"Write an Instagram caption for the Ramadan glow collection {marker}")
    page.click("#run-agent-form input[type=submit]")

    # Turn 0: an ordinary run. Once it has succeeded, "Continue in a thread" is offered.
    page.wait_for_selector(".run-status[data-status=succeeded]", timeout=40_000)
    page.wait_for_selector("#thread-continue-button", timeout=10_000)
    with schema_context(instance.schema_name):
        first = AgentRun.objects.get(task__contains=marker)
    assert first.thread_id is None
    page.click("#thread-continue-button")
    page.wait_for_selector("#thread-reply-text", timeout=10_000)
    assert "Continued in a thread" in page.inner_text("ul.messagelist")
    assert "turn 1 of 1" in page.inner_text("#run-head")

    # Reply. The fake model answers slowly for this turn, so its page sees it stream.
    fake_model.latency_s = 2.5
    try:
        page.fill("#thread-reply-text", "Make it shorter")
        page.click("#thread-send")
        page.wait_for_url(lambda url: str(first.pk) not in url, timeout=10_000)
        page.evaluate("window.__samePage = true")  # a reload would forget it
        # (rendered while the turn was queued: no Reply box yet)
        assert page.is_visible("#thread-wait") and not page.is_visible("#thread-reply-text")
        with schema_context(instance.schema_name):
            second = AgentRun.objects.get(thread_id=AgentRun.objects.get(pk=first.pk).thread_id, thread_turn=2)
        assert page.url.endswith(f"/admin/agents/agentrun/{second.pk}/change/")
        page.wait_for_function("document.getElementById('run-output').textContent.length > 0", timeout=30_000)
        page.wait_for_selector(".run-status[data-status=succeeded]", timeout=40_000)
    finally:
        fake_model.latency_s = 0.0
    page.wait_for_selector("#thread-reply-text", timeout=10_000)  # the Reply box, without a reload
    assert page.evaluate("window.__samePage === true")

    with schema_context(instance.schema_name):
        first.refresh_from_db()
        second.refresh_from_db()
        thread = Thread.objects.get(pk=first.thread_id)
    assert (first.thread_turn, second.thread_turn, thread.turns_count) == (1, 2, 2)
    assert second.output.count("Shorter version of my previous answer (turn 1") == 1
    shown = page.inner_text("#run-output")
    assert "Shorter version of my previous answer (turn 1" in shown
    # The conversation: turn 1 (its message and answer, linked to its run page) above turn 2.
    earlier = page.inner_text("#thread-conversation")
    assert "Turn 1" in earlier and "Write an Instagram caption" in earlier
    assert next(line for line in first.output.splitlines()[1:] if line.strip())[:40] in earlier
    assert page.locator(f"#thread-conversation a[href='/admin/agents/agentrun/{first.pk}/change/']").count() == 1
    assert page.inner_text("#run-task") == "Make it shorter"
    assert "Message (turn 2)" in page.inner_text("#content-main")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "thread-conversation.png"), full_page=True)

    # The Threads changelist opens the conversation at its latest turn.
    page.goto(f"{base}/admin/agents/thread/")
    page.click("a.thread-conversation")
    page.wait_for_url(f"**/admin/agents/agentrun/{second.pk}/change/")
    page.wait_for_selector("#thread-reply-text", timeout=10_000)
