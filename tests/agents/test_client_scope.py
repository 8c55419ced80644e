# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""Runs and tools see only what their creator may see (issue #13, finding 1): through the real loop
and the real anthropic SDK against the fake Messages API (a scripted model that names another
client), with the sample ERP behind the tools."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from agents.loop import execute_run
from agents.models import RunStatus, ToolCall
from agents.services import run_create
from skills.services import skill_create
from spokestack.sample_erp import DEMO_API_KEYS
from spokestack.tenancy.services import instance_set_erp
from tuning.services import client_create

from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401


@pytest.fixture
def agency(in_a, sample_erp, egress_loopback, assigned):
    """Two clients of the sample ERP's alpha agency; an account manager assigned to the first."""
    egress_loopback(sample_erp[0].server_port)
    instance_set_erp(instance=connection.tenant, base_url=sample_erp[1], api_key=DEMO_API_KEYS["alpha"])
    mine = client_create(name="Desert Bloom Cosmetics", slug="desert-bloom", vertical="beauty", region="GCC")
    theirs = client_create(name="Gulf Bank", slug="gulf-bank", vertical="beauty", region="GCC")
    for handler in ("list_clients", "check_conflicts"):
        skill_create(actor=None, name=handler, description=f"The {handler} skill.",
                     input_schema={"type": "object", "properties": {"client": {"type": "string"}}},
                     execution_type="internal", handler=handler, agent_types=["copy"])
    return {"mine": mine, "theirs": theirs, "manager": assigned("account_manager", mine)}


def test_an_account_manager_s_run_never_reads_or_writes_a_client_they_are_not_assigned_to(agency, scripted):
    theirs = agency["theirs"]
    # One call per turn: parallel calls run on threads with connections of their own, which do
    # not see this test's uncommitted rows.
    scripted.script("scope-1", [
        tool_turn(("toolu_1", "get_brand_guidelines", {"client": theirs.slug})),
        tool_turn(("toolu_2", "save_draft", {"client": theirs.slug, "content": "Their draft."})),
        tool_turn(("toolu_3", "list_clients", {})),
        tool_turn(("toolu_4", "check_conflicts", {})),
        text_turn("Done."),
    ])
    run = run_create(actor=agency["manager"], agent_type="copy", task="scope-1: a caption.",
                     client_id=agency["mine"].pk).run
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED

    calls = {call.name: call for call in ToolCall.objects.filter(run=run)}
    for name in ("get_brand_guidelines", "save_draft"):
        assert calls[name].is_error and "cannot act for 'gulf-bank'" in calls[name].result, calls[name].result
    listed = calls["list_clients"].result
    assert [c["slug"] for c in listed["clients"]] == ["desert-bloom"]
    conflicts = calls["check_conflicts"].result
    assert conflicts["conflicting_clients"] == [] and conflicts["conflicting_clients_not_shown"] == 1
    streamed = json.dumps(list(run.events.values_list("payload", flat=True)))
    assert "Gulf Bank" not in streamed and "gulf-bank'" not in streamed.replace("cannot act for 'gulf-bank'", "")


def test_a_tool_resolves_a_client_only_among_those_the_run_s_creator_may_see(agency):
    """A run without a client (an instance admin's, or one started before the rule) still gives
    its tools only the creator's clients: the check is the tool's, not only execute's."""
    from agents.registry import ToolContext, ToolError
    from agents.tools.common import client_slug

    context = ToolContext(instance=connection.tenant, run_id="r", tool_use_id="t", idempotency_key="k",
                          client_scope=frozenset({"desert-bloom"}))
    assert client_slug(context, {"client": "desert-bloom"}) == "desert-bloom"
    with pytest.raises(ToolError, match="no client 'gulf-bank' this run may act for"):
        client_slug(context, {"client": "gulf-bank"})
    unscoped = ToolContext(instance=connection.tenant, run_id="r", tool_use_id="t", idempotency_key="k")
    assert client_slug(unscoped, {"client": "gulf-bank"}) == "gulf-bank"
