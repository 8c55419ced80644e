"""Reads for eval cases and eval runs, scoped by the policy table: managers see every case and
result; an account manager sees their clients' cases and, in an eval run, their clients' results."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db.models import Q, QuerySet

from spokestack.accounts import policy
from spokestack.errors import NotFound

from ..models import EvalCase, EvalResult, EvalRun


def _scope(actor: AbstractUser | None, action: str) -> Q:
    if policy.acts_on_every_client(actor, action):
        return Q()
    return Q(client__in=policy.clients_for(actor, action))


def eval_cases(*, actor: AbstractUser | None, action: str = "eval.view", agent_type: str | None = None) -> QuerySet:
    policy.require(actor, action)
    rows = EvalCase.objects.filter(_scope(actor, action)).select_related("client")
    return rows.filter(agent_type=agent_type) if agent_type else rows


def eval_case_get(*, actor: AbstractUser | None, case_id: Any) -> EvalCase:
    try:
        pk = int(case_id)
    except (TypeError, ValueError):
        pk = None
    case = eval_cases(actor=actor).filter(pk=pk).first() if pk is not None else None
    if case is None:
        raise NotFound(f"No eval case {case_id} in this instance.")
    return case


def eval_runs(*, actor: AbstractUser | None, agent_type: str | None = None) -> QuerySet:
    policy.require(actor, "eval.view")
    rows = EvalRun.objects.all()
    return rows.filter(agent_type=agent_type) if agent_type else rows


def eval_run_get(*, actor: AbstractUser | None, eval_run_id: Any) -> EvalRun:
    try:
        pk = uuid.UUID(str(eval_run_id))
    except (TypeError, ValueError):
        pk = None
    run = eval_runs(actor=actor).filter(pk=pk).first() if pk is not None else None
    if run is None:
        raise NotFound(f"No eval run {eval_run_id} in this instance.")
    return run


def eval_results(*, actor: AbstractUser | None, eval_run: EvalRun) -> QuerySet:
    """The results of an eval run the actor may see (an account manager: their clients' only)."""
    return (EvalResult.objects.filter(eval_run=eval_run).filter(_scope(actor, "eval.view"))
            .select_related("client").order_by("pk"))


def case_dict(case: EvalCase) -> dict[str, Any]:
    return {"id": case.pk, "agent_type": case.agent_type, "title": case.title, "task": case.task,
            "client_id": case.client_id, "client": case.client.name if case.client_id else None,
            "specialization": case.specialization, "expectations": case.expectations, "reference": case.reference,
            "source_run_id": str(case.source_run_id) if case.source_run_id else None, "enabled": case.enabled,
            "created_at": case.created_at.isoformat(), "updated_at": case.updated_at.isoformat()}


def result_dict(result: EvalResult) -> dict[str, Any]:
    return {"case_id": result.case_id, "title": result.case_title, "client_id": result.client_id,
            "run_id": str(result.run_id) if result.run_id else None, "status": result.status,
            "passed": {"passed": True, "failed": False}.get(result.status), "failures": result.failures,
            "skipped": result.skipped, "output_excerpt": result.output_excerpt, "tools_used": result.tools_used,
            "cost_usd": str(result.cost_usd), "duration_s": result.duration_s}


def eval_run_dict(actor: AbstractUser | None, eval_run: EvalRun, *, with_results: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(eval_run.pk), "agent_type": eval_run.agent_type, "version": eval_run.version,
        "tuning_overlay": eval_run.tuning_overlay, "status": eval_run.status,
        "progress": {"done": eval_run.cases_done, "total": eval_run.cases_total},
        "passed": eval_run.cases_passed, "pass_rate": eval_run.pass_rate, "cost_usd": str(eval_run.cost_usd),
        "created_at": eval_run.created_at.isoformat(),
        "started_at": eval_run.started_at.isoformat() if eval_run.started_at else None,
        "finished_at": eval_run.finished_at.isoformat() if eval_run.finished_at else None,
    }
    if not with_results:
        if not policy.acts_on_every_client(actor, "eval.view"):  # the whole set's figures are the managers'
            body.update(passed=None, pass_rate=None, cost_usd=None)
        return body
    results = list(eval_results(actor=actor, eval_run=eval_run))
    if policy.acts_on_every_client(actor, "eval.view"):
        body["summary"] = eval_run.summary
    else:  # an account manager: the figures of their clients' cases only
        passed = sum(1 for r in results if r.status == EvalResult.Status.PASSED)
        done = sum(1 for r in results if r.status != EvalResult.Status.PENDING)
        body.update(passed=passed, pass_rate=round(passed / done, 3) if done else None,
                    progress={"done": done, "total": len(results)},
                    cost_usd=str(sum(r.cost_usd for r in results)))
        body["summary"] = {"passed": passed, "failed": done - passed, "total": len(results),
                           "failing": [{"case_id": r.case_id, "title": r.case_title, "failures": r.failures}
                                       for r in results if r.status == EvalResult.Status.FAILED]}
    body["results"] = [result_dict(r) for r in results]
    return body
