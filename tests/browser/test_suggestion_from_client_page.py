# ruff: noqa: F811 - the scripted model fixture is imported by name
"""Issue #15 (finding 7) in the browser: an account manager opens their client's page, reads a
suggestion's evidence as the phrases that changed, applies it with a reason, sees the success
message and the rule among the client's rules; "Analyze now" shows the job running and then how
many suggestions it created, without a reload. Another client's account manager cannot open the page."""

import os
import uuid

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from ..conftest import PASSWORD, host_of
from ..skills.conftest import scripted, text_turn  # noqa: F401 - fixtures by name
from .support import SCREENSHOTS, in_thread, log_in

os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")
THEME = "never:theme:discount_urgency"
DRAFTS = [("Get 20% off today! Glow gently with our rose serum.", "Glow gently with our rose serum."),
          ("Hurry, sale ends soon. Our oud mist lasts all evening.", "Our oud mist lasts all evening.")]



def finished_runs(schema, scripted, actor, client, outputs: list[str]) -> list:
    """Runs through the real loop, each answering with one of the outputs (here, or by the session's
    worker when it took the task first)."""
    from agents.loop import execute_run
    from agents.models import AgentRun, RunStatus
    from agents.services import run_create

    from ..conftest import wait_for

    ids = []
    for output in outputs:
        marker = f"[sfc-{uuid.uuid4().hex[:10]}]"
        scripted.script(marker, [text_turn(output)])

        def run(marker=marker):
            created = run_create(actor=actor, agent_type="copy", task=f"{marker}: a caption", client_id=client.pk,
                                 sandbox=True).run
            execute_run(run_id=str(created.pk), worker="browser-test")
            return created.pk

        ids.append(in_thread(schema, run))
    with schema_context(schema):
        wait_for(lambda: AgentRun.objects.filter(pk__in=ids, status=RunStatus.SUCCEEDED).count() == len(ids),
                 timeout=60)
    return ids



@pytest.mark.browser
@pytest.mark.live
def test_account_manager_applies_a_suggestion_from_the_client_page(live_instance, daphne_server, browser, page,
                                                                   scripted):
    from feedback.models import Suggestion, SuggestionStatus
    from feedback.services import analysis_run, feedback_give
    from spokestack.accounts.services import user_create
    from tuning.models import ContentRule, Entity, TuningChange
    from tuning.services import client_assign, client_create

    schema = live_instance.instance.schema_name
    with schema_context(schema):
        manager = user_create(email="am@agency.example", password=PASSWORD, role="account_manager")
        stranger = user_create(email="other-am@agency.example", password=PASSWORD, role="account_manager")
        dune = client_create(name="Dune Rose", vertical="beauty", region="GCC")
        bank = client_create(name="Other Bank", vertical="finance")
        client_assign(user=manager, client=dune, role="account_manager")
        client_assign(user=stranger, client=bank, role="account_manager")
    outputs = [f"{DRAFTS[i % 2][0]} #{i}" for i in range(10)]
    runs = finished_runs(schema, scripted, manager, dune, outputs)
    with schema_context(schema):
        for i, run_id in enumerate(runs):
            feedback_give(actor=manager, run_id=run_id, verdict="corrected", corrected_text=f"{DRAFTS[i % 2][1]} #{i}",
                          reason="No discount or urgency language", category="brand_voice")
        analysis_run(client=dune, use_model=False)
        theme = Suggestion.objects.get(client=dune, signature=THEME)
    connection.set_schema_to_public()

    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    client_url = f"/admin/tuning/client/{dune.pk}/change/"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in(page, base, "am@agency.example", client_url)
    card = page.locator(f"#feedback-suggestions-panel li[data-suggestion='{theme.pk}']")
    card.wait_for()
    text = card.inner_text()
    assert "discount or urgency language" in text and "10 items of evidence" in text
    removed = card.locator("del.removed").first.inner_text()
    assert removed in ("Get 20% off today!", "Hurry, sale ends soon.")  # the phrase, not the whole output
    page.locator("#client-panels").screenshot(path=str(SCREENSHOTS / "feedback_client_suggestions.png"))

    card.locator(f"#suggestion-reason-{theme.pk}").fill("The client's brand book bans discounts")
    card.locator("button.apply").click()
    page.wait_for_selector("ul.messagelist")
    assert page.url.endswith(client_url)
    assert f"Suggestion #{theme.pk} applied: it is now a client rule." in page.locator("ul.messagelist").inner_text()
    assert "discount or urgency language" in page.locator("#rule-columns section.never").inner_text()
    assert page.locator(f"#feedback-suggestions-panel li[data-suggestion='{theme.pk}']").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "feedback_suggestion_applied.png"), full_page=True)
    with schema_context(schema):
        assert Suggestion.objects.get(pk=theme.pk).status == SuggestionStatus.APPLIED
        rule = ContentRule.objects.get(client=dune, source="feedback_suggestion")
        assert rule.source_reference == str(theme.pk)
        entry = TuningChange.objects.get(entity=Entity.SUGGESTION, entity_id=str(theme.pk))
        assert entry.reason.startswith("The client's brand book bans discounts") and entry.actor_id == manager.pk
    connection.set_schema_to_public()

    # Analyze now: the job shows running, then what it found, without a reload
    page.click("#client-analyze-now")
    page.wait_for_selector("ul.messagelist")
    assert "Analysis of Dune Rose's feedback started" in page.locator("ul.messagelist").inner_text()
    job = page.locator(".analysis-job").first
    assert job.get_attribute("data-status") in ("queued", "running", "done")
    if job.get_attribute("data-status") != "done":
        # no worker of this test: the session's worker may take the job, or the test runs it
        from feedback.jobs import analysis_job_run
        from feedback.models import AnalysisJob

        with schema_context(schema):
            job_id = AnalysisJob.objects.get(client=dune).pk
        in_thread(schema, lambda: analysis_job_run(job_id=job_id))
    page.wait_for_selector(".analysis-job[data-status=done]", timeout=30_000)
    message = job.inner_text()
    assert message.startswith("Analysis of Dune Rose's feedback finished:") and "new suggestion" in message
    # a link to reload appears only when the analysis changed the list
    assert job.locator(".job-reload").is_visible() == (" 0 new suggestions." not in message)
    page.locator("#client-panels").screenshot(path=str(SCREENSHOTS / "feedback_analyze_now_done.png"))

    # another client's account manager cannot open Dune Rose's page
    other = browser.new_context()
    other_page = other.new_page()
    log_in(other_page, base, "other-am@agency.example", "/admin/")
    assert other_page.goto(f"{base}{client_url}").status == 404
    other.close()
