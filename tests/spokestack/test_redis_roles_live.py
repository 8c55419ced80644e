"""Redis roles apart (issue 23 part 4): the broker behind Redis Sentinel. A real sentinel
(`redis-server --sentinel`) watches the test's Redis; a Celery worker started with only a Sentinel
broker URL takes a task and runs it in the instance's schema, and readiness' client finds the
master through the same sentinel."""

from __future__ import annotations

import subprocess
import uuid
from urllib.parse import urlsplit

import pytest
import redis
from django.core.cache import cache
from django.test import override_settings

from spokestack.launcher import redis_server_binary

from ..conftest import wait_for
from ..processes import WorkerProcess, free_port, process_env, stop_process

pytestmark = pytest.mark.live
MASTER = "spokestack-test"


@pytest.fixture
def sentinel(settings, tmp_path):
    broker = urlsplit(settings.CELERY_BROKER_URL)
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor {MASTER} {broker.hostname} {broker.port} 1\n")
    log = open(tmp_path / "sentinel.log", "w")  # noqa: SIM115
    process = subprocess.Popen([redis_server_binary(), str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True)

    def knows_master():
        try:
            return client.sentinel_get_master_addr_by_name(MASTER)
        except redis.RedisError:
            return None

    try:
        assert wait_for(knows_master, timeout=20, interval=0.1) == (broker.hostname, broker.port)
        yield f"sentinel://127.0.0.1:{port}/0"
    finally:
        client.close()
        stop_process(process)
        log.close()


def test_a_worker_with_a_sentinel_broker_url_runs_tasks(sentinel, live_db):
    from django_tenants.utils import schema_context

    from spokestack.redis_roles import redis_client
    from spokestack.tasks import worker_probe, worker_probe_key

    with override_settings(CELERY_BROKER_TRANSPORT_OPTIONS={"master_name": MASTER}):
        client = redis_client(sentinel)  # what readiness and the queue-depth metric open
        assert client.ping() and client.connection_pool.service_name == MASTER
        client.close()
    env = {**process_env(), "CELERY_BROKER_URL": sentinel, "CELERY_BROKER_SENTINEL_MASTER": MASTER}
    worker = WorkerProcess(env, "sentinel", concurrency=2, queues="sentinel-only").start()
    try:
        probe_id = uuid.uuid4().hex
        with schema_context("tenant_a"):  # published in the instance: the worker runs it in that schema
            worker_probe.apply_async(kwargs={"probe_id": probe_id}, queue="sentinel-only")
            answer = wait_for(lambda: cache.get(worker_probe_key(probe_id)), timeout=30, interval=0.05)
        assert answer["schema"] == "tenant_a", answer
    finally:
        worker.stop()
