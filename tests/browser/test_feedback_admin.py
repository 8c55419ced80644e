# ruff: noqa: F811 - the scripted model fixture is imported by name
"""The feedback loop closed end to end: runs through the real worker, people correct them, the
worker analyses the corrections (one model request), the account manager applies the suggested
rule in the admin (the queue shows the phrases the corrections changed), and the next run is prompted
with it and checks drafts against it. And a partial approval with a comment on one of a run's
artifacts, given on the live run page."""

import os
import uuid

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from ..conftest import PASSWORD, host_of, wait_for
from ..skills.conftest import scripted  # noqa: F401 - a fixture, by name
from .support import SCREENSHOTS, in_thread, log_in

os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")

THEME = "never:theme:discount_urgency"
DRAFTS = [("Get 20% off today! Glow gently with our rose serum.", "Glow gently with our rose serum."),
          ("Hurry, sale ends soon. Our oud mist lasts all evening.", "Our oud mist lasts all evening.")]





@pytest.mark.browser
@pytest.mark.live
def test_corrections_become_a_rule_the_next_run_obeys(live_instance, celery_worker, daphne_server, fake_model,
                                                      browser, page):
    from agents.models import AgentRun, RunStatus, ToolCall
    from agents.services import run_create
    from feedback.models import Analysis, Suggestion, SuggestionStatus
    from feedback.services import feedback_give
    from spokestack.accounts.services import user_create
    from tuning.models import ContentRule
    from tuning.services import client_assign, client_create

    schema = live_instance.instance.schema_name
    tag = uuid.uuid4().hex[:8]
    analysis_marker = f"[fa-{tag}]"
    with schema_context(schema):
        manager = user_create(email="am@agency.example", password=PASSWORD, role="account_manager")
        stranger = user_create(email="other-am@agency.example", password=PASSWORD, role="account_manager")
        dune = client_create(name="Dune Rose", vertical="beauty", region="GCC")
        bank = client_create(name="Other Bank", vertical="finance")
        client_assign(user=manager, client=dune, role="account_manager")
        client_assign(user=stranger, client=bank, role="account_manager")

        # 15 runs through the real worker, each writing copy with discount or urgency language
        runs = []
        for i in range(15):
            marker = f"[fb-{tag}-{i:02d}]"
            before, _ = DRAFTS[i % 2]
            fake_model.script(marker, [{"content": [{"type": "text", "text": f"{before} {analysis_marker}{i}"}],
                                        "stop_reason": "end_turn"}])
            runs.append(in_thread(schema, lambda marker=marker: run_create(
                actor=manager, agent_type="copy", task=f"Write a caption {marker}", client_id=dune.pk).run.pk))
        wait_for(lambda: AgentRun.objects.filter(pk__in=runs, status=RunStatus.SUCCEEDED).count() == 15, timeout=60)
        for i, run_id in enumerate(runs):
            _, after = DRAFTS[i % 2]
            feedback_give(actor=manager, run_id=run_id, verdict="corrected", corrected_text=f"{after} {analysis_marker}{i}",
                          reason="No discount or urgency language", category="brand_voice")
    connection.set_schema_to_public()

    # the analysis' one model request answers with a pattern of its own through the tool schema
    fake_model.script(analysis_marker, [{"content": [{"type": "tool_use", "name": "report_patterns", "input": {
        "patterns": [{"kind": "always", "text": "Always close with the product's benefit", "evidence_count": 15,
                      "confidence": 0.85, "examples": [{"before": DRAFTS[0][0], "after": DRAFTS[0][1]}]}],
        "summary": "The client removes every discount and urgency phrase."}}], "stop_reason": "tool_use"}])

    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in(page, base, "am@agency.example", f"/admin/feedback/suggestion/?client={dune.pk}")
    page.wait_for_selector("#analyze-now")
    page.click(f"#analyze-now button[data-client='{dune.pk}']")
    page.wait_for_selector("ul.messagelist")
    with schema_context(schema):
        wait_for(lambda: Analysis.objects.filter(client=dune).exists(), timeout=60)
        theme = Suggestion.objects.get(client=dune, signature=THEME)
        assert Suggestion.objects.filter(client=dune, origin="model").count() == 1
    connection.set_schema_to_public()
    sent = fake_model.requests(analysis_marker)
    assert len(sent) == 1, "one model request per client per analysis"
    assert [t["name"] for t in sent[0]["tools"]] == ["report_patterns"]

    page.reload()
    row = page.locator(f"#result_list tr:has(.decide[data-suggestion='{theme.pk}'])")
    text = row.inner_text()
    assert "discount or urgency language" in text and "15" in text
    # the evidence is the phrases the corrections removed, with a few words of context
    assert "Get 20% off today!" in [t.strip() for t in row.locator("del.removed").all_inner_texts()]
    assert "Glow gently with our" in row.locator(".same").all_inner_texts()
    assert DRAFTS[0][0] not in text
    page.screenshot(path=str(SCREENSHOTS / "feedback_queue.png"), full_page=True)
    page.goto(f"{base}/admin/")
    assert "2 suggestions waiting" in page.locator("#landing-suggestions").inner_text()

    # another client's account manager sees none of it and cannot reach the queue of this client
    other = browser.new_context()
    other_page = other.new_page()
    log_in(other_page, base, "other-am@agency.example", "/admin/feedback/suggestion/")
    other_page.wait_for_selector("#changelist")
    assert "discount" not in other_page.locator("#changelist").inner_text()
    other_page.goto(f"{base}/admin/")
    assert "0 suggestions waiting" in other_page.locator("#landing-suggestions").inner_text()
    assert other_page.goto(f"{base}/admin/feedback/suggestion/?client={dune.pk}").status == 404
    other.close()

    page.goto(f"{base}/admin/feedback/suggestion/?client={dune.pk}")
    page.fill(f"input[name='suggestion-reason-{theme.pk}']", "The brand book bans discounts")
    page.click(f".decide[data-suggestion='{theme.pk}'] button.apply")
    page.wait_for_selector("ul.messagelist")
    assert f"Suggestion #{theme.pk} applied" in page.locator("ul.messagelist").inner_text()
    applied = page.locator("#result_list tr:has(.suggestion-status[data-status=applied])").inner_text()
    assert "discount or urgency language" in applied and "am@agency.example" in applied

    page.goto(f"{base}/admin/tuning/client/{dune.pk}/change/")
    page.wait_for_selector("#feedback-dashboard")
    assert "discount or urgency language" in page.locator("#rule-columns section.never").inner_text()
    assert page.locator("#approval-rate").inner_text() == "0%"
    assert page.locator("#approval-chart rect").count() >= 1
    page.locator("#client-panels").screenshot(path=str(SCREENSHOTS / "feedback_dashboard.png"))
    page.screenshot(path=str(SCREENSHOTS / "feedback_client_page.png"), full_page=True)

    with schema_context(schema):
        rule = ContentRule.objects.get(client=dune, source="feedback_suggestion", kind="never")
        assert rule.source_reference == str(theme.pk)
        assert Suggestion.objects.get(pk=theme.pk).status == SuggestionStatus.APPLIED
        # the next run: its request carries the rule, and check_brand_rules flags a draft that breaks it
        marker = f"[fb-{tag}-next]"
        fake_model.script(marker, [
            {"content": [{"type": "tool_use", "id": "toolu_fb1", "name": "check_brand_rules",
                          "input": {"text": "Hurry! Get 40% off today only."}}], "stop_reason": "tool_use"},
            {"content": [{"type": "text", "text": "Glow gently this season."}], "stop_reason": "end_turn"}])
        run_id = in_thread(schema, lambda: run_create(actor=manager, agent_type="copy",
                                                      task=f"Write a caption {marker}", client_id=dune.pk).run.pk)
        wait_for(lambda: AgentRun.objects.get(pk=run_id).status == RunStatus.SUCCEEDED, timeout=60)
        check = ToolCall.objects.get(run_id=run_id, name="check_brand_rules")
    connection.set_schema_to_public()
    system = "".join(block["text"] for block in fake_model.requests(marker)[0]["system"])
    assert rule.text in system
    assert check.result["passed"] is False
    assert {v["rule"] for v in check.result["violations"]} == {rule.text}


@pytest.mark.browser
@pytest.mark.live
def test_partial_approval_with_a_comment_on_one_artifact_from_the_run_page(live_instance, daphne_server, page,
                                                                           scripted):
    """The run saved a draft (an artifact) besides its answer: the account manager partially approves
    the draft with a comment and a corrected text, and the page shows it among the feedback given."""
    from agents.loop import execute_run
    from agents.models import AgentRun, Artifact, RunStatus
    from agents.services import run_create
    from feedback.models import Feedback
    from spokestack.accounts.services import user_create
    from tuning.services import client_assign, client_create

    schema = live_instance.instance.schema_name
    marker = f"[fpa-{uuid.uuid4().hex[:8]}]"
    draft = "Get 20% off today! Glow gently with our rose serum."
    scripted.script(marker, [
        {"content": [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:12]}", "name": "save_draft",
                      "input": {"title": "Ramadan caption", "content": draft}}], "stop_reason": "tool_use"},
        {"content": [{"type": "text", "text": "I saved the caption as a draft."}], "stop_reason": "end_turn"}])
    with schema_context(schema):
        user_create(email="am@agency.example", password=PASSWORD, role="account_manager")
        manager = user_create(email="am2@agency.example", password=PASSWORD, role="account_manager")
        dune = client_create(name="Dune Rose", vertical="beauty", region="GCC")
        client_assign(user=manager, client=dune, role="account_manager")

    def run_it():
        run = run_create(actor=manager, agent_type="copy", task=f"{marker}: write and save a caption.",
                         client_id=dune.pk, sandbox=True).run
        execute_run(run_id=str(run.pk), worker="browser-test")  # unless the session's worker took it first
        return run.pk

    run_id = in_thread(schema, run_it)
    with schema_context(schema):
        wait_for(lambda: AgentRun.objects.get(pk=run_id).status == RunStatus.SUCCEEDED, timeout=60)
        artifact = Artifact.objects.get(run_id=run_id, kind="draft")
    connection.set_schema_to_public()

    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    run_url = f"/admin/agents/agentrun/{run_id}/change/"
    log_in(page, base, "am2@agency.example", run_url)
    target = page.locator(f"#run-feedback .feedback-target[data-target='artifact-{artifact.pk}']")
    target.wait_for()
    assert "Artifact: Draft · Ramadan caption" in target.inner_text()
    target.locator("summary").click()
    form = target.locator("form.feedback-form")
    form.locator("input[value=partially_approved]").check()
    form.locator("textarea[name=comment]").fill("Keep the glow, lose the discount.")
    form.locator("textarea[name=corrected_text]").fill("Glow gently with our rose serum.")
    form.locator("select[name=rating]").select_option("4")
    page.locator("#run-feedback").screenshot(path=str(SCREENSHOTS / "feedback_run_page_form.png"))
    form.locator("button[type=submit]").click()
    page.wait_for_selector("ul.messagelist")
    assert "Feedback recorded on the artifact: partially approved." in page.locator("ul.messagelist").inner_text()
    given = page.locator(f"#feedback-given li[data-target='artifact-{artifact.pk}']")
    text = given.inner_text()
    assert "Partially approved" in text and "Ramadan caption" in text and "Keep the glow, lose the discount." in text
    assert "4/5" in text
    page.locator("#run-feedback-area").screenshot(path=str(SCREENSHOTS / "feedback_run_page_given.png"))
    with schema_context(schema):
        row = Feedback.objects.get(run_id=run_id, current=True)
        assert (row.artifact_id, row.verdict, row.corrected_text, row.original_text) == (
            artifact.pk, "partially_approved", "Glow gently with our rose serum.", draft)
    connection.set_schema_to_public()

    # the feedback list links the row to the run's live page
    page.goto(f"{base}/admin/feedback/feedback/?verdict__exact=partially_approved")
    page.screenshot(path=str(SCREENSHOTS / "feedback_list.png"), full_page=True)
    page.click("#result_list a.run-link")
    page.wait_for_url(f"**{run_url}")
