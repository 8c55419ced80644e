"""Issue #15 finding 8 (polish), in a real browser: the agency admin looks like the rest of the admin
(no django-tenants green app headers), the client page fits a 1440 px (and 1280 px) screen, the
0–100 dials are sliders that save through the audited services, and names read as labels."""

import os
import re

import pytest
from django_tenants.utils import schema_context

from ..conftest import PASSWORD, host_of
from .support import SCREENSHOTS

os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")

SNAKE_LABEL = re.compile(r"\b[A-Za-z][a-z]*(?:_[a-z]+)+\b")  # media_buying, Competitor_check
GREEN = {"rgb(0, 128, 0)", "#008000"}
LONG_VOICE = ("Radiant, warm and precise; we speak like a trusted dermatologist friend who explains the science "
              "without jargon and never overpromises results. ") * 3


def _visible_text(page, selector: str) -> str:
    """What a person reads in the element: no form values, scripts or code (identifiers are code)."""
    return page.evaluate("""(selector) => {
        const root = document.querySelector(selector).cloneNode(true);
        root.querySelectorAll('script, style, textarea, input, select, code, pre, option').forEach(n => n.remove());
        return root.innerText;
    }""", selector)


def _overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")


def _too_wide(page) -> list[str]:
    """The innermost elements that reach past the window's right edge (what to fix when the page overflows)."""
    return page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
        .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > window.innerWidth + 1))
        .slice(0, 12).map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' '
                              + Math.round(e.getBoundingClientRect().right))""")


@pytest.mark.browser
@pytest.mark.live
def test_agency_admin_polish(live_instance, daphne_server, page):
    from skills.services import skill_create
    from tuning.models import InstanceTuning, TuningChange
    from tuning.services import (
        client_create,
        client_example_add,
        client_rule_add,
        client_tuning_update,
        instance_tuning_update,
    )

    schema = live_instance.instance.schema_name
    with schema_context(schema):
        lumen = client_create(actor=None, name="Lumen Skin", vertical="beauty", region="GCC", language="en")
        client_tuning_update(actor=None, client=lumen, changes={
            "brand_voice": LONG_VOICE, "tone_keywords": ["warm", "confident", "precise"],
            "competitor_rules": [{"competitor": "Acme Cosmetics International", "instruction": "Never mention by name."}],
            "format_preferences": {"structure": "bullets first", "emoji": "never"}})
        client_tuning_update(actor=None, client=lumen, agent_type="media_buying",
                             changes={"brand_voice": "Numbers first, then the story."})
        client_rule_add(actor=None, client=lumen, kind="never", agent_type="media_buying",
                        text="Promise overnight results or quote unaudited return-on-ad-spend figures to the client")
        client_rule_add(actor=None, client=lumen, kind="always", text="Mention dermatologist testing")
        client_example_add(actor=None, client=lumen, kind="headline", agent_type="copy",
                           text="Glow that lasts all day, tested by dermatologists " * 4, context="Spring launch")
        instance_tuning_update(actor=None, changes={"behaviour_params": {"formality": 70, "creativity": 40},
                                                    "traits": {"warmth": 80}})
        skill_create(actor=None, name="competitor_check", description="Check a competitor's recent campaigns.",
                     input_schema={"type": "object", "properties": {"brand": {"type": "string"}}},
                     execution_type="webhook", agent_types=["copy", "media_buying"],
                     webhook_url="https://hooks.example.com/c", auth_type="none")
    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": 900})

    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin@live.localhost")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#content-main")

    # The landing page: names read as labels.
    index_text = _visible_text(page, "#content")
    assert not SNAKE_LABEL.findall(index_text), SNAKE_LABEL.findall(index_text)
    assert "Audit entries" in index_text and "Tuning changes" not in index_text
    page.screenshot(path=str(SCREENSHOTS / "polish_index.png"), full_page=True)

    # The client page fits the screen, and names read as labels.
    with schema_context(schema):
        client_url = f"{base}/admin/tuning/client/{lumen.pk}/change/"
    for width in (1440, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(client_url)
        page.wait_for_selector("#rule-columns")
        page.screenshot(path=str(SCREENSHOTS / f"polish_client_{width}.png"), full_page=True)
        scroll_width, inner_width = _overflow(page)
        assert scroll_width <= inner_width, (f"the client page is {scroll_width} px wide in a {inner_width} px window",
                                             _too_wide(page))
    client_text = _visible_text(page, "#content")
    assert not SNAKE_LABEL.findall(client_text), SNAKE_LABEL.findall(client_text)
    assert "Media buying" in client_text and "Tuning: #" not in client_text

    # The dials are sliders; moving one and saving changes the value, through the audited service.
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{base}/admin/tuning/instancetuning/")
    page.wait_for_selector("#id_behaviour_params")
    formality = page.locator("#id_behaviour_params .dial[data-dial-row='formality']")
    assert formality.locator("input[type=range]").input_value() == "70"
    assert formality.locator("output").inner_text() == "70"
    assert "Casual" in formality.inner_text() and "Very formal" in formality.inner_text()
    assert page.locator("#id_behaviour_params input[type=range]").count() == 6
    assert page.locator("#id_traits .dial[data-dial-row='warmth'] output").inner_text() == "80"
    assert "{" not in _visible_text(page, ".field-behaviour_params")
    formality.locator("input[type=range]").fill("85")
    assert formality.locator("output").inner_text() == "85"
    detail = page.locator("#id_behaviour_params .dial[data-dial-row='detail']")
    assert not detail.locator("input[type=checkbox]").is_checked()
    detail.locator("input[type=range]").fill("30")  # moving an unused dial starts using it
    assert detail.locator("input[type=checkbox]").is_checked()
    page.screenshot(path=str(SCREENSHOTS / "polish_dials.png"), full_page=True)
    page.fill("#id_change_reason", "Clients asked for a more formal register")
    page.fill("#id_change_ticket", "SUP-88")
    page.click("input[name=_continue]")
    page.wait_for_selector("ul.messagelist li.success")
    assert "changed successfully" in page.locator("ul.messagelist").inner_text()
    with schema_context(schema):
        row = InstanceTuning.objects.get(agent_type="")
        assert row.behaviour_params == {"formality": 85, "creativity": 40, "detail": 30}
        entry = TuningChange.objects.filter(field="behaviour_params").order_by("-id").first()
        assert (entry.reason, entry.ticket, entry.new_value["formality"]) == (
            "Clients asked for a more formal register", "SUP-88", 85)
    assert page.locator("#id_behaviour_params .dial[data-dial-row='formality'] output").inner_text() == "85"

    # An out-of-range trait is refused next to the field, naming the trait.
    page.locator("#id_traits input[type=text]").first.fill("playfulness")
    page.evaluate("""() => { const r = [...document.querySelectorAll('#id_traits input[type=range]')]
                                 .find(i => i.closest('.dial').querySelector('input[type=text]'));
                             r.max = '500'; r.value = '250'; r.closest('.dial').querySelector('[data-dial-use]').checked = true; }""")
    page.click("input[name=_continue]")
    page.wait_for_selector(".errorlist")
    assert "Playfulness must be a whole number from 0 to 100" in page.locator(".field-traits .errorlist").inner_text()

    # Read-only displays name the dials, never a dict.
    page.goto(f"{base}/admin/tuning/tuningchange/?q=behaviour")
    page.wait_for_selector("#result_list")
    audit_text = " ".join(page.locator("#result_list").inner_text().split())
    page.screenshot(path=str(SCREENSHOTS / "polish_audit.png"), full_page=True)
    assert "none set → Creativity 40 · Formality 70" in audit_text and "Creativity 40 · Detail 30 · Formality 85" in audit_text
    assert '{"formality"' not in audit_text
    page.goto(f"{base}/admin/tuning/instancetuning/{row.pk}/history/")
    assert "Creativity 40 · Detail 30 · Formality 85" in " ".join(page.locator("#change-history").inner_text().split())

    # Skills: the skill's name is an identifier (code), its agents are labels.
    page.goto(f"{base}/admin/skills/skill/")
    page.wait_for_selector("#result_list")
    skills_text = _visible_text(page, "#result_list")
    assert "Copywriting, Media buying" in skills_text and not SNAKE_LABEL.findall(skills_text)
    assert page.locator("#result_list code", has_text="competitor_check").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "polish_skills.png"), full_page=True)

    # Every app caption (landing page and the menu of any page) in the admin's own colour (Django's
    # --primary), not django-tenants' green for "tenant apps".
    for url in (f"{base}/admin/", client_url):
        page.goto(url)
        page.wait_for_selector("#content")
        captions = page.evaluate("""() => [...document.querySelectorAll('.module caption')].map(c => [
            getComputedStyle(c).backgroundColor,
            getComputedStyle(document.documentElement).getPropertyValue('--primary').trim()])""")
        assert captions, url
        assert not GREEN & {colour for colour, _ in captions}, (url, captions)
