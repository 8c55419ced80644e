"""Writes for core-agent versions (DESIGN §8): the catalog sync, per-instance configuration,
the release fan-out, reviews, sandboxes, rollback and skill submissions.

Every change of the version an instance runs goes through `_activate`, which writes one
immutable `VersionChange` row in the same transaction (the version history). Every change of an
agent type's settings (version, pin, policy, preferences, notifications, sandbox) is saved by
`_config_save`, which writes one audit entry per changed field (`tuning.audit`, entity
`version_settings`); decisions on an update or a sandbox are entries of their own, in one audit
group with the changes they cause. `_version_settings_rollback` undoes the settings a person
chose (policy, pin, preferences, notifications); an applied version, a sandbox and a decision are
not undone from the log (400 saying what to do instead).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.mail import send_mail
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from agents.registry import _semver_key, core_agent_types, get_spec, is_core, versions
from spokestack.accounts import policy
from spokestack.catalog import require_agent_type
from spokestack.errors import Conflict, InvalidInput, NotFound
from spokestack.realtime import publish_update_event
from tuning import audit
from tuning.models import Action, Client, Entity, Tier, TuningChange
from tuning.services import _unchanged_since

from .analysis import OPTIMIZATION_TAGS, SkillFacts, analyse_impact, notification_text, overlap
from .catalog.models import CatalogVersion, CoreSubmission, ReleaseFanout
from .models import (
    AgentVersionConfig,
    SandboxSession,
    SandboxTest,
    UpdateNotification,
    UpdatePolicy,
    VersionChange,
)

log = logging.getLogger(__name__)
SANDBOX_TTL = timedelta(hours=24)
FANOUT_BATCH = 50


def known_agent_type(agent_type: str) -> str:
    """A core agent type: the versions app's policies (pins, updates, sandboxes) are theirs. Unknown:
    the catalog's 404; an agency-built agent: 409, its versions are published in the studio."""
    if is_core(agent_type):
        return agent_type
    require_agent_type(agent_type)
    raise Conflict(f"{agent_type} is an agency-built agent: its versions are published and rolled back in the "
                   f"studio (/api/v1/studio/agents/{agent_type}), not by the core agents' version policies.")


def known_version(agent_type: str, version: Any) -> str:
    if not isinstance(version, str) or get_spec(agent_type, version) is None:
        raise NotFound(f"{agent_type} has no version '{version}'; available: {', '.join(versions(agent_type))}.",
                       details={"version": version})
    return version


# --- the public catalog ------------------------------------------------------------------


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: int = 0
    fanouts: list[int] = field(default_factory=list)


def _catalog_fields(spec) -> dict[str, Any]:
    info = spec.release
    return {
        "sort_key": list(_semver_key(spec.version)), "title": spec.title, "release_date": info.release_date,
        "notes": info.notes, "breaking": info.breaking, "optimization_tags": list(info.optimization_tags),
        "tool_changes": [{"kind": c.kind, "tool": c.tool, "summary": c.summary} for c in info.tool_changes],
        "prompt_changes": list(info.prompt_changes), "behaviour_changes": list(info.behaviour_changes),
        "deprecations": list(info.deprecations),
        "tools": [{"name": t.name, "description": t.description, "side_effect": t.side_effect} for t in spec.tools],
        "min_platform_version": info.min_platform_version, "sunset_date": info.sunset_date,
    }


def catalog_sync(*, hidden: Iterable[tuple[str, str]] = (), fanout_schemas: list[str] | None = None) -> SyncResult:
    """Mirror the registry into the public catalog. Idempotent: a second run changes nothing.

    A version that is new to the catalog while the catalog already had an earlier version of its
    agent type is a release: a fan-out job is queued (after commit) to analyse and notify every
    instance (or only `fanout_schemas`). The first mirror of an agent type is not a release.
    `hidden` keeps versions out of the catalog (tests and staged rollouts simulate a release).
    """
    hidden = set(hidden)
    result = SyncResult()
    with schema_context(get_public_schema_name()), transaction.atomic():
        for agent_type in core_agent_types():  # the core agents' versions
            existing = {row.version: row for row in CatalogVersion.objects.select_for_update().filter(agent_type=agent_type)}
            new_rows = []
            for version in versions(agent_type):
                if (agent_type, version) in hidden:
                    continue
                fields = _catalog_fields(get_spec(agent_type, version))
                row = existing.get(version)
                if row is None:
                    row = CatalogVersion(agent_type=agent_type, version=version, **fields)
                    row.full_clean()
                    row.save()
                    new_rows.append(row)
                    result.created.append(f"{agent_type} {version}")
                elif any(getattr(row, k) != v for k, v in fields.items()):
                    for k, v in fields.items():
                        setattr(row, k, v)
                    row.save(update_fields=[*fields, "synced_at"])
                    result.updated += 1
            if existing and new_rows:
                previous = max(existing, key=_semver_key)
                release = max(new_rows, key=lambda r: _semver_key(r.version))
                if _semver_key(release.version) > _semver_key(previous):
                    fanout = ReleaseFanout.objects.create(release=release, previous_version=previous,
                                                          schemas=fanout_schemas)
                    result.fanouts.append(fanout.pk)
        for fanout_id in result.fanouts:
            from .tasks import release_fanout

            transaction.on_commit(lambda fid=fanout_id: release_fanout.delay(fanout_id=fid))
    return result


def latest_released(agent_type: str) -> str | None:
    """The newest catalog version of an agent type (None when the catalog has none)."""
    rows = CatalogVersion.objects.using("default").filter(agent_type=agent_type).values_list("version", flat=True)
    released = [v for v in rows if get_spec(agent_type, v) is not None]
    return max(released, key=_semver_key) if released else None


# --- per-instance configuration ----------------------------------------------------------


def config_get_or_create(*, agent_type: str, initial_version: str | None = None) -> AgentVersionConfig:
    """The instance's config of an agent type; created on first use at the version it runs now."""
    config = AgentVersionConfig.objects.filter(agent_type=agent_type).first()
    if config is not None:
        return config
    from agents.catalog import current_version_for

    version = initial_version or current_version_for(agent_type)
    with transaction.atomic():
        config, created = AgentVersionConfig.objects.get_or_create(agent_type=agent_type,
                                                                  defaults={"current_version": version})
        if created:
            VersionChange.objects.create(agent_type=agent_type, version=version, action=VersionChange.Action.INITIAL)
    return config


# --- the audit log of an agent type's settings ---------------------------------------------------

AUDITED_CONFIG_FIELDS = ("current_version", "pinned_version", "policy", "sandbox_version", "optimization_preferences",
                         "notify", "notify_contacts")
# What a rollback from the log cannot undo, and what to do instead.
NOT_FROM_THE_LOG = {
    "current_version": "an applied version is not undone from the audit log; go back with POST "
                       "/api/v1/agents/{agent_type}/version/rollback (or the admin's Rollback), which keeps the "
                       "version history",
    "sandbox_version": "a sandbox session ends by promoting, rejecting or deferring it",
    "update_decision": "a decision on an update is final; roll back the version or change the pin instead",
    "sandbox_decision": "a decision on a sandbox session is final; roll back the version or change the pin instead",
}


def _config_state(config: AgentVersionConfig) -> dict[str, Any]:
    return {f: getattr(config, f) for f in AUDITED_CONFIG_FIELDS}


def _record(*, actor: AbstractUser | None, config: AgentVersionConfig, field: str, old: Any, new: Any,
            reason: str = "", ticket: str = "", rollback_of: TuningChange | None = None) -> None:
    # An agent type's version and settings reach every client's runs of it: tier-2 configuration.
    audit.record(actor=actor, tier=Tier.INSTANCE, entity=Entity.VERSION_SETTINGS, entity_id=config.pk,
                 action=Action.UPDATE, field=field, old=old, new=new, agent_type=config.agent_type, reason=reason,
                 ticket=ticket, rollback_of=rollback_of,
                 affected_clients=list(Client.objects.order_by("pk").values_list("pk", flat=True)))


def _config_save(*, config: AgentVersionConfig, before: dict[str, Any], actor: AbstractUser | None, reason: str = "",
                 ticket: str = "", rollback_of: TuningChange | None = None) -> AgentVersionConfig:
    """Save the fields that differ from `before` (`_config_state` taken before the change) and
    record one audit entry per field, in the caller's transaction: the one write path of the row."""
    changed = [f for f in AUDITED_CONFIG_FIELDS if getattr(config, f) != before[f]]
    if not changed:
        return config
    config.full_clean()
    config.save(update_fields=[*changed, "updated_at"])
    for f in changed:
        _record(actor=actor, config=config, field=f, old=before[f], new=getattr(config, f), reason=reason,
                ticket=ticket, rollback_of=rollback_of)
    return config


def _activate(*, config: AgentVersionConfig, version: str, action: str, actor: AbstractUser | None,
              reason: str = "", pin: bool | None = None) -> AgentVersionConfig:
    previous = config.current_version
    before = _config_state(config)
    config.current_version = version
    if pin is True:
        config.pinned_version = version
    elif pin is False and config.pinned_version:
        config.pinned_version = ""
    if config.sandbox_version == version:
        config.sandbox_version = ""
    with audit.group():  # the version, its pin and the sandbox it ends are one change
        _config_save(config=config, before=before, actor=actor, reason=reason)
    VersionChange.objects.create(agent_type=config.agent_type, from_version=previous, version=version, action=action,
                                 activated_by=actor if getattr(actor, "pk", None) else None, reason=reason)
    return config


def _clean_preferences(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput('optimization_preferences: give a list such as ["performance", "roas"].')
    unknown = sorted(set(value) - OPTIMIZATION_TAGS)
    if unknown:
        raise InvalidInput(f"optimization_preferences: unknown {', '.join(unknown)}; use "
                           f"{', '.join(sorted(OPTIMIZATION_TAGS))}.")
    return list(dict.fromkeys(value))


def _clean_contacts(value: Any) -> list[str]:
    from django.core.validators import validate_email

    if not isinstance(value, list):
        raise InvalidInput("notify_contacts: give a list of e-mail addresses.")
    for email in value:
        try:
            validate_email(email)
        except Exception:
            raise InvalidInput(f"notify_contacts: '{email}' is not an e-mail address.") from None
    return list(dict.fromkeys(value))


CONFIG_FIELDS = {"pinned_version", "policy", "optimization_preferences", "notify", "notify_contacts"}


@transaction.atomic
def version_config_update(*, actor: AbstractUser | None, agent_type: str, changes: dict[str, Any],
                          reason: str = "", ticket: str = "",
                          _rollback_of: TuningChange | None = None) -> AgentVersionConfig:
    """PUT /agents/{type}/version: pin (or unpin with null/""), policy, preferences, notifications.
    Pinning another version activates it (one history row). Every changed field is an audit entry."""
    policy.require(actor, "version.configure")
    known_agent_type(agent_type)
    unknown = set(changes) - CONFIG_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown field(s) {', '.join(sorted(unknown))}; send {', '.join(sorted(CONFIG_FIELDS))}.")
    config = config_get_or_create(agent_type=agent_type)
    config = AgentVersionConfig.objects.select_for_update().get(pk=config.pk)
    before = _config_state(config)
    if "policy" in changes:
        if changes["policy"] not in UpdatePolicy.values:
            raise InvalidInput(f"policy: choose one of {', '.join(UpdatePolicy.values)}.")
        config.policy = changes["policy"]
    if "optimization_preferences" in changes:
        config.optimization_preferences = _clean_preferences(changes["optimization_preferences"])
    if "notify" in changes:
        if not isinstance(changes["notify"], bool):
            raise InvalidInput("notify: true or false.")
        config.notify = changes["notify"]
    if "notify_contacts" in changes:
        config.notify_contacts = _clean_contacts(changes["notify_contacts"])
    activate = ""
    if "pinned_version" in changes:
        pinned = changes["pinned_version"] or ""
        if pinned:
            known_version(agent_type, pinned)
        if pinned and pinned != config.current_version:
            activate = pinned
        else:
            config.pinned_version = pinned
    config = _config_save(config=config, before=before, actor=actor, reason=reason, ticket=ticket,
                          rollback_of=_rollback_of)
    if activate:
        config = _activate(config=config, version=activate, action=VersionChange.Action.PIN, actor=actor,
                           reason=reason, pin=True)
    return config


@audit.rollback_handler(Entity.VERSION_SETTINGS)
def _version_settings_rollback(*, change: TuningChange, actor: AbstractUser | None, reason: str,
                               ticket: str) -> None:
    """Restore a setting a person chose (policy, pin, preferences, notifications) through
    `version_config_update`; 409 when it changed since, or when restoring a pin would switch the
    running version; 400 for what the log cannot undo (NOT_FROM_THE_LOG)."""
    if change.field in NOT_FROM_THE_LOG:
        raise InvalidInput(f"Entry #{change.pk} cannot be rolled back: "
                           f"{NOT_FROM_THE_LOG[change.field].format(agent_type=change.agent_type)}.",
                           details={"audit_id": change.pk, "field": change.field})
    config = _unchanged_since(change, AgentVersionConfig.objects.select_for_update().filter(
        pk=int(change.entity_id)).first())
    if change.field == "pinned_version" and change.old_value and change.old_value != config.current_version:
        raise Conflict(f"{config.agent_type} now runs {config.current_version}: pinning {change.old_value} again "
                       f"would switch the running version. Roll back the version instead.",
                       details={"audit_id": change.pk, "field": change.field, "current": config.current_version,
                                "restore": change.old_value})
    version_config_update(actor=actor, agent_type=config.agent_type, changes={change.field: change.old_value},
                          reason=reason, ticket=ticket, _rollback_of=change)


@transaction.atomic
def version_rollback(*, actor: AbstractUser | None, agent_type: str, version: Any, reason: Any,
                     force: bool = False) -> AgentVersionConfig:
    """Go back to an earlier version in one audited action. The instance is pinned there, so the
    next release does not move it again until the owner unpins or approves an update."""
    policy.require(actor, "version.configure")
    known_agent_type(agent_type)
    version = known_version(agent_type, version)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reason: say why you roll back (it is kept in the version history).")
    config = AgentVersionConfig.objects.select_for_update().filter(agent_type=agent_type).first()
    if config is None:
        config = config_get_or_create(agent_type=agent_type)
    if version == config.current_version:
        raise Conflict(f"{agent_type} already runs {version}.")
    activated = VersionChange.objects.filter(agent_type=agent_type, version=version).exists()
    if not activated and not force:
        raise Conflict(f"This instance never ran {agent_type} {version}, so it is not a rollback. To switch to it "
                       f"anyway, tick \"Switch anyway\" in the admin (force=true in the API).",
                       details={"version": version})
    return _activate(config=config, version=version, action=VersionChange.Action.ROLLBACK, actor=actor,
                     reason=reason.strip(), pin=True)


# --- releases ------------------------------------------------------------------------------


def _skill_facts(agent_type: str) -> list[SkillFacts]:
    from skills.selectors import skills_for_agent_type

    return [SkillFacts(name=s.name, description=s.description, relies_on_tools=tuple(s.relies_on_tools or ()))
            for s in skills_for_agent_type(agent_type=agent_type)]


def impact_for(*, agent_type: str, to_version: str, config: AgentVersionConfig | None = None) -> dict:
    config = config or config_get_or_create(agent_type=agent_type)
    return analyse_impact(agent_type=agent_type, from_version=config.current_version, to_version=to_version,
                          skills=_skill_facts(agent_type), preferences=config.optimization_preferences)


def release_recipients(config: AgentVersionConfig) -> list[str]:
    """Who is told about a release of the config's agent type: its notification contacts, or the
    instance admins when it names none, so a release never goes unannounced by default."""
    if config.notify_contacts:
        return list(config.notify_contacts)
    from django.contrib.auth import get_user_model

    from spokestack.accounts.roles import Role

    admins = (get_user_model().objects.filter(is_active=True, groups__name=Role.INSTANCE_ADMIN)
              .exclude(email="").order_by("email").values_list("email", flat=True).distinct())
    return list(admins)


def release_notify_instance(*, agent_type: str, version: str, previous_version: str) -> UpdateNotification | None:
    """In the current instance schema: analyse the release, notify, and apply it when the policy is
    auto and the analysis safe. Idempotent (one notification per release and instance)."""
    config = config_get_or_create(agent_type=agent_type, initial_version=previous_version)
    if _semver_key(config.current_version) >= _semver_key(version):
        return None
    existing = UpdateNotification.objects.filter(agent_type=agent_type, version=version).first()
    if existing is not None:
        return existing
    analysis = impact_for(agent_type=agent_type, to_version=version, config=config)
    with transaction.atomic():
        notification = UpdateNotification.objects.create(
            agent_type=agent_type, from_version=config.current_version, version=version,
            recommendation=analysis["recommendation"], reason=analysis["reason"], analysis=analysis,
            content=notification_text(analysis),
            emailed_to=release_recipients(config) if config.notify else [])
        if config.policy == UpdatePolicy.AUTO and not config.pinned_version and analysis["recommendation"] == "safe":
            config = AgentVersionConfig.objects.select_for_update().get(pk=config.pk)
            _activate(config=config, version=version, action=VersionChange.Action.AUTO_UPDATE, actor=None,
                      reason="Policy auto and the impact analysis found nothing to review.")
            notification.status = UpdateNotification.Status.AUTO_APPLIED
            notification.save(update_fields=["status"])
        elif config.policy == UpdatePolicy.AUTO and not config.pinned_version:
            # auto applies only what is safe; anything else is tested first, side by side
            config = AgentVersionConfig.objects.select_for_update().get(pk=config.pk)
            why = (f"Policy auto, but the impact analysis recommends {analysis['recommendation']} "
                   f"({analysis['reason']}), so {version} was not applied: a sandbox session was opened to test it "
                   f"against {config.current_version} for {SANDBOX_TTL.total_seconds() / 3600:g} hours.")
            session = _sandbox_open(actor=None, config=config, test_version=version, reason=why)
            notification.status = UpdateNotification.Status.SANDBOX
            notification.content += (f"\n\n## Sandbox opened\n{why} Run your own tasks in it, then promote or "
                                     f"reject {version} (sandbox session {session.pk}).")
            notification.save(update_fields=["status", "content"])
        from spokestack.webhooks.services import webhook_emit

        webhook_emit("update.available", {
            "agent_type": agent_type, "from_version": notification.from_version, "version": version,
            "recommendation": notification.recommendation, "status": str(notification.status),
            "breaking": bool(analysis.get("changes", {}).get("breaking")), "client_id": None})
    publish_update_event(notification)
    if notification.emailed_to:
        instance_name = getattr(connection.tenant, "name", "")
        send_mail(subject=f"[{instance_name}] {agent_type} {version}: {analysis['recommendation']}",
                  message=notification.content, from_email=settings.DEFAULT_FROM_EMAIL,
                  recipient_list=notification.emailed_to, fail_silently=True)
    return notification


def release_fanout_run(*, fanout_id: int, inline: bool = False) -> ReleaseFanout | None:
    """The fan-out job: list the instance schemas (all, or the job's own list) and split them into
    batches, each a Celery task of its own (`inline` runs them here, for tests and commands)."""
    from spokestack.tenancy.selectors import instances_qs

    public = get_public_schema_name()
    with schema_context(public):
        claimed = ReleaseFanout.objects.filter(pk=fanout_id, status="queued").update(status="running")
        if not claimed:
            return None
        fanout = ReleaseFanout.objects.get(pk=fanout_id)
        instances = instances_qs().order_by("pk")
        if fanout.schemas is not None:
            instances = instances.filter(schema_name__in=fanout.schemas)
        schemas = list(instances.values_list("schema_name", flat=True))
        ReleaseFanout.objects.filter(pk=fanout_id).update(instances_total=len(schemas))
        if not schemas:
            ReleaseFanout.objects.filter(pk=fanout_id).update(status="done", finished_at=timezone.now())
        batches = [schemas[i:i + FANOUT_BATCH] for i in range(0, len(schemas), FANOUT_BATCH)]
    if inline:
        for batch in batches:
            release_fanout_batch_run(fanout_id=fanout_id, schemas=batch)
    else:
        from .tasks import release_fanout_batch

        for batch in batches:
            release_fanout_batch.delay(fanout_id=fanout_id, schemas=batch)
    with schema_context(public):
        return ReleaseFanout.objects.get(pk=fanout_id)


def release_fanout_batch_run(*, fanout_id: int, schemas: list[str]) -> None:
    """One batch: each instance in its own short transaction, so one failure neither blocks nor
    undoes the others. The batch that completes the count marks the job done (decided in SQL)."""
    from django.db.models import F

    from spokestack.tenancy.models import Instance

    public = get_public_schema_name()
    with schema_context(public):
        fanout = ReleaseFanout.objects.select_related("release").filter(pk=fanout_id, status="running").first()
        if fanout is None:
            return
        instances = list(Instance.objects.filter(schema_name__in=schemas))
    release = fanout.release
    applied = 0
    try:
        for instance in instances:
            try:
                connection.set_tenant(instance)
                note = release_notify_instance(agent_type=release.agent_type, version=release.version,
                                               previous_version=fanout.previous_version)
                applied += int(note is not None and note.status == UpdateNotification.Status.AUTO_APPLIED)
            except Exception:
                log.exception("release fan-out failed for %s", instance.schema_name)
    finally:
        connection.set_schema_to_public()
    ReleaseFanout.objects.filter(pk=fanout_id).update(instances_done=F("instances_done") + len(schemas),
                                                      applied=F("applied") + applied)
    ReleaseFanout.objects.filter(pk=fanout_id, status="running", instances_done__gte=F("instances_total")).update(
        status="done", finished_at=timezone.now())


REVIEW_ACTIONS = ("approve", "reject", "sandbox", "defer")


def notification_review(*, actor: AbstractUser | None, notification_id: int, action: Any,
                        reason: str = "") -> tuple[UpdateNotification, SandboxSession | None]:
    """approve (apply), reject (pin the current version), sandbox (open a session), defer."""
    policy.require(actor, "version.configure")
    if action not in REVIEW_ACTIONS:
        raise InvalidInput(f"action: choose one of {', '.join(REVIEW_ACTIONS)}.")
    notification = UpdateNotification.objects.filter(pk=notification_id).first()
    if notification is None:
        raise NotFound(f"No update notification {notification_id} in this instance.")
    status = {"approve": UpdateNotification.Status.APPLIED, "reject": UpdateNotification.Status.REJECTED,
              "sandbox": UpdateNotification.Status.SANDBOX, "defer": UpdateNotification.Status.DEFERRED}[action]
    session = None
    with transaction.atomic(), audit.group():
        won = UpdateNotification.objects.filter(
            pk=notification.pk, status__in=[UpdateNotification.Status.PENDING, UpdateNotification.Status.DEFERRED],
        ).update(status=status, reviewed_at=timezone.now(), reviewed_by=actor if getattr(actor, "pk", None) else None)
        if won != 1:
            notification.refresh_from_db()
            raise Conflict(f"This update was already reviewed ({notification.get_status_display().lower()}).",
                           details={"status": notification.status})
        config = AgentVersionConfig.objects.select_for_update().get(
            pk=config_get_or_create(agent_type=notification.agent_type).pk)
        _record(actor=actor, config=config, field="update_decision", reason=reason,
                old={"notification_id": notification.pk, "version": notification.version,
                     "status": notification.status},
                new={"notification_id": notification.pk, "version": notification.version, "status": status})
        if action == "approve":
            if config.policy == UpdatePolicy.STAGED and not _staged_evals_pass(
                    config=config, version=notification.version) and not _finished_sandbox_tests(
                    agent_type=notification.agent_type, version=notification.version).exists():
                raise Conflict(f"Policy staged: before you approve {notification.version}, open a sandbox and run "
                               f"at least one test until both versions finish; then approve it here or promote it "
                               f"from the sandbox.", details={"policy": config.policy, "needs": "finished_sandbox_test",
                                                         "version": notification.version})
            if config.current_version != notification.version:
                _activate(config=config, version=notification.version, action=VersionChange.Action.APPROVE,
                          actor=actor, reason=reason, pin=False if config.pinned_version else None)
        elif action == "reject":
            before = _config_state(config)
            config.pinned_version = config.current_version
            _config_save(config=config, before=before, actor=actor, reason=reason or f"Rejected {notification.version}.")
            VersionChange.objects.create(agent_type=config.agent_type, from_version=config.current_version,
                                         version=config.current_version, action=VersionChange.Action.PIN,
                                         activated_by=actor if getattr(actor, "pk", None) else None,
                                         reason=reason or f"Rejected {notification.version}.")
        elif action == "sandbox":
            session = _sandbox_open(actor=actor, config=config, test_version=notification.version)
    notification.refresh_from_db()
    publish_update_event(notification)
    return notification, session


# --- sandbox ------------------------------------------------------------------------------

FINISHED_RUN = ("succeeded", "failed")  # a cancelled run tested nothing


def _finished_sandbox_tests(*, agent_type: str, version: str):
    """The sandbox tests of `version` (any session) whose runs on both versions have ended."""
    return SandboxTest.objects.filter(session__agent_type=agent_type, session__test_version=version,
                                      current_run__status__in=FINISHED_RUN, test_run__status__in=FINISHED_RUN)


def _staged_evals_pass(*, config: AgentVersionConfig, version: str) -> bool:
    """Under a staged policy the eval set decides first (409 while the candidate passes fewer cases,
    naming them); a finished comparison counts as the sandbox test approval needs."""
    from .evals.gating import staged_gate

    return staged_gate(agent_type=config.agent_type, current_version=config.current_version, test_version=version)


def _sandbox_open(*, actor, config: AgentVersionConfig, test_version: str, reason: str = "") -> SandboxSession:
    if test_version == config.current_version:
        raise InvalidInput(f"test_version: {config.agent_type} already runs {test_version}; pick another version.")
    session = SandboxSession(agent_type=config.agent_type, current_version=config.current_version,
                             test_version=test_version, created_by=actor if getattr(actor, "pk", None) else None,
                             expires_at=timezone.now() + SANDBOX_TTL)
    session.full_clean()
    session.save()
    before = _config_state(config)
    config.sandbox_version = test_version
    _config_save(config=config, before=before, actor=actor, reason=reason or f"Sandbox session {session.pk} opened.")
    from .evals.gating import sandbox_evals_start

    sandbox_evals_start(session, actor)  # the eval set on both versions, side by side on the session's page
    return session


@transaction.atomic
def sandbox_create(*, actor: AbstractUser | None, agent_type: Any, test_version: Any) -> SandboxSession:
    policy.require(actor, "sandbox.run")
    known_agent_type(agent_type)
    test_version = known_version(agent_type, test_version)
    config = AgentVersionConfig.objects.select_for_update().get(pk=config_get_or_create(agent_type=agent_type).pk)
    return _sandbox_open(actor=actor, config=config, test_version=test_version)


def _session_for_change(session_id: Any) -> SandboxSession:
    session = SandboxSession.objects.select_for_update().filter(pk=session_id).first()
    if session is None:
        raise NotFound(f"No sandbox session {session_id} in this instance.")
    if session.status != SandboxSession.Status.ACTIVE:
        raise Conflict(f"The sandbox session is {session.status}; open a new one.", details={"status": session.status})
    if session.expires_at <= timezone.now():
        raise Conflict("The sandbox session expired (sessions last 24 hours); open a new one.",
                       details={"expires_at": session.expires_at.isoformat()})
    return session


def _sandbox_specialization(value: Any) -> dict[str, str]:
    """{"vertical", "region", "language"} in canonical form (tuning.specialization); blanks dropped."""
    from tuning.specialization import DIMENSIONS, normalise

    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("specialization: give an object with vertical, region and/or language.")
    unknown = sorted(set(value) - set(DIMENSIONS))
    if unknown:
        raise InvalidInput(f"specialization: unknown key(s) {', '.join(unknown)}; use {', '.join(DIMENSIONS)}.")
    cleaned = {key: normalise(key, value[key], field=f"specialization.{key}") for key in DIMENSIONS if key in value}
    return {key: v for key, v in cleaned.items() if v}


@transaction.atomic
def sandbox_test_add(*, actor: AbstractUser | None, session_id: Any, task: Any, client_id: Any = None,
                     specialization: Any = None) -> SandboxTest:
    """Run the task on both versions as sandbox runs (side-effecting tools simulated), for a client
    (its tuning and client-bound tools) and a specialization when given. The two runs are queued
    together after commit, so the workers execute them concurrently."""
    policy.require(actor, "sandbox.run")
    from agents.services import run_create

    from .selectors import visible_client

    client = visible_client(actor, client_id)
    policy.require(actor, "sandbox.run", client)
    specialization = _sandbox_specialization(specialization)
    session = _session_for_change(session_id)
    runs = {}
    for side, version in (("current", session.current_version), ("test", session.test_version)):
        runs[side] = run_create(actor=actor, agent_type=session.agent_type, task=task,
                                client_id=client.pk if client else None, specialization=specialization or None,
                                sandbox=True, agent_version=version,
                                metadata={"sandbox": f"{session.pk}:{version}"}).run
    return SandboxTest.objects.create(session=session, task=task, client=client, specialization=specialization,
                                      current_run=runs["current"], test_run=runs["test"])


@transaction.atomic
def sandbox_evals_run(*, actor: AbstractUser | None, session_id: Any) -> list:
    """Run the eval set on both versions of an active session again (cases added or changed since
    it opened). 409 when the agent type has no enabled cases."""
    from .evals.gating import sandbox_evals_start

    policy.require(actor, "sandbox.run")
    policy.require(actor, "eval.run")
    session = _session_for_change(session_id)
    started = sandbox_evals_start(session, actor)
    if not started:
        raise Conflict(f"{session.agent_type} has no enabled eval cases in this instance; add some first "
                       "(make one from a run's page, or POST /api/v1/evals/cases).",
                       details={"agent_type": session.agent_type})
    return started


def _text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: give the {field} as text (it is kept with the session).")
    return value.strip()


def _sandbox_decide(*, session_id: Any, status: str, actor: AbstractUser | None = None, reason: Any = "",
                    notes: Any = None) -> SandboxSession:
    reason = _text(reason, "reason")
    notes = _text(notes, "notes") if notes is not None else None
    session = _session_for_change(session_id)
    session.status = status
    session.decided_at = timezone.now()
    session.decided_by = actor if getattr(actor, "pk", None) else None
    session.decision_reason = reason
    fields = ["status", "decided_at", "decided_by", "decision_reason"]
    if notes is not None:
        session.notes = notes
        fields.append("notes")
    session.save(update_fields=fields)
    return session


def _sandbox_decision(*, actor: AbstractUser | None, config: AgentVersionConfig, session: SandboxSession,
                      reason: str = "") -> None:
    _record(actor=actor, config=config, field="sandbox_decision", reason=reason,
            old={"session_id": str(session.pk), "test_version": session.test_version, "status": "active"},
            new={"session_id": str(session.pk), "test_version": session.test_version, "status": session.status})


def _notification_to(agent_type: str, version: str, status: str, actor) -> None:
    UpdateNotification.objects.filter(
        agent_type=agent_type, version=version,
        status__in=[UpdateNotification.Status.PENDING, UpdateNotification.Status.DEFERRED,
                    UpdateNotification.Status.SANDBOX],
    ).update(status=status, reviewed_at=timezone.now(), reviewed_by=actor if getattr(actor, "pk", None) else None)
    publish_update_event(agent_type=agent_type, version=version)


@transaction.atomic
def sandbox_promote(*, actor: AbstractUser | None, session_id: Any, reason: Any = "",
                    notes: Any = None) -> AgentVersionConfig:
    policy.require(actor, "sandbox.decide")
    session = _sandbox_decide(session_id=session_id, status=SandboxSession.Status.PROMOTED, actor=actor,
                              reason=reason, notes=notes)
    config = AgentVersionConfig.objects.select_for_update().get(agent_type=session.agent_type)
    if config.policy == UpdatePolicy.STAGED:
        _staged_evals_pass(config=config, version=session.test_version)
    why = session.decision_reason or f"Promoted after {session.tests.count()} sandbox test(s)."
    with audit.group():
        _sandbox_decision(actor=actor, config=config, session=session, reason=session.decision_reason)
        config = _activate(config=config, version=session.test_version, action=VersionChange.Action.PROMOTE,
                           actor=actor, reason=why, pin=True if config.pinned_version else None)
    _notification_to(session.agent_type, session.test_version, UpdateNotification.Status.APPLIED, actor)
    return config


@transaction.atomic
def sandbox_reject(*, actor: AbstractUser | None, session_id: Any, reason: Any = "",
                   notes: Any = None) -> AgentVersionConfig:
    """Reject the tested version: stay on the current one, pinned."""
    policy.require(actor, "sandbox.decide")
    session = _sandbox_decide(session_id=session_id, status=SandboxSession.Status.REJECTED, actor=actor,
                              reason=reason, notes=notes)
    config = AgentVersionConfig.objects.select_for_update().get(agent_type=session.agent_type)
    why = session.decision_reason or f"Rejected {session.test_version} after sandbox tests."
    before = _config_state(config)
    config.pinned_version = config.current_version
    config.sandbox_version = ""
    with audit.group():
        _sandbox_decision(actor=actor, config=config, session=session, reason=session.decision_reason)
        _config_save(config=config, before=before, actor=actor, reason=why)
    VersionChange.objects.create(agent_type=config.agent_type, from_version=config.current_version,
                                 version=config.current_version, action=VersionChange.Action.PIN,
                                 activated_by=actor if getattr(actor, "pk", None) else None, reason=why)
    _notification_to(session.agent_type, session.test_version, UpdateNotification.Status.REJECTED, actor)
    return config


@transaction.atomic
def sandbox_defer(*, actor: AbstractUser | None, session_id: Any, reason: Any = "",
                  notes: Any = None) -> SandboxSession:
    policy.require(actor, "sandbox.decide")
    session = _sandbox_decide(session_id=session_id, status=SandboxSession.Status.DEFERRED, actor=actor,
                              reason=reason, notes=notes)
    config = AgentVersionConfig.objects.filter(agent_type=session.agent_type).first()
    if config is not None:
        _sandbox_decision(actor=actor, config=config, session=session, reason=session.decision_reason)
    _notification_to(session.agent_type, session.test_version, UpdateNotification.Status.DEFERRED, actor)
    return session


def sandboxes_expire(*, now=None) -> int:
    """End the active sessions of the current schema whose 24 hours are over (beat task
    `versions.expire_sandboxes`). The services already refuse an expired session, so this only
    makes the state say so: the session becomes expired, the agent's sandbox version is cleared and
    the update it tested goes back to deferred (reviewable again) unless another live session still
    tests that version, and a history row records it, as for every other change of the config.

    Each session is ended by a conditional update in its own transaction, so a person deciding the
    same session at that moment either wins (the session is no longer active) or gets the 409 for
    an expired session; nobody sees both."""
    now = now or timezone.now()
    expired = 0
    due = SandboxSession.objects.filter(status=SandboxSession.Status.ACTIVE, expires_at__lte=now)
    for session_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            if not SandboxSession.objects.filter(pk=session_id, status=SandboxSession.Status.ACTIVE,
                                                 expires_at__lte=now).update(status=SandboxSession.Status.EXPIRED,
                                                                             decided_at=now):
                continue
            expired += 1
            session = SandboxSession.objects.get(pk=session_id)
            still_tested = SandboxSession.objects.filter(agent_type=session.agent_type, test_version=session.test_version,
                                                         status=SandboxSession.Status.ACTIVE, expires_at__gt=now).exists()
            config = AgentVersionConfig.objects.select_for_update().filter(agent_type=session.agent_type).first()
            if config is not None and config.sandbox_version == session.test_version and not still_tested:
                before = _config_state(config)
                config.sandbox_version = ""
                _config_save(config=config, before=before, actor=None,
                             reason=f"The sandbox of {session.test_version} expired undecided.")
            if not still_tested:
                UpdateNotification.objects.filter(
                    agent_type=session.agent_type, version=session.test_version,
                    status=UpdateNotification.Status.SANDBOX,
                ).update(status=UpdateNotification.Status.DEFERRED, reviewed_at=now, reviewed_by=None)
                publish_update_event(agent_type=session.agent_type, version=session.test_version)
            running = config.current_version if config is not None else session.current_version
            VersionChange.objects.create(
                agent_type=session.agent_type, from_version=running, version=running,
                action=VersionChange.Action.SANDBOX_EXPIRED,
                reason=f"The sandbox of {session.test_version} expired after "
                       f"{SANDBOX_TTL.total_seconds() / 3600:g} h without a decision; "
                       f"{session.agent_type} stays on {running}.")
    return expired


# --- skill to core -------------------------------------------------------------------------


def skill_core_report(*, skill) -> dict:
    """Usage, success rate and latency of a skill's tool calls in this instance, and the most
    similar core tool (any agent type, latest version) if one overlaps its description."""
    from django.db.models import Avg, Count, Q

    from agents.models import ToolCall

    stats = ToolCall.objects.filter(name=skill.name).aggregate(
        calls=Count("id"), failed=Count("id", filter=Q(is_error=True)), latency_ms=Avg("duration_ms"),
        runs=Count("run", distinct=True))
    best = None
    for agent_type in core_agent_types():  # the core agents' versions
        for tool in get_spec(agent_type).tools:
            score = overlap(f"{skill.name.replace('_', ' ')} {skill.description}",
                            f"{tool.name.replace('_', ' ')} {tool.description}")
            if score >= 0.3 and (best is None or score > best["similarity"]):
                best = {"agent_type": agent_type, "tool": tool.name, "similarity": round(score, 2)}
    calls = stats["calls"] or 0
    return {"skill": skill.name, "calls": calls, "runs": stats["runs"] or 0,
            "success_rate": round((calls - stats["failed"]) / calls, 3) if calls else None,
            "avg_latency_ms": round(stats["latency_ms"], 1) if stats["latency_ms"] is not None else None,
            "similar_core_tool": best}


def skill_submit_core(*, actor: AbstractUser | None, skill, rationale: str = "") -> CoreSubmission:
    """Propose a skill for the core platform: a submission in the public schema with the report."""
    policy.require(actor, "version.configure")
    report = skill_core_report(skill=skill)
    instance = connection.tenant
    with schema_context(get_public_schema_name()):
        if CoreSubmission.objects.filter(instance_id=instance.pk, skill_name=skill.name, status="submitted").exists():
            raise Conflict(f"{skill.name} is already submitted and waiting for platform review.")
        submission = CoreSubmission(instance_id=instance.pk, skill_name=skill.name, description=skill.description,
                                    input_schema=skill.input_schema, agent_types=list(skill.agent_types),
                                    report=report, rationale=rationale,
                                    submitted_by=getattr(actor, "email", "") or "")
        submission.full_clean()
        submission.save()
    return submission
