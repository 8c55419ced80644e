"""An instance admin builds an agent in the admin's studio from three library tools, watches the
prompt preview follow the instructions as they are typed, publishes it with a change note and finds
v1 in the versions list (#18)."""

import pytest
from django_tenants.utils import schema_context

from ..conftest import host_of
from .support import SCREENSHOTS, log_in

TOOLS = ("copy.get_brand_guidelines", "copy.check_brand_rules", "core.search_knowledge")
PREVIEW_HAS = "document.getElementById('prompt-preview').textContent.includes({text})"


def wait_for_preview(page, text: str) -> None:
    page.wait_for_function(PREVIEW_HAS.format(text=repr(text)), timeout=10_000)


@pytest.mark.browser
@pytest.mark.live
def test_build_an_agent_see_the_preview_follow_publish_and_see_v1(live_instance, daphne_server, page):
    from agents.registry import get_spec
    from agents.studio.models import AgencyAgent

    schema = live_instance.instance.schema_name
    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    log_in(page, base, "admin@live.localhost", "/admin/studio/agencyagent/")
    page.click("#studio-add")
    page.wait_for_url("**/admin/studio/agencyagent/add/")
    page.fill("#id_slug", "pr_pitch")
    page.fill("#id_title", "PR pitch agent")
    page.fill("#id_purpose", "Pitch emails to journalists for a client's launch.")
    page.fill("#id_persona_voice", "Confident, never pushy")
    for ref in TOOLS:
        page.check(f"input[name=tools][value='{ref}']")
    # a trait slider moved by hand: its box is ticked and the preview names it
    page.locator("#id_persona_traits__value__0").evaluate(
        "el => { el.value = 80; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    page.fill("#id_instructions", "Write one pitch of at most 120 words.")
    wait_for_preview(page, "## Instructions from the agency\nWrite one pitch of at most 120 words.")
    preview = page.locator("#prompt-preview").inner_text()
    assert preview.startswith("You are PR pitch agent") and "## Ground rules" in preview
    assert "creativity 80" in preview and "check_brand_rules" in preview
    assert page.locator("#preview-tools").inner_text() == "get_brand_guidelines, check_brand_rules, search_knowledge"
    assert page.locator("details[data-group=copy] [data-count]").inner_text() == "2 chosen"

    page.fill("#id_instructions", "Write two pitches: one formal, one playful.")
    wait_for_preview(page, "## Instructions from the agency\nWrite two pitches: one formal, one playful.")
    assert "Write one pitch" not in page.locator("#prompt-preview").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "studio_builder_preview.png"), full_page=True)

    page.click("#builder-save")
    page.wait_for_url("**/admin/studio/agencyagent/*/change/")
    assert "Draft (never published)" in page.locator("#studio-status").inner_text()
    assert page.locator("#studio-unpublished").is_visible()
    page.fill("#publish-note", "First version for the PR team")
    page.click("#publish-submit")
    page.wait_for_selector("ul.messagelist")
    assert "Published v1 of pr_pitch" in page.locator("ul.messagelist").inner_text()
    row = page.locator("#version-1")
    assert "v1" in row.inner_text() and "First version for the PR team" in row.inner_text()
    assert "current" in row.inner_text() and page.locator("#studio-current").inner_text() == "v1"
    assert page.locator("#studio-unpublished").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "studio_builder_published.png"), full_page=True)

    with schema_context(schema):
        agent = AgencyAgent.objects.get(slug="pr_pitch")
        assert agent.current_version.number == 1
        assert agent.draft["tools"] == list(TOOLS) and agent.draft["persona"]["traits"] == {"creativity": 80}
        spec = get_spec("pr_pitch")
        assert spec.version == "1.0.0" and "Write two pitches: one formal, one playful." in spec.base_prompt
