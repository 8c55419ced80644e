"""A Prometheus scrape of a live web process (daphne) after a run through a live Celery worker
(issue #20): both share PROMETHEUS_MULTIPROC_DIR, the worker opens no port, and the run the worker
executed shows in what daphne serves, parsed with prometheus-client's parser."""

from __future__ import annotations

import http.client
import json
import uuid

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from prometheus_client.parser import text_string_to_metric_families

from agents.models import AgentRun
from spokestack.accounts.services import api_token_create
from spokestack.sample_erp import DEMO_API_KEYS
from spokestack.tenancy.services import instance_set_erp
from tuning.services import client_create

from ..conftest import wait_for
from ..processes import WorkerProcess, process_env, start_daphne, stop_process

pytestmark = pytest.mark.live

TOKEN = "live-metrics-token-8d2e"  # noqa: S105 - a test's token


@pytest.fixture(scope="module")
def metered(django_db_setup, sample_erp, fake_model, tmp_path_factory):
    """A worker and daphne writing to one multiprocess directory, daphne serving /metrics."""
    directory = tmp_path_factory.mktemp("prometheus")
    env = {**process_env(), "PROMETHEUS_MULTIPROC_DIR": str(directory), "METRICS_TOKEN": TOKEN,
           "ANTHROPIC_API_KEY": "sk-ant-test-not-a-real-key", "ANTHROPIC_BASE_URL": fake_model.base_url,
           "EGRESS_ALLOW_LOOPBACK": "1", "EGRESS_LOOPBACK_PORTS": str(sample_erp[0].server_port),
           "DATABASE_POOL_MAX_SIZE": "10"}
    worker = WorkerProcess(env, "metrics", concurrency=4).start()
    daphne, port = start_daphne(env, "metrics")
    yield {"port": port, "directory": directory, "worker": worker}
    stop_process(daphne)
    worker.stop()


def request(port: int, method: str, path: str, *, host: str, token: str, body: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Host": f"{host}:{port}", "Authorization": f"Bearer {token}",
                          "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def scrape(port: int, host: str = "localhost") -> dict[tuple[str, frozenset], float]:
    status, data = request(port, "GET", "/metrics", host=host, token=TOKEN)
    assert status == 200, data[:300]
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(data.decode()) for s in family.samples}


def test_a_run_in_the_worker_shows_in_the_web_process_scrape(metered, live_instance, sample_erp, fake_model,
                                                             egress_loopback):
    egress_loopback(sample_erp[0].server_port)
    instance = live_instance.instance
    instance_set_erp(instance=instance, base_url=sample_erp[1], api_key=DEMO_API_KEYS["alpha"])
    with schema_context(instance.schema_name):
        client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
        api_token = api_token_create(user=live_instance.admin, name="metrics").raw
    connection.set_schema_to_public()
    host = instance.domains.get().domain
    port = metered["port"]

    assert request(port, "GET", "/metrics", host=host, token=api_token)[0] == 401  # a user's token: no
    before = scrape(port)

    def count(got, name, **labels):
        return got.get((name, frozenset(labels.items())), 0.0) - before.get((name, frozenset(labels.items())), 0.0)

    # The session's own Celery worker (started by earlier live tests) may take a run too: runs are sent
    # until this test's worker has run one, and only its runs are expected in the shared directory.
    pid, ours = metered["worker"].process.pid, 0
    for _attempt in range(8):
        marker = f"metrics-{uuid.uuid4().hex[:8]}"
        fake_model.script(marker, [
            {"content": [{"type": "tool_use", "name": "save_draft", "input": {"content": f"Glow gently. {marker}"}}],
             "stop_reason": "tool_use"},
            {"content": [{"type": "text", "text": "Saved the draft."}], "stop_reason": "end_turn"},
        ])
        status, body = request(port, "POST", "/api/v1/agent/execute", host=host, token=api_token, body={
            "agent_type": "copy", "task": f"Write a Ramadan caption. {marker}", "client_id": client.pk})
        assert status == 202, body
        run_id = json.loads(body)["run_id"]

        def finished(run_id=run_id):
            with schema_context(instance.schema_name):
                run = AgentRun.objects.get(pk=run_id)
            return run if run.status in ("succeeded", "failed", "cancelled") else None

        run = wait_for(finished, timeout=60)
        assert run.status == "succeeded", run.error
        with schema_context(instance.schema_name):
            started_by = run.events.get(type="run.started").payload["worker"]
        connection.set_schema_to_public()
        if f":{pid}/" in started_by:
            ours += 1
            break
    assert ours == 1, "this test's worker never took one of its runs"

    # Written by the worker's process (daphne never ran the agent), read in daphne's scrape.
    got = wait_for(lambda: (lambda g: g if count(g, "spokestack_runs_total", agent_type="copy",
                                                  status="succeeded") == 1 else None)(scrape(port)), timeout=10)
    assert count(got, "spokestack_run_duration_seconds_count", agent_type="copy") == 1
    turns = sum(v - before.get(k, 0.0) for k, v in got.items()
                if k[0] == "spokestack_turns_total" and ("agent_type", "copy") in k[1])
    assert turns == 2
    assert count(got, "spokestack_tool_calls_total", agent_type="copy", tool="save_draft", outcome="ok") == 1
    model_calls = sum(v - before.get(k, 0.0) for k, v in got.items()
                      if k[0] == "spokestack_model_call_duration_seconds_count" and ("agent_type", "copy") in k[1])
    assert model_calls == 2
    assert got[("spokestack_queue_depth_up", frozenset())] == 1
    assert ("spokestack_queue_depth", frozenset({("queue", "celery")})) in got
    # The instance's own host serves the same platform-wide samples.
    assert scrape(port, host)[("spokestack_runs_total", frozenset({("agent_type", "copy"), ("status", "succeeded")}))] \
        == got[("spokestack_runs_total", frozenset({("agent_type", "copy"), ("status", "succeeded")}))]
    # The worker's process wrote its own files: the shared directory, not a port, carried its samples.
    assert list(metered["directory"].glob(f"*_{metered['worker'].process.pid}.db"))
