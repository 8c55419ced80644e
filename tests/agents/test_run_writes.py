"""services.run_write: one statement per step of the loop — checkpoint, tool calls, events, lease —
written only by the run's lease owner, only in the run's own instance."""

from decimal import Decimal

import pytest
from django.db import connection

from agents.models import AgentRun, Artifact, RunEvent, ToolCall
from agents.services import (
    FinishedCall,
    LeaseLost,
    RunCheck,
    StartedCall,
    call_idempotency_key,
    run_claim,
    run_finish,
    run_write,
)


@pytest.fixture
def running(in_a):
    run = AgentRun.objects.create(agent_type="copy", agent_version="1.0.0", task="Write a tagline.")
    return run_claim(run_id=run.pk, worker="w1")


def test_a_step_is_recorded_whole_with_its_events_in_order(running):
    messages = [{"role": "user", "content": [{"type": "text", "text": "Write a tagline."}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "check_brand_rules",
                                                   "input": {"text": "Glow"}}]}]
    started = run_write(run=running, worker="w1", messages=messages, iterations_delta=1, tool_calls_delta=1,
                        usage={"input_tokens": 120, "output_tokens": 30}, cost_usd=0.0008, model="claude-sonnet-5-5",
                        events=[("turn.finished", {"iteration": 1}),
                                ("tool.started", {"tool_use_id": "toolu_1", "name": "check_brand_rules"})],
                        start_calls=[StartedCall(tool_use_id="toolu_1", name="check_brand_rules",
                                                 input={"text": "Glow"}, side_effect=False)])
    call = ToolCall.objects.get(pk=started["toolu_1"])
    key = call_idempotency_key(run_id=running.pk, name="check_brand_rules", arguments={"text": "Glow"})
    assert (call.status, call.idempotency_key, call.iteration) == ("started", key, 1)

    run_write(run=running, worker="w1", events=[("tool.finished", {"tool_use_id": "toolu_1"}),
                                                ("turn.started", {"iteration": 2})],
              finish_calls=[FinishedCall(id=call.pk, result={"ok": True}, is_error=False, duration_ms=1.5)])
    call.refresh_from_db()
    assert (call.status, call.result, call.duration_ms) == ("succeeded", {"ok": True}, 1.5)

    stored = AgentRun.objects.get(pk=running.pk)
    assert stored.messages == messages and stored.iterations == 1 and stored.tool_calls_count == 1
    assert (stored.input_tokens, stored.output_tokens, stored.model) == (120, 30, "claude-sonnet-5-5")
    events = list(RunEvent.objects.filter(run=running).order_by("seq").values_list("seq", "type"))
    assert events == [(1, "run.started"), (2, "turn.finished"), (3, "tool.started"), (4, "tool.finished"),
                      (5, "turn.started")]
    assert stored.last_seq == 5

    assert run_finish(run=running, status="succeeded", output="Glow gently.")
    final = RunEvent.objects.get(run=running, seq=6)
    assert final.type == "run.succeeded" and final.payload["usage"]["input_tokens"] == 120


def test_only_the_lease_owner_writes(running):
    with pytest.raises(LeaseLost):
        run_write(run=running, worker="w2", messages=[{"role": "user", "content": "hijack"}],
                  events=[("turn.started", {"iteration": 1})])
    assert AgentRun.objects.get(pk=running.pk).messages == []
    assert list(RunEvent.objects.filter(run=running).values_list("type", flat=True)) == ["run.started"]


def test_a_write_from_another_instance_reaches_nothing(running, instance_a, instance_b):
    connection.set_tenant(instance_b)
    try:
        with pytest.raises(LeaseLost):
            run_write(run=running, worker="w1", events=[("turn.started", {"iteration": 1})])
        assert not run_finish(run=running, status="failed", error="from B")
    finally:
        connection.set_tenant(instance_a)
    stored = AgentRun.objects.get(pk=running.pk)
    assert stored.status == "running" and stored.last_seq == 1


def test_the_outputs_check_and_its_artifact_are_written_with_the_step_or_not_at_all(running):
    check = RunCheck({"passed": False, "violations": [{"term": "cheap"}]}, "pending", "1 rule violated")
    output = Artifact(run=running, kind="output", title="copy output", content="Glow gently.")
    with pytest.raises(LeaseLost):
        run_write(run=running, worker="w2", events=[check.event()], artifacts=[output], check=check)
    stored = AgentRun.objects.get(pk=running.pk)
    assert (stored.checks, stored.review_status) == ({}, "") and not Artifact.objects.filter(run=running).exists()

    run_write(run=running, worker="w1", events=[check.event()], artifacts=[output], check=check)
    stored = AgentRun.objects.get(pk=running.pk)
    assert (stored.checks, stored.review_status, stored.review_reason) == (check.checks, "pending", "1 rule violated")
    assert list(Artifact.objects.filter(run=running).values_list("kind", "title", "content", "data")) == [
        ("output", "copy output", "Glow gently.", {})]
    checked = RunEvent.objects.get(run=running, type="run.checked")
    assert checked.payload == {**check.checks, "review_status": "pending", "review_reason": "1 rule violated"}


def test_the_end_is_counted_and_emitted_with_the_row_or_not_at_all(running, django_capture_on_commit_callbacks):
    """A run's end, its count in the usage rollup and its outbound event are one statement: the
    event carries what the row holds at the end; with the lease lost, none of them is written."""
    from spokestack.secrets import EncryptedSecret
    from spokestack.webhooks.models import WebhookDelivery, WebhookEvent, WebhookSubscription
    from usage.models import UsageDaily

    WebhookSubscription.objects.create(url="https://erp.example/hooks", event_types=["run.succeeded"],
                                       secret=EncryptedSecret.seal("whsec_test"))
    run_write(run=running, worker="w1", iterations_delta=2, usage={"input_tokens": 90, "output_tokens": 12},
              cost_usd=0.0125, model="claude-sonnet-5-5")
    AgentRun.objects.filter(pk=running.pk).update(children_cost_usd="0.5")  # its delegated runs' (the mirror)

    running.lease_owner = "w2"
    assert run_finish(run=running, status="succeeded", output="Glow.") is False
    assert not UsageDaily.objects.exists() and not WebhookEvent.objects.exists()

    running.lease_owner = "w1"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert run_finish(run=running, status="succeeded", output="Glow gently.") is True
    row = AgentRun.objects.get(pk=running.pk)
    assert row.usage_recorded and running.children_cost_usd == Decimal("0.5")
    usage = UsageDaily.objects.get()
    assert (usage.runs_succeeded, usage.turns, usage.input_tokens, usage.cost_usd) == (1, 2, 90, row.cost_usd)
    event = WebhookEvent.objects.get()
    data = event.payload["data"]
    assert event.type == event.payload["type"] == "run.succeeded"
    assert (data["run_id"], data["status"], data["output"], data["iterations"]) == (
        str(running.pk), "succeeded", "Glow gently.", 2)
    assert (data["cost_usd"], data["total_cost_usd"]) == (0.0125, 0.5125)
    assert data["finished_at"] == row.finished_at.isoformat() and data["started_at"] == row.started_at.isoformat()
    assert WebhookDelivery.objects.filter(event=event).count() == 1
    assert len(callbacks) == 3  # after the commit: the run's viewers nudged, the delivery queued, the events topic told


def test_a_count_postgresql_refuses_does_not_fail_the_runs_end(running, monkeypatch, caplog):
    """An instance time zone PostgreSQL does not know (Python's zone list and the server's can
    differ) refuses the day's count: the run still ends, with its event; the count is logged."""
    from usage.models import UsageDaily

    monkeypatch.setattr(connection.tenant, "timezone", "Mars/Olympus_Mons", raising=False)
    assert run_finish(run=running, status="succeeded", output="Glow gently.") is True
    row = AgentRun.objects.get(pk=running.pk)
    assert (row.status, row.output) == ("succeeded", "Glow gently.")
    assert RunEvent.objects.filter(run=row, type="run.succeeded").count() == 1
    assert not UsageDaily.objects.exists() and not row.usage_recorded  # the reaper's to count, once it can
    assert "ending it alone" in caplog.text and "could not count run" in caplog.text


def test_the_last_staged_events_check_and_artifact_end_with_the_run_or_not_at_all(running):
    """The loop's last write (the output's check, its artifact, events staged after the last turn)
    is the finish itself: with the lease lost none of it is written; else the staged events come
    just before the terminal one."""
    check = RunCheck(checks={"banned_terms": [], "passed": True}, review_status="", review_reason="")
    artifact = Artifact(run=running, kind="output", title="copy output", content="Glow gently.")
    staged = {"events": [check.event(), ("run.handed_off", {"to": "content"})], "check": check,
              "artifacts": [artifact]}

    running.lease_owner = "w2"
    assert run_finish(run=running, status="succeeded", output="Glow gently.", **staged) is False
    assert not Artifact.objects.filter(run=running).exists()
    assert not RunEvent.objects.filter(run=running, type__in=["run.checked", "run.handed_off"]).exists()

    running.lease_owner = "w1"
    assert run_finish(run=running, status="succeeded", output="Glow gently.", **staged) is True
    row = AgentRun.objects.get(pk=running.pk)
    assert (row.checks, row.status) == ({"banned_terms": [], "passed": True}, "succeeded")
    assert Artifact.objects.get(run=running).content == "Glow gently."
    tail = list(RunEvent.objects.filter(run=running).order_by("-seq").values_list("seq", "type")[:3])
    assert tail == [(row.last_seq, "run.succeeded"), (row.last_seq - 1, "run.handed_off"),
                    (row.last_seq - 2, "run.checked")]
