"""An eval run through the real Celery worker (issue 22 part 2): five cases as sandbox runs executed
concurrently by the worker against the fake Messages API, one failing; a duplicate task delivered
at once neither starts nor counts a case twice."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from agents.models import AgentRun
from spokestack.sample_erp import DEMO_API_KEYS
from spokestack.tenancy.services import instance_set_erp
from tuning.services import client_create
from versions.evals.services import eval_case_create, eval_run_start
from versions.models import EvalResult, EvalRun

from ..conftest import wait_for
from ..skills.conftest import text_turn, tool_turn

pytestmark = pytest.mark.live


def test_five_cases_run_concurrently_on_the_worker_and_one_fails(live_instance, live_db, celery_worker, fake_model,
                                                                 sample_erp, egress_loopback):
    from versions.tasks import eval_run_advance

    egress_loopback(sample_erp[0].server_port)
    instance = live_instance.instance
    instance_set_erp(instance=instance, base_url=sample_erp[1], api_key=DEMO_API_KEYS["alpha"])
    with schema_context(instance.schema_name):
        client = client_create(name="Desert Bloom Cosmetics", vertical="beauty")
        cases = []
        for i in range(5):
            marker = f"evlive-{uuid.uuid4().hex[:10]}"
            text = "Our oud, naturally." if i == 3 else "Glow, naturally: Desert Bloom."
            fake_model.script(marker, [tool_turn((f"toolu_{uuid.uuid4().hex[:12]}", "save_draft", {"content": text})),
                                       text_turn(text)])
            cases.append(eval_case_create(actor=None, data={
                "agent_type": "copy", "task": f"{marker}: caption {i}", "client_id": client.pk,
                "expectations": {"tools_required": ["save_draft"], "phrases_forbidden": ["oud"],
                                 "brand_rules_pass": True}}))
        eval_run = eval_run_start(actor=live_instance.admin, agent_type="copy")  # queued on commit (autocommit)
        eval_run_advance.apply_async(kwargs={"eval_run_id": str(eval_run.pk)})  # a duplicate delivery

        def finished():
            row = EvalRun.objects.get(pk=eval_run.pk)
            return row if row.status == EvalRun.Status.SUCCEEDED else None

        done = wait_for(finished, timeout=90, interval=0.3)
        assert (done.cases_done, done.cases_passed, done.cases_total) == (5, 4, 5)
        assert done.summary["failing"] == [{"case_id": cases[3].pk, "title": str(cases[3]), "failures": [
            {"expectation": "phrases_forbidden", "message": "forbidden phrase 'oud' found"}]}]
        assert EvalResult.objects.filter(eval_run=eval_run).count() == 5
        runs = AgentRun.objects.filter(metadata__eval_run=str(eval_run.pk))
        assert runs.count() == 5 and all(r.sandbox and r.status == "succeeded" for r in runs)
        # concurrently: the runs overlapped in time rather than running one after another
        spans = sorted((r.started_at, r.finished_at) for r in runs)
        assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))
    connection.set_schema_to_public()
