"""An admin runs an agent from the admin and watches it stream live, then replays it."""

import pytest
from django_tenants.utils import schema_context

from ..conftest import PASSWORD
from .support import SCREENSHOTS, erp_wired_client


@pytest.mark.browser
@pytest.mark.live
def test_run_an_agent_from_the_admin_and_watch_it_stream(live_instance, celery_worker, daphne_server, sample_erp,
                                                         fake_model, egress_loopback, page):
    instance = live_instance.instance
    client = erp_wired_client(live_instance, sample_erp, egress_loopback)
    marker = "[browser-run]"
    fake_model.script(marker, [
        {"content": [{"type": "text", "text": "Reading the brand guidelines."},
                     {"type": "tool_use", "id": "toolu_b1", "name": "get_brand_guidelines", "input": {}}],
         "stop_reason": "tool_use", "delay_s": 1.0},
        {"content": [{"type": "text", "text": "Caption: Glow gently this Ramadan."}], "stop_reason": "end_turn",
         "delay_s": 1.0},
    ])
    base = f"http://{instance.domains.get().domain}:{daphne_server}"
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", live_instance.admin.email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{base}/admin/agents/agentrun/run/")
    page.select_option("#id_agent_type", "copy")
    page.select_option("#id_client", str(client.pk))
    page.fill("#id_task", f"Write a Ramadan caption {marker}")
    page.click("#run-agent-form input[type=submit]")

    # The live page: the tool call appears with its output, the text streams, the status flips.
    page.wait_for_selector(".tool-call[data-tool=get_brand_guidelines] pre", timeout=20_000)
    page.wait_for_selector(".run-status[data-status=succeeded]", timeout=30_000)
    page.wait_for_function("document.getElementById('run-output').textContent.includes('Caption')", timeout=5_000)
    assert "Caption: Glow gently this Ramadan." in page.inner_text("#run-output")
    tool = page.inner_text(".tool-call[data-tool=get_brand_guidelines]")
    assert "Desert Bloom" in tool and " ms" in tool
    assert page.inner_text("#fact-input") != "0"
    page.wait_for_selector("#run-artifacts li:has-text('output')", timeout=5_000)
    assert not page.is_visible("#run-error")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "run-live.png"), full_page=True)

    # A finished run replays the same way (the badge is already "succeeded": wait for the replay).
    page.reload()
    page.wait_for_function("document.getElementById('run-output').textContent.includes('Glow gently')",
                           timeout=10_000)
    assert page.locator(".tool-call").count() == 1

    page.goto(f"{base}/admin/agents/agentrun/")
    assert "copy" in page.inner_text("#result_list") and "Succeeded" in page.inner_text("#result_list")

    # The landing page lists the agents and the run.
    page.goto(f"{base}/admin/")
    landing = page.inner_text("#content-main")
    assert "Media buying" in landing or "media_buying" in landing
    assert "Desert Bloom Cosmetics" in landing and "Succeeded" in landing


@pytest.mark.browser
@pytest.mark.live
def test_a_run_resumed_after_its_worker_died_shows_the_cut_off_turn_once(live_instance, celery_worker, daphne_server,
                                                                        fake_model, page):
    """The worker dies mid-answer; the run resumes elsewhere and answers that turn again. The live
    page drops the cut-off text (turn.interrupted) instead of showing it twice, and counts the
    interrupted turn's estimated usage."""
    import time

    from agents.models import AgentRun, RunEvent
    from agents.tasks import reap_stale_runs


    instance = live_instance.instance
    marker = "[browser-resume]"
    fake_model.script(marker, [
        {"content": [{"type": "text", "text": "Glow gently this Ramadan, " * 40}], "stop_reason": "end_turn",
         "delay_s": 6.0},
    ], by_position=True)
    base = f"http://{instance.domains.get().domain}:{daphne_server}"
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", live_instance.admin.email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{base}/admin/agents/agentrun/run/")
    page.select_option("#id_agent_type", "copy")
    page.fill("#id_task", f"Write a long Ramadan caption {marker}")
    page.click("#run-agent-form input[type=submit]")
    page.wait_for_function("document.getElementById('run-output').textContent.includes('Glow gently')",
                           timeout=20_000)
    with schema_context(instance.schema_name):
        run = AgentRun.objects.get(task__contains=marker)
    celery_worker.kill()  # mid-answer
    celery_worker.start()
    time.sleep(3.5)  # the dead worker's lease (RUN_LEASE_SECONDS=3) runs out
    with schema_context("public"):
        reap_stale_runs.delay()
    page.wait_for_selector(".run-status[data-status=succeeded]", timeout=40_000)

    with schema_context(instance.schema_name):
        interrupted = RunEvent.objects.get(run=run, type="turn.interrupted")
        final = AgentRun.objects.get(pk=run.pk)
    assert interrupted.payload["estimated"] and interrupted.payload["usage"]["input_tokens"] > 0
    assert final.input_tokens > interrupted.payload["usage"]["input_tokens"], "both turns are counted"
    shown = page.inner_text("#run-output")
    assert shown.count("Glow gently this Ramadan,") == 40, "the answer once, without the cut-off first take"
    page.screenshot(path=str(SCREENSHOTS / "run-resumed.png"), full_page=True)

    page.reload()  # a replay from the log shows the same
    page.wait_for_function("document.getElementById('run-output').textContent.includes('Glow gently')",
                           timeout=10_000)
    time.sleep(0.5)
    assert page.inner_text("#run-output").count("Glow gently this Ramadan,") == 40
