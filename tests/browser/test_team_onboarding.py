"""#15 finding 6 in the browser: an instance admin adds an account manager with one client; the
invitation e-mail's link sets a password; the account manager signs in and sees exactly that client,
and a page their role may not open is the styled 403 page that says why."""

import os
import re

import pytest
from django_tenants.utils import schema_context

from ..conftest import PASSWORD, host_of
from ..processes import process_env, start_daphne, stop_process
from .support import SCREENSHOTS

os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")
LINK = re.compile(r"http://\S+/account/welcome/\S+/")


@pytest.fixture
def mailing_daphne(django_db_setup, tmp_path):
    """daphne whose e-mail goes to files in a directory this test reads; yields (port, directory)."""
    outbox = tmp_path / "mail"
    outbox.mkdir()
    env = {**process_env(), "DJANGO_SETTINGS_MODULE": "tests.browser.mail_settings",
           "SPOKESTACK_TEST_MAIL_DIR": str(outbox)}
    process, port = start_daphne(env, "team-onboarding")
    yield port, outbox
    stop_process(process)


def sign_in(page, base, email, password):
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


@pytest.mark.browser
@pytest.mark.live
def test_an_admin_invites_an_account_manager_who_sets_a_password_and_sees_one_client(
        live_instance, mailing_daphne, browser, page):
    from tuning.services import client_create

    port, outbox = mailing_daphne
    with schema_context(live_instance.instance.schema_name):
        client_create(name="Lumen Skin", vertical="beauty", region="GCC")
        client_create(name="Not Yours Bank", vertical="finance")
    base = f"http://{host_of(live_instance.instance)}:{port}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    sign_in(page, base, live_instance.admin.email, PASSWORD)
    page.wait_for_url("**/admin/")
    page.goto(f"{base}/admin/auth/user/add/")
    page.fill("#id_email", "nadia@agency.example")
    page.fill("#id_first_name", "Nadia")
    page.select_option("#id_role", "account_manager")
    page.get_by_label("Lumen Skin").check()
    assert page.locator("input[name=is_staff]").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "team_add_member.png"), full_page=True)
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist")
    assert "invitation to choose a password is e-mailed to nadia@agency.example" in page.inner_text("ul.messagelist")
    assert page.inner_text(".field-assigned_clients .readonly") == "Lumen Skin"
    page.screenshot(path=str(SCREENSHOTS / "team_member_added.png"), full_page=True)

    [message] = list(outbox.iterdir())
    body = message.read_text()
    assert "To: nadia@agency.example" in body and "account manager for Lumen Skin" in body
    link = LINK.search(body).group(0)
    assert link.startswith(base)

    newcomer = browser.new_context().new_page()
    try:
        newcomer.goto(link)
        newcomer.wait_for_selector("#set-password-form")
        assert "nadia@agency.example" in newcomer.inner_text("#content-main")
        newcomer.fill("#id_new_password1", "Lumen-launch-2026!")
        newcomer.fill("#id_new_password2", "Lumen-launch-2026!")
        newcomer.screenshot(path=str(SCREENSHOTS / "team_set_password.png"), full_page=True)
        newcomer.click("#set-password-form input[type=submit]")
        newcomer.wait_for_url("**/admin/login/**")
        assert "Your password is set" in newcomer.inner_text("ul.messagelist")

        sign_in(newcomer, base, "nadia@agency.example", "Lumen-launch-2026!")
        newcomer.wait_for_url("**/admin/")
        newcomer.goto(f"{base}/admin/tuning/client/")
        listed = newcomer.locator("#result_list tbody tr")
        assert listed.count() == 1 and "Lumen Skin" in listed.first.inner_text()
        assert "Not Yours Bank" not in newcomer.content()
        newcomer.screenshot(path=str(SCREENSHOTS / "team_account_manager_clients.png"), full_page=True)

        refused = newcomer.goto(f"{base}/admin/auth/user/")
        assert refused.status == 403
        assert "Your role does not allow you to see the people of this instance." in newcomer.inner_text(
            "#forbidden-reason")
        assert "welcome, nadia" in newcomer.inner_text("#header").lower()  # the admin's header and user links
        newcomer.screenshot(path=str(SCREENSHOTS / "forbidden_403.png"), full_page=True)

        newcomer.goto(link)
        assert "This link no longer works" in newcomer.inner_text("#content-main")
    finally:
        newcomer.context.close()
