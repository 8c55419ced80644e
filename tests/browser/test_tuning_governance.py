"""Issue #15 (finding 5) in the browser: an agency admin changes the instance tuning with a reason and
a ticket in the admin form, finds them in the audit log next to readable JSON values (no Python
reprs, the Roll back button whole), and rolls a client change back from the client's History
through the confirmation page, with a reason."""

import os

import pytest
from django_tenants.utils import schema_context

from ..conftest import PASSWORD, host_of
from .support import SCREENSHOTS

os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")


@pytest.mark.browser
@pytest.mark.live
def test_reason_and_ticket_in_the_audit_log_and_a_confirmed_rollback_from_history(live_instance, daphne_server,
                                                                                   page):
    from spokestack.accounts.services import user_create
    from tuning.models import ClientTuning, Entity, TuningChange
    from tuning.services import client_create, client_rule_add, client_tuning_update

    schema = live_instance.instance.schema_name
    with schema_context(schema):
        admin = user_create(email="owner@agency.example", password=PASSWORD, role="instance_admin")
        bloom = client_create(name="Desert Bloom", vertical="beauty", region="GCC")
        client_tuning_update(actor=admin, client=bloom, changes={"brand_voice": "Calm and exact."})
        client_tuning_update(actor=admin, client=bloom, changes={"brand_voice": "LOUD AND PROUD!"},
                             reason="trying a bolder voice")
        client_rule_add(actor=admin, client=bloom, kind="never", text="Promise overnight results")
    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": 900})

    page.goto(f"{base}/admin/login/?next=/admin/tuning/instancetuning/")
    page.fill("#id_username", "owner@agency.example")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#id_change_reason")
    assert "Why" in page.locator("fieldset.audit-why").inner_text()
    page.fill("#id_brand_voice", "Warm, precise, never pushy.")
    page.fill("#id_change_reason", "Agency-wide voice refresh")
    page.fill("#id_change_ticket", "SUP-42")
    page.screenshot(path=str(SCREENSHOTS / "instance_tuning_why.png"), full_page=True)
    page.click("input[name=_continue]")
    page.wait_for_selector("ul.messagelist")
    with schema_context(schema):
        entry = TuningChange.objects.filter(entity=Entity.INSTANCE_TUNING).latest("id")
        assert (entry.field, entry.new_value, entry.reason, entry.ticket, entry.actor_id) == (
            "brand_voice", "Warm, precise, never pushy.", "Agency-wide voice refresh", "SUP-42", admin.pk)

    page.goto(f"{base}/admin/tuning/tuningchange/")
    assert page.locator("h1").first.inner_text() == "Audit log"
    rows = page.locator("#result_list tbody tr")
    newest = rows.first.inner_text()
    assert "Agency-wide voice refresh" in newest and "[SUP-42]" in newest
    assert '"Warm, precise, never pushy."' in newest and "instance-wide tuning · brand voice" in newest.lower()
    listing = page.locator("#result_list").inner_text()
    assert '"kind": "never"' in listing and "{'" not in listing and "'}" not in listing  # JSON, not Python reprs
    assert "Tuning: #" not in page.content()
    button = rows.first.locator("a.audit-rollback")
    # The list's box scrolls sideways when the table is wider than it: the button must be inside the box.
    box, visible = button.bounding_box(), page.locator("#changelist .results").bounding_box()
    assert box["x"] >= visible["x"] and box["x"] + box["width"] <= visible["x"] + visible["width"]
    assert button.inner_text() == "Roll back…" and box["height"] < 40  # whole, on one line
    page.screenshot(path=str(SCREENSHOTS / "audit_log_readable.png"), full_page=True)
    rows.first.locator("th a, td a").first.click()
    page.wait_for_selector("#content h1")
    assert page.locator("#content h1").first.inner_text() == f"Audit entry #{entry.pk}"
    detail = page.locator("#content-main").inner_text()
    assert '"Warm, precise, never pushy."' in detail and "SUP-42" in detail
    page.screenshot(path=str(SCREENSHOTS / "audit_entry.png"), full_page=True)

    page.goto(f"{base}/admin/tuning/client/{bloom.pk}/history/")
    bolder = page.locator("#change-history tbody tr", has_text="LOUD AND PROUD!").first
    assert "trying a bolder voice" in bolder.inner_text()
    bolder.locator("a", has_text="Roll back").click()
    page.wait_for_url("**/rollback/**")
    page.wait_for_selector("#id_reason")
    confirm = page.locator("#content-main").inner_text()
    assert '"Calm and exact."' in confirm and '"LOUD AND PROUD!"' in confirm and "Desert Bloom's tuning" in confirm
    with schema_context(schema):
        assert ClientTuning.objects.get(client=bloom).brand_voice == "LOUD AND PROUD!"  # the link did not roll back
    page.fill("#id_reason", "too loud for the brand")
    page.fill("#id_ticket", "SUP-43")
    page.screenshot(path=str(SCREENSHOTS / "history_rollback_confirm.png"), full_page=True)
    page.click("#content-main input[type=submit]")
    page.wait_for_selector("ul.messagelist")
    assert "Rolled back" in page.locator("ul.messagelist").inner_text()
    assert f"/admin/tuning/client/{bloom.pk}/history/" in page.url
    assert "too loud for the brand" in page.locator("#change-history tbody tr").first.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "history_after_rollback.png"), full_page=True)
    with schema_context(schema):
        assert ClientTuning.objects.get(client=bloom).brand_voice == "Calm and exact."
        rollback = TuningChange.objects.latest("id")
        assert (rollback.reason, rollback.ticket, rollback.actor_id) == ("too loud for the brand", "SUP-43", admin.pk)
        assert rollback.rollback_of.new_value == "LOUD AND PROUD!"
