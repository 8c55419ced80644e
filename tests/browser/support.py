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
