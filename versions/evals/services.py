"""Writes for eval cases and eval runs (DESIGN §16, issue 22 parts 1–2).

Cases: `eval_case_create/update/delete` and `eval_case_from_run` (one click from a succeeded run:
its output becomes the reference, expectations are proposed from it). Every change is an audit
entry (entity `eval_case`, tier 3 for a client's case) and rolls back through these services.

Runs: `eval_run_start` queues an EvalRun for one configuration — a version, optionally with a
tuning overlay that is never saved — and the task `versions.eval_run_advance` drives it:
`eval_run_advance` starts each case as a sandbox run (its EvalResult row is created with the run,
unique per case, under the EvalRun's row lock, so a duplicate task starts nothing twice), records
each finished run's verdict once (a conditional update of the pending result, and the counters in
the same transaction) and writes the summary when the last case is in. The cases' runs go to the
workers together, so they execute concurrently; a run the instance's concurrency limit refuses is
started on a later pass.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from spokestack.accounts import policy
from spokestack.errors import Conflict, InvalidInput, NotFound
from tuning.models import Client, agent_label

from ..models import EvalCase, EvalResult, EvalRun
from .checks import case_verdict, clean_expectations

log = logging.getLogger(__name__)
CASE_FIELDS = {"agent_type", "title", "task", "client_id", "specialization", "expectations", "reference", "enabled"}
EXCERPT_CHARS = 600
ADVANCE_EVERY_S = 1.0
OVERLAY_KEYS = {"client_id", "rules"}
OVERLAY_RULE_KINDS = ("always", "never", "prefer", "avoid_term")


# --- cases ----------------------------------------------------------------------------------------


def _agent_type(value: Any) -> str:
    from spokestack.catalog import require_agent_type

    if not isinstance(value, str) or not value:
        raise InvalidInput("agent_type: name the agent type the case is for (e.g. copy).",
                           details={"agent_type": "required"})
    try:
        require_agent_type(value)
    except NotFound:
        raise InvalidInput(f"agent_type: no agent type '{value}' in this instance.",
                           details={"agent_type": value}) from None
    return value


def _client(actor: AbstractUser | None, client_id: Any, action: str) -> Client | None:
    """The case's client: one the actor may act on; none only for roles that act on every client."""
    if client_id in (None, ""):
        if not policy.acts_on_every_client(actor, action):
            raise InvalidInput("client_id: your role writes cases for the clients assigned to you; give one of "
                               "their ids.", details={"client_id": "required"})
        return None
    from versions.selectors import visible_client

    client = visible_client(actor, client_id)
    policy.require(actor, action, client)
    return client


def _text(value: Any, field: str, *, required: bool = False, max_len: int | None = None) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: give text.", details={field: "text"})
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field}: describe what the agent should do.", details={field: "required"})
    if max_len and len(value) > max_len:
        raise InvalidInput(f"{field}: at most {max_len} characters.", details={field: f"{len(value)} characters"})
    return value


def _apply(actor: AbstractUser | None, case: EvalCase, data: dict[str, Any]) -> None:
    from agents.services import check_task
    from versions.services import _sandbox_specialization

    unknown = sorted(set(data) - CASE_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown field(s) {', '.join(unknown)}; send {', '.join(sorted(CASE_FIELDS))}.",
                           details={"fields": unknown})
    if "agent_type" in data:
        case.agent_type = _agent_type(data["agent_type"])
    if "task" in data:
        check_task(data["task"], field="task")
        case.task = data["task"].strip()
    if "title" in data:
        case.title = _text(data["title"], "title", max_len=200)
    if "client_id" in data:
        case.client = _client(actor, data["client_id"], "eval.manage")
    if "specialization" in data:
        case.specialization = _sandbox_specialization(data["specialization"])
    if "expectations" in data:
        case.expectations = clean_expectations(data["expectations"])
    if "reference" in data:
        case.reference = _text(data["reference"], "reference")
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise InvalidInput("enabled: true or false.", details={"enabled": "boolean"})
        case.enabled = data["enabled"]


@transaction.atomic
def eval_case_create(*, actor: AbstractUser | None, data: dict[str, Any], _rollback_of: Any = None) -> EvalCase:
    policy.require(actor, "eval.manage")
    if not isinstance(data, dict):
        raise InvalidInput("Send an object with agent_type, task and expectations.")
    for required in ("agent_type", "task"):
        if data.get(required) in (None, ""):
            raise InvalidInput(f"{required}: required.", details={required: "required"})
    case = EvalCase(created_by=actor if getattr(actor, "pk", None) else None)
    _apply(actor, case, {"client_id": None, **data})
    case.full_clean()
    case.save()
    _audit(actor, case, "create", new=_snapshot(case), rollback_of=_rollback_of)
    return case


AUDITED = ("agent_type", "title", "task", "client_id", "specialization", "expectations", "reference", "enabled")


def _snapshot(case: EvalCase) -> dict[str, Any]:
    return {field: getattr(case, field) for field in AUDITED}


def _audit(actor: AbstractUser | None, case: EvalCase, action: str, *, old: Any = None, new: Any = None,
           rollback_of: Any = None) -> None:
    from tuning import audit
    from tuning.models import Entity, Tier

    audit.record(actor=actor, tier=Tier.CLIENT if case.client_id else Tier.INSTANCE, entity=Entity.EVAL_CASE,
                 entity_id=case.pk, action=action, old=old, new=new, client=case.client if case.client_id else None,
                 agent_type=case.agent_type, rollback_of=rollback_of)


def _eval_case_rollback(*, change: Any, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    """Undo one case entry through the services (so `eval.manage` is asked again): a creation
    deletes the case, a change restores it as it was, a deletion brings it back. The instance's
    "a what-if eval before a tuning change" switch is an entry of this entity too."""
    from .gating import REQUIRE_EVAL, require_eval_enabled

    if change.field == REQUIRE_EVAL:
        if require_eval_enabled() != change.new_value:
            raise Conflict(f"The setting changed again after entry #{change.pk}; change it directly instead.")
        require_eval_set(actor=actor, enabled=change.old_value, reason=reason, ticket=ticket, _rollback_of=change)
        return
    case = EvalCase.objects.filter(pk=int(change.entity_id)).first()
    current = _snapshot(case) if case is not None else None
    if change.action == "delete":
        if case is not None:
            raise Conflict(f"Entry #{change.pk}: the eval case exists again; change it directly instead.")
        eval_case_create(actor=actor, data=dict(change.old_value), _rollback_of=change)
        return
    if current != change.new_value:
        raise Conflict(f"The eval case changed again after entry #{change.pk}; change it directly instead.",
                       details={"audit_id": change.pk, "current": current})
    if change.action == "create":
        eval_case_delete(actor=actor, case_id=case.pk, _rollback_of=change)
    else:
        eval_case_update(actor=actor, case_id=case.pk, changes=dict(change.old_value), _rollback_of=change)


def eval_runs_sweep(*, now=None) -> int:
    """Queue a pass of every unfinished eval run whose task was lost (a worker killed mid-pass, the
    broker down when it re-queued itself): its last pass is older than EVAL_SWEEP_STALE_S. A pass
    is safe to run twice. Returns how many were queued (beat task `versions.eval_runs_sweep`)."""
    from django.conf import settings
    from django.db.models import Q

    from spokestack.tasks import enqueue_on_commit

    from ..tasks import eval_run_advance

    stale = (now or timezone.now()) - timedelta(seconds=settings.EVAL_SWEEP_STALE_S)
    ids = list(EvalRun.objects.filter(status__in=[EvalRun.Status.QUEUED, EvalRun.Status.RUNNING])
               .filter(Q(advanced_at__lt=stale) | Q(advanced_at=None, created_at__lt=stale))
               .values_list("pk", flat=True))
    for pk in ids:
        enqueue_on_commit(eval_run_advance, eval_run_id=str(pk))
    return len(ids)


@transaction.atomic
def require_eval_set(*, actor: AbstractUser | None, enabled: Any, reason: str = "", ticket: str = "",
                     _rollback_of: Any = None) -> bool:
    """Switch the instance's "a what-if eval before a tuning change is saved" (instance admins,
    as any instance tuning); audited, reversible."""
    from tuning import audit
    from tuning.models import Entity, InstanceTuning, Tier

    from .gating import REQUIRE_EVAL

    policy.require(actor, "instance_tuning.edit")
    if not isinstance(enabled, bool):
        raise InvalidInput(f"{REQUIRE_EVAL}: true or false.", details={REQUIRE_EVAL: repr(enabled)})
    row = InstanceTuning.objects.select_for_update().get_or_create(agent_type="")[0]
    if getattr(row, REQUIRE_EVAL) == enabled:
        return enabled
    setattr(row, REQUIRE_EVAL, enabled)
    row.save(update_fields=[REQUIRE_EVAL, "updated_at"])
    audit.record(actor=actor, tier=Tier.INSTANCE, entity=Entity.EVAL_CASE, entity_id=REQUIRE_EVAL,
                 action="update", field=REQUIRE_EVAL, old=not enabled, new=enabled, reason=reason, ticket=ticket,
                 affected_clients=[], rollback_of=_rollback_of)
    return enabled


def _register_rollback() -> None:
    from tuning import audit
    from tuning.models import Entity

    audit.rollback_handler(Entity.EVAL_CASE)(_eval_case_rollback)


def _case_for_change(actor: AbstractUser | None, case_id: Any) -> EvalCase:
    from .selectors import eval_cases

    try:
        pk = int(case_id)
    except (TypeError, ValueError):
        pk = None
    case = eval_cases(actor=actor, action="eval.manage").select_for_update(of=("self",)).filter(pk=pk).first() \
        if pk is not None else None
    if case is None:
        raise NotFound(f"No eval case {case_id} in this instance.")
    return case


@transaction.atomic
def eval_case_update(*, actor: AbstractUser | None, case_id: Any, changes: dict[str, Any],
                     _rollback_of: Any = None) -> EvalCase:
    policy.require(actor, "eval.manage")
    case = _case_for_change(actor, case_id)
    if not isinstance(changes, dict):
        raise InvalidInput("Send an object with the fields to change.")
    before = _snapshot(case)
    _apply(actor, case, changes)
    case.full_clean()
    case.save()
    if _snapshot(case) != before:
        _audit(actor, case, "update", old=before, new=_snapshot(case), rollback_of=_rollback_of)
    return case


@transaction.atomic
def eval_case_delete(*, actor: AbstractUser | None, case_id: Any, _rollback_of: Any = None) -> None:
    """Delete a case; the results of earlier eval runs keep its title (their case becomes empty)."""
    policy.require(actor, "eval.manage")
    case = _case_for_change(actor, case_id)
    _audit(actor, case, "delete", old=_snapshot(case), rollback_of=_rollback_of)
    case.delete()


def propose_expectations(run: Any) -> dict[str, Any]:
    """Expectations proposed from an approved output: the tools it called are required, its length
    ±50 %, and the client's brand check on (editable afterwards)."""
    called = list(dict.fromkeys(run.tool_calls.values_list("name", flat=True)))
    length = len(run.output or "")
    proposed: dict[str, Any] = {"brand_rules_pass": True}
    if called:
        proposed["tools_required"] = called
    if length:
        proposed["min_chars"] = length // 2
        proposed["max_chars"] = length + (length + 1) // 2
    return proposed


@transaction.atomic
def eval_case_from_run(*, actor: AbstractUser | None, run_id: Any, title: Any = "") -> EvalCase:
    """One click from a succeeded run's page: its task, client and specialization; its output
    becomes the reference; expectations proposed from it (`propose_expectations`)."""
    import uuid

    from agents.models import AgentRun, RunStatus

    policy.require(actor, "eval.manage")
    try:
        pk = uuid.UUID(str(run_id))
    except (TypeError, ValueError):
        raise InvalidInput(f"run_id: '{run_id}' is not a run id.", details={"run_id": run_id}) from None
    run = AgentRun.objects.filter(pk=pk).select_related("client").first()
    if run is None or (run.client_id is not None and not policy.can_see_client(actor, run.client)) or \
            (run.client_id is None and not policy.acts_on_every_client(actor, "eval.view")):
        raise NotFound(f"No run {run_id} in this instance.")
    if run.status != RunStatus.SUCCEEDED or not run.output:
        raise Conflict(f"The run {run.get_status_display().lower()}; only a succeeded run with an output can be "
                       "made an eval case.", details={"status": run.status})
    if run.parent_id:
        raise Conflict("A delegated run is part of its parent's work; make the case from the parent run.")
    case = EvalCase(created_by=actor if getattr(actor, "pk", None) else None, source_run=run,
                    agent_type=run.agent_type, task=run.task, specialization=run.specialization or {},
                    reference=run.output, expectations=propose_expectations(run),
                    title=_text(title, "title", max_len=200) or (run.task.strip().splitlines()[0][:200]))
    if run.client_id is not None:
        policy.require(actor, "eval.manage", run.client)
        case.client = run.client
    case.full_clean()
    case.save()
    _audit(actor, case, "create", new=_snapshot(case))
    return case


# --- runs -----------------------------------------------------------------------------------------


def _overlay(actor: AbstractUser | None, value: Any) -> dict[str, Any]:
    """A proposed tuning change, not saved: {"client_id"?: …, "rules": [{"kind", "text"}]}, kind one of
    always / never / prefer (a client rule) or avoid_term (an avoided term). Its rules are told in each
    case's prompt and join the brand check of its output; with a client_id only that client's cases run."""
    if value in (None, {}, ""):
        return {}
    if not isinstance(value, dict):
        raise InvalidInput('tuning_overlay: give an object such as {"rules": [{"kind": "never", "text": "…"}]}.',
                           details={"tuning_overlay": "object"})
    unknown = sorted(set(value) - OVERLAY_KEYS)
    if unknown:
        raise InvalidInput(f"tuning_overlay: unknown {', '.join(unknown)}; use {', '.join(sorted(OVERLAY_KEYS))}.",
                           details={"tuning_overlay": unknown})
    rules = value.get("rules") or []
    if not isinstance(rules, list):
        raise InvalidInput("tuning_overlay.rules: give a list of rules.", details={"tuning_overlay.rules": "list"})
    cleaned = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or rule.get("kind") not in OVERLAY_RULE_KINDS or \
                not isinstance(rule.get("text"), str) or not rule["text"].strip():
            raise InvalidInput(f"tuning_overlay.rules[{i}]: give {{\"kind\": one of {', '.join(OVERLAY_RULE_KINDS)}, "
                               "\"text\": the rule}.", details={f"tuning_overlay.rules[{i}]": "invalid"})
        cleaned.append({"kind": rule["kind"], "text": rule["text"].strip()})
    if not cleaned:
        return {}
    if value.get("client_id") in (None, ""):
        return {"rules": cleaned}
    client = _client(actor, value["client_id"], "eval.run")
    return {"client_id": client.pk, "rules": cleaned}


def overlay_rules(overlay: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**rule, "tier": 3, "source": "what_if"} for rule in (overlay or {}).get("rules", [])]


@transaction.atomic
def eval_run_start(*, actor: AbstractUser | None, agent_type: Any, version: Any = None,
                   tuning_overlay: Any = None) -> EvalRun:
    """Queue an eval run of every enabled case of the agent type's set against `version` (default:
    the version the instance runs now) with `tuning_overlay` applied (never saved); an overlay for
    one client runs that client's cases only. 409 when the set is empty."""
    from agents.catalog import current_version_for
    from agents.registry import get_spec, versions

    policy.require(actor, "eval.run")
    agent_type = _agent_type(agent_type)
    if version in (None, ""):
        version = current_version_for(agent_type)
    elif not isinstance(version, str) or get_spec(agent_type, version) is None:
        raise InvalidInput(f"version: {agent_type} has no version '{version}'; available: "
                           f"{', '.join(versions(agent_type))}.", details={"version": version})
    overlay = _overlay(actor, tuning_overlay)
    cases = EvalCase.objects.filter(agent_type=agent_type, enabled=True)
    if overlay.get("client_id") is not None:
        cases = cases.filter(client_id=overlay["client_id"])
    case_ids = list(cases.order_by("pk").values_list("pk", flat=True))
    if not case_ids:
        raise Conflict(f"{agent_type} has no enabled eval cases{' for this client' if overlay.get('client_id') else ''}"
                       " in this instance; add some first (POST /api/v1/evals/cases, or make one from a run).",
                       details={"agent_type": agent_type})
    return eval_run_queue(agent_type=agent_type, version=version, case_ids=case_ids, actor=actor, overlay=overlay)


def eval_run_queue(*, agent_type: str, version: str, case_ids: list[int], actor: AbstractUser | None = None,
                   overlay: dict[str, Any] | None = None, sandbox_session: Any = None) -> EvalRun:
    """The EvalRun row and its first pass, queued on commit (callers have checked the policy: the
    API, the admin, or a sandbox being opened for an update)."""
    from spokestack.tasks import enqueue_on_commit

    from ..tasks import eval_run_advance

    eval_run = EvalRun(agent_type=agent_type, version=version, tuning_overlay=overlay or {}, case_ids=case_ids,
                       cases_total=len(case_ids), created_by=actor if getattr(actor, "pk", None) else None,
                       sandbox_session=sandbox_session)
    eval_run.full_clean()
    eval_run.save()
    enqueue_on_commit(eval_run_advance, eval_run_id=str(eval_run.pk))
    return eval_run


def _start_cases(eval_run: EvalRun) -> None:
    """Start a sandbox run for each case without a result row (called under the EvalRun's lock).
    A case that cannot run (deleted, its client archived) is recorded as failed saying why."""
    from agents.services import run_create
    from spokestack.errors import DomainError
    from spokestack.limits import RunLimitReached

    started = set(EvalResult.objects.filter(eval_run=eval_run).values_list("case_id", flat=True))
    cases = {c.pk: c for c in EvalCase.objects.filter(pk__in=eval_run.case_ids).select_related("client")}
    for case_id in eval_run.case_ids:
        if case_id in started:
            continue
        case = cases.get(case_id)
        if case is None:  # deleted since the run started: nothing to run, nothing to count
            EvalRun.objects.filter(pk=eval_run.pk).update(cases_total=F("cases_total") - 1)
            eval_run.case_ids = [c for c in eval_run.case_ids if c != case_id]
            EvalRun.objects.filter(pk=eval_run.pk).update(case_ids=eval_run.case_ids)
            continue
        result = EvalResult(eval_run=eval_run, case=case, case_title=str(case)[:200], client=case.client)
        try:
            result.run = run_create(actor=eval_run.created_by, agent_type=eval_run.agent_type, task=case.task,
                                    client_id=case.client_id, specialization=case.specialization or None,
                                    sandbox=True, agent_version=eval_run.version,
                                    metadata={"eval_run": str(eval_run.pk), "eval_case": case.pk}).run
        except RunLimitReached:
            return  # the instance's limit: the next pass starts the rest
        except DomainError as exc:
            result.save()
            _record(result=result, status=EvalResult.Status.FAILED,
                    failures=[{"expectation": "run", "message": f"the case could not run: {exc}"}])
            continue
        result.save()


def _record(*, result: EvalResult, status: str, failures: list, skipped: list | None = None, run: Any = None) -> bool:
    """Record a case's verdict once: the pending row is claimed by a conditional update and the
    eval run's counters move in the same transaction."""
    with transaction.atomic():
        fields: dict[str, Any] = {"status": status, "failures": failures, "skipped": skipped or [],
                                  "finished_at": timezone.now()}
        cost = Decimal(0)
        if run is not None:
            cost = run.total_cost_usd
            fields.update(output_excerpt=(run.output or run.error or "")[:EXCERPT_CHARS], cost_usd=cost,
                          duration_s=run.duration_s,
                          tools_used=list(dict.fromkeys(run.tool_calls.values_list("name", flat=True))))
        if EvalResult.objects.filter(pk=result.pk, status=EvalResult.Status.PENDING).update(**fields) != 1:
            return False
        EvalRun.objects.filter(pk=result.eval_run_id).update(
            cases_done=F("cases_done") + 1, cost_usd=F("cost_usd") + cost,
            cases_passed=F("cases_passed") + (1 if status == EvalResult.Status.PASSED else 0))
    return True


def _judge_finished(eval_run: EvalRun) -> None:
    """Record the verdict of every case whose run ended, and fail a case whose run has not ended
    within EVAL_CASE_TIMEOUT_S (waiting for an approval nobody gives, say), saying so."""
    from django.conf import settings
    from django.db.models import Q

    from agents.models import TERMINAL_STATUSES

    overdue = timezone.now() - timedelta(seconds=settings.EVAL_CASE_TIMEOUT_S)
    pending = (EvalResult.objects.filter(eval_run=eval_run, status=EvalResult.Status.PENDING)
               .filter(Q(run__status__in=TERMINAL_STATUSES) | Q(run__created_at__lt=overdue) | Q(run=None))
               .select_related("case", "run", "run__client"))
    extra = overlay_rules(eval_run.tuning_overlay)
    for result in pending:
        if result.run is None or result.run.status not in TERMINAL_STATUSES:
            state = result.run.get_status_display().lower() if result.run else "gone"
            _record(result=result, status=EvalResult.Status.FAILED, failures=[{
                "expectation": "run", "message": f"the run did not finish within {settings.EVAL_CASE_TIMEOUT_S // 60} "
                                                 f"minutes (it is {state})"}], run=result.run)
            continue
        if result.case is None:
            verdict_status, failures, skipped = EvalResult.Status.FAILED, [
                {"expectation": "case", "message": "the case was deleted while it ran"}], []
        else:
            verdict = case_verdict(result.case, result.run, overlay_rules=extra)
            verdict_status = EvalResult.Status.PASSED if verdict.passed else EvalResult.Status.FAILED
            failures, skipped = verdict.failures, verdict.skipped
        _record(result=result, status=verdict_status, failures=failures, skipped=skipped, run=result.run)


def _previous(eval_run: EvalRun) -> EvalRun | None:
    """The last finished plain run of the same set (agent type and version, no overlay) before this one."""
    return (EvalRun.objects.filter(agent_type=eval_run.agent_type, version=eval_run.version, tuning_overlay={},
                                   status=EvalRun.Status.SUCCEEDED, created_at__lte=eval_run.created_at)
            .exclude(pk=eval_run.pk).order_by("-created_at", "-finished_at").first())


def eval_summary(eval_run: EvalRun) -> dict[str, Any]:
    """Pass rate, cost, duration, the failing cases, and the change against the previous run."""
    results = list(eval_run.results.order_by("pk"))
    outcome = {r.case_id: r.status for r in results if r.case_id is not None}
    passed = sum(1 for r in results if r.status == EvalResult.Status.PASSED)
    done = sum(1 for r in results if r.status != EvalResult.Status.PENDING)
    summary: dict[str, Any] = {
        "passed": passed, "failed": done - passed, "total": eval_run.cases_total,
        "pass_rate": round(passed / done, 3) if done else None,
        "cost_usd": str(sum((r.cost_usd for r in results), Decimal(0))),
        "duration_s": round((eval_run.finished_at - eval_run.started_at).total_seconds(), 3)
        if eval_run.finished_at and eval_run.started_at else None,
        "failing": [{"case_id": r.case_id, "title": r.case_title, "failures": r.failures}
                    for r in results if r.status == EvalResult.Status.FAILED],
        "previous": None, "newly_failing": [], "newly_passing": [],
    }
    if eval_run.tuning_overlay:
        summary["overlay_applied_to"] = "each case's prompt and the brand check of its output"
    previous = _previous(eval_run)
    if previous is not None:
        before = dict(previous.results.exclude(case=None).values_list("case_id", "status"))
        summary["previous"] = {"eval_run_id": str(previous.pk), "pass_rate": previous.pass_rate,
                               "passed": previous.cases_passed, "total": previous.cases_done}
        summary["newly_failing"] = sorted(c for c, s in outcome.items()
                                          if s == EvalResult.Status.FAILED and before.get(c) == EvalResult.Status.PASSED)
        summary["newly_passing"] = sorted(c for c, s in outcome.items()
                                          if s == EvalResult.Status.PASSED and before.get(c) == EvalResult.Status.FAILED)
    return summary


def eval_run_advance(*, eval_run_id: str) -> float | None:
    """One pass of an eval run: start the cases not started, judge the runs that finished, finish
    the eval run when every case is in. Returns the seconds to wait before the next pass, or None
    when there is nothing more to do (finished, gone). Safe to run twice at once."""
    with transaction.atomic():
        eval_run = EvalRun.objects.select_for_update(skip_locked=True).filter(pk=eval_run_id).first()
        if eval_run is None:  # gone, or another pass holds it: that pass reschedules
            return None if not EvalRun.objects.filter(pk=eval_run_id).exists() else ADVANCE_EVERY_S
        if eval_run.status not in (EvalRun.Status.QUEUED, EvalRun.Status.RUNNING):
            return None
        eval_run.advanced_at = timezone.now()
        if eval_run.status == EvalRun.Status.QUEUED:
            eval_run.status, eval_run.started_at = EvalRun.Status.RUNNING, eval_run.advanced_at
        eval_run.save(update_fields=["status", "started_at", "advanced_at"])
        _start_cases(eval_run)
    _judge_finished(eval_run)
    with transaction.atomic():
        eval_run = EvalRun.objects.select_for_update().get(pk=eval_run_id)
        results = EvalResult.objects.filter(eval_run=eval_run)
        if eval_run.status != EvalRun.Status.RUNNING or results.count() < eval_run.cases_total or \
                results.filter(status=EvalResult.Status.PENDING).exists():
            return ADVANCE_EVERY_S if eval_run.status == EvalRun.Status.RUNNING else None
        eval_run.status, eval_run.finished_at = EvalRun.Status.SUCCEEDED, timezone.now()
        eval_run.summary = eval_summary(eval_run)
        eval_run.save(update_fields=["status", "finished_at", "summary"])
    if eval_run.sandbox_session_id:
        from .gating import recommendation_from_evals

        recommendation_from_evals(eval_run)
    return None


def what_if_save(*, actor, eval_run: EvalRun) -> str:
    """The change a finished what-if tried, saved through the tuning services (which ask the policy
    and the instance's what-if requirement again): the client's rules for the eval run's agent, or
    the agent's avoided terms. Returns what was saved, in words."""
    from tuning import services as tuning_services
    from tuning.models import InstanceTuning

    overlay = eval_run.tuning_overlay or {}
    rules = overlay.get("rules") or []
    if eval_run.status != EvalRun.Status.SUCCEEDED or not rules:
        raise Conflict("Only a finished what-if eval has a change to save.")
    why = {"reason": f"Tried first in what-if eval {eval_run.pk} ({eval_run.cases_passed}/{eval_run.cases_done} "
                     f"passed)."}
    with transaction.atomic():
        client_rules = [{"kind": r["kind"], "text": r["text"], "agent_type": eval_run.agent_type}
                        for r in rules if r["kind"] != "avoid_term"]
        if client_rules:
            client = Client.objects.filter(pk=overlay.get("client_id")).first()
            if client is None:
                raise Conflict("A rule belongs to a client; this what-if named none.")
            tuning_services.client_rules_add(actor=actor, client=client, rules=client_rules, **why)
        terms = [r["text"] for r in rules if r["kind"] == "avoid_term"]
        if terms:
            row = InstanceTuning.objects.filter(agent_type=eval_run.agent_type).first()
            current = list(row.terminology_avoid or []) if row else []
            tuning_services.instance_tuning_update(
                actor=actor, agent_type=eval_run.agent_type, **why,
                changes={"terminology_avoid": [*current, *(t for t in terms if t not in current)]})
    return f"Saved the change tried in this what-if eval for {agent_label(eval_run.agent_type)}."


_register_rollback()
