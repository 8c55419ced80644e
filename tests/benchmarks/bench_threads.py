"""Threads and memory (issue #16): what a conversation turn and a client's memory add, in-process.

* thread_turn_overhead_p50_ms: platform time a thread adds to a turn over a plain run. Both go
  through the same path end to end in this process: the service that starts them
  (`thread_message_send` for turn 2 of a fresh thread, `run_create` for the plain run; each writes
  the run, its queued event and enqueues it to Redis after commit) and `execute_run` (lease, prompt,
  the loop, persistence, events), with the offline model behind the real anthropic SDK
  (`agents.model.OfflineTransport`: zero latency, no network). The plain run's task is as long as
  the turn's conversation (turn 1's message and answer plus the new message), so both requests
  carry the same amount of text. Pairs alternate which goes first; reported: the p50 of the
  per-pair differences, and both raw p50s (thread_turn_p50_ms, plain_run_p50_ms), and the SQL
  statements of one of each (thread_turn_queries, plain_run_queries). Turn 1 of each thread is set
  up untimed; thread_bench_tool_calls (0) shows no tool ran in either.
* memory_assembly_p50_ms: the memory part of prompt assembly when the assembler's cache is cold
  (`memories_for_prompt` + `render_memories`: one query over the client's and the agency's
  accepted memories, the size bound, the text), for a client with 200 accepted memories.
  prompt_assembly_200_memories_uncached_p50_ms is the whole `assemble_prompt` with the cache
  cleared before each call, prompt_assembly_200_memories_warm_p50_ms a cache hit (one query for
  the tuning version and the use-count UPDATE of the memories told).
"""

from __future__ import annotations

import statistics
import time

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from . import fresh_instance

SCHEMA = "bench_threads"
HOST = "bench-threads.localhost"
PAIRS = 60
WARM_UP = 5
MEMORIES = 200
ASSEMBLIES = 300
# Words no tool of the copy agent matches: the offline model answers in one step, without tools.
FIRST = "Zephyr quokka marmalade."
FOLLOW_UP = "Quokka zephyr marmalade."
FILLER = "zephyr quokka marmalade "


def _instance():
    return fresh_instance(schema=SCHEMA, host=HOST, name="Bench threads")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _turns(admin, client) -> dict[str, float | int]:
    from agents.loop import execute_run
    from agents.models import AgentRun, RunStatus
    from agents.services import run_create
    from agents.threads import thread_create, thread_message_send

    def thread_turn() -> tuple[float, AgentRun]:
        created = thread_create(actor=admin, agent_type="copy", client_id=client.pk, message=FIRST)
        assert execute_run(run_id=str(created.turn.run.pk), worker="bench") == RunStatus.SUCCEEDED
        first = AgentRun.objects.get(pk=created.turn.run.pk)
        started = time.perf_counter()
        turn = thread_message_send(actor=admin, thread_id=created.thread.pk, message=FOLLOW_UP).run
        status = execute_run(run_id=str(turn.pk), worker="bench")
        elapsed = _ms(started)
        assert status == RunStatus.SUCCEEDED, status
        return elapsed, first

    def plain_run(task: str) -> float:
        started = time.perf_counter()
        run = run_create(actor=admin, agent_type="copy", task=task, client_id=client.pk).run
        status = execute_run(run_id=str(run.pk), worker="bench")
        elapsed = _ms(started)
        assert status == RunStatus.SUCCEEDED, status
        return elapsed

    _, first = thread_turn()
    # As long as the turn's conversation (turn 1's task and answer, and the follow-up), in words
    # no tool matches.
    length = len(FIRST) + len(first.output) + len(FOLLOW_UP)
    task = (FILLER * (length // len(FILLER) + 1))[:length].strip()
    for _ in range(WARM_UP):
        thread_turn()
        plain_run(task)
    threads, plains, differences = [], [], []
    for i in range(PAIRS):
        if i % 2:
            plain = plain_run(task)
            turn, _ = thread_turn()
        else:
            turn, _ = thread_turn()
            plain = plain_run(task)
        threads.append(turn)
        plains.append(plain)
        differences.append(turn - plain)
    with CaptureQueriesContext(connection) as plain_queries:
        plain_run(task)
    created = thread_create(actor=admin, agent_type="copy", client_id=client.pk, message=FIRST)
    execute_run(run_id=str(created.turn.run.pk), worker="bench")
    with CaptureQueriesContext(connection) as turn_queries:
        turn = thread_message_send(actor=admin, thread_id=created.thread.pk, message=FOLLOW_UP).run
        execute_run(run_id=str(turn.pk), worker="bench")
    runs = AgentRun.objects.filter(created_by=admin)
    tool_calls = sum(runs.values_list("tool_calls_count", flat=True))
    return {"thread_turn_overhead_p50_ms": statistics.median(differences),
            "thread_turn_p50_ms": statistics.median(threads), "plain_run_p50_ms": statistics.median(plains),
            "thread_turn_pairs": PAIRS, "thread_bench_tool_calls": tool_calls,
            "thread_turn_queries": len(turn_queries), "plain_run_queries": len(plain_queries)}


def _memory_assembly(client) -> dict[str, float | int]:
    from tuning.assembly import assemble_prompt, assembly_cache_clear, platform_tier_for, render_memories
    from tuning.selectors import memories_for_prompt
    from tuning.services import client_rule_add, memory_create

    client_rule_add(actor=None, client=client, kind="never", text="Never use urgency language.")
    for i in range(MEMORIES):
        memory_create(actor=None, client=client, text=f"Fact {i:03}: the brand prefers calm, plain words in copy.")
    copy = platform_tier_for("copy")
    selection = memories_for_prompt(client=client)
    assert len(selection.included) + len(selection.left_out) == MEMORIES
    for _ in range(20):
        assemble_prompt(platform=copy, client=client)
    memory_part, uncached, warm = [], [], []
    for _ in range(ASSEMBLIES):
        assembly_cache_clear()
        started = time.perf_counter()
        render_memories(memories_for_prompt(client=client).included)
        memory_part.append(_ms(started))
    for _ in range(ASSEMBLIES):
        assembly_cache_clear()
        started = time.perf_counter()
        assemble_prompt(platform=copy, client=client)
        uncached.append(_ms(started))
    assemble_prompt(platform=copy, client=client)
    for _ in range(ASSEMBLIES):
        started = time.perf_counter()
        assemble_prompt(platform=copy, client=client)
        warm.append(_ms(started))
    return {"memory_assembly_p50_ms": statistics.median(memory_part),
            "memories_told_of_200": len(selection.included),
            "prompt_assembly_200_memories_uncached_p50_ms": statistics.median(uncached),
            "prompt_assembly_200_memories_warm_p50_ms": statistics.median(warm)}


def run() -> dict[str, float | int]:
    from agents.catalog import AgentCatalog
    from agents.model import reset_client
    from tuning.assembly import set_platform_catalog
    from tuning.services import client_create

    set_platform_catalog(AgentCatalog())  # another benchmark of this process may have set the tests' catalog
    reset_client()  # settings.test: no key, so the offline model answers in-process
    provisioned = _instance()
    instance = provisioned.instance
    results: dict[str, float | int] = {}
    with tenant_context(instance):  # the real tenant: the tools read its settings
        client = client_create(name="Bench Threads Beauty", vertical="beauty", region="GCC", language="en")
        results.update(_turns(provisioned.admin, client))
        other = client_create(name="Bench Memory Beauty", vertical="beauty", region="GCC", language="en")
        results.update(_memory_assembly(other))
    connection.set_schema_to_public()
    instance.delete(force_drop=True)
    return results
