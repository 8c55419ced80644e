"""Instance admins' approval rules (issue #21): which gated calls are approved without asking, and
the priority and assignee of the others. Services (create/update/delete, audited as entity
`approval_rule`, policy `approval.rule.manage`), reads, and the matcher the loop's requests use.

Comparisons are type-safe on purpose: a rule is a promise "approve only this", so a value the
rule cannot compare (a string against a number, a missing field, a bool against a number) never
matches and the call waits for a person as before.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from spokestack.accounts import policy
from spokestack.errors import InvalidInput, NotFound
from tuning import audit
from tuning.models import Entity

from .models import ApprovalAssignee, ApprovalPriority, ApprovalRule, ApprovalRuleAction, ApprovalRuleOp

NUMERIC_OPS = {ApprovalRuleOp.LT, ApprovalRuleOp.LE, ApprovalRuleOp.GT, ApprovalRuleOp.GE}
EDITABLE = ("tool_name", "field_path", "op", "value", "action", "priority", "assignee_role", "enabled", "note")
PRIORITY_NAMES = {p.name.lower(): p.value for p in ApprovalPriority}
MISSING = object()


# --- comparing ----------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before numbers: True is an int in Python, never in a rule
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _same(a: Any, b: Any) -> bool:
    return _kind(a) == _kind(b) and a == b


def compare(actual: Any, op: str, value: Any) -> bool:
    """Whether `actual` (from the call's input) satisfies `op value`; False whenever the kinds differ."""
    if actual is MISSING:
        return False
    if op == ApprovalRuleOp.EQ:
        return _same(actual, value)
    if op == ApprovalRuleOp.NE:
        return _kind(actual) == _kind(value) and actual != value
    if op in NUMERIC_OPS:
        if _kind(actual) != "number" or _kind(value) != "number":
            return False
        return {"<": actual < value, "<=": actual <= value, ">": actual > value, ">=": actual >= value}[op]
    if op == ApprovalRuleOp.IN:
        return isinstance(value, list) and any(_same(actual, v) for v in value)
    if op == ApprovalRuleOp.CONTAINS:
        if _kind(actual) == "string" and _kind(value) == "string":
            return value in actual
        return _kind(actual) == "list" and any(_same(item, value) for item in actual)
    return False


def field_at(data: Any, path: str) -> Any:
    """The value at a dotted path (`a.b`, `items.0`), or MISSING."""
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return MISSING
    return data


def rule_matches(rule: ApprovalRule, tool_input: dict) -> bool:
    if not rule.field_path:
        return True
    return compare(field_at(tool_input, rule.field_path), rule.op, rule.value)


def approval_rule_match(*, tool_name: str, tool_input: dict) -> tuple[ApprovalRule | None, ApprovalRule | None]:
    """(the enabled approve rule that matches, else None; the first enabled route rule that matches).
    Any matching approve rule approves (the oldest is named); route rules only set priority/assignee."""
    approve = route = None
    for rule in ApprovalRule.objects.filter(tool_name=tool_name, enabled=True).order_by("pk"):
        if not rule_matches(rule, tool_input or {}):
            continue
        if rule.action == ApprovalRuleAction.APPROVE and approve is None:
            approve = rule
        elif rule.action == ApprovalRuleAction.ROUTE and route is None:
            route = rule
    return approve, route


# --- reads --------------------------------------------------------------------------------


def approval_rules_visible_to(*, actor: AbstractUser | None) -> QuerySet[ApprovalRule]:
    policy.require(actor, "approval.rule.manage")
    return ApprovalRule.objects.select_related("created_by").order_by("tool_name", "pk")


def approval_rule_get(*, actor: AbstractUser | None, rule_id: Any) -> ApprovalRule:
    try:
        return approval_rules_visible_to(actor=actor).get(pk=int(str(rule_id)))
    except (ApprovalRule.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such approval rule in this instance.", details={"rule_id": str(rule_id)}) from None


# --- writes -------------------------------------------------------------------------------


def _coerce_priority(value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.lower() in PRIORITY_NAMES:
        return PRIORITY_NAMES[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in ApprovalPriority.values:
        return value
    raise InvalidInput(f"priority: one of {', '.join(PRIORITY_NAMES)} (or empty).", details={"priority": value})


def approval_rule_check(rule: ApprovalRule) -> None:
    """Refuse a rule that could never mean what it says (400, naming the field to fix)."""
    rule.tool_name = (rule.tool_name or "").strip()
    rule.field_path = (rule.field_path or "").strip()
    rule.op = rule.op or ""
    if not rule.tool_name:
        raise InvalidInput("tool_name: the gated tool this rule is about (request_discount_approval).")
    if rule.action not in ApprovalRuleAction.values:
        raise InvalidInput(f"action: one of {', '.join(ApprovalRuleAction.values)}.")
    if rule.assignee_role not in ApprovalAssignee.values:
        raise InvalidInput(f"assignee_role: one of {', '.join(v for v in ApprovalAssignee.values if v)} or empty.")
    if rule.field_path:
        if rule.op not in ApprovalRuleOp.values:
            raise InvalidInput(f"op: one of {', '.join(ApprovalRuleOp.values)} (a field needs a comparison).")
        if any(not part for part in rule.field_path.split(".")):
            raise InvalidInput("field_path: dotted field names without empty parts (discount_pct, budget.total).")
        if rule.op in NUMERIC_OPS and _kind(rule.value) != "number":
            raise InvalidInput(f"value: a number for {rule.op} (got {json.dumps(rule.value)}); a text never "
                               "compares with a number.", details={"value": rule.value})
        if rule.op == ApprovalRuleOp.IN and (_kind(rule.value) != "list" or not rule.value
                                            or any(_kind(v) in ("list", "object") for v in rule.value)):
            raise InvalidInput("value: a non-empty list of plain values for 'in' ([\"EUR\", \"USD\"]).")
        if rule.op == ApprovalRuleOp.CONTAINS and _kind(rule.value) in ("list", "object", "null"):
            raise InvalidInput("value: a text or a plain value for 'contains'.")
        if rule.op in (ApprovalRuleOp.EQ, ApprovalRuleOp.NE) and _kind(rule.value) in ("list", "object"):
            raise InvalidInput(f"value: a plain value (number, text, true/false, null) for {rule.op}.")
    elif rule.op or rule.value is not None:
        raise InvalidInput("field_path: name the input field that op and value compare (or leave all three empty "
                           "to match every call to the tool).")
    if rule.action == ApprovalRuleAction.ROUTE and not (rule.priority or rule.assignee_role):
        raise InvalidInput("A 'route' rule sets a priority or an assignee_role (or both).")
    try:
        rule.full_clean(exclude=["created_by", "value"])
    except ValidationError as exc:
        raise InvalidInput("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None


def approval_rule_snapshot(rule: ApprovalRule) -> dict[str, Any]:
    return {f: getattr(rule, f) for f in EDITABLE}


def _apply(rule: ApprovalRule, fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE)}.")
    for name, value in fields.items():
        if name == "priority":
            value = _coerce_priority(value)
        elif name == "enabled" and not isinstance(value, bool):
            raise InvalidInput("enabled: true or false.")
        elif name in ("tool_name", "field_path", "op", "action", "assignee_role", "note"):
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise InvalidInput(f"{name}: text.")
        setattr(rule, name, value)


def _audit(*, actor: AbstractUser | None, rule: ApprovalRule, action: str, old: Any = None, new: Any = None,
           reason: str = "") -> None:
    from tuning import audit
    from tuning.models import Client, Entity, Tier

    audit.record(actor=actor, tier=Tier.INSTANCE, entity=Entity.APPROVAL_RULE, entity_id=rule.pk, action=action,
                 old=old, new=new, reason=reason,
                 affected_clients=list(Client.objects.order_by("pk").values_list("pk", flat=True)))


@transaction.atomic
def approval_rule_create(*, actor: AbstractUser | None, reason: str = "", **fields: Any) -> ApprovalRule:
    """An instance admin's rule; audited. It applies to calls gated from now on."""
    from tuning.models import Action

    policy.require(actor, "approval.rule.manage")
    rule = ApprovalRule(created_by=actor if getattr(actor, "pk", None) else None)
    _apply(rule, fields)
    approval_rule_check(rule)
    rule.save()
    _audit(actor=actor, rule=rule, action=Action.CREATE, new=approval_rule_snapshot(rule), reason=reason)
    return rule


@transaction.atomic
def approval_rule_update(*, actor: AbstractUser | None, rule: ApprovalRule, changes: dict[str, Any],
                         reason: str = "") -> ApprovalRule:
    """Change a rule (disable it with `enabled: false`); audited with before and after."""
    from tuning.models import Action

    policy.require(actor, "approval.rule.manage")
    rule = ApprovalRule.objects.select_for_update().get(pk=rule.pk)
    before = approval_rule_snapshot(rule)
    _apply(rule, changes)
    approval_rule_check(rule)
    after = approval_rule_snapshot(rule)
    if after != before:
        rule.save(update_fields=[*EDITABLE, "updated_at"])
        _audit(actor=actor, rule=rule, action=Action.UPDATE, old=before, new=after, reason=reason)
    return rule


@transaction.atomic
def approval_rule_delete(*, actor: AbstractUser | None, rule: ApprovalRule, reason: str = "") -> None:
    """Delete a rule; requests it approved keep their note naming it."""
    from tuning.models import Action

    policy.require(actor, "approval.rule.manage")
    snapshot, rule_id = approval_rule_snapshot(rule), rule.pk
    ApprovalRule.objects.filter(pk=rule_id).delete()
    rule.pk = rule_id
    _audit(actor=actor, rule=rule, action=Action.DELETE, old=snapshot, reason=reason)


@audit.rollback_handler(Entity.APPROVAL_RULE)
def _rule_rollback(*, change: Any, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    """Undo one rule entry through the services above (so `approval.rule.manage` is asked again): a
    creation deletes the rule, a change restores the rule as it was, a deletion brings it back (a
    rule holds no secret). Conflict (409) when the rule changed since the entry."""
    from spokestack.errors import Conflict

    rule = ApprovalRule.objects.filter(pk=int(change.entity_id)).first()
    current = approval_rule_snapshot(rule) if rule is not None else None
    why = reason or f"Rollback of #{change.pk}"
    if change.action == "delete":
        if rule is not None:
            raise Conflict(f"Entry #{change.pk}: the rule exists again; change it directly instead.")
        approval_rule_create(actor=actor, reason=why, **dict(change.old_value))
        return
    if current != change.new_value:
        raise Conflict(f"The approval rule changed again after entry #{change.pk}, so it cannot be rolled back "
                       "blindly; change it directly instead.", details={"audit_id": change.pk, "current": current})
    if change.action == "create":
        approval_rule_delete(actor=actor, rule=rule, reason=why)
    else:
        approval_rule_update(actor=actor, rule=rule, changes=dict(change.old_value), reason=why)

