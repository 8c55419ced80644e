"""Issue #22 parts 1–2 in a real browser: an eval run's page shows its progress, pass rate and each
case's verdict with the failing expectation; the eval cases list reads the expectations back."""

from __future__ import annotations

import pytest

from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401
from .support import SCREENSHOTS, in_thread, log_in


@pytest.mark.browser
@pytest.mark.live
def test_an_eval_runs_page_shows_each_cases_verdict(live_instance, daphne_server, scripted, runs_stay_here,  # noqa: F811
                                                    monkeypatch, page):
    import uuid

    from versions.tasks import eval_run_advance

    monkeypatch.setattr(eval_run_advance, "apply_async", lambda *a, **k: None)  # driven here, pass by pass

    from agents.loop import execute_run
    from tuning.services import client_create
    from versions.evals import services
    from versions.models import EvalResult

    instance, admin = live_instance.instance, live_instance.admin

    def eval_run():
        bloom = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
        for i, text in enumerate(("Glow gently.", "Our oud, cheap and cheerful.")):
            marker = f"evb-{uuid.uuid4().hex[:8]}"
            services.eval_case_create(actor=None, data={
                "agent_type": "copy", "task": f"{marker}: caption {i}", "client_id": bloom.pk, "title": f"Caption {i}",
                "expectations": {"phrases_forbidden": ["cheap"], "min_chars": 5}})
            scripted.script(marker, [tool_turn((f"toolu_{uuid.uuid4().hex[:10]}", "check_brand_rules",
                                                {"text": text})), text_turn(text)])
        started = services.eval_run_start(actor=None, agent_type="copy")
        services.eval_run_advance(eval_run_id=str(started.pk))
        for result in EvalResult.objects.filter(eval_run=started):
            execute_run(run_id=str(result.run_id), worker="browser")
        services.eval_run_advance(eval_run_id=str(started.pk))
        return str(started.pk)

    eval_run_id = in_thread(instance.schema_name, eval_run)
    base = f"http://{instance.domains.get().domain}:{daphne_server}"
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(base) else None)
    log_in(page, base, admin.email, f"/admin/versions/evalrun/{eval_run_id}/change/")
    body = page.inner_text("body")
    assert "Caption 0" in body and "Caption 1" in body and "cheap" in body
    assert "1 of 2" in body or "50" in body, body[:2000]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "eval_run.png"), full_page=True)
    page.goto(f"{base}/admin/versions/evalcase/")
    assert page.locator("#result_list tbody tr").count() == 2
    page.screenshot(path=str(SCREENSHOTS / "eval_cases.png"), full_page=True)
    assert not outside, outside
