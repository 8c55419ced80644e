"""Building agents (issue #18): the only write path for `AgencyAgent` and `AgentVersion`.

Every change asks the policy (`studio.build`) and is a tier-2 entry in the audit log (entity
`agent_definition`, id the slug), written in the same transaction, and reversible from the log.
Concurrency is decided on the agent's row (SELECT … FOR UPDATE): two publishes at once make two
consecutive versions, never one number twice.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import IntegrityError, transaction
from django.db.models import Max

from spokestack.accounts import policy
from spokestack.errors import Conflict, InvalidInput, NotFound
from tuning import audit
from tuning.models import Action, Client, Entity, Tier, TuningChange

from .definition import CONTRACT, SLUG, definition_clean
from .library import library_by_ref
from .models import AgencyAgent, AgentStatus, AgentVersion

RESERVED_SLUGS = {"import"}  # /api/v1/studio/agents/import


def _all_clients() -> list[int]:
    return list(Client.objects.values_list("pk", flat=True))


def _record(*, actor, agent: AgencyAgent, action: str, field: str, old: Any, new: Any, reason: str = "",
            ticket: str = "", rollback_of: TuningChange | None = None) -> TuningChange:
    return audit.record(actor=actor, tier=Tier.INSTANCE, entity=Entity.AGENT_DEFINITION, entity_id=agent.slug,
                        action=action, field=field, old=old, new=new, agent_type=agent.slug, reason=reason,
                        ticket=ticket, affected_clients=_all_clients(), rollback_of=rollback_of)


def _clean(definition: Any) -> dict[str, Any]:
    return definition_clean(definition, tools_available=library_by_ref())


def agent_get(*, actor: AbstractUser | None, slug: str) -> AgencyAgent:
    policy.require(actor, "studio.view")
    agent = AgencyAgent.objects.select_related("current_version").filter(slug=slug).first()
    if agent is None:
        raise NotFound(f"No agency-built agent {slug!r} in this instance.")
    return agent


def _locked(slug: str) -> AgencyAgent:
    agent = AgencyAgent.objects.select_for_update().filter(slug=slug).first()
    if agent is None:
        raise NotFound(f"No agency-built agent {slug!r} in this instance.")
    return agent


def agent_create(*, actor: AbstractUser | None, slug: str, definition: Any, reason: str = "",
                 ticket: str = "") -> AgencyAgent:
    """A new agent with `definition` as its draft (not runnable until published)."""
    policy.require(actor, "studio.build")
    if not isinstance(slug, str) or not SLUG.fullmatch(slug) or slug in RESERVED_SLUGS:
        raise InvalidInput("slug: 2–40 characters, lower case letters, digits and _ , starting with a letter "
                           "(it becomes the agent_type).", details={"slug": ["invalid"]})
    if not isinstance(definition, dict):
        raise InvalidInput("definition: a JSON object (see GET /api/v1/studio/schema).",
                           details={"definition": ["expected an object"]})
    cleaned = definition_clean({**definition, "slug": slug}, tools_available=library_by_ref())
    try:
        with transaction.atomic():
            agent = AgencyAgent.objects.create(slug=slug, title=cleaned["title"], draft=cleaned, created_by=actor)
            _record(actor=actor, agent=agent, action=Action.CREATE, field="draft", old=None, new=cleaned,
                    reason=reason, ticket=ticket)
    except IntegrityError as exc:
        raise Conflict(f"An agent {slug!r} already exists in this instance; edit it, or choose another slug.") \
            from exc
    return agent


def agent_draft_update(*, actor: AbstractUser | None, slug: str, definition: Any, reason: str = "",
                       ticket: str = "", _rollback_of: TuningChange | None = None) -> AgencyAgent:
    """Replace the draft (published versions are untouched until the next publish)."""
    policy.require(actor, "studio.build")
    cleaned = _clean(definition)
    with transaction.atomic():
        agent = _locked(slug)
        if agent.draft == cleaned:
            return agent
        old, agent.draft, agent.title = agent.draft, cleaned, cleaned["title"]
        agent.save(update_fields=["draft", "title", "updated_at"])
        _record(actor=actor, agent=agent, action=Action.UPDATE, field="draft", old=old, new=cleaned, reason=reason,
                ticket=ticket, rollback_of=_rollback_of)
    return agent


def _publish(*, actor, agent: AgencyAgent, definition: dict, change_note: str, reason: str, ticket: str,
             rollback_of: TuningChange | None = None) -> AgentVersion:
    number = (agent.versions.filter(number__isnull=False).aggregate(n=Max("number"))["n"] or 0) + 1
    version = AgentVersion.objects.create(agent=agent, number=number, definition=definition,
                                          change_note=change_note, published_by=actor)
    previous = agent.current_version.number if agent.current_version_id else None
    agent.current_version, agent.status, agent.draft, agent.title = (version, AgentStatus.PUBLISHED, definition,
                                                                     definition["title"])
    agent.save(update_fields=["current_version", "status", "draft", "title", "updated_at"])
    _record(actor=actor, agent=agent, action=Action.UPDATE, field="version", old={"version": previous},
            new={"version": number, "change_note": change_note}, reason=reason or change_note, ticket=ticket,
            rollback_of=rollback_of)
    return version


def agent_publish(*, actor: AbstractUser | None, slug: str, change_note: str, reason: str = "",
                  ticket: str = "") -> AgentVersion:
    """Freeze the draft as the next version and make it current: new runs and threads use it; runs
    and threads already started keep theirs."""
    policy.require(actor, "studio.build")
    change_note = (change_note or "").strip()
    if not change_note:
        raise InvalidInput("change_note: say what this version changes (it is shown in the version history).",
                           details={"change_note": ["required"]})
    with transaction.atomic():
        agent = _locked(slug)
        definition = _clean(agent.draft)  # the library may have lost a tool since the draft was saved
        if agent.current_version_id and agent.current_version.definition == definition \
                and agent.status == AgentStatus.PUBLISHED:
            raise Conflict(f"Nothing changed since v{agent.current_version.number}: edit the draft first.")
        return _publish(actor=actor, agent=agent, definition=definition, change_note=change_note[:2000],
                        reason=reason, ticket=ticket)


def agent_rollback(*, actor: AbstractUser | None, slug: str, number: int, reason: str = "", ticket: str = "",
                   _rollback_of: TuningChange | None = None) -> AgentVersion:
    """Publish an earlier version again, as the next version (its definition, a note saying so)."""
    policy.require(actor, "studio.build")
    with transaction.atomic():
        agent = _locked(slug)
        earlier = agent.versions.filter(number=number).first()
        if earlier is None:
            raise NotFound(f"{slug} has no version {number}.")
        if agent.current_version_id == earlier.pk:
            raise Conflict(f"v{number} is already the current version of {slug}.")
        note = f"Rollback to v{number}" + (f": {reason.strip()}" if reason.strip() else "")
        return _publish(actor=actor, agent=agent, definition=earlier.definition, change_note=note, reason=reason,
                        ticket=ticket, rollback_of=_rollback_of)


def agent_archive(*, actor: AbstractUser | None, slug: str, archived: bool = True, reason: str = "",
                  ticket: str = "", _rollback_of: TuningChange | None = None) -> AgencyAgent:
    """Archive: no new runs or threads (those started finish on their version); unarchive: back."""
    policy.require(actor, "studio.build")
    with transaction.atomic():
        agent = _locked(slug)
        target = AgentStatus.ARCHIVED if archived else (
            AgentStatus.PUBLISHED if agent.current_version_id else AgentStatus.DRAFT)
        if agent.status == target:
            return agent
        old, agent.status = agent.status, target
        agent.save(update_fields=["status", "updated_at"])
        _record(actor=actor, agent=agent, action=Action.UPDATE, field="status", old=old, new=target, reason=reason,
                ticket=ticket, rollback_of=_rollback_of)
    return agent


def agent_test_version(*, actor: AbstractUser | None, slug: str) -> AgentVersion:
    """The draft frozen for a test run or thread (sandbox: side effects simulated), reused while the
    draft is unchanged. Not a published version: no new run uses it unless asked for by its version."""
    policy.require(actor, "studio.build")
    with transaction.atomic():
        agent = _locked(slug)
        definition = _clean(agent.draft)
        existing = agent.versions.filter(number__isnull=True, definition=definition).order_by("-pk").first()
        return existing or AgentVersion.objects.create(agent=agent, number=None, definition=definition,
                                                       change_note="draft test", published_by=actor)


def agent_test_run(*, actor: AbstractUser | None, slug: str, task: str, client_id: int | None = None,
                   thread: bool = False):
    """A sandbox run (or the first turn of a sandbox thread: every turn stays sandboxed) of the draft,
    frozen as a test version: side-effecting tools are simulated. Returns the CreatedRun."""
    from agents.services import run_create

    version = agent_test_version(actor=actor, slug=slug)
    return run_create(actor=actor, agent_type=slug, task=task, client_id=client_id, sandbox=True,
                      agent_version=version.semver, thread=thread)


def agent_export(*, actor: AbstractUser | None, slug: str, number: int | None = None) -> dict[str, Any]:
    """The JSON contract of a version (default: the current one; an unpublished agent: its draft)."""
    agent = agent_get(actor=actor, slug=slug)
    if number is not None:
        version = agent.versions.filter(number=number).first()
        if version is None:
            raise NotFound(f"{slug} has no version {number}.")
        definition = version.definition
    else:
        definition = agent.current_version.definition if agent.current_version_id else agent.draft
    return {"contract": CONTRACT, "slug": agent.slug, **definition}


def agent_import(*, actor: AbstractUser | None, contract: Any, reason: str = "", ticket: str = "") -> AgencyAgent:
    """An exported contract becomes an agent of this instance, published as v1 ("Imported")."""
    policy.require(actor, "studio.build")
    if not isinstance(contract, dict):
        raise InvalidInput("The contract is a JSON object as GET /api/v1/studio/agents/{slug}/export returns it.",
                           details={"contract": ["expected an object"]})
    if contract.get("contract") != CONTRACT:
        raise InvalidInput(f"contract: expected {CONTRACT!r} (the format this platform exports).",
                           details={"contract": [f"expected {CONTRACT!r}"]})
    slug = contract.get("slug")
    definition = definition_clean(contract, tools_available=library_by_ref())
    with transaction.atomic():
        agent = agent_create(actor=actor, slug=slug, definition=definition, reason=reason or "imported",
                             ticket=ticket)
        agent = _locked(slug)
        _publish(actor=actor, agent=agent, definition=agent.draft, change_note="Imported from a contract",
                 reason=reason or "imported", ticket=ticket)
    return agent


@audit.rollback_handler(Entity.AGENT_DEFINITION)
def _rollback(*, change: TuningChange, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    """Undo one entry: a draft edit restores the old draft; a publish makes the previous version
    current again (published anew); an archive unarchives (and the reverse); a creation archives."""
    slug = change.entity_id
    if change.field == "draft" and change.action == Action.UPDATE:
        agent_draft_update(actor=actor, slug=slug, definition=change.old_value, reason=reason, ticket=ticket,
                           _rollback_of=change)
    elif change.field == "version" and (change.old_value or {}).get("version"):
        agent_rollback(actor=actor, slug=slug, number=change.old_value["version"], reason=reason, ticket=ticket,
                       _rollback_of=change)
    elif change.field == "status":
        agent_archive(actor=actor, slug=slug, archived=change.old_value == AgentStatus.ARCHIVED, reason=reason,
                      ticket=ticket, _rollback_of=change)
    elif change.action == Action.CREATE or change.field == "version":
        agent_archive(actor=actor, slug=slug, archived=True, reason=reason, ticket=ticket, _rollback_of=change)
    else:
        raise Conflict("This entry cannot be rolled back.")
