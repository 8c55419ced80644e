"""The four per-instance roles and the model permissions each one carries (DESIGN §10).

Roles are Django groups in the instance's schema; which clients a person may act on is a
guardian object permission on the client row. Permission patterns name `app_label.codename`,
`app_label.*` (every permission of the app) or `app_label.view_*` (every view permission);
patterns of apps that are not installed yet simply match nothing.
"""

from __future__ import annotations

import fnmatch

from django.apps import apps
from django.contrib.auth.models import AbstractUser, Group, Permission
from django.db import connection
from django.db.models import TextChoices
from django_tenants.utils import get_public_schema_name


class Role(TextChoices):
    INSTANCE_ADMIN = "instance_admin", "Instance admin"
    INSTANCE_MANAGER = "instance_manager", "Instance manager"
    ACCOUNT_MANAGER = "account_manager", "Account manager"
    CLIENT_CONTACT = "client_contact", "Client contact"


ROLE_PERMISSIONS: dict[str, list[str]] = {
    Role.INSTANCE_ADMIN: [
        "auth.view_user", "auth.add_user", "auth.change_user", "auth.view_group",
        "accounts.*", "agents.*", "tuning.*", "skills.*", "versions.*", "feedback.*",
    ],
    Role.INSTANCE_MANAGER: [
        "auth.view_user", "accounts.view_apitoken", "accounts.add_apitoken",
        "agents.view_*", "agents.add_agentrun", "agents.change_approvalrequest",
        "tuning.view_*", "tuning.add_clienttuning", "tuning.change_clienttuning", "tuning.*_contentrule",
        "tuning.*_approvedexample",
        "skills.view_*", "versions.view_*", "feedback.*",
    ],
    Role.ACCOUNT_MANAGER: [
        "accounts.view_apitoken", "accounts.add_apitoken",
        "agents.view_*", "agents.add_agentrun", "agents.change_approvalrequest",
        "tuning.view_client", "tuning.view_clienttuning", "tuning.add_clienttuning", "tuning.change_clienttuning",
        "tuning.*_contentrule", "tuning.*_approvedexample", "tuning.view_tuningchange", "feedback.*",
    ],
    Role.CLIENT_CONTACT: [
        "agents.view_agentrun", "tuning.view_client", "tuning.view_approvedexample", "tuning.add_approvedexample",
        "feedback.add_feedback", "feedback.view_feedback",
    ],
}

# Roles that may use the instance's admin site.
STAFF_ROLES = {Role.INSTANCE_ADMIN, Role.INSTANCE_MANAGER, Role.ACCOUNT_MANAGER, Role.CLIENT_CONTACT}


def roles_of(actor: AbstractUser | None) -> frozenset[str]:
    """The actor's role names in this instance, read once per user object."""
    if actor is None or not actor.is_active:
        return frozenset()
    cached = getattr(actor, "_spokestack_roles", None)
    if cached is None:
        cached = frozenset(actor.groups.values_list("name", flat=True))
        actor._spokestack_roles = cached
    return cached


def is_support(actor: AbstractUser | None) -> bool:
    """Platform staff acting in an instance (a superuser)."""
    return actor is not None and actor.is_active and actor.is_superuser


def can_read_tier2(actor: AbstractUser | None) -> bool:
    """Instance-level configuration (tier 2, skills): instance admins and managers, support."""
    return actor is None or is_support(actor) or bool(roles_of(actor) & {Role.INSTANCE_ADMIN, Role.INSTANCE_MANAGER})


def can_write_tier2(actor: AbstractUser | None) -> bool:
    return actor is None or is_support(actor) or Role.INSTANCE_ADMIN in roles_of(actor)


def _matching(patterns: list[str], available: list[tuple[str, str, int]]) -> list[int]:
    ids = []
    for app_label, codename, pk in available:
        name = f"{app_label}.{codename}"
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            ids.append(pk)
    return ids


def roles_sync() -> dict[str, Group]:
    """Create or refresh the role groups in the current schema. Idempotent."""
    available = list(Permission.objects.values_list("content_type__app_label", "codename", "pk"))
    groups = {}
    for role, patterns in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(_matching(patterns, available))
        groups[role] = group
    return groups


def sync_roles_after_migrate(sender, **kwargs) -> None:
    """post_migrate: permissions may have changed, so refresh the groups of this schema.

    post_migrate is sent once per app, and each app's permissions are created by its own
    signal: wait for the last app, when every permission exists.
    """
    if sender is not list(apps.get_app_configs())[-1] or connection.schema_name == get_public_schema_name():
        return
    roles_sync()
