"""Who may do what with clients and tuning is decided by the access policy
(`spokestack.accounts.policy`, DESIGN §10); this module only names its client-assignment facts
for the tuning app (the object permissions `client_assign` gives) and keeps two read helpers
that other modules import. It holds no rule of its own.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser

from spokestack.accounts import policy
from spokestack.accounts.roles import Role, roles_of  # noqa: F401 - re-exported

from .models import Client

MANAGE = policy.MANAGE
CONTACT = policy.CONTACT
# The role a person must hold to be assigned to a client, and the object permission that assigns them.
ROLE_OBJECT_PERMISSION = dict(policy.SCOPED_ROLES)


def sees_every_client(actor: AbstractUser | None) -> bool:
    return policy.sees_every_client(actor)


def can_view_client(actor: AbstractUser | None, client: Client) -> bool:
    return policy.can_see_client(actor, client)
