"""Scale-out on the engines the platform already uses (issue 23 part 2): three Celery worker
processes with hostnames of their own (as on three machines) and two daphne processes on one Redis
channel layer. 100 runs executed on one web process spread over the workers, each run executed once
(one `run.started`, no resume, its ERP write once in the ERP's log), and a viewer on the *other*
web process receives every event of every run, in order."""

from __future__ import annotations

import asyncio
import http.client
import json
import uuid
from collections import Counter

import pytest
import websockets
from django_tenants.utils import schema_context

from agents.models import RunEvent, ToolCall
from spokestack.sample_erp import DEMO_API_KEYS

from ..conftest import run_async
from ..processes import WorkerProcess, start_daphne, stop_process
from .test_runtime_live import api_call, stack  # noqa: F401 - the fixture by name

pytestmark = pytest.mark.live
RUNS = 100


@pytest.fixture
def scaled(stack):  # noqa: F811
    """Two more worker processes (the session's is the third) and a second daphne."""
    env = stack["worker"].env
    extra = [WorkerProcess(env, f"scale-{n}", concurrency=16).start() for n in (2, 3)]
    # one viewer follows all 100 runs at once: above a person's usual stream allowance
    web, port = start_daphne({**env, "STREAM_MAX_PER_USER": str(RUNS + 10)}, "scale-web2")
    yield {**stack, "other_port": port}
    for worker in extra:
        worker.stop()
    stop_process(web)


async def follow(scaled, run_id: str) -> list[dict]:
    uri = f"ws://{scaled['host']}:{scaled['other_port']}/ws/runs/{run_id}/?after=0"
    async with websockets.connect(uri, host="127.0.0.1", port=scaled["other_port"], open_timeout=20,
                                  additional_headers={"Authorization": f"Bearer {scaled['token']}"}) as ws:
        return [json.loads(message) async for message in ws]


async def follow_all(scaled, run_ids: list[str]) -> list[list[dict]]:
    return await asyncio.gather(*(follow(scaled, run_id) for run_id in run_ids))


def test_runs_spread_over_three_workers_once_each_and_viewers_on_the_other_web_process_see_every_event(scaled):
    markers = [f"[scale-{n}-{uuid.uuid4().hex[:6]}]" for n in range(RUNS)]
    for marker in markers:
        scaled["model"].script(marker, [
            {"content": [{"type": "tool_use", "name": "save_draft", "input": {"content": f"Glow gently {marker}"}}],
             "stop_reason": "tool_use", "delay_s": 1.0},
            {"content": [{"type": "text", "text": f"Saved: Glow gently {marker}."}], "stop_reason": "end_turn",
             "delay_s": 0.5},
        ], by_position=True)
    run_ids = []
    for marker in markers:  # executed on the first web process
        status, body = api_call(scaled, "POST", "/api/v1/agent/execute", {
            "agent_type": "copy", "task": f"Save a caption draft {marker}", "client_id": scaled["client"].pk})
        assert status == 202, body
        run_ids.append(body["run_id"])
    streams = run_async(follow_all(scaled, run_ids))  # followed on the second

    with schema_context(scaled["instance"].schema_name):
        for run_id, events in zip(run_ids, streams, strict=True):
            stored = list(RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("seq", "type"))
            assert [(e["seq"], e["type"]) for e in events] == stored, run_id
            assert stored[-1][1] == "run.succeeded"
        started = RunEvent.objects.filter(run_id__in=run_ids, type="run.started")
        assert started.count() == RUNS, "each run started once"
        assert not RunEvent.objects.filter(run_id__in=run_ids, type="run.resumed").exists()
        processes = Counter(e.payload["worker"].split("/")[0] for e in started)
        assert len(processes) == 3, processes  # every worker process took some
        calls = list(ToolCall.objects.filter(run_id__in=run_ids, name="save_draft"))
        assert len(calls) == RUNS and all(c.attempts == 1 for c in calls)
    erp = http.client.HTTPConnection("127.0.0.1", scaled["erp"].server_port, timeout=10)
    erp.request("GET", "/writes", headers={"X-Api-Key": DEMO_API_KEYS["alpha"]})
    writes = Counter(w["idempotency_key"] for w in json.loads(erp.getresponse().read())["results"])
    assert all(writes[c.idempotency_key] == 1 for c in calls), "each draft written exactly once"
