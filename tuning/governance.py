"""Who may do what with tuning (DESIGN §10). Services call these checks, so the admin, the API
and the workers all pass the same ones.

| role             | tier 2        | tier 3 (tuning, rules)  | examples            | client preferences |
| ---------------- | ------------- | ----------------------- | ------------------- | ------------------ |
| instance admin   | read, write   | every client            | every client        | every client       |
| instance manager | read          | every client            | every client        | every client       |
| account manager  | —             | assigned clients        | assigned clients    | assigned clients   |
| client contact   | —             | —                       | their client        | their client       |
| platform support | read, write   | every client (audited as support) | …          | …                  |

"Assigned" is a guardian object permission on the `Client` row (`tuning.manage_client` for an
account manager, `tuning.contact_client` for a client contact), given by `client_assign`.
A client a person may not see is answered as not found, so its existence does not leak.
`actor=None` is the system itself (a shell or a scheduled job), which the audit log names.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractUser
from guardian.core import ObjectPermissionChecker

from spokestack.accounts.roles import Role, can_read_tier2, can_write_tier2, is_support, roles_of  # noqa: F401
from spokestack.errors import NotAllowed, NotFound

from .models import Client
from .precedence import CLIENT_CONTACT_FIELDS

MANAGE = "manage_client"
CONTACT = "contact_client"
ROLE_OBJECT_PERMISSION = {Role.ACCOUNT_MANAGER: MANAGE, Role.CLIENT_CONTACT: CONTACT}


def sees_every_client(actor: AbstractUser | None) -> bool:
    return actor is None or is_support(actor) or bool(roles_of(actor) & {Role.INSTANCE_ADMIN, Role.INSTANCE_MANAGER})


def client_relations(actor: AbstractUser | None, client: Client) -> frozenset[str]:
    """The object permissions (manage_client / contact_client) the actor holds on this client."""
    if actor is None:
        return frozenset()
    checker = getattr(actor, "_spokestack_checker", None)
    if checker is None:
        checker = ObjectPermissionChecker(actor)
        actor._spokestack_checker = checker
    return frozenset(checker.get_perms(client)) & {MANAGE, CONTACT}


def can_view_client(actor: AbstractUser | None, client: Client) -> bool:
    if sees_every_client(actor):
        return True
    roles = roles_of(actor)
    relations = client_relations(actor, client)
    return (Role.ACCOUNT_MANAGER in roles and MANAGE in relations) or (
        Role.CLIENT_CONTACT in roles and CONTACT in relations)


def can_write_tier3(actor: AbstractUser | None, client: Client, fields: Iterable[str] | None = None) -> bool:
    """`fields` None means rules or the whole tuning row; a client contact may only change preferences."""
    if sees_every_client(actor):
        return True
    roles = roles_of(actor)
    relations = client_relations(actor, client)
    if Role.ACCOUNT_MANAGER in roles and MANAGE in relations:
        return True
    if Role.CLIENT_CONTACT in roles and CONTACT in relations:
        return fields is not None and set(fields) <= CLIENT_CONTACT_FIELDS and bool(set(fields))
    return False


def can_write_examples(actor: AbstractUser | None, client: Client) -> bool:
    return can_view_client(actor, client)


def require(allowed: bool, *, actor: AbstractUser | None, client: Client | None, what: str) -> None:
    """Raise NotFound for a client the actor may not even see, NotAllowed otherwise."""
    if allowed:
        return
    if client is not None and not can_view_client(actor, client):
        raise NotFound("No such client.", details={"client_id": client.pk})
    raise NotAllowed(f"Your role does not allow you to {what}.")
