"""The agent loop: Think → Act → Create (DESIGN §5).

assemble the request → call the model with tools → execute every tool_use (in parallel) →
feed the results back → repeat until end_turn or a limit.

Invariants:
* Every completed step is persisted before the next starts, in one statement each
  (services.run_write): the assistant turn with its usage and the tool calls it asks for
  right after the model answers; the tool results, with the next turn's start, before the
  next model call. A redelivered task resumes from that checkpoint; tool calls that completed
  are not run again, and one that was cut off is retried with the same idempotency key.
* No database transaction or connection is held while the model thinks or a tool waits on
  the network: the connection goes back to the pool first.
* Tool problems (unknown tool, invalid input, a handler error, an ERP timeout) become
  `is_error` tool results the model can act on; only limits, cancellation and an unavailable
  model end a run early, each with a readable reason.
* Every final output is checked (agents/checks.py) and the check recorded (`run.checked`) before
  the run succeeds; per instance setting a violation flags the run for review or has the agent
  revise once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from jsonschema import Draft202012Validator

from spokestack import metrics
from spokestack.erp import ErpError
from spokestack.hygiene import removed_note, scrub_unstorable
from spokestack.outages import dependency_of
from usage.budgets import BudgetExceeded

from .checks import filter_rules, find_violations, review_reason, revision_request, rule_targets
from .delegation import MAX_DEPTH, handoff_target, target_of
from .events import event_append
from .model import ModelCancelled, ModelRequest, ModelUnavailable, StreamCallbacks, call_model
from .models import AgentRun, Artifact, ReviewStatus, RunStatus, ToolCall, ToolCallStatus
from .registry import AgentSpec, ToolContext, ToolError, ToolSpec, get_spec
from .services import (
    FinishedCall,
    HoldRefused,
    LeaseLost,
    RunCheck,
    StartedCall,
    call_idempotency_key,
    new_claim_token,
    release_connection,
    run_claim,
    run_claim_announce,
    run_finish,
    run_write,
)
from .watcher import watcher as run_watcher

logger = logging.getLogger(__name__)

TEXT_FLUSH_SECONDS = 0.05  # text being written reaches viewers this often
TOOL_ANNOUNCE_SECONDS = 1.0  # a tool call whose input is still streaming is shown after this long
TOOL_RESULT_MAX_CHARS = 20_000
ARTIFACT_KINDS = {"save_draft": "draft", "draft_response": "response", "create_brief": "brief", "save_plan": "plan",
                  "update_brief": "brief", "save_estimate": "estimate", "schedule_post": "post", "save_allocation": "allocation",
                  "save_proposal": "proposal"}


def _task_message(run: AgentRun) -> dict:
    """Per-run content goes in the messages, never in the cached system prefix."""
    lines = [run.task.strip()]
    context = {"date": timezone.now().date().isoformat()}
    if run.client is not None:
        context.update(client=run.client.name, client_slug=run.client.slug)
    if run.specialization:
        context["specialization"] = run.specialization
    if run.metadata:
        context["metadata"] = run.metadata
    lines.append("\n<run_context>\n" + json.dumps(context, sort_keys=True, ensure_ascii=False) + "\n</run_context>")
    return {"role": "user", "content": [{"type": "text", "text": "\n".join(lines)}]}


def _pending_tool_uses(messages: list[dict]) -> list[dict]:
    """tool_use blocks of the last assistant turn whose results are not in the conversation yet."""
    if not messages or messages[-1]["role"] != "assistant":
        return []
    return [b for b in messages[-1]["content"] if b.get("type") == "tool_use"]


def _final_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message["role"] == "assistant":
            return "".join(b.get("text", "") for b in message["content"] if b.get("type") == "text").strip()
    return ""


@dataclass
class _Outcome:
    result: Any
    is_error: bool
    duration_ms: float
    removed: int = 0  # characters PostgreSQL cannot store, removed from the result (spokestack.hygiene)
    cached: bool = False  # an earlier call's answer in this run, reused (spec.cached_tools)


class _StreamEvents:
    """Events of the answer being streamed (text deltas, tool calls being written), appended to the
    log while the model streams: text every TEXT_FLUSH_SECONDS, a tool call still receiving its
    input after TOOL_ANNOUNCE_SECONDS (most inputs are complete sooner, and are shown then with
    the turn). What is left when the answer ends goes with the turn's checkpoint, in the same
    statement: a short turn costs no write of its own."""

    def __init__(self, write: Callable[[list[tuple[str, dict]]], None]) -> None:
        self.write = write
        self.events: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.announced: set[str] = set()
        self.last_flush = time.monotonic()
        self.announced_at = 0.0  # when the oldest unwritten tool.requested was buffered

    def add_text(self, text: str) -> None:
        self.text.append(text)
        if time.monotonic() - self.last_flush >= TEXT_FLUSH_SECONDS:
            self.flush()

    def add_tool_input(self, tool_use_id: str, name: str, partial_json: str) -> None:
        now = time.monotonic()
        if tool_use_id not in self.announced:
            self.announced.add(tool_use_id)
            self._close_text()
            self.events.append(("tool.requested", {"tool_use_id": tool_use_id, "name": name}))
            self.announced_at = self.announced_at or now
        if not self.events:
            return
        text_due = self.events[0][0] == "text.delta" and now - self.last_flush >= TEXT_FLUSH_SECONDS
        if text_due or (self.announced_at and now - self.announced_at >= TOOL_ANNOUNCE_SECONDS):
            self.flush()

    def take(self) -> list[tuple[str, dict]]:
        self._close_text()
        events, self.events = self.events, []
        self.announced_at = 0.0
        return events

    def flush(self) -> None:
        events = self.take()
        if events:
            self.write(events)
            release_connection()
        self.last_flush = time.monotonic()

    def _close_text(self) -> None:
        if self.text:
            self.events.append(("text.delta", {"text": "".join(self.text)}))
            self.text = []


def _validator(tool: ToolSpec) -> Draft202012Validator:
    """The input validator of a core tool, built once per process."""
    entry = _VALIDATORS.get(id(tool))
    if entry is None or entry[0] is not tool:
        entry = _VALIDATORS[id(tool)] = (tool, Draft202012Validator(tool.input_schema))
    return entry[1]


_VALIDATORS: dict[int, tuple[ToolSpec, Draft202012Validator]] = {}


def _read_creator(run: AgentRun) -> None:
    """The run's starter with their roles, in one query, before anything asks the run for them."""
    from spokestack.accounts.roles import user_with_roles

    if run.created_by_id and not AgentRun.created_by.is_cached(run):
        AgentRun.created_by.field.set_cached_value(run, user_with_roles(run.created_by_id))


def _withheld_tools(spec: AgentSpec, run: AgentRun) -> frozenset[str]:
    """The tools of `spec` limited to roles the run's starter does not have."""
    if not spec.tool_roles:
        return frozenset()
    from spokestack.accounts.roles import roles_of

    roles = roles_of(run.created_by) if run.created_by_id else frozenset()
    return frozenset(name for name, allowed in spec.tool_roles.items() if not roles & set(allowed))


def _what_if_rules(run: AgentRun) -> list[dict]:
    """The proposed tuning change an eval run tries (versions/evals), for its sandbox runs only."""
    eval_run = (run.metadata or {}).get("eval_run") if run.sandbox and isinstance(run.metadata, dict) else None
    if not eval_run:
        return []
    from versions.models import EvalRun

    overlay = EvalRun.objects.filter(pk=eval_run).values_list("tuning_overlay", flat=True).first() or {}
    return [{"kind": r["kind"], "text": r["text"]} for r in overlay.get("rules", [])]


class RunLoop:
    def __init__(self, run: AgentRun, spec: AgentSpec, worker: str) -> None:
        from skills.selectors import offer_version, skills_offered
        from tuning.assembly import assemble_prompt

        from .catalog import platform_tier

        self.run = run
        self.spec = spec
        self.worker = worker
        core_names = {t.name for t in spec.tools}
        # Enabled skills of this agent type join the tools (a skill that now shares a core tool's
        # name, e.g. after a new core version, is left out rather than shadowing the core tool).
        # An agency-built agent has the skills its definition names (spec.skills), still only enabled ones.
        # Exposed MCP tools join as skills (skills.mcp: McpTool quacks like a Skill, run by mcp_tool_call).
        version = getattr(run, "offer_version", None) or offer_version()  # read with the claim (run_claim)
        _read_creator(run)
        offered = skills_offered(agent_type=spec.agent_type, names=spec.skills, version=version)
        self.skills = {s.name: s for s in offered if s.name not in core_names}
        self.prompt = assemble_prompt(platform=platform_tier(spec), client=run.client, for_run=True,
                                      specialization=run.specialization,
                                      extra_tools=[s.definition() for s in self.skills.values()],
                                      what_if_rules=_what_if_rules(run), version=version)
        # Tools limited to some roles (spec.tool_roles) are withheld from a run started by anyone else:
        # neither offered to the model nor run if it names one.
        self.withheld = _withheld_tools(spec, run)
        if run.depth >= MAX_DEPTH:  # delegated work that may not delegate further is not offered it
            self.withheld |= {t.name for t in spec.tools if target_of(t.name)}
        self.tools = {t.name: t for t in spec.tools
                      if t.name not in set(self.prompt.disabled_tools) and t.name not in self.withheld}
        self.request_tools = [t for t in self.prompt.tools if t["name"] not in self.withheld] \
            if self.withheld else self.prompt.tools
        self.client_scope = _client_scope(run)
        # The content filters join the rules, so check_brand_rules checks what the final output is checked against.
        self.rules = (*(rule.as_dict() for rule in self.prompt.rules),
                      *filter_rules(spec.content_filters, self.prompt.content_filters))
        # Time spent waiting for a person's approval, or for delegated runs, does not count against the
        # time limit (a run that has not run before has waited for neither).
        start = run.started_at or timezone.now()
        if getattr(run, "resumed", True):
            from django.db.models import Max

            from .models import ApprovalRequest

            last_decision = ApprovalRequest.objects.filter(run=run).aggregate(at=Max("decided_at"))["at"]
            last_child = AgentRun.objects.filter(parent=run).aggregate(at=Max("finished_at"))["at"]
            start = max(filter(None, [start, last_decision, last_child]))
        self.deadline = start.timestamp() + spec.time_limit_s
        # Writes wait here until the step's next statement (see _write).
        self._staged_events: list[tuple[str, dict]] = []
        self._staged_calls: list[FinishedCall] = []
        self._staged_artifacts: list[Artifact] = []
        self._started: dict[str, int] = {}  # tool_use id → ToolCall id, recorded with the turn that asked
        self._handoff: dict[str, Any] | None = None  # set when a handoff call took the work to another agent
        self._awaiting_approval = False
        self._new_children: list[str] = []  # started by this execution, not run yet
        self._prefix_size: int | None = None
        self._message_sizes: dict[int, tuple[dict, int]] = {}  # id → (message, its JSON length)
        self._unsettled: float | None = None  # the cost of the model call whose hold the next write settles
        self._staged_check: RunCheck | None = None  # the output's check, recorded by the next write
        self._ceiling: tuple[float, str] | None = None

    # --- writes -------------------------------------------------------------------

    def _write(self, *, events: Sequence[tuple[str, dict]] = (), **step) -> dict[str, int]:
        """Record what is staged and this step in one statement (services.run_write)."""
        staged_events, self._staged_events = self._staged_events, []
        finish_calls, self._staged_calls = self._staged_calls, []
        artifacts, self._staged_artifacts = self._staged_artifacts, []
        settle_usd, self._unsettled = self._unsettled, None
        check, self._staged_check = self._staged_check, None
        try:
            return run_write(run=self.run, worker=self.worker, events=[*staged_events, *events],
                             finish_calls=finish_calls, settle_usd=settle_usd, artifacts=artifacts, check=check,
                             **step)
        except HoldRefused:  # nothing was written: staged again, for the write that follows
            self._staged_events[:0], self._staged_calls[:0] = staged_events, finish_calls
            self._staged_artifacts[:0], self._unsettled, self._staged_check = artifacts, settle_usd, check
            raise

    def _flush(self) -> None:
        if (self._staged_events or self._staged_calls or self._staged_artifacts or self._unsettled is not None
                or self._staged_check is not None):
            self._write()

    def _cancelled(self) -> bool:
        """Whether a cancel was asked for (the process's watcher reads the flags: no I/O here).
        LeaseLost when the heartbeat found the run held by another execution: stop at once."""
        if run_watcher.lost(self.run.pk):
            raise LeaseLost(str(self.run.pk))
        return self.run.cancel_requested or run_watcher.cancelled(self.run.pk)

    # --- the loop ---------------------------------------------------------------------

    def _account_interrupted_turn(self) -> None:
        """A resumed run whose last turn was cut off (its worker died mid-stream) records that turn:
        one `turn.interrupted` event that tells viewers to drop the turn's text (it is answered
        again now) and counts its usage, estimated from what was sent and streamed (the provider's
        own figures never arrived), marked as estimated."""
        from .model import Usage, cost_usd
        from .models import RunEvent

        run = self.run
        last = (RunEvent.objects.filter(run=run, type__in=("turn.started", "turn.finished", "turn.interrupted"))
                .order_by("-seq").values_list("seq", "type").first())
        if last is None or last[1] != "turn.started":
            return
        streamed = RunEvent.objects.filter(run=run, seq__gt=last[0], type__in=("text.delta", "tool.requested"))
        text = sum(len(e.payload.get("text", "")) for e in streamed if e.type == "text.delta")
        tools = sum(e.type == "tool.requested" for e in streamed)
        sent = len(json.dumps([self.prompt.system, self.request_tools, run.messages], default=str))
        usage = Usage(input_tokens=sent // 4, output_tokens=text // 4 + 30 * tools)
        cost = cost_usd(self.spec.model, usage)
        from usage.budgets import settle

        settle(run_id=run.pk, actual_usd=cost)  # its budget hold, to the estimate (once: the hold is cleared)
        run.budget_hold = None
        self._write(events=[("turn.interrupted", {
            "iteration": run.iterations + 1, "discard_from_seq": last[0], "usage": usage.__dict__, "cost_usd": cost,
            "estimated": True, "model": self.spec.model})], usage=usage.__dict__, cost_usd=cost)

    def execute(self) -> str:
        run = self.run
        if getattr(run, "resumed", False):
            self._account_interrupted_turn()
            if run.budget_hold:  # held by a call that never started: released
                from usage.budgets import settle

                settle(run_id=run.pk, actual_usd=0)
        messages = list(run.messages) or [_task_message(run)]
        unsaved = not run.messages  # the task message is saved with the first turn's start
        if run.thread_id and not run.iterations and not unsaved:
            try:
                messages = self._compact_thread(messages)
            except ModelCancelled:
                return self._finish("cancelled", error="Cancelled while earlier turns were being summarised.")
        # Tool results need no checkpoint of their own: completed calls are rows that a resumed
        # run replays, and the next model turn's checkpoint saves them with the conversation.
        while True:
            if self._cancelled():
                return self._finish("cancelled", error="Cancelled by request.")
            pending = _pending_tool_uses(messages)
            if pending:
                results = self._act(pending)
                if results is None:  # a call awaits a person's decision or a child run: give the worker back
                    from .approvals import run_await_approval
                    from .delegation import run_await_children

                    self._flush()
                    if self._run_children_here() and not self._awaiting_approval:
                        continue  # every child ended in this worker slot: on with their results
                    if run_await_approval(run=run, worker=self.worker):
                        return RunStatus.AWAITING_APPROVAL
                    if run_await_children(run=run, worker=self.worker):
                        return RunStatus.WAITING
                    continue  # decided or finished meanwhile
                messages = [*messages, {"role": "user", "content": results}]
                if self._handoff is not None:  # the run ends here: another agent took the work over
                    self._staged_events.append(("run.handed_off", self._handoff))
                    return self._finish("succeeded", output=self._handoff["summary"])
                continue
            limit = self._limit_reached()
            if limit:
                return self._finish("failed", error=limit, output=_final_text(messages))
            try:
                turn, streamed = self._think(messages, save_messages=unsaved)
            except BudgetExceeded as exc:
                metrics.budget_refused(exc.scope or "run")
                return self._finish("failed", error=exc.message)
            except ModelCancelled:
                return self._finish("cancelled", error="Cancelled while the model was answering.")
            except ModelUnavailable as exc:
                return self._finish("failed", error=f"The model is unavailable: {exc.message}")
            unsaved = False
            messages = [*messages, {"role": "assistant", "content": turn.content}]
            tool_uses = _pending_tool_uses(messages) if turn.stop_reason == "tool_use" else []
            start_calls = self._plan(tool_uses)
            usage = turn.usage.__dict__
            events = [*streamed, ("turn.finished", {
                "iteration": run.iterations + 1, "stop_reason": turn.stop_reason, "model": turn.model,
                "used_fallback": turn.used_fallback, "usage": usage, "cost_usd": turn.cost_usd,
                **({"removed_characters": turn.removed} if turn.removed else {}),
                **self._over_limit(tool_uses)})]
            events += [("tool.started", {"tool_use_id": c.tool_use_id, "name": c.name, "input": c.input})
                       for c in start_calls]
            self._started = self._write(
                events=events, messages=messages, usage=usage, cost_usd=turn.cost_usd, model=turn.model,
                used_fallback=turn.used_fallback, simulated=turn.simulated, iterations_delta=1,
                tool_calls_delta=len(tool_uses), start_calls=start_calls)
            if tool_uses:
                continue
            if turn.stop_reason == "max_tokens":
                return self._finish("failed", output=_final_text(messages),
                                    error="The answer was cut off at the max-tokens limit; raise max tokens in the "
                                          "instance tuning or ask for a shorter output.")
            output = _final_text(messages)
            revision = self._check_output(output)
            if revision is not None:  # the agent revises once; its next answer is checked again
                messages = [*messages, revision]
                continue
            self._staged_artifacts.append(Artifact(run=run, kind="output", title=f"{run.agent_type} output",
                                                   content=output))
            return self._finish("succeeded", output=output)

    def _compact_thread(self, messages: list[dict]) -> list[dict]:
        """A thread's turn over the context budget before its first model call continues a compacted
        conversation (agents/compaction.py): one `thread.compacted` event, written with the compacted
        messages and the summary's usage in one statement. A resumed run finds it under the budget,
        or compacted already, and neither compacts nor calls the model for it again. The system prompt
        and tools are not touched: the cached prefix stays byte-identical."""
        from django.conf import settings

        from .compaction import compact_for_budget, estimate_tokens, summariser
        from .models import RunEvent

        run, budget = self.run, int(settings.THREAD_CONTEXT_BUDGET_TOKENS)
        if estimate_tokens(messages) <= budget or RunEvent.objects.filter(run=run, type="thread.compacted").exists():
            return messages
        release_connection()  # the model may write the summary
        compaction = compact_for_budget(messages, budget_tokens=budget, summarise=summariser(
            model=self.spec.model, fallback_model=self.spec.fallback_model,
            metadata={"user_id": f"run-{run.pk}"}, should_cancel=self._cancelled))
        if compaction is None:
            return messages
        summary = compaction.summary
        self._write(events=[("thread.compacted", compaction.payload())], messages=compaction.messages,
                    usage=summary.usage if summary else None, cost_usd=summary.cost_usd if summary else 0.0)
        return compaction.messages

    def _check_output(self, output: str) -> dict | None:
        """Check the final output against every filter and rule (agents/checks.py), to be recorded on
        the run and as `run.checked` by the next write (with the run's output artifact, or the
        revision's turn). A violation flags the run for review, or, when the instance
        says "revise" and the agent has not revised yet (and no limit is reached), returns the
        message that asks it to revise once. `audit_all_outputs` puts every output in review."""
        run, prompt = self.run, self.prompt
        targets = rule_targets(self.rules)
        violations = find_violations(output, targets)
        earlier = run.checks if isinstance(run.checks, dict) else {}
        revised = bool(earlier.get("revision_requested"))
        checks: dict[str, Any] = {
            "passed": not violations, "violations": violations, "on_rule_violation": prompt.on_rule_violation,
            "checked": dict(sorted(Counter(t.source for t in targets).items())), "revised": revised}
        if revised:
            checks["violations_before_revision"] = earlier.get("violations", [])
        if violations and prompt.on_rule_violation == "revise" and not revised:
            limit = self._limit_reached()
            if not limit:
                self._stage_check(RunCheck({**checks, "revision_requested": True}, "", ""))
                return revision_request(violations)
            checks["revision_skipped"] = limit
        reason = review_reason(violations, revised=revised, audit_all=prompt.audit_all_outputs)
        self._stage_check(RunCheck(checks, ReviewStatus.PENDING if reason else ReviewStatus.NONE, reason))
        return None

    def _stage_check(self, check: RunCheck) -> None:
        self._staged_check = check
        self._staged_events.append(check.event())

    def _over_limit(self, tool_uses: list[dict]) -> dict[str, str]:
        """The turn's note when it asked for more calls than a turn may run (the rest are refused,
        each with a tool result saying why, and the run goes on)."""
        limit = self.spec.max_tool_calls_per_turn
        if len(tool_uses) <= limit:
            return {}
        return {"tool_calls_over_limit": f"{len(tool_uses) - limit} of {len(tool_uses)} tool calls not run: at most "
                                         f"{limit} per turn for {self.spec.agent_type}."}

    def _limit_reached(self) -> str:
        spec, run = self.spec, self.run
        if run.iterations >= spec.max_iterations:
            return f"Stopped after {spec.max_iterations} model turns, the limit for {spec.agent_type}."
        if time.time() > self.deadline:
            return f"Stopped after {spec.time_limit_s} s, the time limit for {spec.agent_type}."
        ceiling, whose = self._cost_ceiling()
        if float(run.total_cost_usd) >= ceiling:
            return (f"Stopped at ${run.total_cost_usd:.2f}, the cost ceiling of ${ceiling:.2f} per run{whose}"
                    + (" (its delegated runs included)." if run.children_cost_usd else "."))
        return ""

    def _cost_ceiling(self) -> tuple[float, str]:
        """The lower of the agent's cost ceiling and the instance tier's maximum cost per run."""
        if self._ceiling is None:
            from spokestack.tenancy.tiers import limits_for
            from usage.budgets import current_instance

            instance = current_instance()
            tier_max = float(limits_for(instance).max_cost_per_run_usd)
            self._ceiling = (self.spec.cost_ceiling_usd, "") if self.spec.cost_ceiling_usd <= tier_max else \
                (tier_max, f" of the {getattr(instance, 'tier', '')} tier")
        return self._ceiling

    def _finish(self, status: str, *, output: str = "", error: str = "") -> str:
        """End the run with what is staged (its last events, the output's check and artifacts) in one
        statement; tool results or a settlement still staged are written first, as a step."""
        if self._staged_calls or self._unsettled is not None:
            self._flush()
        events, self._staged_events = self._staged_events, []
        check, self._staged_check = self._staged_check, None
        artifacts, self._staged_artifacts = self._staged_artifacts, []
        if not run_finish(run=self.run, status=status, output=output, error=error, events=events, check=check,
                          artifacts=artifacts):
            self.run.refresh_from_db(fields=["status"])
        return self.run.status

    # --- Think ------------------------------------------------------------------------

    def _think(self, messages: list[dict], *, save_messages: bool) -> tuple[Any, list[tuple[str, dict]]]:
        """One model turn: (the turn, the stream's events not yet written). Its worst-case cost is
        held against every budget covering the run first (usage/budgets.py: BudgetExceeded when it
        would cross one, and nothing is sent), and settled to the real cost when it has answered."""
        from usage.budgets import reserve, settle, worst_case_usd

        run = self.run
        request = ModelRequest(
            model=self.spec.model, fallback_model=self.spec.fallback_model, system=self.prompt.system,
            tools=self.request_tools, messages=messages, max_tokens=self.prompt.max_tokens,
            effort=self.prompt.effort, metadata={"user_id": f"run-{run.pk}"})
        chars = self._prefix_chars() + self._messages_chars(messages)
        amount = worst_case_usd(model=self.spec.model, request_chars=chars, max_tokens=request.max_tokens)
        started, saved = [("turn.started", {"iteration": run.iterations + 1})], messages if save_messages else None
        # The hold and the turn's start are one statement (services.run_write), all or nothing. Not for
        # a delegated run, whose write also updates its parent's row (the events' mirror trigger, at the
        # statement's end): its hold is a statement of its own, so none locks a ledger before a run.
        held_apart = bool(run.parent_id)
        if held_apart:
            reserve(run_id=run.pk, client_id=run.client_id, user_id=run.created_by_id, amount=amount)
        else:
            try:
                self._write(events=started, messages=saved, hold_usd=amount)
            except HoldRefused:  # this month's first call (no ledgers yet) holds here; a budget it would cross is named
                reserve(run_id=run.pk, client_id=run.client_id, user_id=run.created_by_id, amount=amount)
                held_apart = True
        if held_apart:
            try:
                self._write(events=started, messages=saved)
            except BaseException:
                settle(run_id=run.pk, actual_usd=0)
                raise
        stream = _StreamEvents(lambda events: self._write(events=events))
        release_connection()
        asked = time.monotonic()
        try:
            # The lease is the process heartbeat's (agents/watcher.py): a model silent for longer
            # than the lease does not make this execution look dead.
            turn = call_model(request, callbacks=StreamCallbacks(
                on_text=stream.add_text, on_tool_input=stream.add_tool_input, should_cancel=self._cancelled))
        except BaseException as exc:
            stream.flush()
            if dependency_of(exc) is None:  # with the database down, the resumed run settles it
                settle(run_id=run.pk, actual_usd=0)
            raise
        if run.parent_id:
            # A delegated run's step write also updates its parent's row (the events' mirror trigger,
            # at the statement's end): settled on its own, so no statement locks ledgers before a run.
            settle(run_id=run.pk, actual_usd=turn.cost_usd)
        else:
            self._unsettled = turn.cost_usd  # settled by the turn's write (services.run_write), one statement
        metrics.turn_finished(self.spec.agent_type, turn.model, time.monotonic() - asked)
        return turn, stream.take()

    def _prefix_chars(self) -> int:
        """The characters of the request's system blocks and tools (the same every turn of the run)."""
        if self._prefix_size is None:
            self._prefix_size = len(json.dumps([self.prompt.system, self.request_tools], ensure_ascii=False,
                                               default=str))
        return self._prefix_size

    def _messages_chars(self, messages: list[dict]) -> int:
        """len(json.dumps(messages)), each message serialised once per run: a turn adds messages to the
        conversation and never changes the ones before, so only the new ones are measured."""
        sizes, total = self._message_sizes, 0
        for message in messages:
            known = sizes.get(id(message))
            if known is None or known[0] is not message:
                known = sizes[id(message)] = (message, len(json.dumps(message, ensure_ascii=False, default=str)))
            total += known[1]
        return total + 2 * len(messages) if messages else 2  # the brackets and the ", " between messages

    # --- Act --------------------------------------------------------------------------

    def _approval_rule(self, name: str) -> str:
        from .approvals import approval_rule_for

        skill = self.skills.get(name)
        return approval_rule_for(tool_name=name, patterns=self.prompt.require_approval,
                                 platform_patterns=tuple(self.spec.confirmation_patterns),
                                 skill_requires_approval=bool(skill and skill.requires_approval))

    def _approval_priority(self, name: str) -> int:
        """A skill that demands approval gives its requests its priority; anything else: normal."""
        from .models import ApprovalPriority

        skill = self.skills.get(name)
        if skill is not None and skill.requires_approval:
            return getattr(skill, "approval_priority", ApprovalPriority.NORMAL)
        return ApprovalPriority.NORMAL

    def _input_problem(self, block: dict) -> str:
        """Why the input cannot be used ('' when it can): checked before a person is asked."""
        name, arguments = block["name"], block.get("input") or {}
        if name in self.skills:
            from skills.executor import validate_input

            return validate_input(self.skills[name], arguments)
        tool = self.tools.get(name)
        if tool is None:
            return "unknown"
        return "invalid" if next(_validator(tool).iter_errors(arguments), None) else ""

    def _key(self, block: dict) -> str:
        return call_idempotency_key(run_id=self.run.pk, name=block["name"], arguments=block.get("input") or {})

    def _side_effect(self, name: str) -> bool:
        tool, skill = self.tools.get(name), self.skills.get(name)
        return bool((tool and tool.side_effect) or (skill and skill.execution_type != "internal"))

    def _plan(self, tool_uses: list[dict]) -> list[StartedCall]:
        """The calls of a new turn that run at once, recorded with the turn itself. None when any
        call awaits a person's decision: _act then records each call on its own."""
        calls = []
        for block in tool_uses[: self.spec.max_tool_calls_per_turn]:
            if not self._input_problem(block) and self._approval_rule(block["name"]):
                return []
            calls.append(StartedCall(tool_use_id=block["id"], name=block["name"], input=block.get("input") or {},
                                     side_effect=self._side_effect(block["name"])))
        return calls

    def _act(self, tool_uses: list[dict]) -> list[dict] | None:
        """Execute the turn's tool calls; None when any of them awaits approval (the others that
        could run have run and are recorded, so they are replayed, not repeated, on resume)."""
        limit = self.spec.max_tool_calls_per_turn
        started, self._started = self._started, {}
        results: dict[str, dict] = {}
        for block in tool_uses[limit:]:
            message = (f"Not run: at most {limit} tool calls per turn for {self.spec.agent_type}. "
                       "Call fewer tools at once and continue with the rest in the next turn.")
            results[block["id"]] = self._result_block(block["id"], message, True)
        waiting = False
        if started and all(block["id"] in started for block in tool_uses[:limit]):
            to_run = []  # recorded with the turn; a delegation starts its child run instead
            for block in tool_uses[:limit]:
                if self._delegates(block["name"]) and not self._input_problem(block):
                    done = self._delegate(block, started[block["id"]], fresh=True)
                    if done is None:
                        waiting = True
                    else:
                        results[block["id"]] = done
                else:
                    to_run.append((block, started[block["id"]]))
        else:  # a resumed run, or a turn with calls that need approval
            to_run, waiting = self._prepare(tool_uses[:limit], results)
        if to_run:
            instance = connection.tenant
            # Skills and parallel calls wait on the network: the connection goes back first. A core
            # tool on its own gives it back when it reaches the ERP (ToolContext.erp).
            if len(to_run) > 1 or any(block["name"] in self.skills for block, _ in to_run):
                release_connection()
            if len(to_run) == 1:
                outcomes = [self._call(*to_run[0], instance)]
            else:
                with ThreadPoolExecutor(max_workers=min(len(to_run), 8), thread_name_prefix="tool") as pool:
                    outcomes = list(pool.map(lambda item: self._call(*item, instance, own_thread=True), to_run))
            for (block, call_id), outcome in zip(to_run, outcomes, strict=True):
                self._record(block, call_id, outcome)
                results[block["id"]] = self._result_block(block["id"], outcome.result, outcome.is_error)
        if waiting:
            return None
        return [results[b["id"]] for b in tool_uses]

    def _prepare(self, tool_uses: list[dict], results: dict[str, dict]) -> tuple[list[tuple[dict, int]], bool]:
        """Record the calls one by one, replaying completed ones and asking for approvals:
        (the calls to run now, whether any awaits a decision)."""
        from .approvals import approval_outcome, approval_request_create

        run = self.run
        self._awaiting_approval = False  # whether a call of this turn waits for a person (set below)
        rows = {c.tool_use_id: c for c in ToolCall.objects.filter(run=run, tool_use_id__in=[b["id"] for b in tool_uses])
                .select_related("approval")}
        to_run: list[tuple[dict, int]] = []
        waiting = False
        for block in tool_uses:
            row = rows.get(block["id"])
            if row is not None and row.status in (ToolCallStatus.SUCCEEDED, ToolCallStatus.FAILED):
                results[block["id"]] = self._result_block(block["id"], row.result, row.is_error)  # replayed
                continue
            if row is not None and row.status == ToolCallStatus.DELEGATED:
                done = self._delegate(block, row.pk)  # its child's result, once the child has finished
                if done is None:
                    waiting = True
                else:
                    results[block["id"]] = done
                continue
            fresh = row is None
            if fresh:
                rule = self._approval_rule(block["name"]) if not self._input_problem(block) else ""
                # The gated call and its request are one transaction: a worker that dies between
                # them can leave neither, never a call on hold with nobody asked.
                with transaction.atomic():
                    row = ToolCall.objects.create(
                        run=run, tool_use_id=block["id"], name=block["name"], input=block.get("input") or {},
                        side_effect=self._side_effect(block["name"]), idempotency_key=self._key(block),
                        iteration=run.iterations,
                        status=ToolCallStatus.AWAITING_APPROVAL if rule else ToolCallStatus.STARTED,
                        attempts=0 if rule else 1)
                    approval = approval_request_create(run=run, tool_call=row, rule=rule,
                                                       priority=self._approval_priority(block["name"])) \
                        if rule else None
                if approval is not None and approval_outcome(approval)[0] == "wait":
                    waiting = self._awaiting_approval = True
                    continue
                fresh = approval is None  # approved at once by the instance's auto rule: runs as approved calls do
            elif row.status == ToolCallStatus.AWAITING_APPROVAL:
                approval = getattr(row, "approval", None)
                if approval is None:
                    # Fail closed: a call held for approval with no request on record (left by an
                    # earlier version that wrote them apart) is asked for now, never run.
                    approval_request_create(run=run, tool_call=row, rule=self._approval_rule(block["name"])
                                            or "held for approval (the request was missing)")
                    waiting = self._awaiting_approval = True
                    continue
                action, message = approval_outcome(approval)
                if action == "wait":
                    waiting = self._awaiting_approval = True
                    continue
                if action == "fail":
                    self._record(block, row.pk, _Outcome(message, True, 0.0))
                    results[block["id"]] = self._result_block(block["id"], message, True)
                    continue
            if self._delegates(block["name"]) and not self._input_problem(block):
                done = self._delegate(block, row.pk, fresh=fresh)  # a child run does it: wait for it
                if done is None:
                    waiting = True
                else:
                    results[block["id"]] = done
                continue
            if not fresh:  # a retry after a worker died, or a call that was approved
                ToolCall.objects.filter(pk=row.pk).update(attempts=row.attempts + 1, status=ToolCallStatus.STARTED)
            event_append(run_id=run.pk, type="tool.started", payload={
                "tool_use_id": block["id"], "name": block["name"], "input": block.get("input") or {}})
            to_run.append((block, row.pk))
        return to_run, waiting

    def _run_children_here(self) -> bool:
        """The run's children that no worker has taken yet run now, in this worker slot, each on a
        thread of its own (agents/delegation.py): when they end, the parent goes on in this same
        execution. One that stops for an approval, or that another execution holds, is left to it.
        True when every child it ran has ended."""
        from django.conf import settings

        from .models import TERMINAL_STATUSES

        if not settings.AGENT_DELEGATION_INLINE:
            return False
        # The children this execution just started, else (a resumed run) any the last one left queued.
        queued, self._new_children = self._new_children, []
        queued = queued or [str(pk) for pk in AgentRun.objects.filter(parent=self.run, status=RunStatus.QUEUED)
                            .values_list("pk", flat=True)]
        if not queued:
            return False
        instance, worker = connection.tenant, self.worker.split("/")[0]

        def run_child(child_id: str) -> str:
            connection.set_tenant(instance)
            try:
                return execute_run(run_id=child_id, worker=worker)
            except Exception:  # noqa: BLE001 - the child is failed and logged; the parent reads that
                return "crashed"
            finally:
                connection.close()

        release_connection()
        if self.run.depth == 0:
            ended = list(_child_slots().map(run_child, queued))
        else:  # a child's children: threads of their own, so no slot ever waits for a slot (no deadlock)
            with ThreadPoolExecutor(max_workers=min(len(queued), 8), thread_name_prefix="grandchild") as pool:
                ended = list(pool.map(run_child, queued))
        # Any other child of the turn still working (a resumed run's) is found by _prepare again.
        return all(status in TERMINAL_STATUSES for status in ended)

    def _delegates(self, name: str) -> bool:
        """Whether a call to `name` is a delegation (a child run does it)."""
        return name in self.tools and target_of(name) is not None

    def _delegate(self, block: dict, call_id: int, *, fresh: bool = False) -> dict | None:
        """A delegation call (agents/delegation.py): its child run is started once; None while the
        child works, the tool result when it has finished or cannot start (the reason, is_error).
        `fresh`: the call's row was just created, so it has no child yet."""
        from .delegation import child_result, child_start, delegation_problem, target_version

        child = None if fresh else AgentRun.objects.filter(parent_call_id=call_id).first()
        if child is None:
            version = target_version(block["name"])
            problem = delegation_problem(self.run, block["name"], version)
            if problem:
                self._record(block, call_id, _Outcome(problem, True, 0.0))
                return self._result_block(block["id"], problem, True)
            child = child_start(parent=self.run, call_id=call_id, tool_use_id=block["id"], name=block["name"],
                                tool_input=block.get("input") or {}, version=version)
            self._new_children.append(str(child.pk))
            return None
        if not child.is_finished:
            return None
        result, is_error = child_result(child)
        duration = (child.finished_at - child.created_at).total_seconds() * 1000 if child.finished_at else 0.0
        self._record(block, call_id, _Outcome(result, is_error, round(duration, 2)))
        return self._result_block(block["id"], result, is_error)

    def _call(self, block: dict, call_id: int, instance, own_thread: bool = False) -> _Outcome:
        """One recorded call: a handoff ends the run (agents/delegation.py); any other tool is invoked."""
        if block["name"] in self.tools and handoff_target(block["name"]) and not self._input_problem(block):
            if own_thread:
                connection.set_tenant(instance)
            try:
                return self._hand_off(block, call_id)
            finally:
                if own_thread:
                    connection.close()
        return self._invoke(block, instance, own_thread)

    def _hand_off(self, block: dict, call_id: int) -> _Outcome:
        from .delegation import handoff_problem, handoff_start

        started = time.perf_counter()
        problem = handoff_problem(self.run, block["name"])
        if problem:
            return _Outcome(problem, True, 0.0)
        arguments = block.get("input") or {}
        successor = handoff_start(run=self.run, call_id=call_id, tool_use_id=block["id"], name=block["name"],
                                  tool_input=arguments)
        self._handoff = {"to_agent_type": successor.agent_type, "to_agent_version": successor.agent_version,
                         "run_id": str(successor.pk), "summary": str(arguments.get("summary", "")),
                         **({"thread_id": str(successor.thread_id), "thread_turn": successor.thread_turn}
                            if successor.thread_id else {})}
        result = {"handed_off_to": successor.agent_type, "run_id": str(successor.pk),
                  "note": "The other agent takes over from here; your run ends with this call."}
        return _Outcome(result, False, round((time.perf_counter() - started) * 1000, 2))

    def _invoke(self, block: dict, instance, own_thread: bool = False) -> _Outcome:
        """Run one tool handler (in a thread of its own when several run at once)."""
        started = time.perf_counter()
        if own_thread:
            connection.set_tenant(instance)
        tool: ToolSpec | None = self.tools.get(block["name"])
        arguments = block.get("input") or {}

        def outcome(result: Any, is_error: bool, removed: int = 0) -> _Outcome:
            # What a tool, the ERP or a webhook answered is kept minus what cannot be stored, and
            # marked: a U+0000 in an answer must not fail the step's write (and the run with it).
            result, scrubbed = scrub_unstorable(result)
            return _Outcome(result, is_error, round((time.perf_counter() - started) * 1000, 2), removed + scrubbed)

        if block["name"] in self.skills:
            try:
                return self._invoke_skill(block, instance, outcome)
            finally:
                if own_thread:
                    connection.close()
        if tool is None:
            if own_thread:
                connection.close()
            available = ", ".join(sorted({*self.tools, *self.skills}))
            return outcome(f"Unknown tool '{block['name']}'. Available tools: {available}.", True)
        errors = sorted(_validator(tool).iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            problems = "; ".join(f"{'/'.join(map(str, e.path)) or 'input'}: {e.message}" for e in errors[:5])
            return outcome(f"Invalid input for {tool.name}: {problems}. Fix the input and call it again.", True)
        context = ToolContext(
            instance=instance, run_id=str(self.run.pk), tool_use_id=block["id"],
            idempotency_key=self._key(block), client=self.run.client,
            specialization=self.prompt.specialization, rules=self.rules, sandbox=self.run.sandbox,
            client_scope=None if self.client_scope is None else frozenset(self.client_scope),
            settings=self.prompt.tool_config.get(tool.name, {}))
        if tool.name in self.spec.cached_tools and not tool.side_effect:
            earlier = ToolCall.objects.filter(run=self.run, name=tool.name, input=arguments, is_error=False,
                                              status=ToolCallStatus.SUCCEEDED).exclude(tool_use_id=block["id"]) \
                .values_list("result", flat=True).first()
            if earlier is not None:  # the same read in this run: its answer again, without asking again
                return dataclasses.replace(outcome(earlier, False), cached=True)
        try:
            return outcome(tool.handler(context, arguments), False)
        except ToolError as exc:
            return outcome(exc.message, True)
        except ErpError as exc:
            return outcome(exc.message, True)
        except Exception as exc:  # noqa: BLE001 - a broken tool must not crash the run
            logger.exception("tool %s failed in run %s", tool.name, self.run.pk)
            return outcome(f"{tool.name} failed unexpectedly ({exc.__class__.__name__}). Try another approach.", True)
        finally:
            if own_thread:
                connection.close()

    def _invoke_skill(self, block: dict, instance, outcome) -> _Outcome:
        from skills.executor import SkillContext, skill_execute

        run = self.run
        context = SkillContext(instance=instance.schema_name, run_id=str(run.pk), client_id=run.client_id,
                               user_id=run.created_by_id, idempotency_key=self._key(block),
                               sandbox=run.sandbox,
                               client_ids=None if self.client_scope is None else frozenset(self.client_scope.values()))
        skill = self.skills[block["name"]]
        try:
            if skill.execution_type == "mcp":
                from skills.mcp import mcp_tool_call

                result = mcp_tool_call(tool=skill, arguments=block.get("input") or {}, context=context)
            else:
                result = skill_execute(skill=skill, arguments=block.get("input") or {}, context=context)
        except Exception as exc:  # noqa: BLE001 - a broken skill must not crash the run
            logger.exception("skill %s failed in run %s", block["name"], run.pk)
            return outcome(f"{block['name']} failed unexpectedly ({exc.__class__.__name__}).", True)
        return outcome(result.result, result.is_error, result.removed)

    def _record(self, block: dict, call_id: int, outcome: _Outcome) -> None:
        """Stage what came of a call: it is written with the step's next statement."""
        if outcome.removed:
            outcome.result = _marked(outcome.result, outcome.removed)
        self._staged_calls.append(FinishedCall(id=call_id, result=outcome.result, is_error=outcome.is_error,
                                               duration_ms=outcome.duration_ms))
        metrics.tool_call_finished(self.spec.agent_type, block["name"], outcome.is_error)
        kind = ARTIFACT_KINDS.get(block["name"])
        if kind and not outcome.is_error:
            arguments = block.get("input") or {}
            content = next((str(arguments[k]) for k in ("content", "text", "response", "objective") if k in arguments), "")
            self._staged_artifacts.append(Artifact(
                run=self.run, kind=kind, tool_call_id=call_id, content=content, title=str(arguments.get("title", ""))[:200],
                data=outcome.result if isinstance(outcome.result, dict) else {"result": outcome.result}))
        self._staged_events.append(("tool.finished", {
            "tool_use_id": block["id"], "name": block["name"], "is_error": outcome.is_error,
            "duration_ms": outcome.duration_ms, "output": _truncate(outcome.result, 4000),
            **({"removed_characters": outcome.removed} if outcome.removed else {}),
            **({"cached": True} if outcome.cached else {})}))

    @staticmethod
    def _result_block(tool_use_id: str, result: Any, is_error: bool) -> dict:
        return {"type": "tool_result", "tool_use_id": tool_use_id, "is_error": is_error,
                "content": _truncate(result, TOOL_RESULT_MAX_CHARS)}


_CHILD_SLOTS: ThreadPoolExecutor | None = None
_CHILD_SLOTS_LOCK = threading.Lock()
CHILD_SLOTS = 32


def _child_slots() -> ThreadPoolExecutor:
    """The process's threads for delegated runs started inline (RunLoop._run_children_here): kept
    between runs, so a child does not pay for a new thread's database connection and SDK client
    shard. Only top-level runs use them (a child's children get threads of their own), so a slot
    never waits for a slot; at most CHILD_SLOTS children of top-level runs run at once."""
    global _CHILD_SLOTS
    with _CHILD_SLOTS_LOCK:
        if _CHILD_SLOTS is None:
            _CHILD_SLOTS = ThreadPoolExecutor(max_workers=CHILD_SLOTS, thread_name_prefix="child")
        return _CHILD_SLOTS


def _marked(result: Any, removed: int) -> Any:
    """A result some characters were removed from, saying so (to the model and the run's viewers)."""
    note = removed_note(removed)
    if isinstance(result, dict):
        return {**result, "_note": note}
    return f"{result} {note}" if isinstance(result, str) else {"result": result, "_note": note}


def _client_scope(run: AgentRun) -> dict[str, int] | None:
    """The clients a run's tools may name ({slug: id}): those its creator may see. None when the
    creator sees every client (or the run was started by the platform itself). A run for one
    client is bound to it anyway (agents/tools/common.py)."""
    from tuning.governance import sees_every_client
    from tuning.selectors import clients_visible_to

    creator = run.created_by
    if creator is None or sees_every_client(creator):
        return None
    return dict(clients_visible_to(actor=creator).values_list("slug", "pk"))


def _truncate(result: Any, limit: int) -> str:
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"… [truncated {len(text) - limit} characters]"


def execute_run(*, run_id: str, worker: str) -> str:
    """Claim the run for one execution and drive it to a terminal status (or until it is taken
    away). `worker` names the process; the claim token is new for every execution, so a second
    delivery of the task, to this process or another, is refused while this one holds the lease.

    A dependency's outage (the database, Redis) never fails the run: the execution stops without writing, its lease runs
    out, and agents.reap_stale_runs hands the run to a worker again, which resumes it from its
    last checkpoint."""
    token = new_claim_token(worker)
    try:
        run = run_claim(run_id=run_id, worker=token)
    except Exception as exc:
        if dependency_of(exc) is None:
            raise
        logger.warning("run %s not started: the database is unavailable (%s); it will be re-queued", run_id, exc)
        return "interrupted"
    if run is None:
        return "skipped"
    spec = get_spec(run.agent_type, run.agent_version)
    if spec is None:
        run_finish(run=run, status="failed", error=f"{run.agent_type} {run.agent_version} is no longer available.")
        return "failed"
    run_watcher.watch(run.pk, connection.schema_name, owner=token)
    run_claim_announce(run)  # after the watcher read the run's flags: a run nobody watches is not announced
    try:
        return RunLoop(run, spec, token).execute()
    except LeaseLost:
        logger.warning("run %s was taken over by another execution; %s stops", run_id, token)
        return "lost"
    except Exception as exc:
        if dependency_of(exc) is not None:
            logger.warning("!!! run %s interrupted: the %s is unavailable (%s); it resumes from its last "
                           "checkpoint when its lease runs out", run_id, dependency_of(exc), exc)
            return "interrupted"
        logger.exception("run %s crashed", run_id)
        run_finish(run=run, status="failed", error=f"The platform failed while running the agent ({exc.__class__.__name__}).")
        raise
    finally:
        run_watcher.forget(run.pk)
        release_connection()
