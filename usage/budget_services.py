"""Setting the monthly budgets of clients and people (issue #20, DESIGN §14).

Instance admins (policy `budget.manage`) set a client's or a person's monthly budget, never above the
instance's own (`limits_for(instance).monthly_budget_usd`: its tier's, or what platform staff set).
The instance's own row and the ledgers (`BudgetPeriod`) are usage/budgets.py's: this module writes
only the client and user rows, and reads this month's ledger to show what was spent and reserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import connection, transaction

from spokestack.accounts import policy
from spokestack.errors import InvalidInput, NotFound
from spokestack.tenancy.tiers import limits_for
from tuning import audit
from tuning.models import Entity, Tier

from .models import Budget, BudgetPeriod, BudgetScope

ACTION = "budget.manage"


def _instance() -> Any:
    instance = connection.tenant
    if not hasattr(instance, "limits_override"):  # a schema_context: read the row
        from spokestack.tenancy.models import Instance

        instance = Instance.objects.get(schema_name=connection.schema_name)
    return instance


def instance_monthly_budget() -> tuple[Decimal, str]:
    """The instance's monthly budget and its name, for limits and messages."""
    instance = _instance()
    return limits_for(instance).monthly_budget_usd, instance.name


def _owner(*, client: Any, user: Any) -> tuple[str, dict[str, Any], str]:
    if (client is None) == (user is None):
        raise InvalidInput("Name either a client or a person, not both or neither.")
    if client is not None:
        return BudgetScope.CLIENT, {"client": client}, f"client {client.name}"
    return BudgetScope.USER, {"user": user}, f"{user.get_username()}"


def _amount(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        amount = None
    if amount is None or not amount.is_finite():
        raise InvalidInput(f"monthly_limit_usd: {value!r} is not an amount; send a number of US dollars such as "
                           "150 or 150.00.", details={"monthly_limit_usd": ["not a number"]})
    if amount <= 0:
        raise InvalidInput("monthly_limit_usd: must be more than 0; to remove the budget, clear it instead.",
                           details={"monthly_limit_usd": ["not positive"]})
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput("monthly_limit_usd: at most 2 decimal places (whole cents).",
                           details={"monthly_limit_usd": ["too many decimal places"]})
    return amount


@transaction.atomic
def budget_set(*, actor: AbstractUser | None, client: Any = None, user: Any = None,
               monthly_limit_usd: Any, _rollback_of: Any = None) -> Budget:
    """Create or change a client's or a person's monthly budget (never above the instance's)."""
    policy.require(actor, ACTION, client)
    scope, owner, label = _owner(client=client, user=user)
    amount = _amount(monthly_limit_usd)
    ceiling, name = instance_monthly_budget()
    if amount > ceiling:
        raise InvalidInput(f"monthly_limit_usd: {amount} USD is above the monthly budget of {name} itself "
                           f"({ceiling} USD); enter at most {ceiling}, or ask platform staff to raise the instance's.",
                           details={"monthly_limit_usd": ["above the instance's budget"],
                                    "instance_monthly_budget_usd": str(ceiling)})
    budget = Budget.objects.select_for_update().filter(scope=scope, **owner).first()
    if budget is None:
        budget = Budget(scope=scope, monthly_limit_usd=amount, **owner)
        budget.full_clean()
        budget.save()
        _record(actor, budget, "create", new=f"{amount:.2f}", rollback_of=_rollback_of)
        return budget
    old = budget.monthly_limit_usd
    budget.monthly_limit_usd = amount
    budget.full_clean()
    budget.save(update_fields=["monthly_limit_usd", "updated_at"])
    if old != amount:
        _record(actor, budget, "update", old=f"{old:.2f}", new=f"{amount:.2f}", rollback_of=_rollback_of)
    return budget


def _record(actor, budget: Budget, action: str, *, old: Any = None, new: Any = None, rollback_of=None) -> None:
    """One audit entry per change of a budget (tier 3 for a client's, 2 for a person's)."""
    owner = {"client_id": budget.client_id, "user_id": budget.user_id}
    audit.record(actor=actor, tier=Tier.CLIENT if budget.client_id else Tier.INSTANCE, entity=Entity.BUDGET,
                 entity_id=budget.pk, action=action, field="monthly_limit_usd",
                 old={**owner, "monthly_limit_usd": old} if old is not None else None,
                 new={**owner, "monthly_limit_usd": new} if new is not None else None,
                 client=budget.client if budget.client_id else None, rollback_of=rollback_of)


@transaction.atomic
def budget_clear(*, actor: AbstractUser | None, client: Any = None, user: Any = None, _rollback_of: Any = None) -> None:
    """Remove a client's or a person's budget (and its ledgers): only the instance's then covers them."""
    policy.require(actor, ACTION, client)
    scope, owner, label = _owner(client=client, user=user)
    budget = Budget.objects.select_for_update().filter(scope=scope, **owner).first()
    if budget is None:
        raise NotFound(f"No budget is set for {label}.")
    _record(actor, budget, "delete", old=f"{budget.monthly_limit_usd:.2f}", rollback_of=_rollback_of)
    budget.delete()


@audit.rollback_handler(Entity.BUDGET)
def _budget_rollback(*, change: Any, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    """Undo one budget entry through the services above (so `budget.manage` is asked again): a
    creation clears the budget, a change or a deletion sets the amount it had."""
    from django.contrib.auth import get_user_model

    from tuning.models import Client

    state = change.new_value if change.action == "create" else change.old_value
    client = Client.objects.filter(pk=state.get("client_id")).first() if state.get("client_id") else None
    user = get_user_model().objects.filter(pk=state.get("user_id")).first() if state.get("user_id") else None
    if client is None and user is None:
        raise NotFound(f"Entry #{change.pk}: the budget's client or person no longer exists.")
    if change.action == "create":
        budget_clear(actor=actor, client=client, user=user, _rollback_of=change)
    else:
        budget_set(actor=actor, client=client, user=user, monthly_limit_usd=state["monthly_limit_usd"],
                   _rollback_of=change)


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetView:
    budget: Budget | None
    scope: str
    label: str
    monthly_limit_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal
    month: date

    def as_dict(self) -> dict[str, Any]:
        budget = self.budget
        return {"scope": self.scope, "client_id": budget.client_id if budget else None,
                "user_id": budget.user_id if budget else None, "label": self.label,
                "monthly_limit_usd": float(self.monthly_limit_usd), "spent_usd": float(self.spent_usd),
                "reserved_usd": float(self.reserved_usd), "month": self.month.isoformat(),
                "updated_at": budget.updated_at.isoformat() if budget else None}


def _month() -> date:
    from .budgets import this_month

    return this_month()


def _label(budget: Budget) -> str:
    return budget.client.name if budget.client_id else budget.user.get_username()


def budget_views(*, actor: AbstractUser | None, client_id: int | None = None,
                 user_id: int | None = None) -> list[BudgetView]:
    """The client and user budgets (or the one named), each with this month's spent and reserved
    (0 when no call was made this month). Two queries whatever the number of budgets."""
    policy.require(actor, ACTION)
    budgets = Budget.objects.exclude(scope=BudgetScope.INSTANCE).select_related("client", "user")
    if client_id is not None:
        budgets = budgets.filter(scope=BudgetScope.CLIENT, client_id=client_id)
    if user_id is not None:
        budgets = budgets.filter(scope=BudgetScope.USER, user_id=user_id)
    budgets = list(budgets.order_by("scope", "client__name", "user__email"))
    month = _month()
    ledger = {row["budget_id"]: row for row in BudgetPeriod.objects.filter(
        budget__in=[b.pk for b in budgets], month=month).values("budget_id", "spent_usd", "reserved_usd")}
    zero = {"spent_usd": Decimal(0), "reserved_usd": Decimal(0)}
    return [BudgetView(b, b.scope, _label(b), b.monthly_limit_usd, ledger.get(b.pk, zero)["spent_usd"],
                       ledger.get(b.pk, zero)["reserved_usd"], month) for b in budgets]


def instance_budget_view(*, actor: AbstractUser | None) -> BudgetView:
    """The instance's own budget (its tier's, or the platform's override) with this month's ledger."""
    policy.require(actor, ACTION)
    ceiling, name = instance_monthly_budget()
    month = _month()
    period = (BudgetPeriod.objects.filter(budget__scope=BudgetScope.INSTANCE, month=month)
              .values("spent_usd", "reserved_usd").first()) or {"spent_usd": Decimal(0), "reserved_usd": Decimal(0)}
    return BudgetView(None, BudgetScope.INSTANCE, name, ceiling, period["spent_usd"], period["reserved_usd"], month)

