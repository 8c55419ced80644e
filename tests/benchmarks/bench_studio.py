"""Agency-built agents (issue #18): the cached prefix of an agency agent's requests, and what a
lookup of its spec costs next to a core agent's.

* prompt_prefix_stable: 1 when every model request of 6 runs of one agency-built agent (3 clients,
  2 runs each, different tasks, the real SDK against the local fake Messages API in this process)
  carries byte-identical `tools` and an identical first system block (tier 1, the frame around the
  agency's instructions, and tier 2), so Anthropic's prompt cache hits across runs and clients;
  0 otherwise. prompt_prefix_requests: how many requests were compared.
* agency_spec_lookup_p50_us / core_spec_lookup_p50_us: `get_spec(agent_type)` for the agency agent
  (one indexed query for its current version, the built spec cached per version) and for a core
  one (a dict lookup): a core agent's runs pay nothing for the studio.
"""

from __future__ import annotations

import json
import os
import statistics
import time

from django.test import override_settings
from django_tenants.utils import tenant_context

from . import fresh_instance

SCHEMA = "bench_studio"
HOST = "bench-studio.localhost"
LOOKUPS = 2000
DEFINITION = {
    "title": "Social caption agent", "purpose": "Short on-brand captions.",
    "instructions": "Write three caption options, then recommend one.",
    "persona": {"voice": "Warm", "traits": {"creativity": 70}},
    "tools": ["copy.get_brand_guidelines", "copy.check_brand_rules", "core.search_knowledge"],
}


def _prefix_stable(admin) -> dict[str, int]:
    from agents.loop import execute_run
    from agents.services import run_create
    from tests.fakes.messages_api import FakeMessagesApi
    from tuning.services import client_create, client_rule_add

    api = FakeMessagesApi()
    api.start()
    previous = os.environ.get("ANTHROPIC_BASE_URL")
    os.environ["ANTHROPIC_BASE_URL"] = api.base_url
    try:
        with override_settings(ANTHROPIC_API_KEY="sk-ant-bench-not-a-real-key", ANTHROPIC_MAX_RETRIES=0):
            for n in range(3):
                client = client_create(name=f"Bench client {n}", vertical="beauty")
                client_rule_add(actor=None, client=client, kind="never", text=f"word{n}")
                for task in ("Captions for the launch", "Captions for the sale"):
                    run = run_create(actor=admin, agent_type="social_caption", task=task, client_id=client.pk).run
                    execute_run(run_id=str(run.pk), worker="bench")
        bodies = [json.loads(raw) for raw in api.raw_requests()]
    finally:
        api.stop()
        if previous is None:
            os.environ.pop("ANTHROPIC_BASE_URL", None)
        else:
            os.environ["ANTHROPIC_BASE_URL"] = previous
    tools = {json.dumps(body["tools"], sort_keys=True) for body in bodies}
    first_blocks = {body["system"][0]["text"] for body in bodies}
    return {"prompt_prefix_stable": int(len(tools) == 1 and len(first_blocks) == 1 and len(bodies) >= 6),
            "prompt_prefix_requests": len(bodies)}


def _lookups() -> dict[str, float]:
    from agents.registry import get_spec

    def p50(agent_type: str) -> float:
        times = []
        for _ in range(LOOKUPS):
            started = time.perf_counter()
            get_spec(agent_type)
            times.append((time.perf_counter() - started) * 1e6)
        return statistics.median(times)

    return {"agency_spec_lookup_p50_us": round(p50("social_caption"), 1),
            "core_spec_lookup_p50_us": round(p50("copy"), 2)}


def run() -> dict[str, float | int | str]:
    from agents.studio.services import agent_create, agent_publish

    provisioned = fresh_instance(schema=SCHEMA, host=HOST, name="Bench studio")
    with tenant_context(provisioned.instance):
        agent_create(actor=provisioned.admin, slug="social_caption", definition=DEFINITION)
        agent_publish(actor=provisioned.admin, slug="social_caption", change_note="v1")
        return {**_prefix_stable(provisioned.admin), **_lookups()}
