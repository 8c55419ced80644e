"""The instance admin in a real browser: log in on the instance's own host, see it branded."""

import pytest

from ..conftest import PASSWORD
from .support import SCREENSHOTS as ARTIFACTS


@pytest.mark.browser
@pytest.mark.live
def test_admin_logs_in_on_own_host_and_sees_the_instance(page, daphne_server, live_instance):
    instance = live_instance.instance
    host = instance.domains.get().domain
    page.goto(f"http://{host}:{daphne_server}/admin/")
    page.fill("#id_username", live_instance.admin.email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#instance-summary")
    assert page.title().endswith(instance.name)
    assert f"{instance.name} · SpokeStack" in page.inner_text("#site-name")
    assert "API tokens" in page.inner_text("#content-main")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-landing.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.live
def test_wrong_host_refuses_the_same_credentials(page, daphne_server, live_instance):
    page.goto(f"http://tenant-b.localhost:{daphne_server}/admin/login/")
    page.fill("#id_username", live_instance.admin.email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    assert "Please enter the correct" in page.inner_text(".errornote")
