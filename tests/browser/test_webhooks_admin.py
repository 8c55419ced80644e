"""Issue #21 part 1 in a real browser: an instance admin adds an event webhook (the secret shown
once), sees a failed delivery's attempts with what the receiver answered, redelivers it from the
delivery log (the session's Celery worker sends both), and sees the redelivery's attempt; nothing is
fetched from elsewhere."""

from __future__ import annotations

import re
import uuid

import pytest

from ..conftest import wait_for
from ..spokestack.test_webhooks import Receiver
from .support import SCREENSHOTS, in_thread, log_in

ADD = "/admin/webhooks/webhooksubscription/add/"


@pytest.mark.browser
@pytest.mark.live
def test_an_admin_adds_a_webhook_reads_the_attempts_and_redelivers(live_instance, daphne_server, celery_worker,
                                                                    worker_webhook, page):
    from spokestack.webhooks.events import CATALOGUE
    from spokestack.webhooks.models import WebhookDelivery, WebhookSubscription
    from spokestack.webhooks.services import webhook_emit

    instance, admin = live_instance.instance, live_instance.admin
    base = f"http://{instance.domains.get().domain}:{daphne_server}"
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(base) else None)
    log_in(page, base, admin.email, ADD)
    page.fill("#id_url", "https://hooks.partner.example/spokestack")
    page.fill("#id_description", "Partner ERP")
    page.check("input[name=event_types][value='run.succeeded']")
    page.check("input[name=event_types][value='approval.requested']")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist")
    shown = page.inner_text("ul.messagelist")
    secret = re.search(r"whsec_[A-Za-z0-9+/=]+", shown).group(0)
    assert "shown once" in shown
    assert "Partner ERP" in page.inner_text("#result_list")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "webhooks_list.png"), full_page=True)

    path = f"/browser-hooks-{uuid.uuid4().hex[:8]}"
    receiver = Receiver(worker_webhook, secret, [500] * 8)  # every scheduled attempt fails; the redelivery works
    worker_webhook.routes[path] = worker_webhook.routes.pop("/hooks")
    try:
        def emit():
            # The session's worker delivers it; it may reach this loopback server (daphne need not).
            WebhookSubscription.objects.filter(description="Partner ERP").update(url=f"{worker_webhook.url}{path}")
            delivery_id, = webhook_emit("run.succeeded", CATALOGUE["run.succeeded"].example)
            return delivery_id

        delivery_id = in_thread(instance.schema_name, emit)

        def status():
            return in_thread(instance.schema_name, lambda: WebhookDelivery.objects.get(pk=delivery_id).status)

        wait_for(lambda: status() == "failed", timeout=60)  # 8 attempts, 0.5 s apart in the test worker
        page.goto(f"{base}/admin/webhooks/webhookdelivery/")
        row = page.locator("#result_list tbody tr").first
        assert "run.succeeded" in row.inner_text() and "500" in row.inner_text() and "Failed" in row.inner_text()
        page.goto(f"{base}/admin/webhooks/webhookdelivery/{delivery_id}/change/")
        assert page.locator("td", has_text="HTTP 500").count() == 8  # the attempts table
        page.goto(f"{base}/admin/webhooks/webhookdelivery/")
        page.check("#result_list tbody tr input.action-select")
        page.select_option("select[name=action]", "redeliver")
        page.click("button[name=index]")
        page.wait_for_selector("ul.messagelist")
        assert "queued to be sent again" in page.inner_text("ul.messagelist")
        wait_for(lambda: status() == "succeeded", timeout=30)
        page.goto(f"{base}/admin/webhooks/webhookdelivery/{delivery_id}/change/")
        body = page.inner_text("body")
        assert "HTTP 200" in body and "9 (redelivery)" in body and "Delivered" in body
        page.screenshot(path=str(SCREENSHOTS / "webhook_delivery.png"), full_page=True)
        assert list(receiver.acted) and len(set(receiver.seen)) == 1 and len(receiver.seen) == 9
    finally:
        worker_webhook.routes.pop(path, None)
    assert not outside, outside
