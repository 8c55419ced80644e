"""Reads for core-agent versions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.db.models import QuerySet
from django_tenants.utils import get_public_schema_name

from agents.registry import _semver_key, get_spec, versions
from spokestack.accounts import policy
from spokestack.errors import InvalidInput
from tuning.models import Client

from .catalog.models import CatalogVersion
from .models import AgentVersionConfig, SandboxSession, UpdateNotification, VersionChange
from .services import _finished_sandbox_tests, known_agent_type, latest_released


def configured_version(agent_type: str) -> str | None:
    """The version this instance's config says it runs, or None (no config, or the public schema)."""
    if connection.schema_name == get_public_schema_name():
        return None
    row = AgentVersionConfig.objects.filter(agent_type=agent_type).values_list("current_version", flat=True).first()
    return row if row and get_spec(agent_type, row) is not None else None


def running_version(agent_type: str) -> str:
    """What runs use: the instance's configured version, else the newest released in the catalog,
    else the newest registered (a fresh database before the first sync)."""
    version = configured_version(agent_type) or latest_released(agent_type)
    if version is None:
        spec = get_spec(agent_type)
        if spec is None:
            raise LookupError(agent_type)
        version = spec.version
    return version


def catalog_versions(*, actor: AbstractUser | None, agent_type: str) -> list[dict[str, Any]]:
    policy.require(actor, "version.view")
    known_agent_type(agent_type)
    rows = {r.version: r for r in CatalogVersion.objects.filter(agent_type=agent_type)}
    current = running_version(agent_type)
    out = []
    for version in versions(agent_type):
        row = rows.get(version)
        if row is None:
            continue
        out.append({"version": version, "release_date": row.release_date, "notes": row.notes,
                    "breaking": row.breaking, "optimization_tags": row.optimization_tags,
                    "tool_changes": row.tool_changes, "prompt_changes": row.prompt_changes,
                    "behaviour_changes": row.behaviour_changes, "deprecations": row.deprecations,
                    "min_platform_version": row.min_platform_version, "sunset_date": row.sunset_date,
                    "tools": [t["name"] for t in row.tools], "is_current": version == current})
    return out


def version_state(*, actor: AbstractUser | None, agent_type: str) -> dict[str, Any]:
    policy.require(actor, "version.view")
    known_agent_type(agent_type)
    config = AgentVersionConfig.objects.filter(agent_type=agent_type).first()
    current = running_version(agent_type)
    latest = latest_released(agent_type) or current
    history = VersionChange.objects.filter(agent_type=agent_type).select_related("activated_by")
    pending = UpdateNotification.objects.filter(agent_type=agent_type, status__in=["pending", "deferred", "sandbox"]).first()
    return {
        "agent_type": agent_type, "current_version": current,
        "pinned_version": config.pinned_version if config else "",
        "policy": config.policy if config else "staged",
        "sandbox_version": config.sandbox_version if config else "",
        "optimization_preferences": config.optimization_preferences if config else [],
        "notify": config.notify if config else True, "notify_contacts": config.notify_contacts if config else [],
        "latest_version": latest,
        "update_available": _semver_key(latest) > _semver_key(current),
        "pending_update": notification_dict(pending) if pending else None,
        "history": [{"version": h.version, "from_version": h.from_version, "action": h.action,
                     "activated_at": h.activated_at, "activated_by": getattr(h.activated_by, "email", None),
                     "reason": h.reason} for h in history],
    }


def notification_dict(n: UpdateNotification) -> dict[str, Any]:
    return {"id": n.pk, "agent_type": n.agent_type, "from_version": n.from_version, "version": n.version,
            "recommendation": n.recommendation, "reason": n.reason, "status": n.status, "analysis": n.analysis,
            "content": n.content, "emailed_to": n.emailed_to, "created_at": n.created_at, "reviewed_at": n.reviewed_at}


def notifications(*, actor: AbstractUser | None, status: str | None = None) -> QuerySet[UpdateNotification]:
    policy.require(actor, "version.view")
    qs = UpdateNotification.objects.all()
    return qs.filter(status=status) if status else qs


def sandbox_get(*, actor: AbstractUser | None, session_id: Any) -> SandboxSession:
    from spokestack.errors import NotFound

    policy.require(actor, "sandbox.view")
    try:
        session = SandboxSession.objects.filter(pk=session_id).first()
    except Exception:  # not a UUID
        session = None
    if session is None:
        raise NotFound(f"No sandbox session {session_id} in this instance.")
    return session


def tested_in_sandbox(*, agent_type: str, version: str) -> bool:
    """Has a sandbox test of `version` finished on both versions (what `staged` asks before approve)?"""
    return _finished_sandbox_tests(agent_type=agent_type, version=version).exists()


def visible_client(actor: AbstractUser | None, client_id: Any) -> Client | None:
    """The client `client_id` names, if the actor may see it (None for none given); 400 otherwise.
    The sandbox's tests and the eval cases and what-ifs (versions.evals) name their client so."""
    if client_id in (None, ""):
        return None
    try:
        client = Client.objects.filter(pk=int(client_id)).first()
    except (TypeError, ValueError):
        client = None
    if client is None or not policy.can_see_client(actor, client):
        raise InvalidInput(f"client_id: no client {client_id} in this instance.", details={"client_id": client_id})
    return client
