"""Tuning: warm prompt assembly time, and admin changelist queries as clients grow 10 -> 1,000.

prompt_assembly_p50_ms: one client with 50 rules and 20 approved examples plus instance tuning,
assembled 300 times after a warm-up (goal <= 1.0 ms); a warm call is one query (the tuning
version) and a cache hit. prompt_assembly_uncached_p50_ms: the same with the cache emptied before
each call (five queries, rendering). admin_changelist_queries_N: the number of
SQL statements of the clients changelist for an account manager assigned to N clients, and
audit_changelist_queries_N the same for the tuning-change log (both should not grow with N).
"""

from __future__ import annotations

import statistics
import time

from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from . import fresh_instance

SCHEMA = "bench_tuning"
HOST = "bench-tuning.localhost"


def _instance():
    return fresh_instance(schema=SCHEMA, host=HOST, name="Bench tuning").instance


def _assembly_p50_ms() -> tuple[float, float]:
    from tests.tuning.catalog import COPY
    from tuning.assembly import assemble_prompt, assembly_cache_clear
    from tuning.services import (
        client_create,
        client_example_add,
        client_rule_add,
        client_tuning_update,
        instance_tuning_update,
    )

    instance_tuning_update(actor=None, changes={
        "prompt_extension": "Cite the brief.", "brand_voice": "Clear and warm.",
        "behaviour_params": {"verbosity": 30, "formality": 70}, "traits": {"warmth": 80},
        "terminology_avoid": ["cheap", "guarantee"], "require_approval_for": ["send_*"]})
    client = client_create(name="Benchmark Beauty", vertical="beauty", region="GCC", language="en")
    client_tuning_update(actor=None, client=client, changes={
        "brand_voice": "Radiant and precise.", "tone_keywords": ["warm", "confident"],
        "competitor_rules": [{"competitor": "Rival", "instruction": "Never name them."}]})
    kinds = ["always", "never", "prefer"]
    for i in range(50):
        client_rule_add(actor=None, client=client, kind=kinds[i % 3], text=f"Rule number {i} about the brand")
    for i in range(20):
        client_example_add(actor=None, client=client, kind="caption", text=f"Approved caption {i}: glow daily.",
                           context="spring launch")
    for _ in range(20):
        assemble_prompt(platform=COPY, client=client)
    warm, cold = [], []
    for _ in range(300):
        started = time.perf_counter()
        assemble_prompt(platform=COPY, client=client)
        warm.append((time.perf_counter() - started) * 1000)
    for _ in range(100):
        assembly_cache_clear()
        started = time.perf_counter()
        assemble_prompt(platform=COPY, client=client)
        cold.append((time.perf_counter() - started) * 1000)
    return statistics.median(warm), statistics.median(cold)


def _changelist_queries(http: HttpClient, url: str) -> int:
    http.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = http.get(url)
    assert response.status_code == 200, response.status_code
    return len(queries)


def run() -> dict[str, float | int]:
    from spokestack.accounts.services import user_create
    from tests.tuning.catalog import CATALOG
    from tuning.assembly import set_platform_catalog
    from tuning.services import client_assign, client_create, client_rule_add

    set_platform_catalog(CATALOG)
    instance = _instance()
    results: dict[str, float | int] = {}
    with schema_context(instance.schema_name):
        results["prompt_assembly_p50_ms"], results["prompt_assembly_uncached_p50_ms"] = _assembly_p50_ms()
        manager = user_create(email="am@bench.example", password=None, role="account_manager")
        http = HttpClient(HTTP_HOST=HOST)
        http.force_login(manager)
        made = 0
        for target in (10, 1000):
            while made < target:
                client = client_create(name=f"Client {made:04}")
                client_rule_add(actor=None, client=client, kind="never", text="Say cheap")
                client_assign(user=manager, client=client, role="account_manager")
                made += 1
            results[f"admin_changelist_queries_{target}"] = _changelist_queries(http, "/admin/tuning/client/")
            results[f"audit_changelist_queries_{target}"] = _changelist_queries(http, "/admin/tuning/tuningchange/")
    connection.set_schema_to_public()
    instance.delete(force_drop=True)
    return results
