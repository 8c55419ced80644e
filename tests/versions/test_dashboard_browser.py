"""The agents dashboard in a real browser: an update with its recommendation, then the sandbox."""

from __future__ import annotations

import pytest

from tests.browser.support import SCREENSHOTS

from ..browser.support import log_in
from ..conftest import host_of
from .helpers import caution_update


@pytest.mark.browser
@pytest.mark.live
def test_dashboard_shows_the_update_and_opens_a_sandbox(live_instance, live_db, daphne_server, page):
    schema = live_instance.instance.schema_name
    caution_update(schema)
    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    log_in(page, base, live_instance.admin.email, "/admin/versions/agentversionconfig/")
    card = page.locator(".agent-card[data-agent=media_buying]")
    text = card.inner_text()
    assert "Update available: 2.4.0" in text and "CAUTION" in text.upper() and "roas_optimizer" in text
    assert "Optimization mismatch" in text
    page.screenshot(path=str(SCREENSHOTS / "versions_dashboard.png"), full_page=True)

    card.locator("text=Test in sandbox").click()
    page.wait_for_url("**/admin/versions/agentversionconfig/sandbox/**")
    assert "2.3.1 vs 2.4.0" in page.content()
    page.screenshot(path=str(SCREENSHOTS / "versions_sandbox.png"), full_page=True)
    page.click("#sandbox-promote")  # through the confirmation, with a reason
    page.wait_for_selector("#sandbox-decision-form")
    page.fill("#id_reason", "Reach is fine for this agency")
    page.click("#sandbox-decision-form input[type=submit]")
    page.wait_for_url("**/admin/versions/agentversionconfig/")
    assert "Version 2.4.0 promoted: Media buying now runs 2.4.0." in page.locator("ul.messagelist").inner_text()
