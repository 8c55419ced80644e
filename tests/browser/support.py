"""What the browser tests share: where screenshots go, signing in, and running Django code from a
test while Playwright's event loop holds the main thread."""

from __future__ import annotations

from pathlib import Path

from django_tenants.utils import schema_context

from ..conftest import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / ".spokestack" / "test" / "screenshots"


def log_in(page, base: str, email: str, next_url: str, password: str = PASSWORD) -> None:
    """Sign in on the admin's login page and wait for the page it was asked to open."""
    page.goto(f"{base}/admin/login/?next={next_url}")
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_url.split('?')[0]}*")


def in_thread(schema: str, fn):
    """fn in a thread of its own, in the instance's schema: a run's broadcasts go through
    async_to_sync, which refuses the main thread while Playwright's event loop runs there."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def call():
        try:
            with schema_context(schema):
                return fn()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def erp_wired_client(live_instance, sample_erp, egress_loopback):
    """The live instance wired to the sample ERP (reachable on loopback) with one client, Desert
    Bloom Cosmetics, for tests that run agents whose tools read the ERP; returns the client."""
    from django.db import connection

    from spokestack.sample_erp import DEMO_API_KEYS
    from spokestack.tenancy.services import instance_set_erp
    from tuning.services import client_create

    egress_loopback(sample_erp[0].server_port)
    instance = live_instance.instance
    instance_set_erp(instance=instance, base_url=sample_erp[1], api_key=DEMO_API_KEYS["alpha"])
    with schema_context(instance.schema_name):
        client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC")
    connection.set_schema_to_public()
    return client
