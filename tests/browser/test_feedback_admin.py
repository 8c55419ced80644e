"""The feedback loop closed end to end: runs through the real worker, people correct them, the
worker analyses the corrections (one model request), the account manager applies the suggested
rule in the admin, and the next run is prompted with it and checks drafts against it."""

import os
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from ..conftest import PASSWORD, host_of, wait_for

os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")

SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / ".spokestack" / "test" / "screenshots"
THEME = "never:theme:discount_urgency"
DRAFTS = [("Get 20% off today! Glow gently with our rose serum.", "Glow gently with our rose serum."),
          ("Hurry, sale ends soon. Our oud mist lasts all evening.", "Our oud mist lasts all evening.")]



def in_thread(schema, fn):
    """Run fn in a thread of its own, in the instance's schema: creating a run broadcasts through
    async_to_sync, which refuses the main thread while Playwright's event loop runs there."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def call():
        try:
            with schema_context(schema):
                return fn()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def login(page, base, email, next_path):
    page.goto(f"{base}/admin/login/?next={next_path}")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


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
    login(page, base, "am@agency.example", f"/admin/feedback/suggestion/?client={dune.pk}")
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
    card = page.locator(f"#pending-suggestions .suggestion[data-suggestion='{theme.pk}']")
    text = card.inner_text()
    assert "discount or urgency language" in text and "evidence: 15 item(s)" in text
    assert DRAFTS[0][0] in text and DRAFTS[0][1] in text  # before -> after examples
    page.goto(f"{base}/admin/")
    assert "2 suggestion(s) waiting" in page.locator("#landing-suggestions").inner_text()

    # another client's account manager sees none of it and cannot reach the queue of this client
    other = browser.new_context()
    other_page = other.new_page()
    login(other_page, base, "other-am@agency.example", "/admin/feedback/suggestion/")
    other_page.wait_for_selector("#pending-suggestions")
    assert "discount" not in other_page.locator("#pending-suggestions").inner_text()
    other_page.goto(f"{base}/admin/")
    assert "0 suggestion(s) waiting" in other_page.locator("#landing-suggestions").inner_text()
    assert other_page.goto(f"{base}/admin/feedback/suggestion/?client={dune.pk}").status == 404
    other.close()

    page.goto(f"{base}/admin/feedback/suggestion/?client={dune.pk}")
    page.click(f"#pending-suggestions .suggestion[data-suggestion='{theme.pk}'] button.apply")
    page.wait_for_selector("ul.messagelist")
    assert f"Suggestion #{theme.pk} applied" in page.locator("ul.messagelist").inner_text()
    assert "discount or urgency language" in page.locator("#decided-suggestions").inner_text()

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
