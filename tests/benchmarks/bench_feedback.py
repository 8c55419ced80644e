"""Feedback analysis: time to analyse 10,000 feedback items of one client, and model requests per
client per analysis.

feedback_analysis_10k_s: one client with 10,000 current feedback items (4,000 corrections that
remove discount or urgency language in varied wording, 1,000 rejections, 5,000 approvals) in the
database; the deterministic analysis (reading the items and finding the patterns) as
`feedback.services.analysis_run(use_model=False)` does it, best of three (goal <= 5 s).
analysis_model_requests_per_client: three clients analysed with the model on (a local fake
Messages API reached through the real SDK); requests that carried each client's examples,
divided by the clients (goal 1).
"""

from __future__ import annotations

import os
import time
import uuid

from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_context

from . import fresh_instance

SCHEMA = "bench_feedback"
HOST = "bench-feedback.localhost"
N = 10_000

BEFORE = ["Get {n}% off today! Glow gently with our rose serum.", "Hurry, sale ends soon. Our oud mist lasts.",
          "Save {n}% this weekend only: the night cream that restores.", "Limited deal: {n}% off the hand balm."]
AFTER = ["Glow gently with our rose serum.", "Our oud mist lasts.", "The night cream that restores.",
         "The hand balm."]


def _instance():
    return fresh_instance(schema=SCHEMA, host=HOST, name="Bench feedback").instance


def _seed(client, n: int, tag: str = "") -> None:
    """Bulk rows (volume for the benchmark; the services are exercised by the tests)."""
    from agents.models import AgentRun, RunStatus
    from feedback.models import Feedback

    runs = AgentRun.objects.bulk_create([AgentRun(agent_type="copy", agent_version="1.0.0", client=client,
                                                  task=f"caption {i}", status=RunStatus.SUCCEEDED) for i in range(n)])
    rows = []
    for i, run in enumerate(runs):
        k = i % 4
        if i % 10 < 4:
            rows.append(Feedback(run=run, client=client, agent_type="copy", verdict="corrected",
                                 original_text=BEFORE[k].format(n=10 + i % 40) + f" {tag}{i}",
                                 corrected_text=AFTER[k] + f" {tag}{i}", reason="No discount language",
                                 category="brand_voice"))
        elif i % 10 == 4:
            rows.append(Feedback(run=run, client=client, agent_type="copy", verdict="rejected",
                                 original_text=f"Some text {tag}{i}", reason="Off brand"))
        else:
            rows.append(Feedback(run=run, client=client, agent_type="copy", verdict="approved", rating=5,
                                 original_text=f"Radiance that lasts, gently made for you {tag}{i}"))
    Feedback.objects.bulk_create(rows, batch_size=2000)


def _analysis_seconds(client) -> tuple[float, int]:
    from feedback import analysis
    from feedback.selectors import feedback_items

    best, suggestions = float("inf"), 0
    for _ in range(3):
        started = time.perf_counter()
        items = feedback_items(client=client)
        result = analysis.deterministic_analysis(items)
        best = min(best, time.perf_counter() - started)
        suggestions = len(result["suggestions"])
    return best, suggestions


def _model_requests_per_client() -> float:
    from agents.model import reset_client
    from feedback.services import analysis_run
    from tests.fakes.messages_api import FakeMessagesApi
    from tuning.services import client_create

    clients = []
    for i in range(3):
        tag = f"[bench-{uuid.uuid4().hex[:6]}]"
        client = client_create(name=f"Model client {i}")
        _seed(client, 20, tag)
        clients.append((client, tag))
    with FakeMessagesApi() as api:
        previous = os.environ.get("ANTHROPIC_BASE_URL")
        os.environ["ANTHROPIC_BASE_URL"] = api.base_url
        try:
            with override_settings(ANTHROPIC_API_KEY="sk-ant-bench-not-a-real-key"):
                reset_client()
                for client, _ in clients:
                    analysis_run(client=client)
                reset_client()
        finally:
            if previous is None:
                os.environ.pop("ANTHROPIC_BASE_URL", None)
            else:
                os.environ["ANTHROPIC_BASE_URL"] = previous
        return sum(len(api.requests(tag)) for _, tag in clients) / len(clients)


def run() -> dict[str, float | int]:
    from tuning.services import client_create

    instance = _instance()
    results: dict[str, float | int] = {}
    with schema_context(instance.schema_name):
        client = client_create(name="Ten thousand items")
        _seed(client, N)
        results["feedback_analysis_10k_s"], results["feedback_analysis_10k_suggestions"] = _analysis_seconds(client)
        results["analysis_model_requests_per_client"] = _model_requests_per_client()
    connection.set_schema_to_public()
    instance.delete(force_drop=True)
    return results
