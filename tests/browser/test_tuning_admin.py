"""An account manager edits a client's rules in the admin and sees them in the prompt preview."""

import os

import pytest
from django_tenants.utils import schema_context

from ..conftest import PASSWORD, host_of
from .support import SCREENSHOTS

# daphne runs in its own process, where no agents app may have registered a catalog yet: give it
# the tests' small catalog as the fallback (a registered catalog still wins). This must happen
# before the session's daphne starts, so it is done when the module is collected.
os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")



@pytest.mark.browser
@pytest.mark.live
def test_account_manager_edits_rules_and_sees_them_in_the_preview(live_instance, daphne_server, page):
    from spokestack.accounts.services import user_create
    from tuning.services import client_assign, client_create, client_rule_add, client_tuning_update

    schema = live_instance.instance.schema_name
    with schema_context(schema):
        manager = user_create(email="am@agency.example", password=PASSWORD, role="account_manager")
        lumen = client_create(name="Lumen Skin", vertical="beauty", region="GCC")
        client_create(name="Not Yours Bank", vertical="finance")
        client_assign(user=manager, client=lumen, role="account_manager")
        client_tuning_update(actor=None, client=lumen, changes={"brand_voice": "Radiant, warm and precise.",
                                                                "tone_keywords": ["warm", "confident"]})
        client_rule_add(actor=None, client=lumen, kind="always", text="Mention dermatologist testing")
    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{base}/admin/login/?next=/admin/tuning/client/")
    page.fill("#id_username", "am@agency.example")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/tuning/client/")
    assert page.locator("#result_list").inner_text().count("Lumen Skin") == 1
    assert "Not Yours Bank" not in page.content()

    page.click("text=Lumen Skin")
    page.wait_for_selector("#rules-group")
    page.click("#rules-group .add-row a")
    row = page.locator("#rules-group tr.dynamic-rules").last
    row.locator("select[name$='-kind']").select_option("never")
    row.locator("input[name$='-text']").fill("Promise overnight results")
    page.click("input[name=_continue]")
    page.wait_for_selector("ul.messagelist")
    never_column = page.locator("#rule-columns section.never").inner_text()
    assert "Promise overnight results" in never_column
    page.screenshot(path=str(SCREENSHOTS / "client_tuning.png"), full_page=True)

    page.click("#preview-link")
    page.wait_for_selector("#preview-form")
    assert page.locator("#id_client").input_value() == str(lumen.pk)
    page.click("#preview-form input[type=submit]")
    page.wait_for_selector("#tier-3")
    never = page.locator("#tier-3 .section[data-field='rules.never']").inner_text()
    assert "tier 3 · rules.never" in never and "Promise overnight results" in never
    assert "Mention dermatologist testing" in page.locator("#tier-3").inner_text()
    assert "+- Promise overnight results" in page.locator("#diff").inner_text()
    assert int(page.locator("#token-estimate").inner_text()) > 0
    page.screenshot(path=str(SCREENSHOTS / "prompt_preview.png"), full_page=True)
