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
from versions.models import EvalResult, EvalRun, UpdateNotification

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


def test_an_update_is_gated_by_the_eval_set_run_on_the_worker(live_instance, live_db, celery_worker, daphne_server,
                                                                fake_model, monkeypatch):
    """Five media-buying cases; the model plans for reach on one of them under 2.4.0's prompt (its
    breaking change). Opening the sandbox runs the set on both versions through the worker: 5/5 vs
    4/5 side by side, the update's recommendation turns to caution, a staged approval over HTTP is
    409 naming the case. 2.4.1 (the change rolled back) passes 5/5 and is approved; that last part
    runs here, since only this process registered 2.4.1."""
    from agents import registry
    from versions import services
    from versions.evals.gating import eval_comparison
    from versions.services import catalog_sync, release_notify_instance
    from versions.tasks import eval_run_advance

    from .helpers import catalog_before_release
    from .test_evals import drive
    from .test_evals_gating import fixed_spec, media_cases
    from .test_scenario_live import Api

    instance, schema = live_instance.instance, live_instance.instance.schema_name
    catalog_before_release()
    try:
        with schema_context(schema):
            services.version_config_update(actor=None, agent_type="media_buying", changes={"pinned_version": "2.3.1"})
            services.version_config_update(actor=None, agent_type="media_buying", changes={"pinned_version": None})
            cases = media_cases(fake_model)
            release_notify_instance(agent_type="media_buying", version="2.4.0", previous_version="2.3.1")
            update = UpdateNotification.objects.get(agent_type="media_buying", version="2.4.0")
            _, session = services.notification_review(actor=live_instance.admin, notification_id=update.pk,
                                                      action="sandbox")  # queues both eval runs on commit

            def both_finished():
                runs = list(EvalRun.objects.filter(sandbox_session=session, status=EvalRun.Status.SUCCEEDED))
                return runs if len(runs) == 2 else None

            done = {r.version: r for r in wait_for(both_finished, timeout=120, interval=0.3)}
            assert (done["2.3.1"].cases_passed, done["2.4.0"].cases_passed, done["2.4.0"].cases_total) == (5, 4, 5)
            assert AgentRun.objects.filter(metadata__eval_run__in=[str(r.pk) for r in done.values()],
                                           sandbox=True, status="succeeded").count() == 10
            update.refresh_from_db()
            assert update.recommendation == "caution" and "Evals: 2.4.0 passes 4/5" in update.reason
        connection.set_schema_to_public()

        api = Api(instance, live_instance.admin, daphne_server)
        status, body = api("GET", f"/sandbox/{session.pk}")
        assert status == 200 and (body["evals"]["current"]["passed"], body["evals"]["test"]["passed"]) == (5, 4)
        status, body = api("POST", f"/sandbox/{session.pk}/promote", {"reason": "looks fine"})
        assert status == 409, body
        assert "failing on the candidate only: “Plan 3: conversions by default”" in body["error"]["message"]
        assert [r["case_id"] for r in body["error"]["details"]["regressions"]] == [cases[3].pk]

        # the fix, released: run here (the worker does not know 2.4.1)
        held: list = []
        monkeypatch.setattr(eval_run_advance, "apply_async", lambda *a, **k: held.append(k))
        spec = registry.register(fixed_spec())
        try:
            catalog_sync(fanout_schemas=[])
            with schema_context(schema):
                services.sandbox_defer(actor=live_instance.admin, session_id=session.pk, reason="wait for a fix")
                release_notify_instance(agent_type="media_buying", version=spec.version, previous_version="2.3.1")
                fixed = UpdateNotification.objects.get(agent_type="media_buying", version=spec.version)
                monkeypatch.setattr("agents.tasks.run_agent.apply_async", lambda *a, **k: held.append(k))
                _, session = services.notification_review(actor=live_instance.admin, notification_id=fixed.pk,
                                                          action="sandbox")
                for eval_run in EvalRun.objects.filter(sandbox_session=session):
                    drive(eval_run)
                assert eval_comparison(agent_type="media_buying", current_version="2.3.1",
                                       test_version=spec.version)["state"] == "ok"
                config = services.sandbox_promote(actor=live_instance.admin, session_id=session.pk, reason="5/5")
                assert config.current_version == spec.version
        finally:
            registry._REGISTRY["media_buying"].pop(spec.version, None)
    finally:
        connection.set_schema_to_public()
        from versions.catalog.models import CatalogVersion

        CatalogVersion.objects.filter(agent_type="media_buying", version="2.4.1").delete()
        catalog_sync(fanout_schemas=[])


def test_an_eval_run_whose_task_was_lost_is_finished_once_after_the_sweep(live_instance, live_db, celery_worker,
                                                                         fake_model, monkeypatch):
    """The broker lost the eval run's task (nothing consumed it): the sweep queues a pass once its
    last pass is stale, the worker runs every case once and the summary is written; a sweep after
    that queues nothing."""
    from datetime import timedelta

    from django.utils import timezone

    from versions.evals.services import eval_runs_sweep
    from versions.tasks import eval_run_advance

    with schema_context(live_instance.instance.schema_name):
        for i in range(3):
            marker = f"evlost-{uuid.uuid4().hex[:10]}"
            fake_model.script(marker, [text_turn("Glow gently, Desert Bloom.")], by_position=True)
            eval_case_create(actor=None, data={"agent_type": "copy", "task": f"{marker}: caption {i}",
                                               "expectations": {"phrases_required": ["glow"]}})
        with monkeypatch.context() as broker:
            broker.setattr(eval_run_advance, "apply_async", lambda *args, **kwargs: None)  # lost on its way
            eval_run = eval_run_start(actor=live_instance.admin, agent_type="copy")
        assert eval_runs_sweep() == 0, "not stale yet"
        assert eval_runs_sweep(now=timezone.now() + timedelta(seconds=31)) == 1

        def finished():
            row = EvalRun.objects.get(pk=eval_run.pk)
            return row if row.status == EvalRun.Status.SUCCEEDED else None

        done = wait_for(finished, timeout=90, interval=0.3)
        assert (done.cases_done, done.cases_passed, done.cases_total) == (3, 3, 3)
        assert AgentRun.objects.filter(metadata__eval_run=str(eval_run.pk)).count() == 3
        assert eval_runs_sweep(now=timezone.now() + timedelta(hours=1)) == 0
    connection.set_schema_to_public()
