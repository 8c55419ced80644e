import itertools

import pytest

DISCOUNT_PAIRS = [
    ("Get 20% off today! Glow gently with our rose serum.", "Glow gently with our rose serum."),
    ("Hurry, sale ends soon. Our oud mist lasts all evening.", "Our oud mist lasts all evening."),
    ("Save 30% this weekend only: the night cream that restores.", "The night cream that restores."),
]


@pytest.fixture
def make_client():
    from tuning.services import client_create

    counter = itertools.count(1)

    def make(name: str | None = None, **kwargs):
        return client_create(name=name or f"Client {next(counter)}", **kwargs)

    return make


@pytest.fixture
def finished_run():
    """finished_run(client, output, agent_type="copy") -> a succeeded run with that output.

    The run is created by the service; its output is written as the worker's run_finish would
    (the worker itself is exercised by the live tests)."""
    from agents.models import AgentRun, RunStatus
    from agents.services import run_create

    def make(client, output: str, agent_type: str = "copy", actor=None):
        run = run_create(actor=actor, agent_type=agent_type, task="Write a caption", client_id=client.pk).run
        AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, output=output)
        run.refresh_from_db()
        return run

    return make


@pytest.fixture
def discount_corrections(finished_run):
    """corrections(client, author, n=15): n corrections that each remove discount or urgency language."""
    from feedback.services import feedback_give

    def make(client, author=None, n: int = 15, start: int = 0):
        for i in range(start, start + n):
            before, after = DISCOUNT_PAIRS[i % len(DISCOUNT_PAIRS)]
            run = finished_run(client, f"{before} (#{i})")
            feedback_give(actor=author, run_id=run.pk, verdict="corrected", corrected_text=f"{after} (#{i})",
                          reason="No discount or urgency language", category="brand_voice")

    return make


@pytest.fixture
def model_at_fake_api(fake_model, monkeypatch):
    """The real anthropic SDK pointed at the session's fake Messages API, so a test counts the
    model requests an analysis makes: `len(fake_model.requests(marker))`."""
    from django.test import override_settings

    from agents.model import reset_client

    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_model.base_url)
    with override_settings(ANTHROPIC_API_KEY="sk-ant-test-not-a-real-key"):
        reset_client()
        yield fake_model
    reset_client()
