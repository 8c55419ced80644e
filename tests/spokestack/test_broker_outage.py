"""A Redis outage with agent runs in flight (issue #12, found 2): the Celery worker used to exit
(kombu's `restore_unacked` failed on the closed connection and Celery took that for an
unrecoverable error; see spokestack/celery_resilience.py). The worker reaches Redis through a
TcpProxy that the test cuts for 10 s; the test process and the database stay up, so only the
worker sees the outage."""

from __future__ import annotations

import json
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from django_tenants.utils import schema_context

from agents.models import AgentRun
from agents.services import run_create
from tuning.services import client_create

from .. import processes
from ..conftest import wait_for
from ..faults import TcpProxy

pytestmark = pytest.mark.live

RUNS_IN_FLIGHT = 4
MODEL_SECONDS = 14  # each run's model turn; the outage falls inside it
OUTAGE_SECONDS = 10


@pytest.fixture
def redis_proxy():
    proxy = TcpProxy(urlsplit(settings.REDIS_URL).port).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def run_queue():
    """A queue of this test's own for agents.run_agent, so that a session worker started by
    another test cannot take the runs meant for the worker behind the proxy."""
    from spokestack.celery import app

    queue = f"broker-outage-{uuid.uuid4().hex[:8]}"
    previous = app.conf.task_routes
    app.conf.update(task_routes={**(previous or {}), "agents.run_agent": {"queue": queue}})
    yield queue
    app.conf.update(task_routes=previous)


@pytest.fixture
def worker_behind_proxy(django_db_setup, sample_erp, fake_model, redis_proxy, run_queue):
    """A worker whose broker, cache and channel layer all go through the proxy."""
    env = {**processes.process_env(), "ANTHROPIC_API_KEY": "sk-ant-test-not-a-real-key",
           "ANTHROPIC_BASE_URL": fake_model.base_url, "EGRESS_ALLOW_LOOPBACK": "1", "EGRESS_LOOPBACK_PORTS": str(sample_erp[0].server_port),
           "DATABASE_POOL_MAX_SIZE": "10", "REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}/0"}
    worker = processes.WorkerProcess(env, "broker-outage", queues=run_queue).start()
    yield worker
    worker.stop()


def start_run(instance, admin, client, marker: str) -> str:
    with schema_context(instance.schema_name):
        created = run_create(actor=admin, agent_type="copy", task=f"Write a short caption {marker}",
                             client_id=client.pk)
    return str(created.run.pk)


def statuses(instance, run_ids: list[str]) -> dict[str, str]:
    with schema_context(instance.schema_name):
        return {str(pk): status for pk, status in AgentRun.objects.filter(pk__in=run_ids).values_list("pk", "status")}


def unacked_in(queue: str) -> int:
    """Messages of `queue` delivered and not acknowledged (kombu's ack emulation keeps them in the
    broker's `unacked` hash until acked; left there, they are delivered again after the
    visibility timeout)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        return sum(1 for raw in broker.hvals("unacked") if json.loads(raw)[2] == queue)
    finally:
        broker.close()


def test_the_worker_survives_a_redis_outage_with_runs_in_flight(live_instance, worker_behind_proxy, redis_proxy,
                                                                 fake_model, run_queue):
    instance, admin = live_instance.instance, live_instance.admin
    with schema_context(instance.schema_name):
        client = client_create(name="Outage Co", vertical="beauty", region="GCC", language="en")
    markers = [f"[outage-{uuid.uuid4().hex[:8]}]" for _ in range(RUNS_IN_FLIGHT)]
    for marker in markers:
        fake_model.script(marker, [{"content": [{"type": "text", "text": f"Caption {marker}"}],
                                    "stop_reason": "end_turn", "delay_s": MODEL_SECONDS}])
    run_ids = [start_run(instance, admin, client, marker) for marker in markers]
    # Every run is in the worker's hands (its message delivered, unacked) and waiting on the model.
    wait_for(lambda: all(fake_model.requests(marker) for marker in markers), timeout=20)

    with redis_proxy.outage(OUTAGE_SECONDS):
        time.sleep(OUTAGE_SECONDS)

    # After the outage: the runs in flight finish (none failed), and new work is consumed.
    after = f"[after-{uuid.uuid4().hex[:8]}]"
    fake_model.script(after, [{"content": [{"type": "text", "text": "Back."}], "stop_reason": "end_turn"}])
    new_run = start_run(instance, admin, client, after)
    all_runs = [*run_ids, new_run]

    def all_finished() -> dict[str, str] | None:
        # A crashed worker first waits for its runs in flight, then exits: fail as soon as it does.
        assert worker_behind_proxy.alive(), (
            f"the worker exited ({worker_behind_proxy.process.returncode}); see {worker_behind_proxy.log.name}")
        now = statuses(instance, all_runs)
        return now if all(status in ("succeeded", "failed", "cancelled") for status in now.values()) else None

    assert wait_for(all_finished, timeout=40, interval=0.2) == {run_id: "succeeded" for run_id in all_runs}
    # The runs that were in flight acknowledged their messages once Redis was back: none is
    # left to be delivered again when the visibility timeout expires.
    wait_for(lambda: unacked_in(run_queue) == 0, timeout=10)
    assert worker_behind_proxy.alive()


@pytest.mark.parametrize("redis_state", ["refusing", "hung"])
def test_enqueueing_fails_fast_while_redis_is_down(redis_state):
    """A request that enqueues work gets kombu's OperationalError (a 503) within seconds, also from
    a Redis that accepts connections and never answers, which without the broker's socket
    timeouts held `.delay()` for good."""
    from kombu.exceptions import OperationalError

    from spokestack.celery import app
    from spokestack.tasks import worker_probe

    server = socket.create_server(("127.0.0.1", 0))  # hung: the kernel accepts, nobody answers
    port = server.getsockname()[1]
    if redis_state == "refusing":
        server.close()
    try:
        with app.connection_for_write(f"redis://127.0.0.1:{port}/0") as broker:
            started = time.monotonic()
            with pytest.raises(OperationalError):
                worker_probe.apply_async(kwargs={"probe_id": "outage"}, connection=broker)
            assert time.monotonic() - started < 10
    finally:
        server.close()
