"""Reads about the people of an instance: who they are, their role, and the clients they are
assigned to (guardian object permissions on `tuning.Client`, named by the access policy)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db.models import Model, QuerySet

from spokestack.errors import NotFound

from . import policy

# object permission codename -> the role it assigns (account manager, client contact)
ROLE_OF_PERMISSION = {codename: role for role, codename in policy.SCOPED_ROLES.items()}


def people() -> QuerySet:
    """The team: every person of the instance, active or not. Platform support (superusers) are not
    members of the agency's team and are managed by the platform, so they are left out."""
    return get_user_model().objects.filter(is_superuser=False).prefetch_related("groups").order_by("username")


def person_get(*, user_id: int | str) -> AbstractUser:
    try:
        return people().get(pk=int(user_id))
    except (get_user_model().DoesNotExist, ValueError, TypeError):
        raise NotFound("No such person in this instance.", details={"user_id": user_id}) from None


def _client_permissions():
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import UserObjectPermission

    Client = apps.get_model("tuning", "Client")
    return UserObjectPermission.objects.filter(content_type=ContentType.objects.get_for_model(Client),
                                               permission__codename__in=list(ROLE_OF_PERMISSION))


def assignments_by_user(user_ids: Iterable[int]) -> dict[int, list[dict]]:
    """{user id: [{"client_id", "role"}, …]} for these people, in one query (whether or not they are
    active: a deactivated person keeps their assignments)."""
    found: dict[int, list[dict]] = defaultdict(list)
    rows = _client_permissions().filter(user_id__in=list(user_ids)).values_list("user_id", "permission__codename",
                                                                                "object_pk")
    for user_id, codename, object_pk in sorted(rows, key=lambda r: (r[0], int(r[2]), r[1])):
        found[user_id].append({"client_id": int(object_pk), "role": ROLE_OF_PERMISSION[codename]})
    return found


def client_assignments(*, client: Model) -> list[tuple[AbstractUser, str]]:
    """(person, role) for everyone assigned to the client, in e-mail order (two queries)."""
    rows = list(_client_permissions().filter(object_pk=str(client.pk)).values_list("user_id", "permission__codename"))
    users = get_user_model().objects.in_bulk([user_id for user_id, _ in rows])
    pairs = [(users[user_id], ROLE_OF_PERMISSION[codename]) for user_id, codename in rows if user_id in users]
    return sorted(pairs, key=lambda pair: (pair[0].get_username(), pair[1]))
