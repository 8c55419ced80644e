"""Writes for clients, tuning, rules, examples and assignments: the only write path.

Every service checks the actor's rights (`spokestack.accounts.policy`), validates (`tuning.precedence`),
writes, and records one `TuningChange` per changed field or object in the same transaction.
`tuning_rollback` restores an entry's old value through these same services.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from guardian.shortcuts import assign_perm, remove_perm

from spokestack.accounts import policy
from spokestack.errors import Conflict, InvalidInput, NotAllowed, NotFound

from . import audit
from .assembly import get_platform_catalog, platform_tier_for
from .governance import ROLE_OBJECT_PERMISSION, roles_of
from .models import (
    MAX_MEMORY_TEXT,
    MAX_RULE_TEXT,
    Action,
    ApprovedExample,
    Client,
    ClientTuning,
    ContentRule,
    Entity,
    InstanceTuning,
    Memory,
    MemoryStatus,
    RuleKind,
    RuleSource,
    Tier,
    TuningChange,
    Vertical,
)
from .precedence import CLIENT_CONTACT_FIELDS, CLIENT_FIELDS, INSTANCE_FIELDS, check_instance_bounds, clean_changes
from .specialization import clean_client_fields

CLIENT_DETAIL_FIELDS = ("name", "slug", "vertical", "region", "language")
BOUNDED_FIELDS = {"effort", "max_tokens", "content_filters", "disabled_tools", "tool_config_overrides"}


def _full_clean(obj: Any, **kwargs) -> None:
    try:
        obj.full_clean(**kwargs)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        label = "" if field == "__all__" else f"{field}: "
        raise InvalidInput(f"{label}{' '.join(messages)}", details=exc.message_dict) from exc


# --- clients ----------------------------------------------------------------------------


@transaction.atomic
def client_create(*, name: str, vertical: str = Vertical.OTHER, region: str = "", language: str = "",
                  slug: str | None = None, actor: AbstractUser | None = None, reason: str = "",
                  ticket: str = "") -> Client:
    """A client of the agency, audited as one `create` entry with its details; rolling that entry
    back archives the client (runs, feedback and the audit log point at it, so it is never deleted)."""
    policy.require(actor, "client.create")
    slug = slug or slugify(name)[:60]
    if not slug:
        raise InvalidInput("name: give the client a name with at least one letter or digit.", details={"name": name})
    # One normaliser for specialization keys: "Retail" -> retail, "uae" -> GCC, "English" -> en; unknown -> 400.
    vertical, region, language = clean_client_fields(
        {"vertical": vertical, "region": region, "language": language}).values()
    if Client.objects.filter(slug=slug).exists():
        raise Conflict(f"A client with the slug '{slug}' already exists.", details={"slug": slug})
    client = Client(name=name.strip(), slug=slug, vertical=vertical, region=region, language=language)
    _full_clean(client)
    client.save()
    audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.CLIENT, entity_id=client.pk, action=Action.CREATE,
                 new=client_snapshot(client), client=client, reason=reason, ticket=ticket)
    return client


def client_snapshot(client: Client) -> dict[str, Any]:
    return {field: getattr(client, field) for field in CLIENT_DETAIL_FIELDS}


ARCHIVED_AT = "archived_at"


@transaction.atomic
def client_archive(*, actor: AbstractUser | None, client: Client, reason: str = "", ticket: str = "",
                   _at: datetime | None = None, _rollback_of: TuningChange | None = None) -> Client:
    """Stop new runs for a client the agency no longer works for; its runs, tuning and audit trail
    stay readable. Audited as a change of `archived_at` (None -> the moment, ISO 8601) and reversible
    by `tuning_rollback`. Archiving an archived client changes and records nothing."""
    policy.require(actor, "client.edit", client)
    client = Client.objects.select_for_update().get(pk=client.pk)
    if client.archived_at is not None:
        return client
    client.archived_at = _at or timezone.now()
    client.save(update_fields=[ARCHIVED_AT])
    audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.CLIENT, entity_id=client.pk, action=Action.UPDATE,
                 field=ARCHIVED_AT, old=None, new=client.archived_at.isoformat(), client=client, reason=reason,
                 ticket=ticket, rollback_of=_rollback_of)
    return client


@transaction.atomic
def client_unarchive(*, actor: AbstractUser | None, client: Client, reason: str = "", ticket: str = "",
                     _rollback_of: TuningChange | None = None) -> Client:
    """Work for the client again: new runs are accepted. Unarchiving an active client records nothing."""
    policy.require(actor, "client.edit", client)
    client = Client.objects.select_for_update().get(pk=client.pk)
    if client.archived_at is None:
        return client
    old = client.archived_at.isoformat()
    client.archived_at = None
    client.save(update_fields=[ARCHIVED_AT])
    audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.CLIENT, entity_id=client.pk, action=Action.UPDATE,
                 field=ARCHIVED_AT, old=old, new=None, client=client, reason=reason, ticket=ticket,
                 rollback_of=_rollback_of)
    return client


def _client_archive_rollback(*, change: TuningChange, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    """Undo a client's create (archive it), archive (unarchive it) or unarchive (archive it again at the
    moment it had). 409 when the client's archived state is no longer what the entry left."""
    client = Client.objects.select_for_update().filter(pk=int(change.entity_id)).first()
    current = client.archived_at.isoformat() if client is not None and client.archived_at else None
    left = None if change.action == Action.CREATE else change.new_value
    if client is None or current != left:
        state = "deleted" if client is None else (f"archived since {current}" if current else "active")
        raise Conflict(f"The client is {state} now, not as entry #{change.pk} left it, so it cannot be rolled back "
                       "blindly. Archive or unarchive it directly instead.",
                       details={"audit_id": change.pk, "field": ARCHIVED_AT, "current": current, "expected": left})
    common = {"actor": actor, "client": client, "reason": reason, "ticket": ticket, "_rollback_of": change}
    if change.action == Action.CREATE or change.old_value is not None:
        at = datetime.fromisoformat(change.old_value) if change.action != Action.CREATE else None
        client_archive(_at=at, **common)
    else:
        client_unarchive(**common)


@transaction.atomic
def client_update(*, actor: AbstractUser | None, client: Client, changes: dict[str, Any], reason: str = "",
                  ticket: str = "", _rollback_of: TuningChange | None = None) -> Client:
    """Name, slug, vertical, region, language: instance admins only (vertical, region and language
    change every agent's specialization for the client, so each changed field is audited and can be
    rolled back like tuning)."""
    policy.require(actor, "client.edit", client)
    unknown = sorted(set(changes) - set(CLIENT_DETAIL_FIELDS))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: is not a client field.", details={unknown[0]: ["unknown field"]})
    if _rollback_of is None:  # a rollback restores exactly what was stored
        changes = {**changes, **clean_client_fields(changes)}
    client = Client.objects.select_for_update().get(pk=client.pk)
    changed = [field for field in CLIENT_DETAIL_FIELDS if field in changes and getattr(client, field) != changes[field]]
    if not changed:
        return client
    olds = {field: getattr(client, field) for field in changed}
    for field in changed:
        setattr(client, field, changes[field])
    _full_clean(client)
    client.save(update_fields=changed)
    for field in changed:
        audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.CLIENT, entity_id=client.pk, action=Action.UPDATE,
                     field=field, old=olds[field], new=getattr(client, field), client=client, reason=reason,
                     ticket=ticket, rollback_of=_rollback_of)
    return client


@transaction.atomic
def client_assign(*, user: AbstractUser, client: Client, role: str, actor: AbstractUser | None = None,
                  reason: str = "", ticket: str = "", _rollback_of: TuningChange | None = None) -> Client:
    """Give an account manager or a client contact access to one client (a guardian object permission)."""
    policy.require(actor, "client.assign", client)
    if role not in ROLE_OBJECT_PERMISSION:
        raise InvalidInput(f"role: '{role}' cannot be assigned to a client; use "
                           f"{' or '.join(ROLE_OBJECT_PERMISSION)}.", details={"role": [role]})
    if role not in roles_of(user):
        raise InvalidInput(f"user: {user.get_username()} does not have the role {role}.", details={"user": [user.pk]})
    codename = ROLE_OBJECT_PERMISSION[role]
    if client.pk in policy.assigned_client_ids(user).get(codename, ()):
        return client
    assign_perm(f"tuning.{codename}", user, client)
    _forget_permissions(user)
    audit.record(actor=actor, tier=Tier.GOVERNANCE, entity=Entity.CLIENT_ASSIGNMENT,
                 entity_id=f"{client.pk}:{user.pk}:{role}", action=Action.CREATE, client=client,
                 new={"user_id": user.pk, "user": user.get_username(), "role": role}, reason=reason, ticket=ticket,
                 rollback_of=_rollback_of)
    return client


@transaction.atomic
def client_unassign(*, user: AbstractUser, client: Client, role: str, actor: AbstractUser | None = None,
                    reason: str = "", ticket: str = "", _rollback_of: TuningChange | None = None) -> Client:
    policy.require(actor, "client.assign", client)
    if role not in ROLE_OBJECT_PERMISSION:
        raise InvalidInput(f"role: '{role}' cannot be assigned to a client.", details={"role": [role]})
    remove_perm(f"tuning.{ROLE_OBJECT_PERMISSION[role]}", user, client)
    _forget_permissions(user)
    audit.record(actor=actor, tier=Tier.GOVERNANCE, entity=Entity.CLIENT_ASSIGNMENT,
                 entity_id=f"{client.pk}:{user.pk}:{role}", action=Action.DELETE, client=client,
                 old={"user_id": user.pk, "user": user.get_username(), "role": role}, reason=reason, ticket=ticket,
                 rollback_of=_rollback_of)
    return client


def _forget_permissions(user: AbstractUser) -> None:
    policy.forget(user)


# --- tier 2 -----------------------------------------------------------------------------


def instance_tuning_validate(*, agent_type: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The cleaned changes, or InvalidInput naming the field (unknown agent type, a relaxed bound, …)."""
    cleaned = clean_changes(changes, INSTANCE_FIELDS)
    if agent_type:
        check_instance_bounds(cleaned, [platform_tier_for(agent_type)])
    elif set(cleaned) & BOUNDED_FIELDS:
        catalog = get_platform_catalog()
        check_instance_bounds(cleaned, [catalog.platform_tier(t) for t in sorted(catalog.agent_types())])
    return cleaned


def _all_client_ids() -> list[int]:
    return list(Client.objects.order_by("pk").values_list("pk", flat=True))


@transaction.atomic
def instance_tuning_wide_row(*, actor: AbstractUser | None) -> InstanceTuning:
    """The instance-wide row, created empty (every field inheriting, so nothing to audit) if missing:
    the admin edits it in place."""
    policy.require(actor, "instance_tuning.edit")
    return InstanceTuning.objects.get_or_create(agent_type="")[0]


@transaction.atomic
def instance_tuning_update(*, actor: AbstractUser | None, changes: dict[str, Any], agent_type: str = "",
                           reason: str = "", ticket: str = "",
                           _rollback_of: TuningChange | None = None) -> InstanceTuning:
    """Change tier-2 fields of the instance-wide row (agent_type "") or of one agent type's row.

    A missing row is created; every changed field gets its own audit entry, whose old value for a
    new row is the field's "inherit" value, so a rollback returns exactly to inheriting.
    """
    policy.require(actor, "instance_tuning.edit")
    cleaned = instance_tuning_validate(agent_type=agent_type, changes=changes)
    row = InstanceTuning.objects.select_for_update().filter(agent_type=agent_type).first()
    if row is None:  # a new row starts with every field inheriting; only a real change creates it
        row = InstanceTuning(agent_type=agent_type)
        if not [field for field, value in cleaned.items() if getattr(row, field) != value]:
            return row
        if agent_type:
            row.parent = InstanceTuning.objects.get_or_create(agent_type="")[0]
        row.save()
    changed = [field for field, value in cleaned.items() if getattr(row, field) != value]
    if not changed:
        return row
    if "terminology_avoid" in changed and _rollback_of is None and actor is not None:
        added = [t for t in cleaned["terminology_avoid"] if t not in (row.terminology_avoid or [])]
        _what_if_first(client_id=None, agent_type=agent_type, rules=[{"kind": "avoid_term", "text": t} for t in added])
    olds = {field: getattr(row, field) for field in changed}
    for field in changed:
        setattr(row, field, cleaned[field])
    _full_clean(row, exclude=["parent"])
    row.save(update_fields=[*changed, "updated_at"])
    affected = _all_client_ids()
    for field in changed:
        audit.record(actor=actor, tier=Tier.INSTANCE, entity=Entity.INSTANCE_TUNING, entity_id=row.pk,
                     action=Action.UPDATE, field=field, old=olds[field], new=cleaned[field], agent_type=agent_type,
                     reason=reason, ticket=ticket, affected_clients=affected, rollback_of=_rollback_of)
    return row


def _what_if_first(*, client_id: int | None, agent_type: str, rules: list[dict[str, str]]) -> None:
    """409 when the instance requires a what-if eval of this change and none has finished
    (versions.evals.gating; a rollback and the system are not asked)."""
    from versions.evals.gating import what_if_required

    what_if_required(client_id=client_id, agent_type=agent_type, rules=rules)


# --- tier 3 -----------------------------------------------------------------------------


def client_tuning_validate(*, agent_type: str, changes: dict[str, Any]) -> dict[str, Any]:
    cleaned = clean_changes(changes, CLIENT_FIELDS)
    if agent_type:
        platform_tier_for(agent_type)
    return cleaned


def client_tuning_action(changes: Any) -> str:
    """The policy action a change of these client tuning fields needs: the client's own preferences
    only is `preferences.edit` (a client contact may), anything else `client_tuning.edit`."""
    fields = set(changes) if isinstance(changes, dict) else set()
    return "preferences.edit" if fields and fields <= CLIENT_CONTACT_FIELDS else "client_tuning.edit"


@transaction.atomic
def client_tuning_update(*, actor: AbstractUser | None, client: Client, changes: dict[str, Any],
                         agent_type: str = "", reason: str = "", ticket: str = "",
                         _rollback_of: TuningChange | None = None) -> ClientTuning:
    """Change tier-3 fields of a client's client-wide row or of one agent type's row. Changing only
    the client's own preferences is its own action (a client contact may). The guide's
    `content_rules` ({"always": […], "never": […], "prefer": […]}, §9.26) adds each rule the client
    does not have yet as a rule row (audited; removed through the rules API), so sending it twice
    adds nothing."""
    policy.require(actor, client_tuning_action(changes), client)
    guide_rules: list[dict[str, Any]] = []
    if isinstance(changes, dict) and "content_rules" in changes:
        changes = dict(changes)
        guide_rules = content_rules_from_guide(client=client, agent_type=agent_type,
                                               content_rules=changes.pop("content_rules"))
    cleaned = client_tuning_validate(agent_type=agent_type, changes=changes)
    if guide_rules:
        client_rules_add(actor=actor, client=client, rules=guide_rules, reason=reason, ticket=ticket)
    row = ClientTuning.objects.select_for_update().filter(client=client, agent_type=agent_type).first()
    if row is None:  # as for instance tuning: only a real change creates the row
        row = ClientTuning(client=client, agent_type=agent_type)
        if not [field for field, value in cleaned.items() if getattr(row, field) != value]:
            return row
        row.save()
    changed = [field for field, value in cleaned.items() if getattr(row, field) != value]
    if not changed:
        return row
    olds = {field: getattr(row, field) for field in changed}
    for field in changed:
        setattr(row, field, cleaned[field])
    _full_clean(row, exclude=["client"])
    row.save(update_fields=[*changed, "updated_at"])
    for field in changed:
        audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.CLIENT_TUNING, entity_id=row.pk,
                     action=Action.UPDATE, field=field, old=olds[field], new=cleaned[field], client=client,
                     agent_type=agent_type, reason=reason, ticket=ticket, rollback_of=_rollback_of)
    return row


def content_rules_from_guide(*, client: Client, agent_type: str, content_rules: Any) -> list[dict[str, Any]]:
    """The rules of a guide-shaped `content_rules` object that `client` does not have yet (same kind,
    text and agent type), validated like any rule."""
    kinds = RuleKind.values
    if content_rules is None:
        return []
    if not isinstance(content_rules, dict) or set(content_rules) - set(kinds):
        raise InvalidInput(f"content_rules: must be an object with {', '.join(kinds)} lists of rule texts "
                           "(or add rules one by one at /clients/{id}/rules).",
                           details={"content_rules": [f"keys: {', '.join(kinds)}"]})
    have = set(ContentRule.objects.filter(client=client, agent_type=agent_type).values_list("kind", "text"))
    rules: list[dict[str, Any]] = []
    for kind in kinds:
        texts = content_rules.get(kind) or []
        if not isinstance(texts, list):
            raise InvalidInput(f"content_rules.{kind}: must be a list of rule texts.",
                               details={f"content_rules.{kind}": ["list"]})
        for i, text in enumerate(texts):
            rule = content_rule_validate({"kind": kind, "text": text, "agent_type": agent_type},
                                         where=f"content_rules.{kind}[{i}].")
            if (kind, rule["text"]) not in have:
                have.add((kind, rule["text"]))
                rules.append(rule)
    return rules


def rule_snapshot(rule: ContentRule) -> dict[str, Any]:
    return {"kind": rule.kind, "text": rule.text, "active": rule.active, "agent_type": rule.agent_type,
            "source": rule.source, "source_reference": rule.source_reference, "created_by": rule.created_by_id}


def example_snapshot(example: ApprovedExample) -> dict[str, Any]:
    return {"kind": example.kind, "text": example.text, "context": example.context,
            "agent_type": example.agent_type, "created_by": example.created_by_id}


def content_rule_validate(data: Any, *, where: str = "") -> dict[str, Any]:
    """One rule as given by a person or the feedback loop -> the fields of a ContentRule."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where or 'rule'}: must be an object with kind and text.",
                           details={where or "rule": ["must be an object"]})
    allowed = {"kind", "text", "active", "agent_type", "source", "source_reference"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidInput(f"{where}{unknown[0]}: is not a rule field; use {', '.join(sorted(allowed))}.",
                           details={f"{where}{unknown[0]}": ["unknown field"]})
    kind, text = data.get("kind"), data.get("text")
    if kind not in RuleKind.values:
        raise InvalidInput(f"{where}kind: must be one of {', '.join(RuleKind.values)}, not {kind!r}.",
                           details={f"{where}kind": [f"invalid: {kind!r}"]})
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{where}text: write the rule as a non-empty text.", details={f"{where}text": ["required"]})
    if len(text) > MAX_RULE_TEXT:
        raise InvalidInput(f"{where}text: is {len(text):,} characters long; the limit is {MAX_RULE_TEXT:,}.",
                           details={f"{where}text": ["too long"]})
    source = data.get("source", RuleSource.MANUAL)
    if source not in RuleSource.values:
        raise InvalidInput(f"{where}source: must be one of {', '.join(RuleSource.values)}.",
                           details={f"{where}source": [str(source)]})
    reference = data.get("source_reference")
    if reference is not None and not isinstance(reference, str | int):
        raise InvalidInput(f"{where}source_reference: must be an id.", details={f"{where}source_reference": ["id"]})
    active = data.get("active", True)
    if not isinstance(active, bool):
        raise InvalidInput(f"{where}active: must be true or false.", details={f"{where}active": ["bool"]})
    agent_type = data.get("agent_type") or ""
    if not isinstance(agent_type, str):
        raise InvalidInput(f"{where}agent_type: must be a text.", details={f"{where}agent_type": ["text"]})
    if agent_type:
        try:
            platform_tier_for(agent_type)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}{exc.message}", details={f"{where}agent_type": [agent_type]}) from exc
    return {"kind": kind, "text": text.strip(), "active": active, "agent_type": agent_type, "source": source,
            "source_reference": str(reference) if reference is not None else None}


@transaction.atomic
def client_rules_add(*, actor: AbstractUser | None, client: Client, rules: list[dict[str, Any]], reason: str = "",
                     ticket: str = "") -> list[ContentRule]:
    """Add several rules at once: every one is valid, or none is added."""
    policy.require(actor, "client_rule.add", client)
    if not isinstance(rules, list) or not rules:
        raise InvalidInput("rules: send a non-empty list of rules.", details={"rules": ["non-empty list"]})
    cleaned = [content_rule_validate(rule, where=f"rules[{i}].") for i, rule in enumerate(rules)]
    return [_rule_create(actor=actor, client=client, fields=f, reason=reason, ticket=ticket) for f in cleaned]


@transaction.atomic
def client_rule_add(*, actor: AbstractUser | None, client: Client, kind: str, text: str, agent_type: str = "",
                    active: bool = True, source: str = RuleSource.MANUAL, source_reference: str | int | None = None,
                    reason: str = "", ticket: str = "") -> ContentRule:
    policy.require(actor, "client_rule.add", client)
    fields = content_rule_validate({"kind": kind, "text": text, "agent_type": agent_type, "active": active,
                                    "source": source, "source_reference": source_reference})
    return _rule_create(actor=actor, client=client, fields=fields, reason=reason, ticket=ticket)


def _rule_create(*, actor: AbstractUser | None, client: Client, fields: dict[str, Any], reason: str, ticket: str,
                 pk: int | None = None, created_by_id: int | None = None,
                 rollback_of: TuningChange | None = None) -> ContentRule:
    if rollback_of is None and actor is not None and fields.get("active", True):
        _what_if_first(client_id=client.pk, agent_type=fields.get("agent_type") or "",
                       rules=[{"kind": fields["kind"], "text": fields["text"]}])
    rule = ContentRule(pk=pk, client=client, created_by_id=created_by_id if pk else (actor.pk if actor else None),
                       **fields)
    _full_clean(rule, exclude=["client", "created_by"])
    rule.save(force_insert=True)
    audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.CONTENT_RULE, entity_id=rule.pk, action=Action.CREATE,
                 new=rule_snapshot(rule), client=client, agent_type=rule.agent_type, reason=reason, ticket=ticket,
                 rollback_of=rollback_of)
    return rule


@transaction.atomic
def client_rule_update(*, actor: AbstractUser | None, rule: ContentRule, changes: dict[str, Any], reason: str = "",
                       ticket: str = "", _rollback_of: TuningChange | None = None) -> ContentRule:
    """Change a rule's kind, text, agent type or active flag (its source never changes)."""
    rule = ContentRule.objects.select_for_update().select_related("client").get(pk=rule.pk)
    policy.require(actor, "client_rule.change", rule.client)
    editable = {"kind", "text", "active", "agent_type"}
    unknown = sorted(set(changes) - editable)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: cannot be changed on a rule; change {', '.join(sorted(editable))}.",
                           details={unknown[0]: ["not editable"]})
    current = {k: v for k, v in rule_snapshot(rule).items() if k != "created_by"}
    cleaned = content_rule_validate({**current, **changes})
    changed = [f for f in changes if getattr(rule, f) != cleaned[f]]
    if not changed:
        return rule
    if _rollback_of is None and actor is not None and cleaned["active"]:
        _what_if_first(client_id=rule.client_id, agent_type=cleaned["agent_type"],
                       rules=[{"kind": cleaned["kind"], "text": cleaned["text"]}])
    olds = {f: getattr(rule, f) for f in changed}
    for f in changed:
        setattr(rule, f, cleaned[f])
    _full_clean(rule, exclude=["client", "created_by"])
    rule.save(update_fields=changed)
    for f in changed:
        audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.CONTENT_RULE, entity_id=rule.pk,
                     action=Action.UPDATE, field=f, old=olds[f], new=cleaned[f], client=rule.client,
                     agent_type=rule.agent_type, reason=reason, ticket=ticket, rollback_of=_rollback_of)
    return rule


@transaction.atomic
def client_rule_remove(*, actor: AbstractUser | None, rule: ContentRule, reason: str = "", ticket: str = "",
                       _rollback_of: TuningChange | None = None) -> None:
    client = rule.client
    policy.require(actor, "client_rule.remove", client)
    snapshot = rule_snapshot(rule)
    rule_id = rule.pk
    if ContentRule.objects.filter(pk=rule_id).delete()[0] == 0:
        raise NotFound("No such rule.", details={"rule_id": rule_id})
    audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.CONTENT_RULE, entity_id=rule_id, action=Action.DELETE,
                 old=snapshot, client=client, agent_type=snapshot["agent_type"], reason=reason, ticket=ticket,
                 rollback_of=_rollback_of)


def approved_example_validate(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInput("example: must be an object with kind and text.", details={"example": ["object"]})
    allowed = {"kind", "text", "context", "agent_type"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: is not an example field; use {', '.join(sorted(allowed))}.",
                           details={unknown[0]: ["unknown field"]})
    for field in ("kind", "text"):
        if not isinstance(data.get(field), str) or not data[field].strip():
            raise InvalidInput(f"{field}: is required.", details={field: ["required"]})
    for field in ("context", "agent_type"):
        if not isinstance(data.get(field, ""), str):
            raise InvalidInput(f"{field}: must be a text.", details={field: ["text"]})
    if data.get("agent_type"):
        platform_tier_for(data["agent_type"])
    return {"kind": data["kind"].strip(), "text": data["text"].strip(), "context": data.get("context", "").strip(),
            "agent_type": data.get("agent_type", "")}


@transaction.atomic
def client_example_add(*, actor: AbstractUser | None, client: Client, kind: str, text: str, context: str = "",
                       agent_type: str = "", reason: str = "", ticket: str = "") -> ApprovedExample:
    policy.require(actor, "example.add", client)
    fields = approved_example_validate({"kind": kind, "text": text, "context": context, "agent_type": agent_type})
    return _example_create(actor=actor, client=client, fields=fields, reason=reason, ticket=ticket)


def _example_create(*, actor: AbstractUser | None, client: Client, fields: dict[str, Any], reason: str, ticket: str,
                    pk: int | None = None, created_by_id: int | None = None,
                    rollback_of: TuningChange | None = None) -> ApprovedExample:
    example = ApprovedExample(pk=pk, client=client,
                              created_by_id=created_by_id if pk else (actor.pk if actor else None), **fields)
    _full_clean(example, exclude=["client", "created_by"])
    example.save(force_insert=True)
    audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.APPROVED_EXAMPLE, entity_id=example.pk,
                 action=Action.CREATE, new=example_snapshot(example), client=client, agent_type=example.agent_type,
                 reason=reason, ticket=ticket, rollback_of=rollback_of)
    return example


@transaction.atomic
def client_example_remove(*, actor: AbstractUser | None, example: ApprovedExample, reason: str = "",
                          ticket: str = "", _rollback_of: TuningChange | None = None) -> None:
    client = example.client
    policy.require(actor, "example.remove", client)
    snapshot = example_snapshot(example)
    example_id = example.pk
    if ApprovedExample.objects.filter(pk=example_id).delete()[0] == 0:
        raise NotFound("No such example.", details={"example_id": example_id})
    audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.APPROVED_EXAMPLE, entity_id=example_id,
                 action=Action.DELETE, old=snapshot, client=client, agent_type=snapshot["agent_type"], reason=reason,
                 ticket=ticket, rollback_of=_rollback_of)


# --- rollback ---------------------------------------------------------------------------


def _conflict(change: TuningChange, current: Any) -> Conflict:
    what = f"{change.get_entity_display().lower()} {change.entity_id}" + (f" field {change.field}" if change.field else "")
    return Conflict(
        f"The {what} changed again after entry #{change.pk}, so it cannot be rolled back blindly: it is now "
        f"{current!r}, the entry set it to {change.new_value!r}. Change it directly instead.",
        details={"audit_id": change.pk, "field": change.field, "current": current, "expected": change.new_value,
                 "restore": change.old_value},
    )


def _unchanged_since(change: TuningChange, obj):
    """`obj` when its field still holds the value the entry set; Conflict (409) when it is gone or
    changed again since."""
    if obj is None:
        raise _conflict(change, None)
    current = getattr(obj, change.field)
    if current != change.new_value:
        raise _conflict(change, current)
    return obj


@transaction.atomic
def tuning_rollback(*, actor: AbstractUser | None, change: TuningChange, reason: str = "",
                    ticket: str = "") -> TuningChange:
    """Restore the value an entry replaced, through the service that made it (so the same
    permission checks apply), and return the new entry. Refused with Conflict (409) when the
    object changed again since the entry. An entry of a group (`audit.group`) rolls back with
    every entry of its group, newest first, all or nothing; the rollback entries form a group too."""
    policy.require(actor, "audit.rollback", change.client_id)
    if change.group is not None:
        members = list(TuningChange.objects.filter(group=change.group).order_by("-id"))
    elif change.reason.startswith("Feedback suggestion #") and change.rollback_of_id is None:
        # A suggestion applied before applies were grouped: its entries (the rule, the learned
        # preferences, the summary) were recorded one after another with the same reason.
        members = list(TuningChange.objects.filter(
            group=None, rollback_of=None, client_id=change.client_id, actor_id=change.actor_id, reason=change.reason,
            id__range=(change.pk - 2, change.pk + 2)).order_by("-id"))
    else:
        return _rollback_one(actor=actor, change=change, reason=reason, ticket=ticket)
    if len(members) == 1:
        return _rollback_one(actor=actor, change=change, reason=reason, ticket=ticket)
    with audit.group():
        for member in members:
            policy.require(actor, "audit.rollback", member.client_id)
            _rollback_one(actor=actor, change=member, reason=reason or f"Rollback of #{change.pk} and its group",
                          ticket=ticket)
    return TuningChange.objects.filter(rollback_of=change).order_by("-id").first() or change


def _rollback_one(*, actor: AbstractUser | None, change: TuningChange, reason: str, ticket: str) -> TuningChange:
    why = reason or f"Rollback of #{change.pk}"
    common = {"actor": actor, "reason": why, "ticket": ticket}
    entity, action = change.entity, change.action
    handler = audit.ROLLBACK_HANDLERS.get(entity)

    if handler is not None:
        handler(change=change, **common)
    elif entity in (Entity.INSTANCE_TUNING, Entity.CLIENT_TUNING):
        model = InstanceTuning if entity == Entity.INSTANCE_TUNING else ClientTuning
        row = _unchanged_since(change, model.objects.select_for_update().filter(pk=int(change.entity_id)).first())
        if entity == Entity.INSTANCE_TUNING:
            instance_tuning_update(changes={change.field: change.old_value}, agent_type=row.agent_type,
                                   _rollback_of=change, **common)
        else:
            client_tuning_update(client=row.client, changes={change.field: change.old_value},
                                 agent_type=row.agent_type, _rollback_of=change, **common)
    elif entity in (Entity.CONTENT_RULE, Entity.APPROVED_EXAMPLE):
        is_rule = entity == Entity.CONTENT_RULE
        model = ContentRule if is_rule else ApprovedExample
        snapshot = rule_snapshot if is_rule else example_snapshot
        obj = model.objects.select_for_update().select_related("client").filter(pk=int(change.entity_id)).first()
        if action == Action.CREATE:
            if obj is None or snapshot(obj) != change.new_value:
                raise _conflict(change, snapshot(obj) if obj else None)
            remove = client_rule_remove if is_rule else client_example_remove
            remove(**{"rule" if is_rule else "example": obj}, _rollback_of=change, **common)
        elif action == Action.DELETE:
            if obj is not None:
                raise _conflict(change, snapshot(obj))
            client = Client.objects.filter(pk=change.client_id).first()
            if client is None:
                raise _conflict(change, "the client was deleted")
            old = dict(change.old_value)
            created_by = old.pop("created_by", None)
            if is_rule:
                policy.require(actor, "client_rule.add", client)
                _rule_create(client=client, fields=content_rule_validate(old), pk=int(change.entity_id),
                             created_by_id=created_by, rollback_of=change, **common)
            else:
                policy.require(actor, "example.add", client)
                _example_create(client=client, fields=approved_example_validate(old), pk=int(change.entity_id),
                                created_by_id=created_by, rollback_of=change, **common)
        else:  # a field of a rule
            client_rule_update(rule=_unchanged_since(change, obj), changes={change.field: change.old_value}, _rollback_of=change, **common)
    elif entity == Entity.CLIENT and (action == Action.CREATE or change.field == ARCHIVED_AT):
        _client_archive_rollback(change=change, **common)
    elif entity == Entity.CLIENT:
        client = _unchanged_since(change, Client.objects.select_for_update().filter(pk=int(change.entity_id)).first())
        client_update(client=client, changes={change.field: change.old_value}, _rollback_of=change, **common)
    elif entity == Entity.CLIENT_ASSIGNMENT:
        value = change.new_value if action == Action.CREATE else change.old_value
        user = get_user_model().objects.filter(pk=value["user_id"]).first()
        client = Client.objects.filter(pk=change.client_id).first()
        if user is None or client is None:
            raise _conflict(change, "the user or the client was deleted")
        holds = client.pk in policy.assigned_client_ids(user).get(ROLE_OBJECT_PERMISSION[value["role"]], ())
        if holds != (action == Action.CREATE):
            raise _conflict(change, {"assigned": holds})
        if action == Action.CREATE:
            client_unassign(user=user, client=client, role=value["role"], _rollback_of=change, **common)
        else:
            client_assign(user=user, client=client, role=value["role"], _rollback_of=change, **common)
    else:
        raise InvalidInput(f"Entries of kind {entity} cannot be rolled back.")
    return TuningChange.objects.filter(rollback_of=change).order_by("-id").first() or change


# --- memory (tier 3) ---------------------------------------------------------------------------

MEMORY_EDITABLE = ("text", "expires_at")
AUTO_ACCEPT = "memory_auto_accept"


def memory_snapshot(memory: Memory) -> dict[str, Any]:
    """What an entry keeps of a memory (enough to restore it after a delete)."""
    return {"client_id": memory.client_id, "text": memory.text, "source": memory.source, "status": memory.status,
            "expires_at": _iso(memory.expires_at), "proposed_by": memory.proposed_by_id,
            "decided_by": memory.decided_by_id}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _memory_require(actor: AbstractUser | None, action: str, client: Client | None) -> None:
    """The policy row, with the client; an agency-wide memory (no client) is for the roles that act
    on every client (instance admins and managers), not for an account manager of some client."""
    if client is not None:
        policy.require(actor, action, client)
        return
    policy.require(actor, action)
    if not policy.acts_on_every_client(actor, action):
        raise NotAllowed("Agency-wide memories (no client) are for instance admins and managers; give a client.",
                         details={"action": action, "client_id": None})


def _memory_text(text: Any) -> str:
    if not isinstance(text, str) or not " ".join(text.split()):
        raise InvalidInput("text: write the fact to remember, e.g. 'Always use British spelling.'",
                           details={"text": ["required"]})
    text = " ".join(text.split())
    if len(text) > MAX_MEMORY_TEXT:
        raise InvalidInput(f"text: a memory is at most {MAX_MEMORY_TEXT} characters ({len(text)} given); keep "
                           "one short fact per memory.", details={"text": [f"at most {MAX_MEMORY_TEXT}"]})
    return text


def _memory_expiry(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise InvalidInput("expires_at: give an ISO 8601 date and time, e.g. 2027-01-31T00:00:00Z, or null.",
                               details={"expires_at": [str(value)]}) from None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _memory_insert(*, actor: AbstractUser | None, memory: Memory, reason: str, ticket: str,
                   rollback_of: TuningChange | None = None) -> Memory:
    _full_clean(memory, exclude=["client", "proposed_by", "decided_by"])
    memory.save(force_insert=True)
    audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.MEMORY, entity_id=memory.pk, action=Action.CREATE,
                 new=memory_snapshot(memory), client=memory.client, reason=reason, ticket=ticket,
                 affected_clients=None if memory.client_id else _all_client_ids(), rollback_of=rollback_of)
    return memory


def memory_auto_accept_enabled() -> bool:
    return bool(InstanceTuning.objects.filter(agent_type="").values_list(AUTO_ACCEPT, flat=True).first())


@transaction.atomic
def memory_propose(*, actor: AbstractUser | None, client: Client | None, text: str, source: str = "",
                   expires_at: Any = None, reason: str = "", ticket: str = "") -> Memory:
    """A fact an agent (the remember tool, `source` "run:<id>") or a person proposes. It waits for an
    account manager's decision, or is accepted at once when the instance opted in
    (`memory_auto_accept`). Proposing a fact already proposed or accepted for the client returns
    that memory and records nothing (a replayed tool call proposes once)."""
    _memory_require(actor, "memory.propose", client)
    text = _memory_text(text)
    existing = Memory.objects.filter(client=client, text__iexact=text,
                                     status__in=[MemoryStatus.PROPOSED, MemoryStatus.ACCEPTED]).first()
    if existing is not None:
        return existing
    auto = memory_auto_accept_enabled()
    memory = Memory(client=client, text=text, source=(source or (f"person:{actor.get_username()}" if actor else ""))[:80],
                    expires_at=_memory_expiry(expires_at), proposed_by=actor,
                    status=MemoryStatus.ACCEPTED if auto else MemoryStatus.PROPOSED,
                    decided_at=timezone.now() if auto else None,
                    decision_reason="accepted automatically (memory_auto_accept)" if auto else "")
    memory = _memory_insert(actor=actor, memory=memory, reason=reason, ticket=ticket)
    from spokestack.webhooks.services import webhook_emit

    source = memory.source or ""
    webhook_emit("memory.proposed", {"memory_id": memory.pk, "client_id": memory.client_id, "text": memory.text,
                                     "status": str(memory.status),
                                     "run_id": source.removeprefix("run:") if source.startswith("run:") else None})
    return memory


@transaction.atomic
def memory_create(*, actor: AbstractUser | None, client: Client | None, text: str, expires_at: Any = None,
                  reason: str = "", ticket: str = "") -> Memory:
    """A person writes a memory directly: accepted at once."""
    _memory_require(actor, "memory.write", client)
    memory = Memory(client=client, text=_memory_text(text), expires_at=_memory_expiry(expires_at),
                    source=f"person:{actor.get_username()}" if actor else "system", proposed_by=actor,
                    decided_by=actor, decided_at=timezone.now(), status=MemoryStatus.ACCEPTED)
    return _memory_insert(actor=actor, memory=memory, reason=reason, ticket=ticket)


def _memory_change(*, actor: AbstractUser | None, memory: Memory, changes: dict[str, Any], action: str,
                   reason: str, ticket: str, rollback_of: TuningChange | None,
                   check: Callable[[Memory], None] | None = None) -> Memory:
    memory_id = memory.pk
    memory = Memory.objects.select_for_update(of=("self",)).select_related("client").filter(pk=memory_id).first()
    if memory is None:
        raise NotFound("No such memory.", details={"memory_id": memory_id})
    _memory_require(actor, action, memory.client)
    if check is not None:  # on the locked row, after the policy
        check(memory)
    olds = memory_snapshot(memory)
    for field, value in changes.items():
        setattr(memory, field, value)
    news = memory_snapshot(memory)
    changed = [f for f in ("status", "text", "expires_at") if olds[f] != news[f]]
    if not changed:
        return memory
    if "status" in changed:
        memory.decided_by, memory.decided_at = actor, timezone.now()
        memory.decision_reason = reason.strip()[:300]
    _full_clean(memory, exclude=["client", "proposed_by", "decided_by"])
    memory.save()
    for field in changed:
        audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.MEMORY, entity_id=memory.pk, action=Action.UPDATE,
                     field=field, old=olds[field], new=news[field], client=memory.client, reason=reason,
                     ticket=ticket, affected_clients=None if memory.client_id else _all_client_ids(),
                     rollback_of=rollback_of)
    return memory


_KEEP_EXPIRY = object()


@transaction.atomic
def memory_accept(*, actor: AbstractUser | None, memory: Memory, reason: str = "", ticket: str = "",
                  expires_at: Any = _KEEP_EXPIRY, _rollback_of: TuningChange | None = None) -> Memory:
    """Accept a proposal (or a rejected or expired memory again): runs for its client are told it.

    `expires_at` (a future moment, or None for never) replaces the expiry in the same decision; a
    memory whose expiry has passed is accepted again only with one (else it would expire at once).
    The status and the new expiry are two entries of one audit group (rolled back together)."""
    changes: dict[str, Any] = {"status": MemoryStatus.ACCEPTED}
    now = timezone.now()
    if expires_at is not _KEEP_EXPIRY:
        changes["expires_at"] = _memory_expiry(expires_at)
        if changes["expires_at"] is not None and changes["expires_at"] <= now:
            raise InvalidInput("expires_at: give a moment in the future (or null: never expires).",
                               details={"expires_at": [_iso(changes["expires_at"])]})

    def still_current(locked: Memory) -> None:
        if "expires_at" not in changes and locked.expires_at is not None and locked.expires_at <= now:
            raise InvalidInput(f"expires_at: memory #{locked.pk} expired on {locked.expires_at:%Y-%m-%d %H:%M} UTC; "
                               "accept it with a new expires_at (in the future, or null for never), or change its "
                               "expiry first.", details={"expires_at": [_iso(locked.expires_at)]})

    with audit.group():
        return _memory_change(actor=actor, memory=memory, changes=changes, action="memory.decide", reason=reason,
                              ticket=ticket, rollback_of=_rollback_of, check=still_current)


@transaction.atomic
def memory_reject(*, actor: AbstractUser | None, memory: Memory, reason: str = "", ticket: str = "",
                  _rollback_of: TuningChange | None = None) -> Memory:
    """Reject a proposal (or withdraw an accepted memory): no run is told it; it stays for the record."""
    return _memory_change(actor=actor, memory=memory, changes={"status": MemoryStatus.REJECTED},
                          action="memory.decide", reason=reason, ticket=ticket, rollback_of=_rollback_of)


@transaction.atomic
def memory_edit(*, actor: AbstractUser | None, memory: Memory, changes: dict[str, Any], reason: str = "",
                ticket: str = "", _rollback_of: TuningChange | None = None) -> Memory:
    """Change a memory's text or expiry (accept or reject it with memory_accept / memory_reject)."""
    unknown = sorted(set(changes) - set(MEMORY_EDITABLE))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: cannot be changed on a memory; change {' or '.join(MEMORY_EDITABLE)} "
                           "(accept or reject it to change its status).", details={unknown[0]: ["not editable"]})
    cleaned: dict[str, Any] = {}
    if "text" in changes:
        cleaned["text"] = _memory_text(changes["text"])
    if "expires_at" in changes:
        cleaned["expires_at"] = _memory_expiry(changes["expires_at"])
    return _memory_change(actor=actor, memory=memory, changes=cleaned, action="memory.decide", reason=reason,
                          ticket=ticket, rollback_of=_rollback_of)


@transaction.atomic
def memory_delete(*, actor: AbstractUser | None, memory: Memory, reason: str = "", ticket: str = "",
                  _rollback_of: TuningChange | None = None) -> None:
    """Delete a memory; its delete entry keeps it, so a rollback brings it back as it was."""
    memory = Memory.objects.select_for_update(of=("self",)).select_related("client").filter(pk=memory.pk).first()
    if memory is None:
        raise NotFound("No such memory.")
    _memory_require(actor, "memory.write", memory.client)
    snapshot, memory_id, client = memory_snapshot(memory), memory.pk, memory.client
    memory.delete()
    audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.MEMORY, entity_id=memory_id, action=Action.DELETE,
                 old=snapshot, client=client, reason=reason, ticket=ticket,
                 affected_clients=None if client else _all_client_ids(), rollback_of=_rollback_of)


def memories_expire(*, now: datetime | None = None) -> int:
    """Mark the proposed and accepted memories of the current schema whose expiry has passed as
    expired (beat task `tuning.expire_memories`). The assembler leaves them out already; this makes
    the admin and the API say so. Each is an audited system change (actor none) that a person can
    undo by accepting the memory again with a new expiry. Rows a person holds locked at that moment
    are skipped (the next round takes them); the rest change in one UPDATE."""
    now = now or timezone.now()
    live = [MemoryStatus.PROPOSED, MemoryStatus.ACCEPTED]
    with transaction.atomic():
        due = list(Memory.objects.select_for_update(skip_locked=True, of=("self",)).select_related("client")
                   .filter(status__in=live, expires_at__lte=now).order_by("pk"))
        if not due:
            return 0
        Memory.objects.filter(pk__in=[m.pk for m in due]).update(status=MemoryStatus.EXPIRED, updated_at=now)
        every_client = None
        for memory in due:
            if memory.client_id is None and every_client is None:
                every_client = _all_client_ids()
            audit.record(actor=None, tier=Tier.CLIENT, entity=Entity.MEMORY, entity_id=memory.pk,
                         action=Action.UPDATE, field="status", old=memory.status, new=MemoryStatus.EXPIRED,
                         client=memory.client, reason=f"Expired: its expiry ({_iso(memory.expires_at)}) has passed.",
                         affected_clients=every_client if memory.client_id is None else None)
    return len(due)


@transaction.atomic
def memory_auto_accept_set(*, actor: AbstractUser | None, enabled: bool, reason: str = "", ticket: str = "",
                           _rollback_of: TuningChange | None = None) -> InstanceTuning:
    """Opt the instance in (or out) of accepting agents' proposals at once. Instance admins only."""
    policy.require(actor, "instance_tuning.edit")
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled: true or false.", details={"enabled": [repr(enabled)]})
    row = InstanceTuning.objects.select_for_update().get_or_create(agent_type="")[0]
    if row.memory_auto_accept == enabled:
        return row
    row.memory_auto_accept = enabled
    row.save(update_fields=[AUTO_ACCEPT, "updated_at"])
    audit.record(actor=actor, tier=Tier.INSTANCE, entity=Entity.MEMORY, entity_id=AUTO_ACCEPT, action=Action.UPDATE,
                 field=AUTO_ACCEPT, old=not enabled, new=enabled, reason=reason, ticket=ticket, affected_clients=[],
                 rollback_of=_rollback_of)
    return row


@audit.rollback_handler(Entity.MEMORY)
def _memory_rollback(*, change: TuningChange, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    """Undo a memory entry through the memory services; 409 when the memory changed again since."""
    common = {"actor": actor, "reason": reason, "ticket": ticket, "_rollback_of": change}
    if change.field == AUTO_ACCEPT:
        if memory_auto_accept_enabled() != change.new_value:
            raise _conflict(change, memory_auto_accept_enabled())
        memory_auto_accept_set(enabled=change.old_value, **common)
        return
    memory = Memory.objects.select_for_update(of=("self",)).select_related("client").filter(pk=int(change.entity_id)).first()
    current = memory_snapshot(memory) if memory is not None else None
    if change.action == Action.CREATE:
        if current is None or {k: current[k] for k in ("text", "status", "expires_at")} != {
                k: change.new_value[k] for k in ("text", "status", "expires_at")}:
            raise _conflict(change, current)
        memory_delete(memory=memory, **common)
    elif change.action == Action.DELETE:
        if current is not None:
            raise _conflict(change, current)
        old = change.old_value
        client = Client.objects.filter(pk=old["client_id"]).first() if old["client_id"] else None
        if old["client_id"] and client is None:
            raise _conflict(change, "the client was deleted")
        _memory_require(actor, "memory.write", client)
        restored = Memory(pk=int(change.entity_id), client=client, text=old["text"], source=old["source"],
                          status=old["status"], expires_at=_memory_expiry(old["expires_at"]),
                          proposed_by_id=old["proposed_by"], decided_by_id=old["decided_by"])
        _memory_insert(actor=actor, memory=restored, reason=reason, ticket=ticket, rollback_of=change)
    else:
        if current is None or current[change.field] != change.new_value:
            raise _conflict(change, current[change.field] if current else None)
        if change.field == "status":
            _memory_change(actor=actor, memory=memory, changes={"status": change.old_value}, action="memory.decide",
                           reason=reason, ticket=ticket, rollback_of=change)
        else:
            memory_edit(memory=memory, changes={change.field: change.old_value}, **common)
