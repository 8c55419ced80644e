"""Issue #21 part 1: outbound event webhooks — subscriptions, signed deliveries a Standard Webhooks
receiver (the reference library) verifies, retries on the spec's schedule with one webhook-id, the
attempt log, redelivery, disabling on 410 or a day of failures, and who may see or change them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import Client as HttpClient
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from spokestack.webhooks.events import CATALOGUE
from spokestack.webhooks.models import WebhookDelivery, WebhookSubscription
from spokestack.webhooks.services import (
    delivery_attempt,
    delivery_redeliver,
    retry_delay,
    subscription_create,
    webhook_emit,
)

from ..conftest import HOST_A
from ..loopback_server import Reply

J = {"format": "json"}


@pytest.fixture
def admin_a(in_a, make_user):
    return make_user("instance_admin")


@pytest.fixture
def client_a(in_a):
    from tuning.services import client_create

    return client_create(name="Desert Bloom Cosmetics", vertical="beauty")


class Receiver:
    """A receiver as an integrator writes one: it verifies each delivery with the standardwebhooks
    reference library and acts on a webhook-id once; `answers` says what it replies, in turn."""

    def __init__(self, server, secret: str, answers: list[int]) -> None:
        self.webhook, self.answers = Webhook(secret), list(answers)
        self.seen: list[str] = []  # webhook-ids of verified requests, in order
        self.acted: dict[str, dict] = {}  # webhook-id -> the event it acted on, once
        server.route("/hooks", self)

    def __call__(self, request) -> Reply:
        try:
            event = self.webhook.verify(request.body, request.headers)
        except WebhookVerificationError as exc:
            return Reply.json({"error": str(exc)}, status=400)
        msg_id = request.headers["webhook-id"]
        self.seen.append(msg_id)
        status = self.answers.pop(0) if self.answers else 200
        if status < 300:
            self.acted.setdefault(msg_id, event)
        return Reply.json({"ok": status < 300}, status=status)


def _subscribe(admin, server, types=("run.succeeded",)):
    subscription, secret = subscription_create(actor=admin, url=f"{server.url}/hooks", event_types=list(types))
    return subscription, secret


def _due(delivery_id) -> None:
    WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now())


def test_a_receiver_that_fails_twice_gets_the_event_once_and_the_log_shows_three_attempts(
        admin_a, client_a, loopback_server, egress_loopback, django_capture_on_commit_callbacks):
    egress_loopback(loopback_server.port)
    subscription, secret = _subscribe(admin_a, loopback_server)
    receiver = Receiver(loopback_server, secret, [500, 503, 200])
    data = {**CATALOGUE["run.succeeded"].example, "client_id": client_a.pk}
    with django_capture_on_commit_callbacks(execute=False):
        [delivery_id] = webhook_emit("run.succeeded", data)

    from prometheus_client import REGISTRY

    def attempts(outcome):
        return REGISTRY.get_sample_value("spokestack_webhook_attempts_total",
                                         {"event_type": "run.succeeded", "outcome": outcome}) or 0

    counted = {outcome: attempts(outcome) for outcome in ("retry", "sent")}
    started = timezone.now()
    assert delivery_attempt(delivery_id=delivery_id) == "retry"
    first = WebhookDelivery.objects.get(pk=delivery_id)
    assert timedelta(seconds=4.4) <= first.next_attempt_at - started <= timedelta(seconds=5.6)  # 5 s ±10 %
    assert delivery_attempt(delivery_id=delivery_id) == "skipped", "not due yet: nothing is sent"
    _due(delivery_id)
    assert delivery_attempt(delivery_id=delivery_id) == "retry"
    second = WebhookDelivery.objects.get(pk=delivery_id)
    assert timedelta(seconds=269) <= second.next_attempt_at - timezone.now() <= timedelta(seconds=331)  # 5 min
    _due(delivery_id)
    assert delivery_attempt(delivery_id=delivery_id) == "sent"
    assert delivery_attempt(delivery_id=delivery_id) == "skipped", "a duplicate task sends nothing"

    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "succeeded" and delivery.attempts == 3
    assert [(a.number, a.status_code, a.ok) for a in delivery.attempt_log.all()] == [
        (1, 500, False), (2, 503, False), (3, 200, True)]
    assert '"ok": true' in delivery.attempt_log.last().response_excerpt
    assert receiver.seen == [delivery.event_id] * 3, "one webhook-id on every attempt"
    assert list(receiver.acted) == [delivery.event_id]
    assert receiver.acted[delivery.event_id]["data"] == {**data}
    assert receiver.acted[delivery.event_id]["type"] == "run.succeeded"
    assert WebhookSubscription.objects.get(pk=subscription.pk).failing_since is None
    assert (attempts("retry") - counted["retry"], attempts("sent") - counted["sent"]) == (2, 1), "in /metrics"


def test_the_schedule_is_the_standard_webhooks_one_then_it_gives_up(settings):
    assert settings.WEBHOOK_RETRY_SCHEDULE == [5, 300, 1800, 7200, 18000, 36000, 36000]
    for attempt, base in enumerate(settings.WEBHOOK_RETRY_SCHEDULE, start=1):
        assert base * 0.9 <= retry_delay(attempt) <= base * 1.1
    assert retry_delay(8) is None


def test_only_subscriptions_that_want_the_type_get_it_and_none_is_recorded_without_one(
        admin_a, loopback_server, egress_loopback, django_capture_on_commit_callbacks):
    from spokestack.webhooks.models import WebhookEvent

    egress_loopback(loopback_server.port)
    assert webhook_emit("approval.requested", CATALOGUE["approval.requested"].example) == []
    assert not WebhookEvent.objects.exists(), "no subscription: no event row"
    wants, _ = _subscribe(admin_a, loopback_server, ["approval.requested"])
    _subscribe(admin_a, loopback_server, ["run.failed"])
    with django_capture_on_commit_callbacks(execute=False) as queued:
        deliveries = webhook_emit("approval.requested", CATALOGUE["approval.requested"].example)
    assert [WebhookDelivery.objects.get(pk=d).subscription_id for d in deliveries] == [wants.pk]
    assert len(queued) == 2  # the delivery's task, and the live channel's message


def test_a_410_disables_the_subscription_and_tells_the_admins_once(
        admin_a, loopback_server, egress_loopback, django_capture_on_commit_callbacks):
    egress_loopback(loopback_server.port)
    subscription, secret = _subscribe(admin_a, loopback_server)
    Receiver(loopback_server, secret, [410, 410])
    with django_capture_on_commit_callbacks(execute=False):
        first, = webhook_emit("run.succeeded", CATALOGUE["run.succeeded"].example)
        second, = webhook_emit("run.succeeded", CATALOGUE["run.succeeded"].example)
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery_attempt(delivery_id=first) == "failed"
        assert delivery_attempt(delivery_id=second) == "skipped", "a disabled subscription sends nothing more"
    subscription.refresh_from_db()
    assert not subscription.enabled and "410 Gone" in subscription.disabled_reason
    assert WebhookDelivery.objects.get(pk=second).status == "pending", "it waits for the subscription"
    told = [m for m in mail.outbox if "Event webhook disabled" in m.subject]
    assert len(told) == 1 and admin_a.email in told[0].to


def test_a_day_of_failures_disables_it_and_enabling_it_sends_what_waited(
        admin_a, loopback_server, egress_loopback, django_capture_on_commit_callbacks):
    from spokestack.webhooks.services import subscription_update

    egress_loopback(loopback_server.port)
    subscription, secret = _subscribe(admin_a, loopback_server)
    receiver = Receiver(loopback_server, secret, [500])
    with django_capture_on_commit_callbacks(execute=False):
        delivery_id, = webhook_emit("run.succeeded", CATALOGUE["run.succeeded"].example)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(failing_since=timezone.now() - timedelta(hours=25))
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery_attempt(delivery_id=delivery_id) == "retry"
    subscription.refresh_from_db()
    assert not subscription.enabled and "25 h" not in subscription.disabled_reason
    assert "no success" in subscription.disabled_reason
    with django_capture_on_commit_callbacks(execute=False) as queued:
        subscription_update(actor=admin_a, subscription_id=subscription.pk, enabled=True)
    assert len(queued) == 1, "re-enabling queues what waited"
    assert delivery_attempt(delivery_id=delivery_id) == "sent"
    assert receiver.seen == [WebhookDelivery.objects.get(pk=delivery_id).event_id] * 2


def test_a_redelivery_sends_the_same_webhook_id_again_and_is_marked(
        admin_a, loopback_server, egress_loopback, django_capture_on_commit_callbacks):
    egress_loopback(loopback_server.port)
    subscription, secret = _subscribe(admin_a, loopback_server)
    receiver = Receiver(loopback_server, secret, [200, 200])
    with django_capture_on_commit_callbacks(execute=False):
        delivery_id, = webhook_emit("run.succeeded", CATALOGUE["run.succeeded"].example)
    assert delivery_attempt(delivery_id=delivery_id) == "sent"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        delivery_redeliver(actor=admin_a, delivery_id=delivery_id)
    assert len(queued) == 1
    assert delivery_attempt(delivery_id=delivery_id, manual=True) == "sent"
    log = list(WebhookDelivery.objects.get(pk=delivery_id).attempt_log.values_list("number", "manual"))
    assert log == [(1, False), (2, True)] and len(set(receiver.seen)) == 1


def test_the_api_shows_the_secret_once_and_refuses_what_it_cannot_use(admin_a, api, in_a, loopback_server,
                                                                       egress_loopback):
    egress_loopback(loopback_server.port)
    http = api(in_a, admin_a)
    created = http.post("/api/v1/webhooks", {"url": f"{loopback_server.url}/hooks",
                                             "event_types": ["run.failed", "budget.warning"]}, **J)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["event_types"] == ["run.failed", "budget.warning"]
    read = http.get(f"/api/v1/webhooks/{body['id']}").json()
    assert "secret" not in read and body["secret"] not in str(http.get("/api/v1/webhooks").json())
    rotated = http.post(f"/api/v1/webhooks/{body['id']}/rotate-secret").json()["secret"]
    assert rotated.startswith("whsec_") and rotated != body["secret"]

    bad_type = http.post("/api/v1/webhooks", {"url": f"{loopback_server.url}/h", "event_types": ["run.done"]}, **J)
    assert bad_type.status_code == 400 and "run.done" in bad_type.json()["error"]["message"]
    for url in ("http://169.254.169.254/latest", "http://10.0.0.8/hook", "http://[::1]:9/x", "ftp://example.com/x",
                "http://2130706433/x"):
        refused = http.post("/api/v1/webhooks", {"url": url, "event_types": ["run.failed"]}, **J)
        assert refused.status_code == 400, (url, refused.content)
        assert refused.json()["error"]["message"].startswith("url:")
    patched = http.patch(f"/api/v1/webhooks/{body['id']}", {"enabled": False, "event_types": ["run.failed"]}, **J)
    assert patched.json()["enabled"] is False and patched.json()["event_types"] == ["run.failed"]
    assert http.patch(f"/api/v1/webhooks/{body['id']}", {"secret": "x"}, **J).status_code == 400
    types = http.get("/api/v1/webhooks/event-types").json()
    assert {t["type"] for t in types} == set(CATALOGUE)
    from jsonschema import Draft202012Validator

    for entry in types:  # every example is valid against its own schema
        Draft202012Validator(entry["schema"]).validate(entry["example"])
    assert http.delete(f"/api/v1/webhooks/{body['id']}").status_code == 204
    assert http.get(f"/api/v1/webhooks/{body['id']}").status_code == 404


def test_the_delivery_log_and_redelivery_over_the_api(admin_a, api, in_a, loopback_server, egress_loopback,
                                                      django_capture_on_commit_callbacks):
    egress_loopback(loopback_server.port)
    subscription, secret = _subscribe(admin_a, loopback_server)
    Receiver(loopback_server, secret, [502, 200])
    with django_capture_on_commit_callbacks(execute=False):
        delivery_id, = webhook_emit("run.succeeded", CATALOGUE["run.succeeded"].example)
    delivery_attempt(delivery_id=delivery_id)
    http = api(in_a, admin_a)
    listed = http.get(f"/api/v1/webhooks/{subscription.pk}/deliveries").json()["results"]
    assert [(d["id"], d["status"], d["last_status_code"]) for d in listed] == [(delivery_id, "pending", 502)]
    detail = http.get(f"/api/v1/webhook-deliveries/{delivery_id}").json()
    assert detail["payload"]["type"] == "run.succeeded" and detail["attempt_log"][0]["status_code"] == 502
    with django_capture_on_commit_callbacks(execute=False):
        assert http.post(f"/api/v1/webhook-deliveries/{delivery_id}/redeliver").status_code == 202
    assert delivery_attempt(delivery_id=delivery_id, manual=True) == "sent"
    assert http.get(f"/api/v1/webhook-deliveries/{delivery_id}").json()["status"] == "succeeded"
    assert http.get("/api/v1/webhook-deliveries/not-a-uuid").status_code == 404


@pytest.mark.parametrize("role", ["instance_manager", "account_manager", "client_contact"])
def test_only_instance_admins_change_them_and_managers_only_read(role, admin_a, client_a, api, in_a, make_user,
                                                                 assigned, loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    subscription, _ = _subscribe(admin_a, loopback_server)
    person = make_user(role) if role == "instance_manager" else assigned(role, client_a)
    http = api(in_a, person)
    can_read = role == "instance_manager"
    assert http.get("/api/v1/webhooks").status_code == (200 if can_read else 403)
    assert http.get(f"/api/v1/webhooks/{subscription.pk}").status_code == (200 if can_read else 403)
    assert http.post("/api/v1/webhooks", {"url": f"{loopback_server.url}/x", "event_types": ["run.failed"]},
                     **J).status_code == 403
    assert http.patch(f"/api/v1/webhooks/{subscription.pk}", {"enabled": False}, **J).status_code == 403
    assert http.delete(f"/api/v1/webhooks/{subscription.pk}").status_code == 403
    assert WebhookSubscription.objects.get(pk=subscription.pk).enabled
    admin = HttpClient(HTTP_HOST=HOST_A)
    admin.force_login(person)
    assert admin.get("/admin/webhooks/webhooksubscription/").status_code == (200 if can_read else 403)
    assert admin.get("/admin/webhooks/webhooksubscription/add/").status_code == 403


def test_another_instance_sees_none_of_them(admin_a, api, in_a, instance_b, make_user, loopback_server,
                                            egress_loopback, django_capture_on_commit_callbacks):
    egress_loopback(loopback_server.port)
    subscription, _ = _subscribe(admin_a, loopback_server)
    with django_capture_on_commit_callbacks(execute=False):
        delivery_id, = webhook_emit("run.succeeded", CATALOGUE["run.succeeded"].example)
    connection.set_tenant(instance_b)
    admin_b = make_user("instance_admin")
    http = api(instance_b, admin_b)
    assert http.get("/api/v1/webhooks").json() == []
    assert http.get(f"/api/v1/webhooks/{subscription.pk}").status_code == 404
    assert http.get(f"/api/v1/webhook-deliveries/{delivery_id}").status_code == 404
    assert http.post(f"/api/v1/webhook-deliveries/{delivery_id}/redeliver").status_code == 404
    assert http.delete(f"/api/v1/webhooks/{subscription.pk}").status_code == 404
    connection.set_tenant(in_a)
    assert WebhookSubscription.objects.filter(pk=subscription.pk).exists()


def test_the_admin_creates_one_shows_the_secret_once_and_lists_the_attempts(
        admin_a, in_a, loopback_server, egress_loopback, django_capture_on_commit_callbacks):
    egress_loopback(loopback_server.port)
    admin = HttpClient(HTTP_HOST=HOST_A)
    admin.force_login(admin_a)
    answer = admin.post("/admin/webhooks/webhooksubscription/add/", {
        "url": f"{loopback_server.url}/hooks", "description": "ERP", "event_types": ["run.succeeded", "run.failed"],
        "enabled": "on"}, follow=True)
    assert answer.status_code == 200
    page = answer.content.decode()
    assert "shown once" in page and "whsec_" in page
    subscription = WebhookSubscription.objects.get(description="ERP")
    refused = admin.post("/admin/webhooks/webhooksubscription/add/", {
        "url": "http://169.254.169.254/", "event_types": ["run.failed"], "enabled": "on"})
    assert refused.status_code == 200 and "metadata" in refused.content.decode().lower()
    secret = subscription.secret.reveal()
    Receiver(loopback_server, secret, [500])
    with django_capture_on_commit_callbacks(execute=False):
        delivery_id, = webhook_emit("run.succeeded", CATALOGUE["run.succeeded"].example)
    delivery_attempt(delivery_id=delivery_id)
    detail = admin.get(f"/admin/webhooks/webhookdelivery/{delivery_id}/change/").content.decode()
    assert "HTTP 500" in detail and "run.succeeded" in detail
    listing = admin.get("/admin/webhooks/webhooksubscription/").content.decode()
    assert "Failing since" in listing


def test_changes_are_audited_and_roll_back(admin_a, loopback_server, egress_loopback):
    from spokestack.errors import InvalidInput
    from spokestack.webhooks.services import subscription_delete, subscription_update
    from tuning.models import Entity, TuningChange
    from tuning.services import tuning_rollback

    egress_loopback(loopback_server.port)
    subscription, secret = _subscribe(admin_a, loopback_server)
    subscription_update(actor=admin_a, subscription_id=subscription.pk, event_types=["run.failed", "run.succeeded"],
                        enabled=False)
    entries = {(e.action, e.field): e for e in TuningChange.objects.filter(entity=Entity.WEBHOOK_SUBSCRIPTION)}
    assert set(entries) == {("create", ""), ("update", "event_types"), ("update", "enabled")}
    assert secret not in str([(e.old_value, e.new_value) for e in entries.values()]), "the secret is never logged"
    tuning_rollback(actor=admin_a, change=entries[("update", "event_types")])
    tuning_rollback(actor=admin_a, change=entries[("update", "enabled")])
    subscription.refresh_from_db()
    assert subscription.event_types == ["run.succeeded"] and subscription.enabled
    subscription_delete(actor=admin_a, subscription_id=subscription.pk)
    with pytest.raises(InvalidInput, match="cannot be restored"):
        tuning_rollback(actor=admin_a, change=TuningChange.objects.get(entity=Entity.WEBHOOK_SUBSCRIPTION,
                                                                       action="delete"))


def test_a_name_that_resolves_to_a_private_address_is_refused_at_send(admin_a, django_capture_on_commit_callbacks):
    from spokestack.egress import EgressClient

    subscription, _ = subscription_create(actor=admin_a, url="https://hooks.partner.example/events",
                                          event_types=["run.succeeded"])
    with django_capture_on_commit_callbacks(execute=False):
        delivery_id, = webhook_emit("run.succeeded", CATALOGUE["run.succeeded"].example)
    rebinding = EgressClient(resolver=lambda host, port: ["10.0.0.7"])  # the name now points inside
    assert delivery_attempt(delivery_id=delivery_id, egress=rebinding) == "retry"
    attempt = WebhookDelivery.objects.get(pk=delivery_id).attempt_log.get()
    assert attempt.status_code is None and "private" in attempt.error.lower(), attempt.error


def test_after_a_rotation_both_secrets_verify_for_a_day_then_only_the_new_one(
        admin_a, loopback_server, egress_loopback, django_capture_on_commit_callbacks):
    from spokestack.webhooks.services import subscription_rotate_secret

    egress_loopback(loopback_server.port)
    subscription, old = _subscribe(admin_a, loopback_server)
    new = subscription_rotate_secret(actor=admin_a, subscription_id=subscription.pk)
    verified: dict[str, list[bool]] = {"old": [], "new": []}

    def receive(request):
        for name, secret in (("old", old), ("new", new)):
            try:
                Webhook(secret).verify(request.body, request.headers)
                verified[name].append(True)
            except WebhookVerificationError:
                verified[name].append(False)
        return Reply.json({"ok": True})

    loopback_server.route("/hooks", receive)
    for overlap in (True, False):
        if not overlap:
            WebhookSubscription.objects.filter(pk=subscription.pk).update(
                previous_secret_until=timezone.now() - timedelta(seconds=1))
        with django_capture_on_commit_callbacks(execute=False):
            delivery_id, = webhook_emit("run.succeeded", CATALOGUE["run.succeeded"].example)
        assert delivery_attempt(delivery_id=delivery_id) == "sent"
    assert verified == {"old": [True, False], "new": [True, True]}
