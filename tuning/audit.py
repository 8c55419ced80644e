"""Writing the immutable audit log. Only services call `record`, inside their transaction, so an
entry exists exactly when its change was committed."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser

from .models import Client, TuningChange


def actor_label(actor: AbstractUser | None) -> str:
    if actor is None:
        return "system"
    name = actor.get_username()
    return f"support: {name}" if actor.is_superuser else name


def record(*, actor: AbstractUser | None, tier: int, entity: str, entity_id: Any, action: str, field: str = "",
           old: Any = None, new: Any = None, client: Client | None = None, agent_type: str = "", reason: str = "",
           ticket: str = "", affected_clients: list[int] | None = None,
           rollback_of: TuningChange | None = None) -> TuningChange:
    change = TuningChange(
        actor=actor, actor_label=actor_label(actor), tier=tier, entity=entity, entity_id=str(entity_id),
        agent_type=agent_type, client=client, client_label=client.name if client is not None else "",
        action=action, field=field, old_value=old, new_value=new, reason=reason.strip(), ticket=ticket.strip()[:100],
        affected_clients=affected_clients if affected_clients is not None else ([client.pk] if client else []),
        rollback_of=rollback_of,
    )
    change.save()
    return change
