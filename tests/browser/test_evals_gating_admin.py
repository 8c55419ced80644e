"""Issue #22 part 3 in a real browser: the update's sandbox shows the eval set on both versions side
by side, promoting the candidate that passes fewer cases is refused with the case named; the
what-if page runs a client rule on the eval cases and the finished eval run saves it."""

from __future__ import annotations

import pytest

from ..conftest import wait_for
from ..skills.conftest import scripted, text_turn  # noqa: F401
from .support import SCREENSHOTS, in_thread, log_in


@pytest.mark.browser
@pytest.mark.live
def test_the_sandbox_shows_both_versions_evals_and_refuses_the_worse_one(live_instance, daphne_server, scripted,  # noqa: F811
                                                                         celery_worker, runs_stay_here, monkeypatch,
                                                                         page):
    from tests.versions.helpers import catalog_before_release
    from tests.versions.test_evals import drive
    from tests.versions.test_evals_gating import media_cases
    from tuning.models import ContentRule
    from tuning.services import client_create
    from versions import services
    from versions.evals import services as evals
    from versions.models import EvalRun, UpdateNotification
    from versions.services import catalog_sync, release_notify_instance
    from versions.tasks import eval_run_advance

    monkeypatch.setattr(eval_run_advance, "apply_async", lambda *a, **k: None)  # driven here, pass by pass
    instance, admin = live_instance.instance, live_instance.admin

    def update_in_sandbox():
        services.version_config_update(actor=None, agent_type="media_buying", changes={"pinned_version": "2.3.1"})
        services.version_config_update(actor=None, agent_type="media_buying", changes={"pinned_version": None})
        media_cases(scripted)
        release_notify_instance(agent_type="media_buying", version="2.4.0", previous_version="2.3.1")
        update = UpdateNotification.objects.get(agent_type="media_buying", version="2.4.0")
        _, session = services.notification_review(actor=admin, notification_id=update.pk, action="sandbox")
        for eval_run in EvalRun.objects.filter(sandbox_session=session):
            drive(eval_run)
        bloom = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
        scripted.script("wi-browser", [text_turn("Glow, naturally: Desert Bloom.")], by_position=True)
        evals.eval_case_create(actor=None, data={"agent_type": "copy", "task": "wi-browser: a caption",
                                                 "client_id": bloom.pk, "expectations": {"brand_rules_pass": True}})
        return update.pk, str(session.pk), bloom.pk

    catalog_before_release()
    try:
        update_id, session_id, bloom_id = in_thread(instance.schema_name, update_in_sandbox)
        base = f"http://{instance.domains.get().domain}:{daphne_server}"
        outside: list[str] = []
        page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(base) else None)
        log_in(page, base, admin.email, f"/admin/versions/agentversionconfig/sandbox/{session_id}/")
        table = page.locator("#eval-comparison")
        assert table.get_attribute("data-state") == "fewer"
        assert page.inner_text("#eval-current-score") == "5/5" and page.inner_text("#eval-test-score") == "4/5"
        assert "Plan 3: conversions by default" in page.inner_text("#eval-message")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "sandbox_evals.png"), full_page=True)
        page.click("#sandbox-promote")
        assert "2.4.0 passes 4/5 eval cases, 2.3.1 5/5" in page.inner_text("#decide-evals")
        page.fill("#sandbox-decision-form [name=reason]", "Looks fine to me")
        page.click("#sandbox-decision-form input[type=submit]")
        error = page.inner_text(".messagelist")
        assert "failing on the candidate only: “Plan 3: conversions by default”" in error, error
        page.goto(f"{base}/admin/versions/agentversionconfig/update/{update_id}/")
        assert page.locator("#eval-comparison").get_attribute("data-state") == "fewer"
        assert page.locator("#eval-table .eval-case").count() == 5
        page.screenshot(path=str(SCREENSHOTS / "update_evals.png"), full_page=True)

        # what-if from the client page: a never rule tried on the client's case, then saved from its eval run
        page.goto(f"{base}/admin/tuning/client/{bloom_id}/change/")
        page.click("#what-if-link")
        page.select_option("#id_agent_type", "copy")
        page.select_option("#id_kind", "never")
        page.fill("#id_text", "Never say 'naturally'")
        page.click("#what-if-form input[type=submit]")
        eval_run_id = page.url.rstrip("/").split("/")[-2]
        assert "What-if eval started on 1 case(s)" in page.inner_text(".messagelist")
        # started by the web process: the session's worker runs it, as in production
        wait_for(lambda: in_thread(instance.schema_name, lambda: EvalRun.objects.filter(
            pk=eval_run_id, status="succeeded").exists()), timeout=60, interval=0.3)
        page.reload()
        assert "0/1 cases passed with this change" in page.inner_text("#what-if-save")
        page.screenshot(path=str(SCREENSHOTS / "what_if_eval.png"), full_page=True)
        page.click("#what-if-save input[type=submit]")
        assert "Saved the change tried in this what-if eval" in page.inner_text(".messagelist")
        assert in_thread(instance.schema_name, lambda: ContentRule.objects.filter(
            client_id=bloom_id, text="Never say 'naturally'").exists())
        assert not outside, outside
    finally:
        catalog_sync(fanout_schemas=[])
