"""Two (four) beat workers sweep the same committed approval at the same moment: each SLA step is
claimed in the database, so it is notified once (real threads, real PostgreSQL, committed data)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection

from agents.approvals import approvals_sla_sweep
from agents.loop import execute_run
from agents.models import ApprovalRequest, RunStatus
from agents.services import run_create
from tuning.services import client_create, instance_tuning_update

from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401


@pytest.fixture
def committed_waiting(live_instance, live_db, runs_stay_here, scripted):  # noqa: F811
    instance = live_instance.instance
    connection.set_tenant(instance)
    instance_tuning_update(actor=None, changes={"require_approval_for": ["save_draft"]}, reason="legal")
    client = client_create(name="Race Client")
    admin = get_user_model().objects.get(email="admin@live.localhost")
    marker = f"race-{uuid.uuid4().hex[:6]}"
    scripted.script(marker, [tool_turn(("toolu_c1", "save_draft", {"content": "Hi."})), text_turn()])
    run = run_create(actor=admin, agent_type="copy", task=f"{marker}: caption", client_id=client.pk,
                     sandbox=True).run
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    yield instance, ApprovalRequest.objects.get(run=run)
    connection.set_schema_to_public()


def _sweep_at_once(instance, at, workers=4) -> list[int]:
    barrier, results = threading.Barrier(workers), []

    def beat() -> None:
        connection.set_tenant(instance)
        try:
            barrier.wait(5)
            results.append(approvals_sla_sweep(now=at))
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_beats_notify_each_step_once(committed_waiting, mailoutbox):
    instance, approval = committed_waiting
    for at, subject in ((approval.warn_at + timedelta(seconds=1), "Approval due soon"),
                        (approval.sla_due_at + timedelta(seconds=1), "Approval overdue (escalated)"),
                        (approval.expires_at + timedelta(seconds=1), "Approval expired")):
        before = len(mail.outbox)
        assert sorted(_sweep_at_once(instance, at)) == [0, 0, 0, 1]
        assert [m.subject.split(":")[0] for m in mail.outbox[before:]] == [subject]
    connection.set_tenant(instance)
    steps = [t for t in approval.run.events.values_list("type", flat=True) if t.startswith("approval.")]
    assert steps == ["approval.requested", "approval.sla_warning", "approval.sla_escalated", "approval.expired"]
