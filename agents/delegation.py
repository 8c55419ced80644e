"""Delegation (DESIGN §13, guide §11.1 and §11.5): an agent hands part of its job to another agent.

A delegation tool (`delegate_to_<agent type>`, generated from the catalog's entry for that type)
does not run in the loop like other tools. Its call starts a **child run** of the other agent, for
the same client, specialization, sandbox mode and creator, with the call's task and context as its
task; the parent gives its worker back and waits (status `waiting`, no lease, like a run awaiting
approval), and is queued again when its last child of the turn has finished. The child's output
(or its error) is the call's result the parent's model reads.

What holds under faults, and why:
* at most one child per call: `AgentRun.parent_call` is unique, and the call's row moves to
  `delegated` in the transaction that creates the child, so a redelivered parent finds the child
  instead of starting another, and a finished child is never run again (its result is replayed);
* a child ending (any way: succeeded, failed, cancelled, its spec gone) settles its parent in a
  transaction on the parent's row: the cost of its children, theirs included, is recomputed (a sum,
  so doing it twice changes nothing) and a waiting parent with no unfinished child is queued once;
  if that step is lost (the database went away as the child ended), the reaper finds the waiting
  parent with nothing left to wait for and does it;
* cancelling a run cancels its unfinished descendants first (deepest first), then itself;
* a child's events are mirrored into its ancestors' logs by the database (migration 0007's
  trigger), so the parent's one stream shows them in order, and each child keeps its own.

Depth: a top-level run is depth 0; its children 1, theirs 2; a run at `MAX_DEPTH` cannot delegate
(its call answers with an error the model reads).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Now

from spokestack.accounts import policy
from spokestack.tasks import enqueue_on_commit

from .events import event_append
from .models import TERMINAL_STATUSES, AgentRun, RunStatus, ToolCall, ToolCallStatus
from .registry import ToolContext, ToolError, ToolSpec, get_spec

logger = logging.getLogger(__name__)

PREFIX = "delegate_to_"
MAX_DEPTH = 2
MAX_CONTEXT_CHARS = 40_000
RESULT_OUTPUT_CHARS = 12_000  # of a child's output, in its parent's tool result

SCHEMA = {
    "type": "object",
    "properties": {
        "task": {"type": "string", "minLength": 1, "maxLength": 20_000,
                 "description": "What the other agent should do, as you would brief a colleague: the deliverable, "
                                "its scope and the format you want back."},
        "context": {"type": "string", "maxLength": MAX_CONTEXT_CHARS,
                    "description": "What it needs from your work so far: facts, numbers, requirements, dates and "
                                   "constraints (it does not see your conversation)."},
    },
    "required": ["task"],
    "additionalProperties": False,
}


def tool_name(agent_type: str) -> str:
    return f"{PREFIX}{agent_type}"


def target_of(name: str) -> str | None:
    """The agent type a delegation tool's name hands work to (None for any other tool)."""
    return name[len(PREFIX):] or None if name.startswith(PREFIX) else None


def _not_inline(ctx: ToolContext, tool_input: dict) -> Any:
    raise ToolError("Delegation starts a run of another agent; it is not available here.")


def delegation_tool(agent_type: str, *, title: str | None = None, description: str | None = None) -> ToolSpec:
    """The tool that delegates to `agent_type`, described from its catalog entry (the latest
    registered spec, or the title and description given for an agency-built agent)."""
    if title is None or description is None:
        spec = get_spec(agent_type)
        if spec is None:
            raise LookupError(f"no agent type {agent_type!r} to delegate to")
        title, description = spec.title, spec.description
    return ToolSpec(
        name=tool_name(agent_type),
        description=(f"Delegate a sub-task to the {title} agent ({agent_type}): {description.rstrip('.')}. It runs as "
                     "a separate run with its own tools, for the same client and market, and returns its final "
                     "output (or why it failed). Give it a complete task and the context it needs; call several "
                     "delegation tools in the same turn to have them work at once."),
        input_schema=SCHEMA,
        handler=_not_inline,
    )


# --- the loop's side --------------------------------------------------------------------


def target_version(name: str) -> str | None:
    """The version a run of the tool's target agent starts on here (None: no such agent)."""
    from .services import run_version_for

    try:
        return run_version_for(target_of(name) or handoff_target(name))
    except LookupError:
        return None


def delegation_problem(run: AgentRun, name: str, version: str | None) -> str:
    """Why this run cannot delegate to the tool's agent now ('' when it can): depth, an unknown or
    disabled agent (`version`: target_version's), or a creator who may no longer start runs for the client."""
    if run.depth >= MAX_DEPTH:
        return (f"Not delegated: this run is already {run.depth} levels deep (delegated work may delegate at most "
                f"{MAX_DEPTH} levels down). Do this part yourself with your own tools.")
    return _start_problem(run, target_of(name), version, "Not delegated")


def _start_problem(run: AgentRun, target: str | None, version: str | None, verb: str) -> str:
    """Why a run of `target` cannot be started on this run's behalf ('' when it can)."""
    from .services import _agent_enabled

    if version is None:
        return f"{verb}: there is no {target} agent in this instance."
    if not _agent_enabled(target, version):
        return f"{verb}: the {target} agent is disabled in this instance. Do this part yourself."
    if run.created_by_id and not policy.allows(run.created_by, "run.create", run.client_id):
        return f"{verb}: the person who started this run may no longer start runs for this client."
    return ""


def handoff_problem(run: AgentRun, name: str) -> str:
    return _start_problem(run, handoff_target(name), target_version(name), "Not handed off")


def child_task(parent: AgentRun, tool_input: dict) -> str:
    task = str(tool_input.get("task", "")).strip()
    context = str(tool_input.get("context", "") or "").strip()
    if not context:
        return task
    return f"{task}\n\n<delegated_context from=\"{parent.agent_type}\">\n{context}\n</delegated_context>"


@transaction.atomic
def child_start(*, parent: AgentRun, call_id: int, tool_use_id: str, name: str, tool_input: dict,
                version: str) -> AgentRun:
    """Start the child run of one delegation call, once: the call moves to `delegated` and the child
    is created and queued (after commit) in one transaction; a second start finds the first child."""
    from .services import run_queued

    ToolCall.objects.filter(pk=call_id).exclude(status=ToolCallStatus.DELEGATED).update(
        status=ToolCallStatus.DELEGATED)
    existing = AgentRun.objects.filter(parent_call_id=call_id).first()
    if existing is not None:
        return existing
    target = target_of(name)
    child = AgentRun(
        agent_type=target, agent_version=version, client_id=parent.client_id,
        created_by_id=parent.created_by_id, task=child_task(parent, tool_input),
        metadata={"delegated_by": {"run_id": str(parent.pk), "agent_type": parent.agent_type,
                                   "tool_use_id": tool_use_id}},
        specialization=parent.specialization, sandbox=parent.sandbox, parent=parent, parent_call_id=call_id,
        depth=parent.depth + 1)
    child.save()
    event_append(run_id=parent.pk, type="delegation.started", payload={
        "tool_use_id": tool_use_id, "name": name, "run_id": str(child.pk), "agent_type": child.agent_type,
        "agent_version": child.agent_version, "depth": child.depth, "task": str(tool_input.get("task", ""))[:500]})
    # Run inline, the parent's execution starts it (RunLoop._run_children_here); were that execution
    # to die first, the reaper starts a run queued this long without a worker.
    run_queued(child, enqueue=not settings.AGENT_DELEGATION_INLINE)
    return child


def child_result(child: AgentRun) -> tuple[dict[str, Any], bool]:
    """A finished child as its parent's tool result: (result, is_error)."""
    output = child.output or ""
    result: dict[str, Any] = {
        "agent_type": child.agent_type, "run_id": str(child.pk), "status": child.status,
        "cost_usd": float(child.total_cost_usd),
        "output": output if len(output) <= RESULT_OUTPUT_CHARS else
        output[:RESULT_OUTPUT_CHARS] + f"… [{len(output) - RESULT_OUTPUT_CHARS} more characters in run {child.pk}]",
        "artifacts": [{"kind": kind, "title": title} for kind, title in
                      child.artifacts.exclude(kind="output").values_list("kind", "title")[:20]],
    }
    if child.status == RunStatus.SUCCEEDED:
        return result, False
    result["error"] = child.error or f"The {child.agent_type} run {child.status}."
    return result, True


def run_await_children(*, run: AgentRun, worker: str) -> bool:
    """Park a running run while any child it started is unfinished; the worker is released.

    False when every child finished meanwhile (the loop goes on at once). Taken on the run's row
    lock, as each child's end is: a child ending now either sees the run waiting (and queues it)
    or is seen finished here."""
    from .services import LeaseLost

    with transaction.atomic():
        locked = AgentRun.objects.select_for_update().filter(pk=run.pk, status=RunStatus.RUNNING,
                                                             lease_owner=worker).first()
        if locked is None:
            raise LeaseLost(str(run.pk))
        unfinished = [str(pk) for pk in AgentRun.objects.filter(parent=run).exclude(status__in=TERMINAL_STATUSES)
                      .values_list("pk", flat=True)]
        if not unfinished:
            return False
        AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.WAITING, lease_until=None, lease_owner="")
        event_append(run_id=run.pk, type="run.waiting", payload={"child_run_ids": unfinished})
    return True


_ROLL_UP_SQL = """
UPDATE agents_agentrun parent
   SET children_cost_usd = COALESCE((SELECT SUM(child.cost_usd + child.children_cost_usd) FROM agents_agentrun child
                                      WHERE child.parent_id = parent.id), 0)
 WHERE parent.id = %s
RETURNING parent.status, parent.parent_id
"""


def children_settle(*, parent_id: uuid.UUID | str) -> bool:
    """After a child of `parent_id` ended: roll the children's cost up into the parent, and queue the
    parent again when it waits with no unfinished child. Then the same one level up (the parent's
    total changed). True when the parent was queued. Idempotent: a sum, and a conditional update.

    The roll-up is one statement, which takes the parent's row lock as the parent's own parking
    does (run_await_children): the child ended (committed) before it, so either the parent parked
    first and is seen waiting here, or it parks later and sees the child ended."""
    from django.db import connection

    from .tasks import run_agent

    with connection.cursor() as cursor:
        cursor.execute(_ROLL_UP_SQL, [str(parent_id)])
        row = cursor.fetchone()
    if row is None:
        return False
    status, grandparent = row
    resumed = False
    if status == RunStatus.WAITING:
        with transaction.atomic():
            AgentRun.objects.select_for_update().filter(pk=parent_id).values_list("pk", flat=True).first()
            if not AgentRun.objects.filter(parent_id=parent_id).exclude(status__in=TERMINAL_STATUSES).exists():
                resumed = bool(AgentRun.objects.filter(pk=parent_id, status=RunStatus.WAITING).update(
                    status=RunStatus.QUEUED, lease_until=None, lease_owner="", requeued_at=Now()))
                if resumed:
                    event_append(run_id=parent_id, type="run.delegation_resumed", payload={})
                    enqueue_on_commit(run_agent, run_id=str(parent_id))
    if grandparent:
        children_settle(parent_id=grandparent)
    return resumed


def child_ended(run: AgentRun) -> None:
    """A run reached a terminal status: if it is a child, settle its parent. Never raises: a lost
    settlement is the reaper's to redo (agents.reap_stale_runs)."""
    if not run.parent_id:
        return
    try:
        children_settle(parent_id=run.parent_id)
    except Exception:  # noqa: BLE001 - the child's end stands; the reaper settles the parent later
        logger.warning("could not settle the parent %s of run %s; the reaper will", run.parent_id, run.pk,
                       exc_info=True)


def descendants_unfinished(run: AgentRun) -> list[AgentRun]:
    """The run's unfinished children and grandchildren, deepest first (the order cancels go in:
    a descendant's row is always locked before its ancestor's, as its events' mirroring does)."""
    children = list(AgentRun.objects.filter(parent=run).exclude(status__in=TERMINAL_STATUSES))
    grandchildren = list(AgentRun.objects.filter(parent__in=[c.pk for c in children] or [None])
                         .exclude(status__in=TERMINAL_STATUSES)) if children else []
    return [*sorted(grandchildren, key=lambda r: r.created_at), *sorted(children, key=lambda r: r.created_at)]


_SETTLE_SQL = """
SELECT id::text FROM agents_agentrun run
 WHERE status = 'waiting'
   AND NOT EXISTS (SELECT 1 FROM agents_agentrun child
                    WHERE child.parent_id = run.id AND child.status NOT IN ('succeeded', 'failed', 'cancelled'))
"""


def waiting_runs_settle() -> int:
    """The reaper's share: waiting runs whose children all ended (their settlement was lost) are
    settled now. Returns how many were queued again."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_SETTLE_SQL)
        parents = [row[0] for row in cursor.fetchall()]
    return sum(children_settle(parent_id=parent_id) for parent_id in parents)


# --- handoff (guide §11.5) --------------------------------------------------------------------

HANDOFF_PREFIX = "hand_off_to_"
HANDOFF_SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "minLength": 1, "maxLength": 20_000,
                    "description": "What was done and decided so far, with the facts, ids and numbers the next "
                                   "agent needs: it sees this summary, not your conversation."},
        "request": {"type": "string", "maxLength": 5_000,
                    "description": "What the next agent should do first."},
    },
    "required": ["summary"],
    "additionalProperties": False,
}


def handoff_tool_name(agent_type: str) -> str:
    return f"{HANDOFF_PREFIX}{agent_type}"


def handoff_target(name: str) -> str | None:
    """The agent type a handoff tool's name hands the work to (None for any other tool)."""
    return name[len(HANDOFF_PREFIX):] or None if name.startswith(HANDOFF_PREFIX) else None


def handoff_tool(agent_type: str, *, when: str) -> ToolSpec:
    """The tool that ends a run by handing the work to `agent_type` (`when`: the moment to use it)."""
    spec = get_spec(agent_type)
    if spec is None:
        raise LookupError(f"no agent type {agent_type!r} to hand off to")
    return ToolSpec(
        name=handoff_tool_name(agent_type),
        description=(f"Hand the work over to the {spec.title} agent ({agent_type}) and end your run: {when} It "
                     "starts with your summary and request (in a thread, it answers the next messages instead of "
                     "you). Call it alone, as your last step, after your own work is saved."),
        input_schema=HANDOFF_SCHEMA,
        handler=_not_inline,
    )


def handoff_start(*, run: AgentRun, call_id: int, tool_use_id: str, name: str, tool_input: dict) -> AgentRun:
    """The run that takes over from `run` (once per call, on the run's row lock): the thread's next
    turn with the other agent (the thread switches to it), or a new run for the same client, creator,
    specialization and sandbox mode. Its task is the summary and the request."""
    from .models import Thread
    from .services import run_queued, run_version_for

    target = handoff_target(name)
    with transaction.atomic():
        AgentRun.objects.select_for_update().filter(pk=run.pk).values_list("pk", flat=True).first()
        existing = AgentRun.objects.filter(metadata__handed_off_by__tool_call=call_id).first()
        if existing is not None:
            return existing
        request = str(tool_input.get("request", "") or "").strip()
        task = (f"{request}\n\n" if request else "") + (
            f"<handoff from=\"{run.agent_type}\">\n{str(tool_input['summary']).strip()}\n</handoff>")
        version = run_version_for(target)
        successor = AgentRun(
            agent_type=target, agent_version=version, client_id=run.client_id, created_by_id=run.created_by_id,
            task=task, specialization=run.specialization, sandbox=run.sandbox,
            metadata={"handed_off_by": {"run_id": str(run.pk), "agent_type": run.agent_type, "tool_call": call_id,
                                        "tool_use_id": tool_use_id}})
        if run.thread_id:
            thread = Thread.objects.select_for_update().get(pk=run.thread_id)
            number = thread.turns_count + 1
            # A fresh conversation (the loop starts it from the task): the summary is its context, and the
            # other agent's tool calls never reach a model that does not have those tools.
            successor.thread, successor.thread_turn = thread, number
            Thread.objects.filter(pk=thread.pk).update(agent_type=target, agent_version=version, turns_count=number)
        successor.save()
        run_queued(successor)
    return successor
