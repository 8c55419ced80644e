"""Budgets enforced before each model call (issue #20, DESIGN §14).

Before a model call the loop reserves the call's worst case — its input at the cache-write price
(the dearest way to read input; input tokens estimated at 3 characters each, more than the models'
~4) plus `max_tokens` of output — against every budget that covers the run: the instance's (its
tier's monthly budget, or platform staff's override), its client's and its starter's, each in this
month's ledger (`BudgetPeriod`). The reservation is **one statement** that finds the covering
budgets itself (a limit changed a moment ago applies to the next call), locks the run's row and then
the ledgers in id order (every statement here locks in that order: no deadlock with the loop's
writes or the lease heartbeat), checks that each still fits on the rows it locked, and reserves on
all of them or none, recording the hold on the run (`AgentRun.budget_hold`), so concurrent calls
can never together cross a limit. A call that would cross one is not made; the run ends with a
reason naming the budget. A month's first call creates the ledger rows (and the instance's budget
row) and tries again.

When the answer arrives the hold is settled to the real cost (spent += cost, reserved -= hold), in one
statement that clears the hold first, so it is settled once; a call that failed settles at 0 (released).
A run resumed after its worker died settles its dangling hold with the interrupted turn's estimated
cost; the reaper releases the holds of runs that ended without settling. Crossing 80 % and 95 % of a
budget warns the instance's admins once per month and budget (e-mail and the instance's live events).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from spokestack.db import execute_prepared

from .models import Budget, BudgetPeriod, BudgetScope

logger = logging.getLogger(__name__)

WARN_AT = (80, 95)
CHARS_PER_TOKEN = 3  # fewer than the models' ~4: the estimate must not be below the real input


@dataclass(frozen=True)
class Cover:
    """A budget that covers a run: its id, its monthly limit and what to call it in a refusal."""

    budget_id: int
    limit: Decimal
    label: str
    scope: str = BudgetScope.INSTANCE


class BudgetExceeded(Exception):  # noqa: N818 - the run's reason, not a crash
    def __init__(self, message: str, scope: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.scope = scope


def this_month() -> date:
    from .services import instance_time_zone

    return timezone.now().astimezone(ZoneInfo(instance_time_zone())).date().replace(day=1)


def current_instance() -> Any:
    """The connection's instance (a schema_context has only the schema: its row is read)."""
    from spokestack.tenancy.models import Instance

    instance = connection.tenant
    if not hasattr(instance, "tier"):
        instance = Instance.objects.filter(schema_name=connection.schema_name).first()
    return instance


def _instance_limit() -> tuple[Decimal, str]:
    from spokestack.tenancy.tiers import limits_for

    instance = current_instance()
    name = getattr(instance, "name", connection.schema_name)
    return limits_for(instance).monthly_budget_usd, f"the monthly budget of {name} ({getattr(instance, 'tier', '?')} tier)"


def covers_for(*, client_id: int | None, user_id: int | None) -> list[Cover]:
    """The budgets covering a run of that client and starter: the instance's always, then the
    client's and the person's when an admin set them. The instance's row is created on first use."""
    limit, label = _instance_limit()
    budgets = {b.scope: b for b in Budget.objects.filter(
        Q(scope=BudgetScope.INSTANCE) | Q(client_id=client_id, scope=BudgetScope.CLIENT)
        | Q(user_id=user_id, scope=BudgetScope.USER)).select_related("client", "user")}
    instance_budget = budgets.get(BudgetScope.INSTANCE)
    if instance_budget is None:
        instance_budget, _ = Budget.objects.get_or_create(scope=BudgetScope.INSTANCE,
                                                          defaults={"monthly_limit_usd": limit})
    elif instance_budget.monthly_limit_usd != limit:  # the tier or the platform's override changed
        Budget.objects.filter(pk=instance_budget.pk).update(monthly_limit_usd=limit)
    covers = [Cover(instance_budget.pk, limit, label)]
    if client_id and BudgetScope.CLIENT in budgets:
        budget = budgets[BudgetScope.CLIENT]
        covers.append(Cover(budget.pk, budget.monthly_limit_usd, f"the monthly budget of {budget.client.name}",
                            BudgetScope.CLIENT))
    if user_id and BudgetScope.USER in budgets and budgets[BudgetScope.USER].user is not None:
        budget = budgets[BudgetScope.USER]
        covers.append(Cover(budget.pk, budget.monthly_limit_usd,
                            f"the monthly budget of {budget.user.get_username()}", BudgetScope.USER))
    return covers


def _ledgers_create(covers: list[Cover], month: date) -> None:
    """This month's ledger row of each budget, created the first time a call needs it."""
    BudgetPeriod.objects.bulk_create([BudgetPeriod(budget_id=c.budget_id, month=month) for c in covers],
                                     ignore_conflicts=True)


def worst_case_usd(*, model: str, request_chars: int, max_tokens: int) -> Decimal:
    from agents.model import price_for

    price = price_for(model)
    input_tokens = math.ceil(request_chars / CHARS_PER_TOKEN)
    worst = (input_tokens * max(price.input, price.cache_write) + max_tokens * price.output) / 1_000_000
    return Decimal(str(worst)).quantize(Decimal("0.000001"), rounding=ROUND_UP)


# The hold's checks, shared by `reserve` and the loop's step write (agents.services.run_write),
# after a CTE `held_run` that each defines (the run's row, locked, holding nothing yet): the budgets
# covering the run, their ledgers of the month locked in id order, and whether the amount fits each.
HOLD_CTES = """
hold_covering AS (
    SELECT budget.id, budget.scope,
           CASE WHEN budget.scope = 'instance' THEN %(instance_limit)s::numeric ELSE budget.monthly_limit_usd END AS lim
      FROM usage_budget budget
     WHERE EXISTS (SELECT FROM held_run)
       AND (budget.scope = 'instance' OR (budget.scope = 'client' AND budget.client_id = %(client)s::bigint)
            OR (budget.scope = 'user' AND budget.user_id = %(user)s::bigint))
), hold_locked AS (
    SELECT ledger.id, hold_covering.lim, ledger.spent_usd + ledger.reserved_usd + %(amount)s <= hold_covering.lim AS fits
      FROM usage_budgetperiod ledger JOIN hold_covering ON ledger.budget_id = hold_covering.id
     WHERE ledger.month = %(month)s::date AND EXISTS (SELECT FROM held_run)
     ORDER BY ledger.id
       FOR UPDATE OF ledger
), hold_verdict AS (
    SELECT count(*) = (SELECT count(*) FROM hold_covering) AND bool_and(fits)
               AND EXISTS (SELECT FROM hold_covering WHERE scope = 'instance') AS ok,
           array_agg(id ORDER BY id) AS ids, array_agg(lim ORDER BY id) AS limits
      FROM hold_locked
)"""
# What the run's row keeps of its hold (settled from it: `settle`, run_write).
HOLD_VALUE = "jsonb_build_object('ledgers', hold_verdict.ids, 'amount', %(amount)s::text, 'limits', hold_verdict.limits)"

_RESERVE_SQL = f"""
WITH held_run AS (
    SELECT id FROM agents_agentrun WHERE id = %(run)s::uuid AND budget_hold IS NULL FOR NO KEY UPDATE
), {HOLD_CTES}, hold AS (
    UPDATE agents_agentrun
       SET budget_hold = {HOLD_VALUE}
      FROM hold_verdict WHERE hold_verdict.ok AND agents_agentrun.id = %(run)s::uuid
 RETURNING hold_verdict.ids
)
UPDATE usage_budgetperiod ledger SET reserved_usd = ledger.reserved_usd + %(amount)s
  FROM hold WHERE ledger.id = ANY(hold.ids)
RETURNING ledger.id
"""  # noqa: S608 - built from constants, not from input

_BLOCKING_SQL = """
SELECT ledger.budget_id, ledger.spent_usd, ledger.reserved_usd FROM usage_budgetperiod ledger
 WHERE ledger.budget_id = ANY(%(budgets)s::bigint[]) AND ledger.month = %(month)s::date
"""

# A settlement, shared by `settle` and the loop's step write (agents.services.run_write), after a CTE
# `settling` that each defines (the hold the run's row had, once that row is cleared of it): the
# hold's ledgers locked in id order, the amount held given back and the call's real cost spent.
SETTLE_CTES = """
settle_locked AS (
    SELECT ledger.id FROM usage_budgetperiod ledger
     WHERE ledger.id IN (SELECT jsonb_array_elements_text(settling.hold -> 'ledgers')::bigint FROM settling)
     ORDER BY ledger.id
       FOR UPDATE OF ledger
), settled AS (
    UPDATE usage_budgetperiod ledger
       SET reserved_usd = GREATEST(0, ledger.reserved_usd - (settling.hold ->> 'amount')::numeric),
           spent_usd = ledger.spent_usd + %(actual_usd)s
      FROM settling, settle_locked
     WHERE ledger.id = settle_locked.id
 RETURNING ledger.id, ledger.spent_usd, settling.hold
)"""

_SETTLE_SQL = f"""
WITH hold AS (
    SELECT budget_hold FROM agents_agentrun
     WHERE id = %(run)s::uuid AND budget_hold IS NOT NULL
       FOR NO KEY UPDATE
), cleared AS (
    UPDATE agents_agentrun SET budget_hold = NULL
      FROM hold WHERE agents_agentrun.id = %(run)s::uuid
 RETURNING agents_agentrun.id
), settling AS (
    SELECT budget_hold AS hold FROM hold WHERE EXISTS (SELECT FROM cleared)
), {SETTLE_CTES}
SELECT id, spent_usd, hold FROM settled
"""  # noqa: S608 - built from constants, not from input


def hold_params(*, client_id: int | None, user_id: int | None, amount: Decimal) -> dict[str, Any]:
    """The parameters of HOLD_CTES for a hold of `amount` on a run of that client and starter."""
    instance_limit, _ = _instance_limit()
    return {"client": client_id, "user": user_id, "amount": amount, "instance_limit": instance_limit,
            "month": this_month()}


def reserve(*, run_id: Any, client_id: int | None, user_id: int | None, amount: Decimal) -> None:
    """Hold `amount` on every budget covering the run (its instance, client and starter) for its next
    model call, or raise BudgetExceeded naming the first budget it would cross (nothing held then).
    One statement (see the module); a month's first call creates the ledgers and tries again. (The
    loop holds with its turn's first write, agents.services.run_write, and comes here only when that
    could not hold: to create the month's ledgers, or to learn which budget refused.)"""
    params = {"run": str(run_id), **hold_params(client_id=client_id, user_id=user_id, amount=amount)}
    month = params["month"]
    if execute_prepared(_RESERVE_SQL, params):
        return
    covers = covers_for(client_id=client_id, user_id=user_id)  # creates the instance's budget row
    _ledgers_create(covers, month)
    if execute_prepared(_RESERVE_SQL, params):
        return
    with connection.cursor() as cursor:  # refused: say which budget
        cursor.execute(_BLOCKING_SQL, {"budgets": [c.budget_id for c in covers], "month": month})
        state = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
    for cover in covers:
        spent, reserved = state.get(cover.budget_id, (Decimal(0), Decimal(0)))
        if spent + reserved + amount > cover.limit:
            raise BudgetExceeded(
                f"The model call was not made: it could cost up to ${amount:.4f}, which would cross {cover.label} "
                f"(${cover.limit:.2f}: ${spent:.2f} spent and ${reserved:.2f} held by calls in flight this month). "
                "An instance admin can raise the budget, or the run can be started again next month.", cover.scope)
    raise BudgetExceeded("The model call was not made: the run already holds a budget reservation.")


def settle(*, run_id: Any, actual_usd: Decimal | float) -> None:
    """Settle the run's hold to the call's real cost (0: released), once; warn at 80 % and 95 %."""
    actual = Decimal(str(actual_usd))
    rows = execute_prepared(_SETTLE_SQL, {"run": str(run_id), "actual_usd": actual})
    if rows and actual > 0:
        warn_crossed(rows)


def warn_crossed(rows: list[tuple]) -> None:
    """After a settlement (here, or in the loop's step write: agents.services.run_write), warn once
    per ledger and level that its spending crossed: `rows` are (ledger id, spent, the hold)."""
    for ledger_id, spent, hold in rows:
        hold = hold if isinstance(hold, dict) else json.loads(hold)
        limits = dict(zip(hold["ledgers"], hold.get("limits", []), strict=False))
        limit = Decimal(str(limits.get(ledger_id, "0")))
        if limit <= 0:
            continue
        share = spent / limit * 100
        for level in WARN_AT:
            field = f"warned_{level}_at"
            if share >= level and BudgetPeriod.objects.filter(pk=ledger_id, **{f"{field}__isnull": True}).update(
                    **{field: timezone.now()}):
                transaction.on_commit(lambda ledger_id=ledger_id, level=level, share=share: _notify(
                    ledger_id=ledger_id, level=level, share=float(share)))


def _notify(*, ledger_id: int, level: int, share: float) -> None:
    """Tell the instance's admins a budget crossed `level` % (e-mail and the instance's live events)."""
    from django.contrib.auth import get_user_model
    from django.core.mail import send_mail

    try:
        ledger = BudgetPeriod.objects.select_related("budget__client", "budget__user").get(pk=ledger_id)
        budget = ledger.budget
        what = {BudgetScope.INSTANCE: "the instance", BudgetScope.CLIENT: getattr(budget.client, "name", "a client"),
                BudgetScope.USER: getattr(budget.user, "email", "a person")}[budget.scope]
        message = (f"{what} has used {share:.0f}% of its monthly budget (${ledger.spent_usd:.2f} of "
                   f"${budget.monthly_limit_usd:.2f} in {ledger.month:%B %Y}).")
        logger.warning("budget warning in %s: %s", connection.schema_name, message)
        from spokestack.realtime import publish_instance_event

        publish_instance_event(connection.schema_name, "budgets", {"level": level, "scope": budget.scope,
                                                                   "message": message, "client_id": budget.client_id})
        from spokestack.webhooks.services import webhook_emit

        webhook_emit("budget.warning", {
            "level": level, "scope": budget.scope, "client_id": budget.client_id, "user_id": budget.user_id,
            "spent_usd": float(ledger.spent_usd), "limit_usd": float(budget.monthly_limit_usd),
            "month": ledger.month.isoformat(), "message": message})
        admins = get_user_model().objects.filter(is_active=True, groups__name="instance_admin").exclude(email="")
        recipients = sorted({u.email for u in admins})
        if recipients:
            send_mail(subject=f"Budget {level}% used: {what}", message=message, from_email=None,
                      recipient_list=recipients)
    except Exception:  # noqa: BLE001 - a warning must never fail the run
        logger.warning("could not send the budget warning for ledger %s", ledger_id, exc_info=True)


def holds_release_ended() -> int:
    """Release the holds of runs that ended without settling (their process died mid-call)."""
    from agents.models import TERMINAL_STATUSES, AgentRun

    released = 0
    for run_id in AgentRun.objects.filter(budget_hold__isnull=False, status__in=TERMINAL_STATUSES) \
            .values_list("pk", flat=True)[:500]:
        settle(run_id=run_id, actual_usd=0)
        released += 1
    return released
