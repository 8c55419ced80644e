"""Budgets enforced before each model call (issue #20, DESIGN §14).

Before a model call the loop reserves the call's worst case — its input at the cache-write price
(the dearest way to read input; input tokens estimated at 3 characters each, more than the models'
~4) plus `max_tokens` of output — against every budget that covers the run: the instance's (its
tier's monthly budget, or platform staff's override), its client's and its starter's, each in this
month's ledger (`BudgetPeriod`). The reservation is **one statement**: it locks the ledgers, checks
that each still fits on the rows it locked, and reserves on all of them or none, and records the hold
on the run (`AgentRun.budget_hold`), so concurrent calls can never together cross a limit. A call
that would cross one is not made; the run ends with a reason naming the budget.

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

import psycopg
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from .models import Budget, BudgetPeriod, BudgetScope

logger = logging.getLogger(__name__)

WARN_AT = (80, 95)
CHARS_PER_TOKEN = 3  # fewer than the models' ~4: the estimate must not be below the real input
_LEDGER_IDS: dict[tuple[str, int, date], int] = {}  # (schema, budget, month) -> its ledger row


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


def _ledgers(covers: list[Cover], month: date) -> list[int]:
    """This month's ledger row of each budget (created the first time it is needed; its id is kept
    for the process, so a model call costs no lookup)."""
    schema = connection.schema_name
    missing = [c.budget_id for c in covers if (schema, c.budget_id, month) not in _LEDGER_IDS]
    if missing:
        BudgetPeriod.objects.bulk_create([BudgetPeriod(budget_id=b, month=month) for b in missing],
                                         ignore_conflicts=True)
        for budget_id, pk in BudgetPeriod.objects.filter(budget_id__in=missing, month=month) \
                .values_list("budget_id", "pk"):
            _LEDGER_IDS[(schema, budget_id, month)] = pk
    return [_LEDGER_IDS[(schema, c.budget_id, month)] for c in covers]


def worst_case_usd(*, model: str, request_chars: int, max_tokens: int) -> Decimal:
    from agents.model import price_for

    price = price_for(model)
    input_tokens = math.ceil(request_chars / CHARS_PER_TOKEN)
    worst = (input_tokens * max(price.input, price.cache_write) + max_tokens * price.output) / 1_000_000
    return Decimal(str(worst)).quantize(Decimal("0.000001"), rounding=ROUND_UP)


_RESERVE_SQL = """
WITH want AS (
    SELECT * FROM unnest(%(ledgers)s::bigint[], %(limits)s::numeric[]) AS want(id, lim)
), locked AS (
    SELECT ledger.id, ledger.spent_usd + ledger.reserved_usd + %(amount)s <= want.lim AS fits
      FROM usage_budgetperiod ledger JOIN want ON ledger.id = want.id
     ORDER BY ledger.id
       FOR UPDATE OF ledger
), verdict AS (
    SELECT count(*) = cardinality(%(ledgers)s::bigint[]) AND bool_and(fits) AS ok FROM locked
), hold AS (
    UPDATE agents_agentrun SET budget_hold = %(hold)s::jsonb
      FROM verdict WHERE verdict.ok AND agents_agentrun.id = %(run)s::uuid AND agents_agentrun.budget_hold IS NULL
    RETURNING agents_agentrun.id
)
UPDATE usage_budgetperiod ledger SET reserved_usd = ledger.reserved_usd + %(amount)s
  FROM hold WHERE ledger.id = ANY(%(ledgers)s::bigint[])
RETURNING ledger.id
"""

_BLOCKING_SQL = """
SELECT ledger.id, ledger.spent_usd, ledger.reserved_usd FROM usage_budgetperiod ledger
 WHERE ledger.id = ANY(%(ledgers)s::bigint[])
"""

_SETTLE_SQL = """
WITH hold AS (
    SELECT budget_hold FROM agents_agentrun WHERE id = %(run)s::uuid AND budget_hold IS NOT NULL FOR UPDATE
), cleared AS (
    UPDATE agents_agentrun SET budget_hold = NULL
      FROM hold WHERE agents_agentrun.id = %(run)s::uuid
 RETURNING agents_agentrun.id
)
UPDATE usage_budgetperiod ledger
   SET reserved_usd = GREATEST(0, ledger.reserved_usd - (hold.budget_hold ->> 'amount')::numeric),
       spent_usd = ledger.spent_usd + %(actual)s
  FROM hold, cleared
 WHERE ledger.id IN (SELECT jsonb_array_elements_text(hold.budget_hold -> 'ledgers')::bigint)
RETURNING ledger.id, ledger.spent_usd, hold.budget_hold
"""


def _prepared(sql: str, params: dict[str, Any]) -> list[tuple]:
    """A statement every model call runs: bound on the server and prepared once per connection, as
    the loop's own writes are (agents.services._execute_prepared)."""
    with connection.cursor():  # connects, and sets the instance's search_path when needed
        pass
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()


def reserve(*, run_id: Any, covers: list[Cover], amount: Decimal) -> None:
    """Hold `amount` on every covering budget for the run's next model call, or raise BudgetExceeded
    naming the first budget it would cross (nothing held then). One statement (see the module)."""
    ledgers = _ledgers(covers, this_month())
    hold = {"ledgers": ledgers, "amount": str(amount), "limits": [str(c.limit) for c in covers]}
    if _prepared(_RESERVE_SQL, {"ledgers": ledgers, "limits": [c.limit for c in covers], "amount": amount,
                                "hold": json.dumps(hold), "run": str(run_id)}):
        return
    with connection.cursor() as cursor:  # refused: say which budget
        cursor.execute(_BLOCKING_SQL, {"ledgers": ledgers})
        state = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
    for cover, ledger in zip(covers, ledgers, strict=True):
        spent, reserved = state.get(ledger, (Decimal(0), Decimal(0)))
        if spent + reserved + amount > cover.limit:
            raise BudgetExceeded(
                f"The model call was not made: it could cost up to ${amount:.4f}, which would cross {cover.label} "
                f"(${cover.limit:.2f}: ${spent:.2f} spent and ${reserved:.2f} held by calls in flight this month). "
                "An instance admin can raise the budget, or the run can be started again next month.", cover.scope)
    raise BudgetExceeded("The model call was not made: the run already holds a budget reservation.")


def settle(*, run_id: Any, actual_usd: Decimal | float) -> None:
    """Settle the run's hold to the call's real cost (0: released), once; warn at 80 % and 95 %."""
    actual = Decimal(str(actual_usd))
    rows = _prepared(_SETTLE_SQL, {"run": str(run_id), "actual": actual})
    if rows and actual > 0:
        _warn(rows)


def _warn(rows: list[tuple]) -> None:
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
