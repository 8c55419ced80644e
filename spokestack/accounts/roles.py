"""The four per-instance roles (DESIGN §10).

Roles are Django groups in the instance's schema; which clients a person may act on is a
guardian object permission on the client row. What each role may do is decided by the access
policy (`spokestack.accounts.policy`); the groups' Django model permissions are generated from
its table by `roles_sync`, so the two never disagree.
"""

from __future__ import annotations

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


def user_with_roles(user_id: int) -> AbstractUser | None:
    """The user, with their role names read in the same query (`roles_of` answers from them)."""
    from django.contrib.auth import get_user_model

    model = get_user_model()
    user = next(iter(model.objects.raw(
        f"SELECT u.*, {role_names_sql('u')} AS role_names FROM {model._meta.db_table} u WHERE u.id = %s",  # noqa: S608
        [user_id])), None)
    if user is not None:
        with_roles(user, user.role_names)
        del user.role_names
    return user


def role_names_sql(alias: str) -> str:
    """An SQL expression: the role names of the user row `alias`, as an array."""
    from django.contrib.auth import get_user_model

    through = get_user_model().groups.through._meta
    return (f"ARRAY(SELECT g.name FROM {through.db_table} ug JOIN {Group._meta.db_table} g "  # noqa: S608
            f"ON g.id = ug.group_id WHERE ug.user_id = {alias}.id)")


def with_roles(user: AbstractUser, names: list[str]) -> AbstractUser:
    """`user`, knowing its role names (read with it: `role_names_sql`), so `roles_of` asks no query."""
    user._spokestack_roles = frozenset(names)
    return user


def is_support(actor: AbstractUser | None) -> bool:
    """Platform staff acting in an instance (a superuser)."""
    return actor is not None and actor.is_active and actor.is_superuser


def roles_sync() -> dict[str, Group]:
    """Create or refresh the role groups in the current schema, with the model permissions the
    policy table gives each role. Idempotent; permissions of apps not installed match nothing."""
    from .policy import role_model_permissions

    available = {f"{app_label}.{codename}": pk for app_label, codename, pk in
                 Permission.objects.values_list("content_type__app_label", "codename", "pk")}
    groups = {}
    for role, names in role_model_permissions().items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set([available[name] for name in names if name in available])
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
