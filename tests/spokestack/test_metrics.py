"""/metrics (issue #20): what the platform counts, scraped the way Prometheus does and parsed with
prometheus-client's own parser; the token that guards it; queue depth read from the broker; and
samples written by another process (multiprocess mode) adding up in one scrape."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from spokestack import metrics

from ..conftest import HOST_A, HOST_B, ROOT

TOKEN = "metrics-test-token-5f1c"  # noqa: S105 - a test's token
PUBLIC_HOST = "localhost"


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(host: str = HOST_A, token: str = TOKEN, **headers):
    return Client(HTTP_HOST=host).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}", **headers)


def samples(response) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} of a scrape, as Prometheus would read it."""
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=")
    parsed = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            parsed[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return parsed


def value(parsed, name: str, **labels) -> float:
    return parsed.get((name, frozenset(labels.items())), 0.0)


def test_what_the_platform_counts_appears_in_a_scrape(db, token):
    agent = f"metrics-{uuid.uuid4().hex[:8]}"  # labels of this test's own: counters are process-wide
    metrics.run_finished(agent, "succeeded", 3.2)
    metrics.run_finished(agent, "succeeded", 0.1)
    metrics.run_finished(agent, "failed", 700.0)
    metrics.turn_finished(agent, "claude-sonnet-4-5", 1.5)
    metrics.turn_finished(agent, "claude-sonnet-4-5", 0.2)
    metrics.turn_finished(agent, "claude-haiku-4-5", 9.0)
    metrics.tool_call_finished(agent, "save_draft", False)
    metrics.tool_call_finished(agent, "save_draft", True)
    metrics.tool_call_finished(agent, "get_client_info", False)
    metrics.approval_decided(agent, "approved")
    metrics.approval_decided(agent, "rejected")
    metrics.approval_decided(agent, "rejected")
    before = value(samples(scrape()), "spokestack_budget_refusals_total", scope="client")
    metrics.budget_refused("client")

    got = samples(scrape())
    assert value(got, "spokestack_runs_total", agent_type=agent, status="succeeded") == 2
    assert value(got, "spokestack_runs_total", agent_type=agent, status="failed") == 1
    assert value(got, "spokestack_run_duration_seconds_count", agent_type=agent) == 3
    assert value(got, "spokestack_run_duration_seconds_sum", agent_type=agent) == pytest.approx(703.3)
    assert value(got, "spokestack_run_duration_seconds_bucket", agent_type=agent, le="4.0") == 2
    assert value(got, "spokestack_run_duration_seconds_bucket", agent_type=agent, le="600.0") == 2
    assert value(got, "spokestack_run_duration_seconds_bucket", agent_type=agent, le="+Inf") == 3

    sonnet = {"agent_type": agent, "model": "claude-sonnet-4-5"}
    assert value(got, "spokestack_turns_total", **sonnet) == 2
    assert value(got, "spokestack_turns_total", agent_type=agent, model="claude-haiku-4-5") == 1
    assert value(got, "spokestack_model_call_duration_seconds_count", **sonnet) == 2
    assert value(got, "spokestack_model_call_duration_seconds_bucket", **sonnet, le="0.25") == 1
    assert value(got, "spokestack_model_call_duration_seconds_bucket", **sonnet, le="2.0") == 2

    assert value(got, "spokestack_tool_calls_total", agent_type=agent, tool="save_draft", outcome="ok") == 1
    assert value(got, "spokestack_tool_calls_total", agent_type=agent, tool="save_draft", outcome="error") == 1
    assert value(got, "spokestack_tool_calls_total", agent_type=agent, tool="get_client_info", outcome="ok") == 1
    assert value(got, "spokestack_approvals_total", agent_type=agent, status="approved") == 1
    assert value(got, "spokestack_approvals_total", agent_type=agent, status="rejected") == 2
    assert value(got, "spokestack_budget_refusals_total", scope="client") == before + 1
    assert value(got, "spokestack_queue_depth_up") == 1
    assert ("spokestack_queue_depth", frozenset({("queue", "celery")})) in got
    assert ("spokestack_queue_depth", frozenset({("queue", "maintenance")})) in got


@pytest.mark.parametrize("host", [HOST_A, HOST_B, PUBLIC_HOST])
def test_every_host_serves_the_same_platform_metrics(db, token, host):
    agent = f"metrics-{uuid.uuid4().hex[:8]}"
    metrics.run_finished(agent, "succeeded", 1.0)
    assert value(samples(scrape(host)), "spokestack_runs_total", agent_type=agent, status="succeeded") == 1


@pytest.mark.parametrize("host", [HOST_A, PUBLIC_HOST])
def test_without_a_metrics_token_the_page_does_not_exist(db, settings, host):
    settings.METRICS_TOKEN = ""
    response = scrape(host, token="")
    assert response.status_code == 404
    assert b"spokestack_" not in response.content
    assert scrape(host, token="anything").status_code == 404


@pytest.mark.parametrize("host", [HOST_A, PUBLIC_HOST])
def test_a_missing_or_wrong_token_is_401_and_says_what_to_send(db, token, host):
    for headers in ({}, {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"}, {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"},
                    {"HTTP_AUTHORIZATION": "Bearer "}):
        response = Client(HTTP_HOST=host).get("/metrics", **headers)
        assert response.status_code == 401, headers
        assert response["WWW-Authenticate"] == "Bearer"
        assert b"Authorization: Bearer" in response.content
        assert b"spokestack_runs" not in response.content


def test_an_instance_users_sign_in_or_api_token_does_not_open_it(in_a, token, make_user):
    """The samples are the whole platform's: no instance's admin, and no account manager, reads them with
    their API token, however it is sent."""
    from spokestack.accounts.services import api_token_create

    for role in ("instance_admin", "account_manager"):
        user = make_user(role)
        raw = api_token_create(user=user, name="metrics").raw
        assert scrape(HOST_A, token=raw).status_code == 401
        assert Client(HTTP_HOST=HOST_A).get("/metrics", HTTP_AUTHORIZATION=f"Token {raw}").status_code == 401
        assert scrape(HOST_B, token=raw).status_code == 401


def test_queue_depth_is_read_from_the_broker(db, token, monkeypatch):
    queue = f"metrics-test-{uuid.uuid4().hex[:8]}"  # a queue no worker consumes
    monkeypatch.setattr(metrics, "QUEUES", (queue, "celery"))
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    try:
        broker.rpush(queue, "a", "b", "c")
        got = samples(scrape())
        assert value(got, "spokestack_queue_depth", queue=queue) == 3
        assert value(got, "spokestack_queue_depth_up") == 1
    finally:
        broker.delete(queue)
        broker.close()


def test_a_broker_that_does_not_answer_leaves_the_scrape_whole(db, token, settings):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    agent = f"metrics-{uuid.uuid4().hex[:8]}"
    metrics.run_finished(agent, "succeeded", 1.0)
    got = samples(scrape())
    assert value(got, "spokestack_queue_depth_up") == 0
    assert not [key for key in got if key[0] == "spokestack_queue_depth"]
    assert value(got, "spokestack_runs_total", agent_type=agent, status="succeeded") == 1


def test_recording_touches_neither_the_database_nor_the_network(db, django_assert_num_queries, monkeypatch):
    """The runtime calls these on its hot path: memory only."""

    def no_network(*args, **kwargs):
        raise AssertionError("a metric call opened a socket")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with django_assert_num_queries(0):
        for _ in range(100):
            metrics.run_finished("copy", "succeeded", 1.0)
            metrics.turn_finished("copy", "claude-sonnet-4-5", 0.5)
            metrics.tool_call_finished("copy", "save_draft", False)
            metrics.approval_decided("copy", "approved")
            metrics.budget_refused("instance")


def test_another_process_samples_add_up_in_multiprocess_mode(db, token, tmp_path, monkeypatch):
    """Two processes write to the directory; one scrape shows their sum (a worker needs no port)."""
    agent = f"metrics-{uuid.uuid4().hex[:8]}"
    code = ("from spokestack import metrics; "
            f"metrics.run_finished({agent!r}, 'succeeded', 2.0); metrics.turn_finished({agent!r}, 'm', 1.0)")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT),
           "DJANGO_SETTINGS_MODULE": "spokestack.settings.test", "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"],  # noqa: S603
                       env={**env, "DATABASE_URL": "postgres://unused@127.0.0.1:1/unused",
                            "REDIS_URL": django_settings.REDIS_URL}, check=True, cwd=ROOT, timeout=60)
    assert len(list(tmp_path.glob("*.db"))) >= 2
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    got = samples(scrape())
    assert value(got, "spokestack_runs_total", agent_type=agent, status="succeeded") == 2
    assert value(got, "spokestack_run_duration_seconds_count", agent_type=agent) == 2
    assert value(got, "spokestack_turns_total", agent_type=agent, model="m") == 2
    assert value(got, "spokestack_queue_depth_up") == 1
