"""A thread end to end through the real parts (issue #16 part 1): daphne (HTTP, SSE, websocket),
the Redis channel layer, a real Celery worker subprocess, the real anthropic SDK talking to the
local fake Messages API, which answers with the offline model (nothing is scripted)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid

import pytest
from django_tenants.utils import schema_context

from agents.models import AgentRun, RunEvent, ToolCall
from spokestack.sample_erp import DEMO_API_KEYS

from ..conftest import run_async, wait_for
from .test_runtime_live import api_call, run_row, sse_events, stack, ws_events  # noqa: F401

pytestmark = pytest.mark.live


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


def follow(stack, run_id) -> list[dict]:  # noqa: F811
    """The turn's events over the websocket and SSE at once; they must be the same, in order."""
    results = {}
    sse = threading.Thread(target=lambda: results.setdefault("sse", sse_events(stack, run_id)))
    sse.start()
    results["ws"] = run_async(ws_events(stack, run_id))
    sse.join(30)
    seqs = [e["seq"] for e in results["ws"]]
    assert seqs == list(range(1, len(seqs) + 1)), "every event of the turn, in order, none missing"
    assert results["sse"] == results["ws"], "SSE and websocket carry the same events"
    return results["ws"]


def test_a_three_turn_thread_streams_every_turn_and_turn_2_is_sent_turn_1s_output(stack):  # noqa: F811
    marker = f"[thread-{uuid.uuid4().hex[:8]}]"
    status, body = api_call(stack, "POST", "/api/v1/agent/execute", {
        "agent_type": "copy", "task": f"Write an Instagram caption for the Ramadan glow collection {marker}",
        "client_id": stack["client"].pk, "thread": True})
    assert status == 202, body
    thread_id, runs = body["thread_id"], [body["run_id"]]
    follows = ["Make it shorter.", "Now suggest three hashtags to go with it."]
    turns = []
    for number in (1, 2, 3):
        events = follow(stack, runs[-1])
        types = [e["type"] for e in events]
        assert types[0] == "run.queued" and types[-1] == "run.succeeded", types
        assert events[0]["payload"]["thread_id"] == thread_id and events[0]["payload"]["thread_turn"] == number
        streamed = "".join(e["payload"]["text"] for e in events if e["type"] == "text.delta")
        output = events[-1]["payload"]["output"]
        assert output and output in streamed or streamed.endswith(output), "the answer was streamed"
        turns.append(output)
        assert run_row(stack, runs[-1]).thread_turn == number
        if number < 3:
            status, sent = api_call(stack, "POST", f"/api/v1/threads/{thread_id}/messages",
                                    {"message": follows[number - 1]})
            assert status == 202, sent
            assert sent["thread_turn"] == number + 1 and sent["websocket_url"].endswith(f"/ws/runs/{sent['run_id']}/")
            runs.append(sent["run_id"])

    # What the model received: turn 2's request carries turn 1's answer and then the new message.
    requests = stack["model"].requests(marker)
    turn2 = [r for r in requests if "Make it shorter." in _text(r["messages"][-1])]
    assert len(turn2) == 1, [_text(r["messages"][-1])[:80] for r in requests]
    assistant = [_text(m) for m in turn2[0]["messages"] if m["role"] == "assistant"]
    assert assistant[-1] == turns[0], "turn 1's final answer is in turn 2's conversation"
    turn3 = [r for r in requests if "three hashtags" in _text(r["messages"][-1])]
    assert len(turn3) == 1 and [_text(m) for m in turn3[0]["messages"] if m["role"] == "assistant"][-1] == turns[1]
    # ...and the answers visibly build on the one before.
    assert "Shorter version of my previous answer (turn 1" in turns[1] and len(turns[1]) < len(turns[0])
    assert "previous answer (turn 2)" in turns[2]

    status, detail = api_call(stack, "GET", f"/api/v1/threads/{thread_id}")
    assert status == 200 and detail["turns"] == 3
    answers = [m for m in detail["messages"] if m["role"] == "assistant"]
    assert [(m["run_id"], m["status"], m["text"]) for m in answers] == [
        (run_id, "succeeded", text) for run_id, text in zip(runs, turns, strict=True)]
    # Two messages at once: the database lets one start a turn; the other is told the turn runs.
    answers = []
    barrier = threading.Barrier(2)

    def post(text):
        barrier.wait()
        answers.append(api_call(stack, "POST", f"/api/v1/threads/{thread_id}/messages", {"message": text}))

    senders = [threading.Thread(target=post, args=(text,)) for text in ("Fourth, once.", "Fourth, twice.")]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    assert sorted(code for code, _ in answers) == [202, 409], answers
    refused = next(body for code, body in answers if code == 409)["error"]["message"]
    assert "Turn 4 of this thread is still" in refused
    fourth = next(body for code, body in answers if code == 202)
    assert fourth["thread_turn"] == 4
    assert [e["type"] for e in follow(stack, fourth["run_id"])][-1] == "run.succeeded"

    status, closed = api_call(stack, "DELETE", f"/api/v1/threads/{thread_id}")
    assert status == 200 and closed["status"] == "closed"
    status, refused = api_call(stack, "POST", f"/api/v1/threads/{thread_id}/messages", {"message": "One more."})
    assert status == 409 and "closed" in refused["error"]["message"]


def test_a_worker_killed_during_turn_3_completes_the_turn_once_with_its_draft_saved_once(stack):  # noqa: F811
    """Turns 1 and 2 answered by the offline model; turn 3 saves a draft in the ERP, then the
    worker dies while the model writes the turn's answer. After the lease runs out the turn is
    resumed by the new worker and finishes once: one run for turn 3, one draft write, one
    `run.succeeded`, the thread ready for turn 4."""
    from agents.tasks import reap_stale_runs

    marker = f"[thread-kill-{uuid.uuid4().hex[:8]}]"
    status, body = api_call(stack, "POST", "/api/v1/threads", {
        "agent_type": "copy", "client_id": stack["client"].pk,
        "message": f"Write an Instagram caption for the Ramadan glow collection {marker}"})
    assert status == 201, body
    thread_id = body["thread"]["thread_id"]
    assert follow(stack, body["run_id"])[-1]["type"] == "run.succeeded"
    status, sent = api_call(stack, "POST", f"/api/v1/threads/{thread_id}/messages", {"message": "Make it shorter."})
    assert status == 202 and follow(stack, sent["run_id"])[-1]["type"] == "run.succeeded"

    third = f"[turn3-{uuid.uuid4().hex[:8]}]"  # only turn 3's requests carry it
    stack["model"].script(third, [
        {"content": [{"type": "tool_use", "id": "toolu_t3", "name": "save_draft",
                      "input": {"content": "Glow gently this Ramadan."}}], "stop_reason": "tool_use"},
        {"content": [{"type": "text", "text": "Saved the shorter caption as a draft."}], "stop_reason": "end_turn",
         "delay_s": 4.0},
        {"content": [{"type": "text", "text": "Saved the shorter caption as a draft."}], "stop_reason": "end_turn"},
    ])
    status, sent = api_call(stack, "POST", f"/api/v1/threads/{thread_id}/messages",
                            {"message": f"Save it as a draft {third}"})
    assert status == 202 and sent["thread_turn"] == 3
    run_id = sent["run_id"]
    schema = stack["instance"].schema_name

    def draft_saved():
        with schema_context(schema):
            return RunEvent.objects.filter(run_id=run_id, type="tool.finished").exists()

    wait_for(draft_saved)
    time.sleep(0.5)  # the worker now waits on the slow answer of turn 3
    stack["worker"].kill()
    # While turn 3 is unfinished the thread takes no message.
    status, refused = api_call(stack, "POST", f"/api/v1/threads/{thread_id}/messages", {"message": "Too early."})
    assert status == 409 and "Turn 3 of this thread is still" in refused["error"]["message"]
    stack["worker"].start()
    time.sleep(3.5)  # the dead worker's lease (RUN_LEASE_SECONDS=3) runs out
    with schema_context("public"):
        reap_stale_runs.delay()
    events = follow(stack, run_id)  # from the start: the whole turn, resumed, over both streams
    types = [e["type"] for e in events]
    assert types[-1] == "run.succeeded" and types.count("run.succeeded") == 1, types
    assert "run.resumed" in types
    assert events[-1]["payload"]["output"] == "Saved the shorter caption as a draft."

    with schema_context(schema):
        assert AgentRun.objects.filter(thread_id=thread_id, thread_turn=3).count() == 1
        assert AgentRun.objects.filter(thread_id=thread_id).count() == 3
        call = ToolCall.objects.get(run_id=run_id, name="save_draft")
        assert call.attempts == 1 and call.status == "succeeded"
    erp = http.client.HTTPConnection("127.0.0.1", stack["erp"].server_port, timeout=10)
    erp.request("GET", "/writes", headers={"X-Api-Key": DEMO_API_KEYS["alpha"]})
    writes = [w for w in json.loads(erp.getresponse().read())["results"] if w["idempotency_key"] == call.idempotency_key]
    assert len(writes) == 1, "the draft was written exactly once"
    # The conversation continues from the resumed turn.
    status, sent = api_call(stack, "POST", f"/api/v1/threads/{thread_id}/messages", {"message": "Thanks."})
    assert status == 202 and sent["thread_turn"] == 4
    assert follow(stack, sent["run_id"])[-1]["type"] == "run.succeeded"
