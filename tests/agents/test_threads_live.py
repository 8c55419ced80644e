"""A thread end to end through the real parts (issue #16 part 1): daphne (HTTP, SSE, websocket),
the Redis channel layer, a real Celery worker subprocess, the real anthropic SDK talking to the
local fake Messages API, which answers with the offline model (nothing is scripted)."""

from __future__ import annotations

import threading
import uuid

import pytest

from ..conftest import run_async
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
