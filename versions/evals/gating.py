"""Evals deciding things (DESIGN §16, issue 22 part 3).

- A sandbox for an update runs the agent type's eval set on both versions (`sandbox_evals_start`);
  `eval_comparison` puts the two results side by side for the update review and the sandbox page,
  and `recommendation_from_evals` feeds the update's recommendation once both have finished.
- A `staged` policy refuses approval while the candidate passes fewer cases than the current
  version, naming the cases it fails that the current version passes (`staged_gate`).
- An instance may require a what-if eval before a rule or an avoided term for an agent is saved
  (`InstanceTuning.require_eval_for_tuning`): `what_if_required` is asked by the tuning services and
  answers 409 saying which what-if to run, until one of that change has finished.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.utils import timezone

from spokestack.errors import Conflict

from ..models import EvalCase, EvalResult, EvalRun

REQUIRE_EVAL = "require_eval_for_tuning"
WHAT_IF_VALID_FOR = timedelta(days=1)
DONE = (EvalRun.Status.SUCCEEDED, EvalRun.Status.FAILED)


# --- an update: both versions side by side ------------------------------------------------------


def sandbox_evals_start(session: Any, actor: AbstractUser | None = None) -> list[EvalRun]:
    """Queue the eval set on the session's current and test versions (nothing when the agent type
    has no enabled cases). Both runs take the same cases, so their results compare case by case."""
    from .services import eval_run_queue

    case_ids = list(EvalCase.objects.filter(agent_type=session.agent_type, enabled=True).order_by("pk")
                    .values_list("pk", flat=True))
    if not case_ids:
        return []
    return [eval_run_queue(agent_type=session.agent_type, version=version, case_ids=case_ids, actor=actor,
                           sandbox_session=session)
            for version in (session.current_version, session.test_version)]


def _side(eval_run: EvalRun | None) -> dict[str, Any] | None:
    if eval_run is None:
        return None
    return {"eval_run_id": str(eval_run.pk), "version": eval_run.version, "status": eval_run.status,
            "done": eval_run.cases_done, "total": eval_run.cases_total, "passed": eval_run.cases_passed,
            "cost_usd": str(eval_run.cost_usd), "finished": eval_run.status in DONE}


def _pair(agent_type: str, current_version: str, test_version: str) -> tuple[EvalRun | None, EvalRun | None]:
    """The newest sandbox session of `test_version` that ran evals gives the pair; else the newest
    plain runs of each version."""
    runs = EvalRun.objects.filter(agent_type=agent_type, tuning_overlay={})
    paired = (runs.filter(sandbox_session__test_version=test_version, version=test_version)
              .order_by("-created_at").first())
    if paired is not None:
        current = runs.filter(sandbox_session=paired.sandbox_session_id, version=current_version).first()
        if current is not None:
            return current, paired
    return (runs.filter(version=current_version).order_by("-created_at").first(),
            runs.filter(version=test_version).order_by("-created_at").first())


def eval_comparison(*, agent_type: str, current_version: str, test_version: str) -> dict[str, Any] | None:
    """Both versions' results of the eval set, case by case; None when neither version was evaluated.

    state: "running" (either still runs), "fewer" (the candidate passes fewer cases), "ok", or
    "incomplete" (only one version has a result). `regressions` are the cases the candidate fails
    that the current version passes, with the failing expectation."""
    current, test = _pair(agent_type, current_version, test_version)
    if current is None and test is None:
        return None
    out: dict[str, Any] = {"current": _side(current), "test": _side(test), "cases": [], "regressions": []}
    if current is None or test is None:
        out.update(state="incomplete", message=f"Only {(current or test).version} has been evaluated.")
        return out
    by_case: dict[int | None, dict[str, Any]] = {}
    for result in EvalResult.objects.filter(eval_run__in=[current, test]).order_by("pk"):
        row = by_case.setdefault(result.case_id, {"case_id": result.case_id, "title": result.case_title,
                                                  "current": None, "test": None})
        side = "current" if result.eval_run_id == current.pk else "test"
        row[side] = {"status": result.status, "failures": result.failures, "run_id": str(result.run_id or "")}
    out["cases"] = list(by_case.values())
    out["regressions"] = [
        {"case_id": row["case_id"], "title": row["title"], "failures": row["test"]["failures"]}
        for row in out["cases"] if row["test"] and row["current"] and row["test"]["status"] == EvalResult.Status.FAILED
        and row["current"]["status"] == EvalResult.Status.PASSED]
    if not (out["current"]["finished"] and out["test"]["finished"]):
        out.update(state="running", message=f"The eval set is running: {current.version} {current.cases_done}/"
                                            f"{current.cases_total}, {test.version} {test.cases_done}/{test.cases_total}.")
    elif test.cases_passed < current.cases_passed:
        out.update(state="fewer", message=f"{test.version} passes {test.cases_passed}/{test.cases_total} eval cases, "
                                          f"{current.version} {current.cases_passed}/{current.cases_total}"
                                          f"{_naming(out['regressions'])}.")
    else:
        out.update(state="ok", message=f"{test.version} passes {test.cases_passed}/{test.cases_total} eval cases, "
                                       f"{current.version} {current.cases_passed}/{current.cases_total}.")
    return out


def _naming(regressions: list[dict[str, Any]]) -> str:
    if not regressions:
        return ""
    named = "; ".join(f"“{r['title']}” ({', '.join(f['message'] for f in r['failures'][:2]) or 'failed'})"
                      for r in regressions[:5])
    return f"; failing on the candidate only: {named}"


def staged_gate(*, agent_type: str, current_version: str, test_version: str) -> bool:
    """Under a staged policy: 409 while the candidate's eval results are missing, running or worse
    than the current version's. Returns True when a finished comparison stands (it counts as the
    sandbox test a staged approval needs), False when the agent type has no eval cases to run."""
    comparison = eval_comparison(agent_type=agent_type, current_version=current_version,
                                 test_version=test_version)
    has_cases = EvalCase.objects.filter(agent_type=agent_type, enabled=True).exists()
    if comparison is None or comparison["state"] == "incomplete":
        if not has_cases:
            return False
        raise Conflict(f"Policy staged: run the eval set on {current_version} and {test_version} before you approve "
                       f"{test_version}: opening a sandbox for it starts both (in an open one: its \"Run the eval set\" "
                       "button, or POST /api/v1/sandbox/{id}/evals).",
                       details={"policy": "staged", "needs": "eval_results", "version": test_version})
    if comparison["state"] == "running":
        raise Conflict(f"Policy staged: wait for the eval set to finish before you approve {test_version}. "
                       f"{comparison['message']}", details={"policy": "staged", "needs": "eval_results_finished"})
    if comparison["state"] == "fewer":
        raise Conflict(f"Policy staged: {comparison['message']} Approve it when it passes at least as many cases "
                       f"(a fixed version, or the cases changed and run again).",
                       details={"policy": "staged", "needs": "eval_not_worse", "regressions": comparison["regressions"],
                                "current": comparison["current"], "test": comparison["test"]})
    return True


def recommendation_from_evals(eval_run: EvalRun) -> None:
    """When the second eval run of a sandbox session finishes, the update's recommendation hears of
    it: fewer cases passing makes it `caution` and says which; the figures join its analysis."""
    from ..models import Recommendation, UpdateNotification

    session = eval_run.sandbox_session
    if session is None:
        return
    comparison = eval_comparison(agent_type=session.agent_type, current_version=session.current_version,
                                 test_version=session.test_version)
    if comparison is None or comparison["state"] not in ("fewer", "ok"):
        return
    with transaction.atomic():
        notification = (UpdateNotification.objects.select_for_update()
                        .filter(agent_type=session.agent_type, version=session.test_version).first())
        if notification is None:
            return
        notification.analysis = {**(notification.analysis or {}), "evals": {
            "state": comparison["state"], "message": comparison["message"], "current": comparison["current"],
            "test": comparison["test"], "regressions": comparison["regressions"]}}
        fields = ["analysis"]
        if comparison["state"] == "fewer" and notification.recommendation != Recommendation.CAUTION:
            notification.recommendation = Recommendation.CAUTION
            notification.reason = f"{notification.reason} Evals: {comparison['message']}".strip()
            fields += ["recommendation", "reason"]
        notification.save(update_fields=fields)


# --- tuning: a what-if before a change is saved -------------------------------------------------


def require_eval_enabled() -> bool:
    from tuning.models import InstanceTuning

    return bool(InstanceTuning.objects.filter(agent_type="").values_list(REQUIRE_EVAL, flat=True).first())


def what_if_overlay(*, client_id: int | None, rules: list[dict[str, str]]) -> dict[str, Any]:
    overlay: dict[str, Any] = {"rules": [{"kind": r["kind"], "text": r["text"].strip()} for r in rules]}
    if client_id is not None:
        overlay = {"client_id": client_id, **overlay}
    return overlay


def _agent_types_in_scope(*, client_id: int | None, agent_type: str) -> list[str]:
    cases = EvalCase.objects.filter(enabled=True)
    if client_id is not None:
        cases = cases.filter(client_id=client_id)
    if agent_type:
        cases = cases.filter(agent_type=agent_type)
    return sorted(set(cases.values_list("agent_type", flat=True)))


def what_if_required(*, client_id: int | None, agent_type: str, rules: list[dict[str, str]]) -> None:
    """409 unless a what-if eval of these rules finished in the last day for every agent type they
    reach that has eval cases (of that client, for a client's rule). Asked by the tuning services
    when the instance requires it; a rollback and the system are not asked."""
    if not rules or not require_eval_enabled():
        return
    since = timezone.now() - WHAT_IF_VALID_FOR
    for kind_of_agent in _agent_types_in_scope(client_id=client_id, agent_type=agent_type):
        wanted = what_if_overlay(client_id=client_id, rules=rules)
        runs = EvalRun.objects.filter(agent_type=kind_of_agent, created_at__gte=since,
                                      tuning_overlay__contains=wanted)
        if client_id is None:
            runs = runs.exclude(tuning_overlay__has_key="client_id")
        if runs.filter(status=EvalRun.Status.SUCCEEDED).exists():
            continue
        running = runs.exclude(status__in=DONE).order_by("-created_at").first()
        if running is not None:
            raise Conflict(f"The what-if eval of this change on {kind_of_agent} is still running "
                           f"({running.cases_done}/{running.cases_total}); save it when it has finished.",
                           details={"needs": "what_if_eval_finished", "eval_run_id": str(running.pk)})
        raise Conflict(f"This instance requires a what-if eval before this change is saved: run the eval set of "
                       f"{kind_of_agent} with it (“What-if” on the tuning form, or POST /api/v1/evals/runs with "
                       f"this agent_type and tuning_overlay), then save it again.",
                       details={"needs": "what_if_eval", "agent_type": kind_of_agent, "tuning_overlay": wanted})


def what_if_start(*, actor: AbstractUser | None, client_id: int | None, agent_type: str,
                  rules: list[dict[str, str]]) -> list[EvalRun]:
    """The tuning form's "What-if": an eval run of the change for each agent type it reaches that
    has cases (nothing is saved). 409 when no case is in reach."""
    from .services import eval_run_start

    agent_types = _agent_types_in_scope(client_id=client_id, agent_type=agent_type)
    if not agent_types:
        raise Conflict("No eval cases are in reach of this change"
                       f"{' for this client' if client_id else ''}; add some first (make one from a run).",
                       details={"needs": "eval_cases"})
    overlay = what_if_overlay(client_id=client_id, rules=rules)
    return [eval_run_start(actor=actor, agent_type=t, tuning_overlay=overlay) for t in agent_types]
