"""Writing the immutable audit log (DESIGN §10). Only services call `record`, inside their
transaction, so an entry exists exactly when its change was committed.

Every configuration change of every app is an entry here (`TuningChange`, named for the tier it
began with): tuning, clients and assignments, skills, version settings, feedback settings, roles,
suggestions. An app that writes entries of its own entity registers how to undo one with
`@rollback_handler(Entity.X)`; `tuning.services.tuning_rollback` dispatches to it (tuning's own
entities are handled there).

A change that touches several rows at once runs inside `with audit.group():` — every entry
recorded in the block carries the same `group` id, and rolling back any of them rolls back the
whole group, newest entry first, in one transaction.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.contrib.auth.models import AbstractUser

from .models import Client, TuningChange

_GROUP: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar("audit_group", default=None)

# entity -> fn(*, actor, change, reason, ticket) that restores change.old_value through the app's
# own service (which checks permissions and records the rollback entry with rollback_of=change),
# raising Conflict (409) when the object changed again since the entry.
RollbackHandler = Callable[..., None]
ROLLBACK_HANDLERS: dict[str, RollbackHandler] = {}


def rollback_handler(entity: str) -> Callable[[RollbackHandler], RollbackHandler]:
    def register(fn: RollbackHandler) -> RollbackHandler:
        ROLLBACK_HANDLERS[entity] = fn
        return fn

    return register


@contextlib.contextmanager
def group() -> Iterator[uuid.UUID]:
    """Entries recorded inside share one group id (an enclosing group wins: nested changes are one)."""
    current = _GROUP.get()
    if current is not None:
        yield current
        return
    token = _GROUP.set(uuid.uuid4())
    try:
        yield _GROUP.get()
    finally:
        _GROUP.reset(token)


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
        rollback_of=rollback_of, group=_GROUP.get(),
    )
    change.save()
    return change
