"""Issue #15 in the browser: an instance admin configures an agent's versions in the admin (policy,
preferences, notification contacts), sees them saved and in the audit log, reads an update's notes
rendered (no Markdown), and rolls back with the version picker ("Switch anyway" for a version the
instance never ran). And the release e-mail goes to the instance admins when no contacts are set."""

from __future__ import annotations

import os

import pytest
from django.core import mail
from django_tenants.utils import schema_context

from ..conftest import HOST_A, host_of
from ..versions.helpers import catalog_before_release, caution_update, release
from .support import SCREENSHOTS, log_in

os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")


@pytest.mark.browser
@pytest.mark.live
def test_admin_configures_versions_reads_the_update_and_rolls_back(live_instance, live_db, daphne_server, page):
    from tuning.models import TuningChange
    from versions.models import AgentVersionConfig

    schema = live_instance.instance.schema_name
    note = caution_update(schema)
    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    log_in(page, base, live_instance.admin.email, "/admin/versions/agentversionconfig/")
    card = page.locator(".agent-card[data-agent=media_buying]")
    assert f"{live_instance.admin.email} (the instance admins)" in card.inner_text()

    # The settings form: policy, preferences and contacts, saved through the audited service.
    card.locator("text=Version settings").click()
    page.wait_for_selector("#version-settings")
    assert "Leave empty to e-mail the instance admins" in page.locator(".field-notify_contacts").inner_text()
    page.check("input[name=policy][value=manual]")
    page.check("input[name=optimization_preferences][value=cpa]")
    page.fill("#id_notify_contacts", "ops@agency.example\nlead@agency.example, not-an-address")
    page.fill("#id_reason", "Ops reviews every release")
    page.click("#version-settings input[type=submit]")
    assert "'not-an-address' is not an e-mail address." in page.locator(".field-notify_contacts").inner_text()
    page.fill("#id_notify_contacts", "ops@agency.example\nlead@agency.example")
    page.click("#version-settings input[type=submit]")
    page.wait_for_selector("ul.messagelist")
    assert "Saved the version settings of Media buying: manual, following releases, running 2.3.1." in (
        page.locator("ul.messagelist").inner_text())
    assert page.locator("input[name=policy][value=manual]").is_checked()
    assert page.locator("input[name=optimization_preferences][value=cpa]").is_checked()
    assert page.locator("#id_notify_contacts").input_value() == "ops@agency.example\nlead@agency.example"
    page.screenshot(path=str(SCREENSHOTS / "versions_settings.png"), full_page=True)
    with schema_context(schema):
        config = AgentVersionConfig.objects.get(agent_type="media_buying")
        assert (config.policy, config.notify_contacts) == ("manual", ["ops@agency.example", "lead@agency.example"])
        assert config.optimization_preferences == ["cpa", "performance", "roas"]
        entries = {c.field: c for c in TuningChange.objects.filter(entity="version_settings", actor__isnull=False)}
        assert set(entries) == {"policy", "optimization_preferences", "notify_contacts"}
        assert (entries["policy"].old_value, entries["policy"].new_value) == ("staged", "manual")
        assert entries["notify_contacts"].reason == "Ops reviews every release"
    page.click("text=Changes in the audit log")
    page.wait_for_selector("#result_list")
    assert "lead@agency.example" in page.locator("#result_list").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "versions_settings_audit.png"), full_page=True)

    # The update's details are rendered from Markdown, not shown as Markdown.
    page.goto(f"{base}/admin/versions/agentversionconfig/update/{note.pk}/")
    details = page.locator("#update-details")
    assert details.locator("h2", has_text="What's new").count() == 1
    assert details.locator("li", has_text="roas_optimizer").count() >= 1
    text = page.locator("#content-main").inner_text()
    assert "##" not in text and "**" not in text and "`" not in text
    assert not any(line.lstrip().startswith("- ") for line in text.splitlines())
    page.screenshot(path=str(SCREENSHOTS / "versions_update_details.png"), full_page=True)

    # Rollback with the picker: a version never run here needs "Switch anyway".
    page.goto(f"{base}/admin/versions/agentversionconfig/")
    page.locator(".agent-card[data-agent=media_buying] >> text=Roll back").click()
    page.wait_for_selector("#rollback-form")
    assert page.locator("#id_version option").all_inner_texts() == ["2.4.0 (never ran here)"]
    page.fill("#id_reason", "Try the new bidding early")
    page.click("#rollback-form input[type=submit]")
    assert 'tick "Switch anyway"' in page.locator(".field-force").inner_text()
    assert "force=true" not in page.locator("#content-main").inner_text().replace("(force=true in the API)", "")
    page.check("#id_force")
    page.screenshot(path=str(SCREENSHOTS / "versions_rollback_switch_anyway.png"), full_page=True)
    page.click("#rollback-form input[type=submit]")
    page.wait_for_url("**/admin/versions/agentversionconfig/")
    assert "Media buying now runs 2.4.0, pinned there" in page.locator("ul.messagelist").inner_text()

    page.locator(".agent-card[data-agent=media_buying] >> text=Roll back").click()
    page.wait_for_selector("#rollback-form")
    assert page.locator("#id_version option").all_inner_texts() == ["2.3.1"]
    page.fill("#id_reason", "ROAS dropped on 2.4.0")
    page.click("#rollback-form input[type=submit]")
    page.wait_for_url("**/admin/versions/agentversionconfig/")
    assert "Media buying now runs 2.3.1, pinned there" in page.locator("ul.messagelist").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "versions_rolled_back.png"), full_page=True)
    with schema_context(schema):
        config = AgentVersionConfig.objects.get(agent_type="media_buying")
        assert (config.current_version, config.pinned_version) == ("2.3.1", "2.3.1")

    # "Skip this version" says what happened, in words.
    page.locator(".agent-card[data-agent=media_buying] >> text=Skip this version").click()
    page.wait_for_selector("ul.messagelist")
    assert "Skipped 2.4.0: Media buying stays on 2.3.1, pinned there" in page.locator("ul.messagelist").inner_text()


def test_release_mail_goes_to_the_instance_admins_when_no_contacts_are_set(in_a):
    from spokestack.accounts.services import user_create

    catalog_before_release()
    user_create(email="owner@shop.example", password=None, role="instance_admin")
    user_create(email="am@shop.example", password=None, role="account_manager")
    release(["tenant_a"])
    recipients = [m.to for m in mail.outbox if "media_buying" in m.subject]
    assert len(recipients) == 1 and "owner@shop.example" in recipients[0]
    assert "am@shop.example" not in recipients[0]


@pytest.mark.parametrize("role", ["instance_manager", "account_manager", "client_contact"])
def test_only_those_who_configure_versions_reach_the_settings_and_rollback_pages(in_a, assigned, role):
    from django.test import Client as HttpClient

    from tuning.services import client_create
    from versions.models import AgentVersionConfig

    client = client_create(name="Mine Cosmetics", vertical="beauty")
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(assigned(role, client) if role in ("account_manager", "client_contact") else assigned(role))
    for url in ("/admin/versions/agentversionconfig/settings/media_buying/",
                "/admin/versions/agentversionconfig/rollback/media_buying/"):
        assert http.get(url).status_code == 403, url
        assert http.post(url, {"policy": "manual", "follow": "latest", "notify": "on", "version": "2.3.1",
                               "reason": "x", "force": "on"}).status_code == 403, url
    assert not AgentVersionConfig.objects.filter(agent_type="media_buying", policy="manual").exists()
    admin = HttpClient(HTTP_HOST=HOST_A)
    admin.force_login(assigned("instance_admin"))
    assert admin.get("/admin/versions/agentversionconfig/settings/media_buying/").status_code == 200
