"""Issue #19 in the browser: an admin starts a proposal run; its page shows each delegated run as a
collapsible section that fills in live (status, the child's answer, its events), the cost with the
delegated runs, and each child's own page says which run delegated to it."""

import uuid

import pytest

from .support import SCREENSHOTS, erp_wired_client, log_in


@pytest.mark.browser
@pytest.mark.live
def test_a_proposal_run_page_shows_its_delegated_runs_live(live_instance, celery_worker, daphne_server, sample_erp,
                                                          fake_model, egress_loopback, page):
    instance = live_instance.instance
    client = erp_wired_client(live_instance, sample_erp, egress_loopback)
    m = {name: f"[{name}-{uuid.uuid4().hex[:8]}]" for name in ("proposal", "rfp", "content")}
    fake_model.script(m["proposal"], [
        {"content": [{"type": "text", "text": "Briefing the RFP and content agents."},
                     *({"type": "tool_use", "id": f"toolu_{agent}", "name": f"delegate_to_{agent}",
                        "input": {"task": f"{m[agent]} Your part of the Najd Dates proposal."}}
                       for agent in ("rfp", "content"))], "stop_reason": "tool_use"},
        {"content": [{"type": "text", "text": "Proposal: Ramadan 2027, assembled from both parts."}],
         "stop_reason": "end_turn", "delay_s": 0.5},
    ], by_position=True)
    fake_model.script(m["rfp"], [{"content": [{"type": "text", "text": "Requirements: 3 hero videos."}],
                                  "stop_reason": "end_turn", "delay_s": 1.0}], by_position=True)
    fake_model.script(m["content"], [{"content": [{"type": "text", "text": "Dear Najd Dates team, thank you."}],
                                      "stop_reason": "end_turn", "delay_s": 1.5}], by_position=True)
    base = f"http://{instance.domains.get().domain}:{daphne_server}"
    log_in(page, base, live_instance.admin.email, "/admin/agents/agentrun/run/")
    page.select_option("#id_agent_type", "proposal")
    page.select_option("#id_client", str(client.pk))
    page.fill("#id_task", f"Answer the Najd Dates Ramadan RFP {m['proposal']}")
    page.click("#run-agent-form input[type=submit]")

    page.wait_for_selector(".child-run[data-status=succeeded] >> nth=1", timeout=30_000)
    page.wait_for_selector("#run-status .run-status[data-status=succeeded]", timeout=30_000)
    sections = page.locator(".child-run")
    assert sections.count() == 2
    rfp = page.locator(".child-run", has_text="rfp").first
    rfp.locator("summary .child-title").click()  # opens the section (the summary also holds the run's link)
    assert "Requirements: 3 hero videos." in rfp.locator(".child-output").inner_text()
    assert "run.succeeded" in rfp.locator(".child-log").inner_text()
    assert "delegated to rfp" in page.inner_text(".tool-call[data-tool=delegate_to_rfp]")
    assert page.is_visible("#fact-children-row")
    page.wait_for_function("document.getElementById('fact-total').textContent.startsWith('$')")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "delegation-parent.png"), full_page=True)

    # A reload replays the same sections from the log, and each child has its own page.
    page.reload()
    page.wait_for_function("[...document.querySelectorAll('.child-run .child-output')]"
                           ".some(e => e.textContent.includes('thank you'))", timeout=10_000)
    with page.expect_navigation():
        page.locator(".child-run", has_text="content").locator(".child-link").first.click()
    assert "delegated by" in page.inner_text("#run-head")
    page.wait_for_function("document.getElementById('run-output').textContent.includes('thank you')",
                           timeout=10_000)
    page.screenshot(path=str(SCREENSHOTS / "delegation-child.png"), full_page=True)
