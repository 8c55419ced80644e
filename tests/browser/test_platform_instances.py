"""Platform staff add an instance in the platform admin, see its admin password once, and that
admin signs in to the new instance with it."""

import os

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import connection

from ..conftest import PASSWORD
from .support import SCREENSHOTS


@pytest.fixture
def platform_staff(live_db):
    connection.set_schema_to_public()
    staff = get_user_model().objects.create_superuser("ops@platform.localhost", "ops@platform.localhost", PASSWORD)
    yield staff
    from spokestack.tenancy.models import Instance

    connection.set_schema_to_public()
    for instance in Instance.objects.filter(name="Browser Agency"):
        instance.delete(force_drop=True)
    # A public user's delete() would cascade into instance-only tables; only the history points at it here.
    LogEntry.objects.filter(user_id=staff.pk).delete()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM auth_user WHERE id = %s", [staff.pk])


@pytest.mark.browser
@pytest.mark.live
def test_platform_staff_add_an_instance_and_its_admin_signs_in_once(platform_staff, daphne_server, page):
    host = f"pi{os.getpid()}.localhost"
    platform = f"http://localhost:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{platform}/admin/login/?next=/admin/tenancy/instance/add/")
    page.fill("#id_username", "ops@platform.localhost")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/tenancy/instance/add/")
    page.fill("#id_name", "Browser Agency")
    page.fill("#id_domain", host)
    page.fill("#id_admin_email", "boss@browser-agency.example")
    page.select_option("#id_tier", "professional")
    page.fill("#id_region", "EU")
    page.fill("#id_timezone", "Europe/Paris")
    page.screenshot(path=str(SCREENSHOTS / "platform_instance_add.png"), full_page=True)
    page.click("input[name=_save]")

    page.wait_for_url("**/created/")
    created_url = page.url
    password = page.input_value("#admin-password")
    assert len(password) >= 12
    assert "shown only this once" in page.inner_text("#one-time-password")
    assert page.inner_text("#admin-email") == "boss@browser-agency.example"
    assert page.locator(".errorlist, .errornote").count() == 0
    instance_admin = page.get_attribute("#open-instance-admin", "href")
    assert instance_admin == f"http://{host}:{daphne_server}/admin/"
    page.screenshot(path=str(SCREENSHOTS / "platform_instance_created.png"), full_page=True)

    # A second visit (or reload) shows no password, nor does the instance's change page.
    page.goto(created_url)
    assert page.locator("#admin-password").count() == 0 and password not in page.content()
    assert "is not shown again" in page.inner_text("#password-gone")
    assert "boss@browser-agency.example" in page.inner_text("#instance-admins")
    page.screenshot(path=str(SCREENSHOTS / "platform_instance_created_again.png"), full_page=True)
    page.click("text=Instance settings")
    page.wait_for_selector("#instance_form")
    assert password not in page.content()
    assert page.input_value("#id_timezone") == "Europe/Paris"
    page.goto(f"{platform}/admin/tenancy/instance/")
    assert page.locator("#result_list").inner_text().count("Browser Agency") == 1

    page.goto(instance_admin)
    page.fill("#id_username", "boss@browser-agency.example")
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#instance-summary")
    assert "Browser Agency · SpokeStack" in page.inner_text("#site-name")
    page.screenshot(path=str(SCREENSHOTS / "platform_instance_first_sign_in.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.live
def test_a_taken_host_is_a_form_error_and_creates_nothing(platform_staff, daphne_server, page):
    from spokestack.tenancy.models import Instance

    page.goto(f"http://localhost:{daphne_server}/admin/login/?next=/admin/tenancy/instance/add/")
    page.fill("#id_username", "ops@platform.localhost")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/tenancy/instance/add/")
    page.fill("#id_name", "Browser Agency")
    page.fill("#id_domain", "tenant-a.localhost")
    page.fill("#id_admin_email", "boss@browser-agency.example")
    page.click("input[name=_save]")
    page.wait_for_selector(".errornote")
    assert "already belongs to the instance Instance A" in page.inner_text(".field-domain .errorlist")
    assert "already exists" not in page.content()
    page.screenshot(path=str(SCREENSHOTS / "platform_instance_add_error.png"), full_page=True)
    connection.set_schema_to_public()
    assert not Instance.objects.filter(name="Browser Agency").exists()
