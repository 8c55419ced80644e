# ruff: noqa: F811 - the stream fixtures are imported by name
"""Issue #21 part 1, through the real parts: a run ends in the session's Celery worker and the
event reaches a receiver that verifies it with the standardwebhooks reference library; a receiver
that fails twice gets it on the third attempt, once by webhook-id; a delivery whose task was lost
(the broker never got it) is sent by the beat sweep."""

from __future__ import annotations

import asyncio
import http.client
import json
import uuid

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from spokestack.accounts.services import api_token_create
from spokestack.webhooks.models import WebhookDelivery
from spokestack.webhooks.services import deliveries_sweep, subscription_create, webhook_emit

from ..agents.test_stream_access import Agency, agency, streams  # noqa: F401
from ..conftest import wait_for
from .test_events import admin_of_b  # noqa: F401
from .test_webhooks import Receiver

pytestmark = pytest.mark.live


@pytest.fixture
def hooked(live_instance, live_db, celery_worker, daphne_server, fake_model, worker_webhook, egress_loopback):
    egress_loopback(worker_webhook.port)
    instance = live_instance.instance
    path = f"/hooks-{uuid.uuid4().hex[:8]}"
    with schema_context(instance.schema_name):
        from tuning.services import client_create

        client = client_create(name="Desert Bloom Cosmetics", vertical="beauty")
        subscription, secret = subscription_create(
            actor=live_instance.admin, url=f"{worker_webhook.url}{path}",
            event_types=["run.succeeded", "run.failed", "memory.proposed"])
        token = api_token_create(user=live_instance.admin, name="hooks").raw
    connection.set_schema_to_public()
    yield {"instance": instance, "client": client, "subscription": subscription, "secret": secret, "path": path,
           "server": worker_webhook, "token": token, "port": daphne_server, "model": fake_model}
    worker_webhook.routes.pop(path, None)


def _receiver(hooked, answers):
    receiver = Receiver(hooked["server"], hooked["secret"], answers)
    hooked["server"].routes[hooked["path"]] = hooked["server"].routes.pop("/hooks")
    return receiver


def _execute(hooked, task):
    conn = http.client.HTTPConnection("127.0.0.1", hooked["port"], timeout=30)
    conn.request("POST", "/api/v1/agent/execute", body=json.dumps({
        "agent_type": "copy", "task": task, "client_id": hooked["client"].pk}), headers={
        "Host": f"{hooked['instance'].domains.get().domain}:{hooked['port']}",
        "Authorization": f"Bearer {hooked['token']}", "Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 202, body
    return body["run_id"]


def test_a_run_that_ends_in_the_worker_is_delivered_signed_after_two_failures(hooked):
    receiver = _receiver(hooked, [500, 502, 200])
    marker = f"[hook-{uuid.uuid4().hex[:8]}]"
    hooked["model"].script(marker, [{"content": [{"type": "text", "text": "Glow gently, all day."}],
                                     "stop_reason": "end_turn"}])
    run_id = _execute(hooked, f"Write one caption {marker}")
    wait_for(lambda: receiver.acted, timeout=60)
    [(msg_id, event)] = receiver.acted.items()
    assert event["type"] == "run.succeeded" and event["data"]["run_id"] == run_id
    assert event["data"]["output"] == "Glow gently, all day." and event["data"]["client_id"] == hooked["client"].pk
    assert receiver.seen == [msg_id] * 3, "three attempts, one webhook-id"
    with schema_context(hooked["instance"].schema_name):
        delivery = WebhookDelivery.objects.get(event_id=msg_id)
        wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "succeeded", timeout=10)
        assert [a.status_code for a in WebhookDelivery.objects.get(pk=delivery.pk).attempt_log.all()] == [500, 502, 200]


def test_a_delivery_whose_task_was_lost_is_sent_by_the_sweep(hooked, monkeypatch):
    from spokestack.webhooks import services

    receiver = _receiver(hooked, [])
    with schema_context(hooked["instance"].schema_name):
        with monkeypatch.context() as broker_down:  # the event commits; its task never reaches a worker
            broker_down.setattr(services, "_enqueue", lambda delivery_ids, **kwargs: None)
            delivery_id, = webhook_emit("memory.proposed", {"memory_id": 1, "client_id": hooked["client"].pk,
                                                            "text": "Prefers British spelling.", "status": "proposed",
                                                            "run_id": None})
        assert WebhookDelivery.objects.get(pk=delivery_id).status == "pending"
        assert deliveries_sweep() == 1
    wait_for(lambda: receiver.acted, timeout=30)
    with schema_context(hooked["instance"].schema_name):
        wait_for(lambda: WebhookDelivery.objects.get(pk=delivery_id).status == "succeeded", timeout=10)
        assert deliveries_sweep() == 0, "nothing is due any more"


def test_the_events_topic_carries_each_event_to_whoever_may_see_it(agency, admin_of_b):
    """The instance websocket's `events` topic: a run of Desert Bloom reaches the admin, its account
    manager and its client contact; one of Dune Coffee only the admin; a budget warning (usage.view)
    not the client contact; another instance's admin nothing."""
    from channels.testing import WebsocketCommunicator

    from spokestack.asgi import application

    from ..agents.test_stream_access import nothing_within, subscribed
    from ..conftest import HOST_B, run_async

    def emit(event_type, client):
        with schema_context(agency.schema):
            data = {"run_id": str(uuid.uuid4()), "client_id": client.pk} if event_type.startswith("run.") else \
                {"level": 80, "scope": "client", "client_id": client.pk, "message": "80 %"}
            webhook_emit(event_type, data)  # autocommit: published at once
            return data

    async def scenario():
        sockets = {who: await subscribed(agency, who, "events") for who in ("admin", "manager", "contact")}
        assert all(reply == {"subscribed": "events"} for _, reply in sockets.values())
        other = WebsocketCommunicator(application, "/ws/events/", headers=[
            (b"host", HOST_B.encode()), (b"authorization", f"Bearer {admin_of_b}".encode())])
        assert (await other.connect(timeout=10))[0]
        await other.send_json_to({"subscribe": "events"})
        assert await other.receive_json_from(timeout=10) == {"subscribed": "events"}

        bloom = await asyncio.to_thread(emit, "run.succeeded", agency.bloom)
        for who in ("admin", "manager", "contact"):
            message = await sockets[who][0].receive_json_from(timeout=10)
            assert message["topic"] == "events" and message["data"]["type"] == "run.succeeded"
            assert message["data"]["data"]["run_id"] == bloom["run_id"]
        await asyncio.to_thread(emit, "run.failed", agency.dune)
        assert (await sockets["admin"][0].receive_json_from(timeout=10))["data"]["type"] == "run.failed"
        await asyncio.to_thread(emit, "budget.warning", agency.bloom)
        for who in ("admin", "manager"):
            assert (await sockets[who][0].receive_json_from(timeout=10))["data"]["type"] == "budget.warning"
        assert await nothing_within(sockets["manager"][0], 0.5), "nothing of Dune Coffee"
        assert await nothing_within(sockets["contact"][0], 0.5), "no Dune run, no budget warning"
        assert await nothing_within(other, 0.5), "nothing of another instance"
        for ws, _ in sockets.values():
            await ws.disconnect()
        await other.disconnect()

    run_async(scenario())


def test_a_delivery_whose_worker_is_killed_mid_send_is_sent_again_with_the_same_webhook_id(hooked, monkeypatch):
    """A worker SIGKILLed while the receiver holds its request: the attempt stays in the log as
    unfinished, the claim's lock runs out, the sweep queues it again, another worker sends it with the
    same webhook-id, and the receiver acts on it once."""
    from spokestack.webhooks import services
    from spokestack.webhooks.tasks import deliver

    from ..loopback_server import Reply
    from ..processes import WorkerProcess, process_env

    server, path, seen = hooked["server"], hooked["path"], []

    def slow_then_fine(request):
        seen.append(request.headers["webhook-id"])
        return Reply.json({"ok": True}, delay=30.0 if len(seen) == 1 else 0.0)

    server.route(path, slow_then_fine)
    env = {**process_env(), "EGRESS_ALLOW_LOOPBACK": "1", "EGRESS_LOOPBACK_PORTS": str(server.port),
           "WEBHOOK_TIMEOUT_S": "3"}  # the claim's lock: 3 × 3 + 10 s
    doomed = WorkerProcess(env, "webhook-doomed", concurrency=2, queues="webhook-doomed").start()
    try:
        with schema_context(hooked["instance"].schema_name):
            with monkeypatch.context() as broker:
                broker.setattr(services, "_enqueue", lambda delivery_ids, **kwargs: None)
                delivery_id, = webhook_emit("run.failed", {"run_id": str(uuid.uuid4()), "client_id": None})
            deliver.apply_async(kwargs={"delivery_id": delivery_id}, queue="webhook-doomed")
            wait_for(lambda: seen, timeout=30)
            doomed.kill()
            attempt = WebhookDelivery.objects.get(pk=delivery_id).attempt_log.get()
            assert (attempt.number, attempt.status_code) == (1, None) and "worker stopped" in attempt.error
            assert deliveries_sweep() == 0, "locked while the dead attempt's lock runs"
            wait_for(lambda: deliveries_sweep() == 1, timeout=40)  # once the lock has run out
            wait_for(lambda: WebhookDelivery.objects.get(pk=delivery_id).status == "succeeded", timeout=30)
            log = list(WebhookDelivery.objects.get(pk=delivery_id).attempt_log.values_list("number", "status_code"))
        assert log == [(1, None), (2, 200)] and len(seen) == 2 and len(set(seen)) == 1
    finally:
        doomed.stop() if doomed.alive() else None
