"""Writes for skills. The only write path: keyword-only, validated, permission-checked.

Every create, change (enabling and disabling included) and delete writes audit entries
(`tuning.audit`, entity `skill`: one per changed field, before and after) in the same
transaction; a secret is recorded as changed, never by value. `_skill_rollback` undoes an
entry through these same services.

A skill's name must not collide with a core tool of any agent type it attaches to, in any
registered version of that agent type. `skills` does not import `agents`: the core tool names
come from the one agent catalog (`spokestack.catalog`, which agents fills), or from the caller
(`core_tools=`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from jsonschema import Draft202012Validator, SchemaError

from spokestack.accounts import policy
from spokestack.catalog import UnknownAgentType
from spokestack.egress import EgressRefused, vet_url
from spokestack.errors import InvalidInput, NotFound
from spokestack.secrets import EncryptedSecret
from tuning import audit
from tuning.models import Action, Client, Entity, Tier, TuningChange
from tuning.services import _conflict, _unchanged_since

from .handlers import HANDLERS
from .models import APPROVAL_PRIORITIES, MAX_DESCRIPTION_CHARS, NAME_PATTERN, McpTool, Skill
from .signing import new_webhook_secret

logger = logging.getLogger(__name__)

MAX_SCHEMA_CHARS = 20_000
HEADER_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,64}$")
EDITABLE_FIELDS = ("name", "description", "input_schema", "execution_type", "agent_types", "relies_on_tools",
                   "enabled", "requires_approval", "approval_priority", "webhook_url", "auth_type", "auth_header",
                   "auth_secret", "handler", "timeout_s")


def core_tool_names() -> Mapping[str, frozenset[str]]:
    """{core agent type: every core tool name of any registered version}, from the agent catalog."""
    from spokestack.catalog import registered

    catalog = registered()
    return catalog.tool_names() if catalog is not None else {}


def _require_writer(actor: AbstractUser | None) -> None:
    policy.require(actor, "skill.edit")


def _check(skill: Skill, *, core_tools: Mapping[str, frozenset[str]], secret_given: bool) -> None:
    """Every rule of a skill, each failure naming the field and what would work."""
    names = {label.lower(): value for value, label in APPROVAL_PRIORITIES}
    if isinstance(skill.approval_priority, str) and skill.approval_priority.lower() in names:
        skill.approval_priority = names[skill.approval_priority.lower()]
    if skill.approval_priority not in dict(APPROVAL_PRIORITIES) or isinstance(skill.approval_priority, bool):
        raise InvalidInput(f"approval_priority: one of {', '.join(names)}.", details={"field": "approval_priority"})
    if not isinstance(skill.name, str) or not re.match(NAME_PATTERN, skill.name):
        raise InvalidInput("name: use 2–64 lowercase letters, digits and underscores, starting with a letter.",
                           details={"field": "name"})
    if Skill.objects.filter(name=skill.name).exclude(pk=skill.pk).exists():
        raise InvalidInput(f"name: this instance already has a skill named '{skill.name}'.", details={"field": "name"})
    if McpTool.objects.filter(name=skill.name).exists():
        raise InvalidInput(f"name: an MCP tool of this instance is exposed as '{skill.name}'; choose another name.",
                           details={"field": "name"})
    if not isinstance(skill.description, str) or not skill.description.strip():
        raise InvalidInput("description: say what the skill does and when to use it.", details={"field": "description"})
    if len(skill.description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(f"description: at most {MAX_DESCRIPTION_CHARS} characters "
                           f"(this one has {len(skill.description)}).", details={"field": "description"})
    schema = skill.input_schema
    if not isinstance(schema, dict) or len(repr(schema)) > MAX_SCHEMA_CHARS:
        raise InvalidInput("input_schema: give a JSON Schema object of at most 20 kB.", details={"field": "input_schema"})
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(map(str, exc.path)) or "(root)"
        raise InvalidInput(f"input_schema: not a valid JSON Schema (Draft 2020-12) at {where}: {exc.message}",
                           details={"field": "input_schema"}) from None
    if schema.get("type") != "object":
        raise InvalidInput('input_schema: a tool input must be an object schema ({"type": "object", ...}).',
                           details={"field": "input_schema"})
    if not isinstance(skill.agent_types, list) or not skill.agent_types or not all(
            isinstance(a, str) for a in skill.agent_types):
        raise InvalidInput("agent_types: list the agent types this skill is offered to.",
                           details={"field": "agent_types"})
    unknown = sorted(set(skill.agent_types) - set(core_tools))
    if unknown:  # the catalog's answer for an unknown type (404); an agency agent picks skills in its definition
        raise UnknownAgentType(f"agent_types: unknown core agent type(s) {', '.join(unknown)}; choose from "
                               f"{', '.join(sorted(core_tools))} (an agency-built agent is given skills in its own "
                               "definition).", details={"agent_types": [f"unknown agent type {unknown[0]!r}"]})
    clashes = sorted(a for a in skill.agent_types if skill.name in core_tools[a])
    if clashes:
        raise InvalidInput(f"name: '{skill.name}' is a core tool of the {', '.join(clashes)} agent; "
                           "choose another name.", details={"field": "name"})
    if not isinstance(skill.relies_on_tools, list):
        raise InvalidInput("relies_on_tools: give a list of core tool names.", details={"field": "relies_on_tools"})
    if skill.execution_type == Skill.ExecutionType.WEBHOOK:
        if not skill.webhook_url:
            raise InvalidInput("webhook_url: a webhook skill needs the URL to POST to.", details={"field": "webhook_url"})
        try:
            vet_url(skill.webhook_url, resolver=None)
        except EgressRefused as exc:
            raise InvalidInput(f"webhook_url: {exc.message}", details={"field": "webhook_url",
                                                                        "reason": exc.reason}) from None
        if skill.auth_type not in Skill.AuthType.values:
            raise InvalidInput(f"auth_type: choose one of {', '.join(Skill.AuthType.values)}.",
                               details={"field": "auth_type"})
        if skill.auth_type != Skill.AuthType.NONE and not (secret_given or skill.auth_secret):
            raise InvalidInput("auth_secret: bearer and API-key auth need the secret.", details={"field": "auth_secret"})
        if skill.auth_type == Skill.AuthType.API_KEY and not HEADER_PATTERN.match(skill.auth_header or ""):
            raise InvalidInput("auth_header: give a header name such as X-Api-Key.", details={"field": "auth_header"})
    elif skill.execution_type == Skill.ExecutionType.INTERNAL:
        if skill.handler not in HANDLERS:
            raise InvalidInput(f"handler: choose one of {', '.join(sorted(HANDLERS))}.", details={"field": "handler"})
    else:
        raise InvalidInput("execution_type: choose webhook or internal.", details={"field": "execution_type"})
    if not isinstance(skill.timeout_s, int) or not 1 <= skill.timeout_s <= 60:
        raise InvalidInput("timeout_s: between 1 and 60 seconds.", details={"field": "timeout_s"})
    try:
        skill.full_clean(exclude=["auth_secret", "signing_secret"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(f"{field}: {' '.join(messages)}", details={"field": field}) from None


def skill_validate(*, skill: Skill, data: Mapping[str, Any],
                   core_tools: Mapping[str, frozenset[str]] | None = None) -> None:
    """Check `data` applied to (a copy of) `skill` without saving: forms show the same errors."""
    import copy

    candidate = copy.copy(skill)
    secret_given = _apply(candidate, data)
    _check(candidate, core_tools=core_tools if core_tools is not None else core_tool_names(),
           secret_given=secret_given)


def _apply(skill: Skill, data: Mapping[str, Any]) -> bool:
    """Copy editable fields onto the row; the plaintext secret is sealed, never kept. True when a
    new auth secret was given."""
    unknown = sorted(set(data) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a field of a skill (or not editable).", details={"field": unknown[0]})
    secret_given = False
    for field, value in data.items():
        if field == "auth_secret":
            if value:
                if not isinstance(value, str) or len(value) > 4000:
                    raise InvalidInput("auth_secret: give the token as text.", details={"field": "auth_secret"})
                skill.auth_secret = EncryptedSecret.seal(value, schema=connection.schema_name)
                secret_given = True
            continue
        setattr(skill, field, value)
    if skill.execution_type == Skill.ExecutionType.INTERNAL or skill.auth_type == Skill.AuthType.NONE:
        skill.auth_secret = EncryptedSecret("")
    return secret_given


@dataclass(frozen=True)
class CreatedSkill:
    skill: Skill
    signing_secret: str  # whsec_…: shown once, to the person who created the skill


# What the audit log keeps of a skill: every editable field but the secret, which is recorded as
# set or not (and as replaced when a new one is given), never by value.
AUDITED_FIELDS = tuple(f for f in EDITABLE_FIELDS if f != "auth_secret")
SECRET_SET = "(set, not shown)"  # noqa: S105 - a label, not a secret
SECRET_REPLACED = "(replaced, not shown)"  # noqa: S105


def skill_snapshot(skill: Skill) -> dict[str, Any]:
    return {**{f: getattr(skill, f) for f in AUDITED_FIELDS}, "auth_secret": SECRET_SET if skill.auth_secret else None}


def _record(*, actor: AbstractUser | None, skill: Skill, action: str, field: str = "", old: Any = None,
            new: Any = None, reason: str, ticket: str, rollback_of: TuningChange | None) -> None:
    # A skill is tier-2 configuration: it can reach every client's runs of its agent types.
    agent_types = list(skill.agent_types or [])
    audit.record(actor=actor, tier=Tier.INSTANCE, entity=Entity.SKILL, entity_id=skill.pk, action=action, field=field,
                 old=old, new=new, agent_type=agent_types[0] if len(agent_types) == 1 else "", reason=reason,
                 ticket=ticket, rollback_of=rollback_of,
                 affected_clients=list(Client.objects.order_by("pk").values_list("pk", flat=True)))


@transaction.atomic
def skill_create(*, actor: AbstractUser | None, core_tools: Mapping[str, frozenset[str]] | None = None,
                 reason: str = "", ticket: str = "", **fields: Any) -> CreatedSkill:
    """Create a skill. Returns the per-skill signing secret once; it is never shown again."""
    return _create(actor=actor, core_tools=core_tools, fields=fields, reason=reason, ticket=ticket)


def _create(*, actor: AbstractUser | None, core_tools: Mapping[str, frozenset[str]] | None, fields: Mapping[str, Any],
            reason: str, ticket: str, pk: int | None = None, rollback_of: TuningChange | None = None) -> CreatedSkill:
    _require_writer(actor)
    skill = Skill(pk=pk)
    secret_given = _apply(skill, fields)
    _check(skill, core_tools=core_tools if core_tools is not None else core_tool_names(), secret_given=secret_given)
    signing = new_webhook_secret()
    skill.signing_secret = EncryptedSecret.seal(signing, schema=connection.schema_name)
    skill.save(force_insert=True)
    _record(actor=actor, skill=skill, action=Action.CREATE, new=skill_snapshot(skill), reason=reason, ticket=ticket,
            rollback_of=rollback_of)
    logger.info("skill %s created by %s", skill.name, getattr(actor, "email", "system"))
    return CreatedSkill(skill=skill, signing_secret=signing)


@transaction.atomic
def skill_update(*, actor: AbstractUser | None, skill: Skill, changes: Mapping[str, Any],
                 core_tools: Mapping[str, frozenset[str]] | None = None, reason: str = "", ticket: str = "",
                 _rollback_of: TuningChange | None = None) -> Skill:
    """Change a skill (enable or disable it with `enabled`). The secret stays as it is unless a new
    one is given (write-only). One audit entry per field whose value changed."""
    _require_writer(actor)
    skill = Skill.objects.select_for_update().get(pk=skill.pk)
    before = skill_snapshot(skill)
    secret_given = _apply(skill, changes)
    _check(skill, core_tools=core_tools if core_tools is not None else core_tool_names(), secret_given=secret_given)
    after = skill_snapshot(skill)
    if secret_given and before["auth_secret"]:
        after["auth_secret"] = SECRET_REPLACED
    changed = [f for f in (*AUDITED_FIELDS, "auth_secret") if before[f] != after[f]]
    if not changed:
        return skill
    skill.save()
    for field in changed:
        _record(actor=actor, skill=skill, action=Action.UPDATE, field=field, old=before[field], new=after[field],
                reason=reason, ticket=ticket, rollback_of=_rollback_of)
    logger.info("skill %s changed by %s: %s", skill.name, getattr(actor, "email", "system"), ", ".join(changed))
    return skill


@transaction.atomic
def skill_delete(*, actor: AbstractUser | None, skill: Skill, reason: str = "", ticket: str = "",
                 _rollback_of: TuningChange | None = None) -> None:
    _require_writer(actor)
    skill_id = skill.pk
    skill = Skill.objects.select_for_update().filter(pk=skill_id).first()
    if skill is None:
        raise NotFound("No such skill in this instance.", details={"skill_id": str(skill_id)})
    snapshot = skill_snapshot(skill)
    logger.info("skill %s deleted by %s", skill.name, getattr(actor, "email", "system"))
    skill.delete()
    skill.pk = skill_id
    _record(actor=actor, skill=skill, action=Action.DELETE, old=snapshot, reason=reason, ticket=ticket,
            rollback_of=_rollback_of)


@audit.rollback_handler(Entity.SKILL)
def _skill_rollback(*, change: TuningChange, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    """Undo one skill entry through the services above (so `skill.edit` is asked again). Refused with
    Conflict (409) when the skill changed since the entry, and with InvalidInput (400) where the log
    cannot restore it: a secret (never kept in the log) or a deleted webhook skill (its signing
    secret, which its receiver verifies, died with it)."""
    skill = Skill.objects.select_for_update().filter(pk=int(change.entity_id)).first()
    current = skill_snapshot(skill) if skill is not None else None
    if change.action == Action.CREATE:
        if current != change.new_value:
            raise _conflict(change, current)
        skill_delete(actor=actor, skill=skill, reason=reason, ticket=ticket, _rollback_of=change)
    elif change.action == Action.DELETE:
        if skill is not None:
            raise _conflict(change, current)
        old = dict(change.old_value)
        if old.get("execution_type") != Skill.ExecutionType.INTERNAL:
            raise InvalidInput(f"Entry #{change.pk}: a deleted webhook skill cannot be restored: its signing secret "
                               "(and any auth secret) are not kept in the log, so its receiver could not verify "
                               "it. Create the skill again with the settings in the entry.",
                               details={"audit_id": change.pk, "restore": old})
        old.pop("auth_secret", None)
        _create(actor=actor, core_tools=None, fields=old, reason=reason, ticket=ticket, pk=int(change.entity_id),
                rollback_of=change)
    elif change.field == "auth_secret":
        raise InvalidInput(f"Entry #{change.pk}: a skill's secret is never kept in the log, so it cannot be "
                           "restored; set it again on the skill.", details={"audit_id": change.pk})
    else:
        skill_update(actor=actor, skill=_unchanged_since(change, skill), changes={change.field: change.old_value}, reason=reason, ticket=ticket,
                     _rollback_of=change)

