# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""Issue #20 part 4: budgets are enforced before each model call — held at the call's worst case
against every covering budget, settled to the real cost, refused (nothing sent) when a call would
cross one — and the tier's maximum cost per run ends a run."""

from decimal import Decimal

from django.core import mail
from django.db import connection

from agents.loop import execute_run
from agents.models import AgentRun, RunEvent, ToolCall
from agents.services import run_create
from spokestack.tenancy.tiers import limits_for
from usage.budgets import this_month
from usage.models import Budget, BudgetPeriod, BudgetScope

from ..skills.conftest import admin_a, client_a, scripted, text_turn, tool_turn  # noqa: F401


def ledger(budget: Budget) -> BudgetPeriod:
    return BudgetPeriod.objects.get(budget=budget, month=this_month())


def test_a_call_that_would_cross_the_clients_budget_is_not_made(in_a, admin_a, client_a, scripted, runs_stay_here):
    budget = Budget.objects.create(scope=BudgetScope.CLIENT, client=client_a, monthly_limit_usd=Decimal("0.01"))
    scripted.script("budget-no", [text_turn("Never sent.")])
    run = run_create(actor=admin_a, agent_type="copy", task="budget-no: a caption.", client_id=client_a.pk).run
    assert execute_run(run_id=str(run.pk), worker="w1") == "failed"
    run.refresh_from_db()
    assert "would cross the monthly budget of Desert Bloom Cosmetics ($0.01" in run.error
    assert scripted.requests("budget-no") == [], "the model was never asked"
    assert run.budget_hold is None and ledger(budget).reserved_usd == 0 and ledger(budget).spent_usd == 0


def test_a_later_call_refused_keeps_what_the_run_did_before_it(in_a, admin_a, client_a, scripted, runs_stay_here):
    """The hold and the turn's start are one statement: refused, neither is written, and what the
    last turn's tool call returned is still recorded, with the run's end."""
    budget = Budget.objects.create(scope=BudgetScope.CLIENT, client=client_a, monthly_limit_usd=Decimal("0.10"))
    scripted.script("budget-later", [
        {**tool_turn(("toolu_b1", "check_brand_rules", {"text": "Glow gently."})),
         "usage": {"input_tokens": 100, "output_tokens": 5300}},  # $0.0798 of the $0.10
        text_turn("Never sent.")])
    run = run_create(actor=admin_a, agent_type="copy", task="budget-later: a caption.", client_id=client_a.pk).run
    assert execute_run(run_id=str(run.pk), worker="w1") == "failed"
    run.refresh_from_db()
    assert "would cross the monthly budget of Desert Bloom Cosmetics ($0.10" in run.error
    assert len(scripted.requests("budget-later")) == 1, "the second call was never made"
    call = ToolCall.objects.get(run=run)
    assert call.status == "succeeded" and call.result is not None
    types = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    assert types[-3:] == ["tool.started", "tool.finished", "run.failed"] and types.count("turn.started") == 1
    assert run.budget_hold is None and ledger(budget).reserved_usd == 0
    assert ledger(budget).spent_usd == run.cost_usd > Decimal("0.079")


def test_every_call_is_settled_to_its_real_cost_on_every_covering_budget(in_a, admin_a, client_a, scripted,
                                                                         runs_stay_here,
                                                                         django_capture_on_commit_callbacks):
    client_budget = Budget.objects.create(scope=BudgetScope.CLIENT, client=client_a, monthly_limit_usd=Decimal("5"))
    user_budget = Budget.objects.create(scope=BudgetScope.USER, user=admin_a, monthly_limit_usd=Decimal("5"))
    scripted.script("budget-ok", [text_turn("Glow gently.")])
    run = run_create(actor=admin_a, agent_type="copy", task="budget-ok: a caption.", client_id=client_a.pk,
                     sandbox=True).run
    assert execute_run(run_id=str(run.pk), worker="w1") == "succeeded"
    run.refresh_from_db()
    instance_budget = Budget.objects.get(scope=BudgetScope.INSTANCE)
    assert instance_budget.monthly_limit_usd == limits_for(connection.tenant).monthly_budget_usd  # the tier's
    for budget in (instance_budget, client_budget, user_budget):
        assert (ledger(budget).spent_usd, ledger(budget).reserved_usd) == (run.cost_usd, 0)
    assert run.budget_hold is None

    # A call whose cost takes the client past 80 % of its budget warns the instance's admins, once.
    Budget.objects.filter(pk=client_budget.pk).update(monthly_limit_usd=Decimal("1"))
    BudgetPeriod.objects.filter(budget=client_budget).update(spent_usd=Decimal("0.7999"))
    for marker in ("budget-warn", "budget-warn-2"):
        scripted.script(marker, [text_turn("Shine.")])
        with django_capture_on_commit_callbacks(execute=True):
            second = run_create(actor=admin_a, agent_type="copy", task=f"{marker}: a caption.",
                                client_id=client_a.pk, sandbox=True).run
            assert execute_run(run_id=str(second.pk), worker="w2") == "succeeded"
    assert ledger(client_budget).warned_80_at is not None and ledger(client_budget).warned_95_at is None
    warned = [m for m in mail.outbox if "Desert Bloom Cosmetics" in m.body]
    assert len(warned) == 1 and "80%" in warned[0].subject and admin_a.email in warned[0].to


def test_the_tiers_maximum_cost_per_run_ends_a_run(request, in_a, admin_a, client_a, scripted, runs_stay_here):
    connection.tenant.limits_override = {"max_cost_per_run_usd": 0.0001}  # as platform staff would set it
    connection.tenant.save(update_fields=["limits_override"])
    request.addfinalizer(lambda: setattr(connection.tenant, "limits_override", {}))  # the row rolls back itself
    scripted.script("tier-max", [{"content": [{"type": "tool_use", "id": "toolu_t1", "name": "check_brand_rules",
                                               "input": {"text": "Glow."}}], "stop_reason": "tool_use"},
                                 text_turn("Done.")])
    run = run_create(actor=admin_a, agent_type="copy", task="tier-max: a caption.", client_id=client_a.pk,
                     sandbox=True).run
    assert execute_run(run_id=str(run.pk), worker="w1") == "failed"
    assert f"the cost ceiling of $0.00 per run of the {connection.tenant.tier} tier" in AgentRun.objects.get(pk=run.pk).error
