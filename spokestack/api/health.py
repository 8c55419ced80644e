"""Liveness and readiness. Readiness names the check that failed, so an operator knows where to look."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from spokestack.outages import RETRY_AFTER_SECONDS

from .schema import ErrorEnvelopeSerializer

WORKER_PROBE_TIMEOUT = 3.0
# Liveness answers without the database (InstanceMiddleware lets it through a failed instance
# lookup); readiness is where dependencies are checked.
LIVENESS_PATH = "/api/v1/health"


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def check_redis() -> str:
    from spokestack.redis_roles import ping_each

    return f"ok ({', '.join(ping_each())})"


def check_worker() -> str:
    """A worker takes a task queued from this instance and runs it in this instance's schema."""
    import uuid

    from django.core.cache import cache

    from spokestack.tasks import worker_probe, worker_probe_key

    probe_id = uuid.uuid4().hex
    worker_probe.apply_async(kwargs={"probe_id": probe_id}, expires=WORKER_PROBE_TIMEOUT)
    deadline = time.monotonic() + WORKER_PROBE_TIMEOUT
    while time.monotonic() < deadline:
        answer = cache.get(worker_probe_key(probe_id))
        if answer:
            cache.delete(worker_probe_key(probe_id))
            return f"{answer['worker']} ran a task in schema {answer['schema']}"
        time.sleep(0.02)
    raise RuntimeError(f"no Celery worker ran a probe task within {WORKER_PROBE_TIMEOUT:.0f} s")


def check_model() -> str:
    return "anthropic" if settings.ANTHROPIC_API_KEY else "offline model (no ANTHROPIC_API_KEY)"


READINESS_CHECKS = {"database": check_database, "redis": check_redis, "worker": check_worker, "model": check_model}

HealthSerializer = inline_serializer("Health", {"status": serializers.CharField()})
CheckSerializer = inline_serializer("ReadinessCheck", {
    "ok": serializers.BooleanField(), "detail": serializers.CharField(), "ms": serializers.FloatField()})
ReadySerializer = inline_serializer("Readiness", {
    "status": serializers.CharField(), "checks": serializers.DictField(child=CheckSerializer)})


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses=HealthSerializer, summary="Liveness: the web process answers.")
    def get(self, request):
        return Response({"status": "ok"})


class ReadinessView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: ReadySerializer, 503: OpenApiResponse(
                       ErrorEnvelopeSerializer, description="not_ready: details name each check (ok, detail, ms); "
                       "or unavailable, as on every path.")},
                   summary="Readiness: database, Redis, a live Celery worker and the model configuration.")
    def get(self, request):
        checks, failing = {}, []
        for name, check in READINESS_CHECKS.items():
            started = time.monotonic()
            if name == "worker" and "redis" in failing:
                checks[name] = {"ok": False, "detail": "not checked: the broker (Redis) is down", "ms": 0.0}
                failing.append(name)
                continue
            try:
                detail = check()
                checks[name] = {"ok": True, "detail": detail}
            except Exception as exc:  # noqa: BLE001 - any failure of a dependency is a failed check
                checks[name] = {"ok": False, "detail": str(exc) or exc.__class__.__name__}
                failing.append(name)
            checks[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
        if failing:
            return Response(
                {"error": {"code": "not_ready", "message": f"Failing check(s): {', '.join(failing)}.",
                           "details": checks}},
                status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return Response({"status": "ready", "checks": checks})
