"""Issue #19, part 4: the offline model (no ANTHROPIC_API_KEY) handles the catalogue's new agents and
delegation well enough for `make run`: each demo run of a new agent (spokestack/demo_data.py
DEMO_CATALOGUE_RUNS) against its agency's sample ERP ends, its tools are called with input their
schemas accept and most of them answer, and the proposal's four child runs each do their part."""

import pytest
from django.db import connection
from django.test import override_settings

from agents.loop import execute_run
from agents.model import reset_client
from agents.models import TERMINAL_STATUSES, AgentRun, RunStatus, ToolCall
from agents.services import run_create
from spokestack.demo_data import DEMO_CATALOGUE_RUNS, DEMO_INSTANCES
from spokestack.sample_erp import DEMO_API_KEYS, data
from spokestack.tenancy.services import instance_set_erp
from tuning.services import client_create

RUNS = [(schema, agent_type, task) for schema, runs in DEMO_CATALOGUE_RUNS.items() for agent_type, task in runs]


@pytest.fixture(autouse=True)
def children_as_tasks(settings):
    """Here the test executes each child itself: children are tasks of their own (the worker path),
    not run inline by their parent (tests/agents/test_delegation_live.py and the benchmark do that)."""
    settings.AGENT_DELEGATION_INLINE = False


@pytest.fixture
def offline():
    with override_settings(ANTHROPIC_API_KEY=""):
        reset_client()
        yield
        reset_client()


def drive(run_id) -> AgentRun:
    """Execute a run here, and each child it starts, until it ends or waits for a person."""
    for _ in range(12):
        run = AgentRun.objects.get(pk=run_id)
        if run.is_finished or run.status == RunStatus.AWAITING_APPROVAL:
            return run
        for child in AgentRun.objects.filter(parent_id=run_id).exclude(status__in=TERMINAL_STATUSES):
            drive(child.pk)
        execute_run(run_id=str(run_id), worker="offline-demo")
    raise AssertionError(f"run {run_id} did not end: {AgentRun.objects.get(pk=run_id).status}")


@pytest.mark.parametrize("schema, agent_type, task", RUNS, ids=[f"{s}-{a}" for s, a, _ in RUNS])
def test_each_demo_run_of_the_catalogue_works_on_the_offline_model(in_a, sample_erp, egress_loopback, offline,
                                                                   runs_stay_here, schema, agent_type, task):
    egress_loopback(sample_erp[0].server_port)
    instance_set_erp(instance=connection.tenant, base_url=sample_erp[1], api_key=DEMO_API_KEYS[schema])
    demo = next(d for d in DEMO_INSTANCES if d.schema == schema)
    name, vertical, region, language = demo.clients[0]
    slug = next(c["slug"] for c in data.CLIENTS[schema] if c["name"] == name)
    client = client_create(name=name, slug=slug, vertical=vertical, region=region, language=language)

    run = drive(run_create(actor=None, agent_type=agent_type, task=task, client_id=client.pk).run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.simulated and run.output
    family = [run, *AgentRun.objects.filter(parent=run)]
    calls = list(ToolCall.objects.filter(run__in=family))
    assert calls, "the agent used its tools"
    assert not [c for c in calls if c.is_error and "Invalid input" in str(c.result)], "schema-valid input"
    answered = [c for c in calls if not c.is_error]
    assert len(answered) >= len(calls) / 2, [(c.name, c.result) for c in calls if c.is_error]
    if agent_type == "proposal":
        children = {c.agent_type: c for c in family[1:]}
        assert sorted(children) == ["commercial", "content", "resource", "rfp"]
        assert {c.status for c in children.values()} == {RunStatus.SUCCEEDED}
        assert run.children_cost_usd == sum(c.cost_usd for c in children.values()) > 0
        assert ToolCall.objects.get(run=run, name="save_proposal").is_error is False
