"""One owner per execution (issue #12): a claim token per execution, a heartbeat that keeps the
lease alive and carries cancels from the database, and a reaper that re-queues a run once per
expired lease."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from agents.loop import execute_run
from agents.models import AgentRun, RunEvent, RunStatus
from agents.services import LeaseLost, new_claim_token, run_claim, run_finish, run_write
from agents.tasks import reap_stale_runs
from agents.watcher import RunWatcher

from ..conftest import wait_for


def _run(**fields) -> AgentRun:
    return AgentRun.objects.create(agent_type="copy", agent_version="1.0.0", task="Write a tagline.", **fields)


def _lease_left(run_id) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXTRACT(EPOCH FROM lease_until - now()) FROM agents_agentrun WHERE id = %s", [run_id])
        return float(cursor.fetchone()[0])


def test_a_second_delivery_to_the_same_process_is_refused_while_the_first_holds_the_run(in_a):
    run = _run()
    first = run_claim(run_id=run.pk, worker=new_claim_token("host:42"))
    assert first is not None

    # The duplicate task lands in the same process (same hostname:pid): it must not run the agent.
    assert execute_run(run_id=str(run.pk), worker="host:42") == "skipped"
    assert list(RunEvent.objects.filter(run=run).values_list("type", flat=True)) == ["run.started"]
    assert AgentRun.objects.get(pk=run.pk).lease_owner == first.lease_owner


def test_claim_tokens_differ_per_execution_and_the_lease_is_on_the_database_clock(in_a, settings):
    settings.RUN_LEASE_SECONDS = 10
    assert new_claim_token("host:42") != new_claim_token("host:42")
    run = run_claim(run_id=_run().pk, worker=new_claim_token("host:42"))
    assert 9.0 < _lease_left(run.pk) <= 10.0


def test_after_the_lease_runs_out_the_next_execution_owns_the_run_and_the_first_writes_nothing(in_a):
    run = _run()
    first = run_claim(run_id=run.pk, worker=new_claim_token("a:1"))
    AgentRun.objects.filter(pk=run.pk).update(lease_until="2000-01-01T00:00:00Z")
    second = run_claim(run_id=run.pk, worker=new_claim_token("a:1"))
    assert second is not None and second.resumed

    with pytest.raises(LeaseLost):
        run_write(run=first, worker=first.lease_owner, events=[("turn.started", {"iteration": 1})])
    assert not run_finish(run=first, status="succeeded", output="from the first execution")
    assert run_finish(run=second, status="succeeded", output="from the second")
    assert AgentRun.objects.get(pk=run.pk).output == "from the second"


@pytest.fixture
def committed(live_instance):
    """A run in a committed instance: the heartbeat's own connection sees it."""
    schema = live_instance.instance.schema_name

    def make(**fields) -> AgentRun:
        with schema_context(schema):
            return _run(**fields)

    return schema, make


def test_the_heartbeat_keeps_a_silent_execution_s_lease_alive_and_stops_when_forgotten(committed, settings):
    settings.RUN_LEASE_SECONDS = 1  # a heartbeat every 0.2 s
    schema, make = committed
    watcher = RunWatcher(poll_seconds=0.05)
    with schema_context(schema):
        run = run_claim(run_id=make().pk, worker=new_claim_token("w:1"))
        watcher.watch(run.pk, schema, owner=run.lease_owner)
        time.sleep(2.5)  # more than twice the lease, without a single write from the run
        assert _lease_left(run.pk) > 0.5
        assert run_claim(run_id=run.pk, worker=new_claim_token("w:2")) is None, "a live lease refuses others"

        watcher.forget(run.pk)
        time.sleep(1.3)
        assert run_claim(run_id=run.pk, worker=new_claim_token("w:2")) is not None, "nobody renews it any more"
    connection.set_schema_to_public()


def test_the_heartbeat_carries_a_cancel_stored_only_in_the_database_and_notices_a_takeover(committed, settings):
    settings.RUN_LEASE_SECONDS = 1
    schema, make = committed
    watcher = RunWatcher(poll_seconds=0.05)
    with schema_context(schema):
        cancelled = run_claim(run_id=make().pk, worker=new_claim_token("w:1"))
        taken = run_claim(run_id=make().pk, worker=new_claim_token("w:1"))
        watcher.watch(cancelled.pk, schema, owner=cancelled.lease_owner)
        watcher.watch(taken.pk, schema, owner=taken.lease_owner)
        # The cache is not told (as during a Redis outage): only the row says so.
        AgentRun.objects.filter(pk=cancelled.pk).update(cancel_requested=True)
        wait_for(lambda: watcher.cancelled(cancelled.pk), timeout=3)
        assert not watcher.lost(cancelled.pk)

        AgentRun.objects.filter(pk=taken.pk).update(lease_owner="another:execution")
        wait_for(lambda: watcher.lost(taken.pk), timeout=3)
        assert not watcher.cancelled(taken.pk)
    connection.set_schema_to_public()


def test_the_reaper_requeues_a_run_once_per_expired_lease_however_many_copies_run(in_a):
    dead = _run()
    run_claim(run_id=dead.pk, worker=new_claim_token("dead:1"))
    AgentRun.objects.filter(pk=dead.pk).update(lease_until="2000-01-01T00:00:00Z")
    live = _run()
    run_claim(run_id=live.pk, worker=new_claim_token("alive:1"))

    reap_stale_runs()
    first_mark = AgentRun.objects.get(pk=dead.pk).requeued_at
    assert first_mark is not None
    assert AgentRun.objects.get(pk=live.pk).requeued_at is None, "a live lease is left alone"
    for _ in range(8):  # copies of the task that piled up during an outage
        reap_stale_runs()
    assert AgentRun.objects.get(pk=dead.pk).requeued_at == first_mark

    # A new execution claims it, and dies too: a new expired lease, so one more re-queue.
    run_claim(run_id=dead.pk, worker=new_claim_token("next:1"))
    assert AgentRun.objects.get(pk=dead.pk).requeued_at is None
    AgentRun.objects.filter(pk=dead.pk).update(lease_until="2000-01-01T00:00:01Z")
    reap_stale_runs()
    assert AgentRun.objects.get(pk=dead.pk).requeued_at is not None


def test_the_reaper_starts_a_queued_run_whose_enqueue_was_lost_but_not_a_fresh_one(in_a):
    lost = _run()
    AgentRun.objects.filter(pk=lost.pk).update(created_at="2000-01-01T00:00:00Z")
    fresh = _run()
    reap_stale_runs()
    assert AgentRun.objects.get(pk=lost.pk).requeued_at is not None
    assert AgentRun.objects.get(pk=fresh.pk).requeued_at is None
    assert AgentRun.objects.get(pk=lost.pk).status == RunStatus.QUEUED
