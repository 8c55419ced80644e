# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""The loop's limits (issue #14, found 8): model turns, tool calls per turn, time and cost each stop
what they limit with a reason a person can read, on the run (`error`) and in its final event.
Through the real loop, the real anthropic SDK and the local fake Messages API (scripted turns)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from agents import loop
from agents.loop import execute_run
from agents.models import RunEvent, ToolCall
from agents.registry import get_spec
from agents.services import run_create

from ..skills.conftest import client_a, scripted, text_turn, tool_turn  # noqa: F401

COPY = get_spec("copy")


def _check_call(n: int) -> tuple[str, str, dict]:
    return (f"toolu_{uuid.uuid4().hex[:10]}", "check_brand_rules", {"text": f"Draft {n}"})


def _run(scripted, client, turns):
    marker = f"[limits-{uuid.uuid4().hex[:8]}]"
    scripted.script(marker, turns)
    run = run_create(actor=None, agent_type="copy", task=f"Write a caption {marker}", client_id=client.pk,
                     sandbox=True).run
    execute_run(run_id=str(run.pk), worker="limits-test")
    run.refresh_from_db()
    return run, scripted.requests(marker)


def _final_event(run) -> RunEvent:
    return RunEvent.objects.filter(run=run).order_by("-seq").first()


def _assert_ended(run, reason: str) -> None:
    assert run.status == "failed" and run.error == reason
    final = _final_event(run)
    assert final.type == "run.failed" and final.payload["error"] == reason


def test_the_turn_limit_ends_a_run_that_keeps_calling_tools(in_a, scripted, client_a):
    turns = [tool_turn(_check_call(n)) for n in range(COPY.max_iterations + 3)]
    run, sent = _run(scripted, client_a, turns)
    assert len(sent) == COPY.max_iterations == run.iterations
    _assert_ended(run, f"Stopped after {COPY.max_iterations} model turns, the limit for copy.")


def test_calls_over_the_per_turn_limit_are_refused_with_the_reason_and_the_run_goes_on(in_a, scripted, client_a):
    limit = COPY.max_tool_calls_per_turn
    run, sent = _run(scripted, client_a, [tool_turn(*(_check_call(n) for n in range(limit + 2))), text_turn("Done.")])
    assert run.status == "succeeded"
    assert ToolCall.objects.filter(run=run).count() == limit, "the calls over the limit never ran"
    results = sent[1]["messages"][-1]["content"]
    refused = [r for r in results if r["is_error"]]
    assert len(results) == limit + 2 and len(refused) == 2
    reason = f"Not run: at most {limit} tool calls per turn for copy."
    assert all(r["content"].startswith(reason) for r in refused), refused
    turn = RunEvent.objects.filter(run=run, type="turn.finished").order_by("seq").first()
    assert turn.payload["tool_calls_over_limit"] == (f"2 of {limit + 2} tool calls not run: at most {limit} per "
                                                      "turn for copy.")


def test_the_time_limit_ends_a_run_between_turns(in_a, scripted, client_a, monkeypatch):
    quick = dataclasses.replace(COPY, time_limit_s=1)
    monkeypatch.setattr(loop, "get_spec", lambda agent_type, version=None: quick)
    run, sent = _run(scripted, client_a, [{**tool_turn(_check_call(1)), "delay_s": 1.2}, text_turn("Too late.")])
    assert len(sent) == 1, "no model turn starts after the time limit"
    _assert_ended(run, "Stopped after 1 s, the time limit for copy.")


def test_the_cost_ceiling_ends_a_run_before_the_next_turn(in_a, scripted, client_a):
    expensive = {**tool_turn(_check_call(1)), "usage": {"input_tokens": 1_000_000, "output_tokens": 10}}
    run, sent = _run(scripted, client_a, [expensive, text_turn("Never asked.")])
    assert len(sent) == 1
    assert float(run.cost_usd) > COPY.cost_ceiling_usd
    _assert_ended(run, f"Stopped at ${run.cost_usd:.2f}, the cost ceiling of ${COPY.cost_ceiling_usd:.2f} per run.")


@pytest.mark.parametrize("limit", ["turns", "time", "cost"])
def test_a_run_ended_by_a_limit_keeps_what_it_wrote_and_is_not_checked(in_a, scripted, client_a, monkeypatch, limit):
    """A run stopped by a limit has no final output: it is not checked nor queued for review."""
    spec = dataclasses.replace(COPY, max_iterations=1) if limit == "turns" else COPY
    if limit == "time":
        spec = dataclasses.replace(COPY, time_limit_s=1)
    monkeypatch.setattr(loop, "get_spec", lambda agent_type, version=None: spec)
    first = {"content": [{"type": "text", "text": "Half a caption"}, *tool_turn(_check_call(1))["content"]],
             "stop_reason": "tool_use"}
    if limit == "time":
        first["delay_s"] = 1.2
    if limit == "cost":
        first["usage"] = {"input_tokens": 1_000_000, "output_tokens": 10}
    run, _ = _run(scripted, client_a, [first, text_turn("Never asked.")])
    assert run.status == "failed" and run.output == "Half a caption"
    assert run.review_status == "" and not RunEvent.objects.filter(run=run, type="run.checked").exists()
