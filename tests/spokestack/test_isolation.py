"""One instance can never see or touch another: admin, API, cache, Celery, websockets."""

import asyncio
import json
import time
import uuid

import pytest
import websockets
from django.core.cache import cache
from django.db import connection
from django_tenants.utils import schema_context

from spokestack.realtime import publish_instance_event
from spokestack.tasks import MissingInstanceSchema, worker_probe, worker_probe_key

from ..conftest import HOST_A, HOST_B, PASSWORD, run_async


def test_admin_of_a_cannot_log_in_on_b(db, client):
    data = {"username": f"admin@{HOST_A}", "password": PASSWORD, "next": "/admin/"}
    on_b = client.post("/admin/login/", data, HTTP_HOST=HOST_B)
    assert on_b.status_code == 200 and b"Please enter the correct" in on_b.content
    on_a = client.post("/admin/login/", data, HTTP_HOST=HOST_A)
    assert on_a.status_code == 302 and on_a["Location"] == "/admin/"
    landing = client.get("/admin/", HTTP_HOST=HOST_A)
    assert b"Instance A \xc2\xb7 SpokeStack" in landing.content
    # The session cookie of A means nothing on B.
    assert client.get("/admin/", HTTP_HOST=HOST_B).status_code == 302


def test_token_of_a_is_401_on_b(in_a, instance_b, make_user, api):
    client = api(in_a, make_user())
    assert client.get("/api/v1/me").status_code == 200
    client.defaults["HTTP_HOST"] = HOST_B
    response = client.get("/api/v1/me")
    assert response.status_code == 401


def test_cache_entries_are_per_instance(instance_a, instance_b, db):
    key = f"isolation-{uuid.uuid4().hex}"
    with schema_context(instance_a.schema_name):
        cache.set(key, "secret of A", 30)
        assert cache.get(key) == "secret of A"
    with schema_context(instance_b.schema_name):
        assert cache.get(key) is None
        cache.set(key, "B's own", 30)
    with schema_context(instance_a.schema_name):
        assert cache.get(key) == "secret of A"
        cache.delete(key)


def test_instance_task_refuses_to_run_without_a_schema(db):
    connection.set_schema_to_public()
    with pytest.raises(MissingInstanceSchema, match="without an instance schema"):
        worker_probe.apply(kwargs={"probe_id": "x"}, throw=True)


@pytest.mark.live
def test_task_queued_from_a_runs_in_a_schema_on_the_real_worker(live_db, celery_worker, instance_a, instance_b):
    probe_id = uuid.uuid4().hex
    with schema_context(instance_a.schema_name):
        worker_probe.delay(probe_id=probe_id)
    with schema_context(instance_b.schema_name):
        for _ in range(150):
            with schema_context(instance_a.schema_name):
                answer = cache.get(worker_probe_key(probe_id))
            if answer:
                break
            time.sleep(0.02)
        assert cache.get(worker_probe_key(probe_id)) is None, "B must not see A's task result"
    assert answer == {"schema": "tenant_a", "worker": answer["worker"]}


# --- websockets through daphne and the Redis channel layer -------------------------------


async def _ws(port, host, path="/ws/events/", headers=None):
    return await websockets.connect(f"ws://{host}:{port}{path}", host="127.0.0.1", port=port,
                                    additional_headers=headers or {}, open_timeout=5)


def _token_for(instance, make_user):
    from spokestack.accounts.services import api_token_create

    with schema_context(instance.schema_name):
        return api_token_create(user=make_user(), name="ws").raw


@pytest.fixture
def committed_token_a(live_db, instance_a):
    from django.contrib.auth import get_user_model

    from spokestack.accounts.services import api_token_create, user_create

    email = f"ws-{uuid.uuid4().hex[:8]}@example.com"
    with schema_context(instance_a.schema_name):
        user = user_create(email=email, password=None, role="instance_admin")
        raw = api_token_create(user=user, name="ws").raw
    yield raw
    with schema_context(instance_a.schema_name):
        get_user_model().objects.filter(pk=user.pk).delete()


@pytest.mark.live
def test_websocket_on_a_only_hears_a(daphne_server, committed_token_a, instance_a, instance_b):
    async def scenario():
        ws = await _ws(daphne_server, HOST_A, headers={"Authorization": f"Bearer {committed_token_a}"})
        await ws.send(json.dumps({"subscribe": "approvals"}))
        assert json.loads(await ws.recv()) == {"subscribed": "approvals"}
        await asyncio.to_thread(publish_instance_event, instance_b.schema_name, "approvals", {"run": "of B"})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.5)
        await asyncio.to_thread(publish_instance_event, instance_a.schema_name, "approvals", {"run": "of A"})
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"topic": "approvals", "data": {"run": "of A"}}
        await ws.close()

    run_async(scenario())


@pytest.mark.live
def test_websocket_token_of_a_is_refused_on_b(daphne_server, committed_token_a):
    async def scenario():
        with pytest.raises(websockets.InvalidStatus) as refused:
            await _ws(daphne_server, HOST_B, headers={"Authorization": f"Bearer {committed_token_a}"})
        assert refused.value.response.status_code == 403
        accepted = await _ws(daphne_server, HOST_A, headers={"Authorization": f"Bearer {committed_token_a}"})
        await accepted.close()

    run_async(scenario())


@pytest.mark.live
def test_websocket_from_another_origin_is_refused(daphne_server, committed_token_a):
    async def scenario():
        with pytest.raises(websockets.InvalidStatus) as refused:
            await _ws(daphne_server, HOST_A, headers={"Origin": f"http://{HOST_B}:{daphne_server}"})
        assert refused.value.response.status_code == 403
        same = await _ws(daphne_server, HOST_A, headers={"Origin": f"http://{HOST_A}:{daphne_server}",
                                                         "Authorization": f"Bearer {committed_token_a}"})
        await same.send(json.dumps({"subscribe": "approvals"}))
        assert json.loads(await same.recv()) == {"subscribed": "approvals"}
        await same.close()

    run_async(scenario())


@pytest.mark.live
def test_websocket_unknown_host_is_refused(daphne_server, live_db):
    async def scenario():
        with pytest.raises(websockets.InvalidStatus) as refused:
            await _ws(daphne_server, "nobody.localhost")
        assert refused.value.response.status_code == 403

    run_async(scenario())
