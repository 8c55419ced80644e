"""Prometheus metrics: what the platform counts, and the token-protected `/metrics` page that serves them.

The platform calls the small functions below (`run_finished`, `turn_finished`, …) where the thing
happens; each only updates memory (or, in multiprocess mode, a memory-mapped file), never the
network or the database, so a call costs microseconds on the runtime's hot path.

Multiprocess: with `PROMETHEUS_MULTIPROC_DIR` set (before this module is imported) every process
— daphne and each Celery worker — writes its samples to files in that directory, and a scrape of
any web process adds them up, so a worker needs no port of its own. The directory must be shared
by the web and worker processes of one machine and emptied when they all (re)start. Without it
each process keeps its own samples and `/metrics` shows the web process's alone.

Queue depth is read from Redis at scrape time (a Collector), not counted.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# The Celery queues whose waiting tasks are reported (spokestack/settings/base.py CELERY_TASK_QUEUES).
QUEUES = ("celery", "maintenance")
# Seconds. Runs last from seconds to half an hour; usage.models.DURATION_BUCKETS_MS's bounds, in seconds.
RUN_BUCKETS_S = (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600, 1800)
# One model call (a turn): from a fast first answer to a long streamed one.
MODEL_CALL_BUCKETS_S = (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)

RUNS = Counter("spokestack_runs", "Agent runs that ended, by agent type and final status.",
               ["agent_type", "status"])
RUN_DURATION = Histogram("spokestack_run_duration_seconds", "Wall-clock time of an agent run, start to end.",
                         ["agent_type"], buckets=RUN_BUCKETS_S)
TURNS = Counter("spokestack_turns", "Model turns (one model call each) that answered, by agent type and model.",
                ["agent_type", "model"])
MODEL_CALL_DURATION = Histogram("spokestack_model_call_duration_seconds",
                                "Latency of one model call (a turn), request to last token.",
                                ["agent_type", "model"], buckets=MODEL_CALL_BUCKETS_S)
TOOL_CALLS = Counter("spokestack_tool_calls", "Tool calls that ended, by agent type, tool and outcome (ok, error).",
                     ["agent_type", "tool", "outcome"])
APPROVALS = Counter("spokestack_approvals", "Approval requests decided, by agent type and decision.",
                    ["agent_type", "status"])
BUDGET_REFUSALS = Counter("spokestack_budget_refusals",
                          "Model calls not made because they would cross a budget, by the budget's scope "
                          "(instance, client, user).", ["scope"])

WEBHOOK_ATTEMPTS = Counter("spokestack_webhook_attempts",
                           "Event webhook delivery attempts, by event type and outcome (sent, retry, failed).",
                           ["event_type", "outcome"])
WEBHOOK_LATENCY = Histogram("spokestack_webhook_attempt_duration_seconds",
                            "One event webhook attempt, from sending to the receiver's answer (or the error).",
                            ["event_type"])


def run_finished(agent_type: str, status: str, duration_s: float) -> None:
    """A run ended (succeeded, failed, cancelled …): counted once, with its duration."""
    RUNS.labels(agent_type, status).inc()
    RUN_DURATION.labels(agent_type).observe(max(duration_s, 0.0))


def turn_finished(agent_type: str, model: str, latency_s: float) -> None:
    """A model call answered; `model` is the one that answered (the fallback's name when it did)."""
    TURNS.labels(agent_type, model).inc()
    MODEL_CALL_DURATION.labels(agent_type, model).observe(max(latency_s, 0.0))


def tool_call_finished(agent_type: str, tool: str, is_error: bool) -> None:
    TOOL_CALLS.labels(agent_type, tool, "error" if is_error else "ok").inc()


def approval_decided(agent_type: str, status: str) -> None:
    APPROVALS.labels(agent_type, status).inc()


def webhook_attempted(event_type: str, outcome: str, latency_s: float) -> None:
    WEBHOOK_ATTEMPTS.labels(event_type, outcome).inc()
    WEBHOOK_LATENCY.labels(event_type).observe(max(latency_s, 0.0))


def budget_refused(scope: str) -> None:
    """`scope`: the budget that refused the call (instance, client or user)."""
    BUDGET_REFUSALS.labels(scope).inc()


# --- scrape ---------------------------------------------------------------------------------


class QueueDepthCollector(Collector):
    """Tasks waiting in each Celery queue (Redis LLEN on the broker), read when scraped. A broker
    that does not answer yields `spokestack_queue_depth_up 0` and no depth, never a failed scrape."""

    def collect(self) -> Iterator[Metric]:
        import redis

        depth = GaugeMetricFamily("spokestack_queue_depth", "Tasks waiting in a Celery queue.", labels=["queue"])
        up = GaugeMetricFamily("spokestack_queue_depth_up", "1 when the broker answered the queue-depth read.")
        from spokestack.redis_roles import redis_client

        client = redis_client(settings.CELERY_BROKER_URL)
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in QUEUES:
                    pipe.llen(queue)
                lengths = pipe.execute()
        except redis.RedisError as exc:
            logger.warning("metrics: the broker did not answer the queue-depth read: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        finally:
            client.close()
        for queue, length in zip(QUEUES, lengths, strict=True):
            depth.add_metric([queue], length)
        up.add_metric([], 1)
        yield depth
        yield up


class _ThisProcess(Collector):
    """The process registry's metrics, for a scrape without a multiprocess directory."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    """Every process's metrics (multiprocess mode) or this process's, plus the queue depths."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(QueueDepthCollector())
    return registry


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics with `Authorization: Bearer <METRICS_TOKEN>`. Without METRICS_TOKEN the page
    does not exist (404); a missing or wrong token is 401. The samples are the platform's, not an
    instance's, whichever host is asked."""
    # The environment until the setting exists (spokestack/settings/base.py): one name either way.
    token = getattr(settings, "METRICS_TOKEN", os.environ.get("METRICS_TOKEN", "")) or ""
    if not token:
        return HttpResponse("Not found.\n", status=404, content_type="text/plain; charset=utf-8")
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        return HttpResponse("Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.\n", status=401,
                            content_type="text/plain; charset=utf-8", headers={"WWW-Authenticate": "Bearer"})
    if request.method not in ("GET", "HEAD"):
        return HttpResponse("Use GET.\n", status=405, content_type="text/plain; charset=utf-8",
                            headers={"Allow": "GET, HEAD"})
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)


# Included at /metrics by both URLconfs (spokestack/urls.py, spokestack/urls_public.py): every host answers.
urlpatterns = [path("", metrics_view, name="metrics")]
