# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""Issue #20 part 1: the usage rollup is kept current as runs end, once per run whatever happens."""

from decimal import Decimal

from django.db import connection

from agents.loop import execute_run
from agents.models import AgentRun
from agents.services import run_cancel, run_create
from agents.tasks import reap_stale_runs
from usage.models import DURATION_BUCKETS_MS, UsageDaily
from usage.services import usage_record

from ..skills.conftest import admin_a, client_a, scripted, text_turn, tool_turn  # noqa: F401


def test_an_ended_run_is_counted_once_in_its_days_row(in_a, admin_a, client_a, scripted, runs_stay_here):
    scripted.script("usage-1", [tool_turn(("toolu_u1", "check_brand_rules", {"text": "Glow gently."})),
                                text_turn("Glow gently.")])
    scripted.script("usage-2", [text_turn("Shine softly.")])
    runs = [run_create(actor=admin_a, agent_type="copy", task=f"{m}: a caption.", client_id=client_a.pk,
                       sandbox=True).run for m in ("usage-1", "usage-2")]
    for run in runs:
        assert execute_run(run_id=str(run.pk), worker="w1") == "succeeded", AgentRun.objects.get(pk=run.pk).error
        assert execute_run(run_id=str(run.pk), worker="w2") == "skipped"  # a second delivery counts nothing
        assert usage_record(run_id=run.pk) is False  # nor does counting it again
    row = UsageDaily.objects.get()
    done = list(AgentRun.objects.filter(pk__in=[r.pk for r in runs]))
    assert (row.agent_type, row.client, row.user, row.runs_succeeded, row.runs) == ("copy", client_a, admin_a, 2, 2)
    assert row.turns == sum(r.iterations for r in done) == 3 and row.tool_calls == 1
    assert row.input_tokens == sum(r.input_tokens for r in done) > 0
    assert row.cache_read_input_tokens == sum(r.cache_read_input_tokens for r in done)
    assert row.cost_usd == sum((r.cost_usd for r in done), Decimal(0)) > 0
    assert sum(row.duration_buckets) == 2 and len(row.duration_buckets) == len(DURATION_BUCKETS_MS) + 1
    assert row.day == max(r.finished_at for r in done).date()  # the instance's zone (UTC here)


def test_a_cancelled_run_counts_as_cancelled_and_a_lost_count_is_the_reapers(in_a, admin_a, client_a, scripted,
                                                                              runs_stay_here):
    run = run_create(actor=admin_a, agent_type="copy", task="usage-3: a caption.", client_id=client_a.pk).run
    run_cancel(actor=admin_a, run=run)
    assert UsageDaily.objects.get().runs_cancelled == 1
    scripted.script("usage-4", [text_turn("Shine.")])
    other = run_create(actor=admin_a, agent_type="brief", task="usage-4: a brief.", client_id=client_a.pk,
                       sandbox=True).run
    assert execute_run(run_id=str(other.pk), worker="w1") == "succeeded"
    # as if the worker died between the run's end and its counting
    AgentRun.objects.filter(pk=other.pk).update(usage_recorded=False)
    UsageDaily.objects.filter(agent_type="brief").delete()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE agents_agentrun SET finished_at = now() - interval '1 minute' WHERE id = %s",
                       [str(other.pk)])
    reap_stale_runs()
    assert UsageDaily.objects.get(agent_type="brief").runs_succeeded == 1
    reap_stale_runs()
    assert UsageDaily.objects.get(agent_type="brief").runs_succeeded == 1
