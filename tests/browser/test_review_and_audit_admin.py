# ruff: noqa: F811 - the scripted model fixture is imported by name
"""Issue #14 in the browser: an agency admin finds a run whose output broke a content filter in the
runs list's "Needs review" filter and sees why on its page; in the audit log they find a role change
that also dropped a client assignment, see on the confirmation page that both roll back together,
roll them back, and export the filtered log as CSV."""

import csv
import io
import os
import uuid
from pathlib import Path

import pytest
from django_tenants.utils import schema_context

from ..conftest import PASSWORD, host_of
from ..skills.conftest import scripted, text_turn  # noqa: F401 - the scripted model, by fixture name
from .support import SCREENSHOTS

os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")


@pytest.mark.browser
@pytest.mark.live
def test_review_queue_and_a_group_rollback_in_the_admin(live_instance, daphne_server, page, scripted, runs_stay_here):
    from agents.loop import execute_run
    from agents.services import run_create
    from spokestack.accounts import policy
    from spokestack.accounts.services import role_of, user_create, user_update_role
    from tuning.services import client_assign, client_create, instance_tuning_update

    schema = live_instance.instance.schema_name
    marker = f"[review-{uuid.uuid4().hex[:8]}]"
    scripted.script(marker, [text_turn("Our fast fashion glow, gently.")])
    with schema_context(schema):
        admin = user_create(email="owner@agency.example", password=PASSWORD, role="instance_admin")
        bloom = client_create(name="Desert Bloom", vertical="beauty", region="GCC")
        instance_tuning_update(actor=None, changes={"content_filters": ["fast fashion"]}, reason="brand safety")
        run = run_create(actor=None, agent_type="copy", task=f"A caption {marker}", client_id=bloom.pk).run
        assert execute_run(run_id=str(run.pk), worker="browser-test") == "succeeded"
        manager = user_create(email="am@agency.example", password=None, role="account_manager")
        client_assign(user=manager, client=bloom, role="account_manager")
        user_update_role(actor=admin, user=manager, role="instance_manager", reason="promoted")
    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{base}/admin/login/?next=/admin/agents/agentrun/")
    page.fill("#id_username", "owner@agency.example")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/agents/agentrun/")
    page.click("#changelist-filter >> text=Needs review")
    page.wait_for_url("**review=pending**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "needs review" in rows.first.inner_text()
    rows.first.locator("th a, td a").first.click()
    page.wait_for_selector("#run-check")
    check = page.locator("#run-check").inner_text()
    assert "fast fashion" in check.lower()
    page.screenshot(path=str(SCREENSHOTS / "run_review.png"), full_page=True)

    page.goto(f"{base}/admin/tuning/tuningchange/")
    page.click("#changelist-filter >> text=Role")
    page.wait_for_url("**entity__exact=user_role**")
    page.locator("#result_list tbody tr").first.locator("a", has_text="Roll back").click()
    page.wait_for_selector("form input[type=submit]")
    assert "and the other entry of its change" in page.locator("h1").inner_text()
    assert "client assignment" in page.locator("#content-main ul").inner_text()
    page.fill("input[name=reason]", "promotion was a mistake")
    page.screenshot(path=str(SCREENSHOTS / "group_rollback.png"), full_page=True)
    page.click("form input[type=submit]")
    page.wait_for_selector("ul.messagelist")
    assert "Rolled back" in page.locator("ul.messagelist").inner_text()
    with schema_context(schema):
        manager.refresh_from_db()
        policy.forget(manager)
        assert role_of(manager) == "account_manager"
        assert bloom.pk in policy.assigned_client_ids(manager)[policy.MANAGE]

    page.goto(f"{base}/admin/tuning/tuningchange/?entity__exact=user_role")
    with page.expect_download() as download:
        page.click("text=Export CSV")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {row["entity"] for row in rows} == {"user_role"} and len(rows) == 2  # the change and its rollback
