"""Writes for users and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction
from django.utils import timezone

from spokestack.errors import Conflict, InvalidInput

from . import policy
from .models import ApiToken
from .roles import STAFF_ROLES, Role

TOKEN_PREFIX = "ss_"  # noqa: S105 - a visible prefix, not a secret
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def user_create(*, email: str, password: str | None, role: str, first_name: str = "", last_name: str = "") -> AbstractUser:
    """A person of this instance with one role. The e-mail address is the login name."""
    if role not in Role.values:
        raise InvalidInput(f"Unknown role '{role}'. Choose one of: {', '.join(Role.values)}.", details={"role": role})
    email = get_user_model().objects.normalize_email(email).lower()
    if not email or "@" not in email:
        raise InvalidInput("Give a valid e-mail address for the user.", details={"email": email})
    User = get_user_model()
    if User.objects.filter(username=email).exists():
        raise Conflict(f"A user with the e-mail address {email} already exists in this instance.")
    user = User(username=email, email=email, first_name=first_name, last_name=last_name,
                is_staff=role in STAFF_ROLES)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean()
    user.save()
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    return user


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    raw: str  # shown once, never stored


def _require_token_rights(actor: AbstractUser | None, user: AbstractUser) -> None:
    """Your own tokens: policy `token.create`; anyone else's: `user.manage`. None is the system."""
    if actor is not None:
        policy.require(actor, "token.create" if actor.pk == user.pk else "user.manage")


@transaction.atomic
def api_token_create(*, user: AbstractUser, name: str, expires_at: datetime | None = None,
                     actor: AbstractUser | None = None) -> IssuedToken:
    _require_token_rights(actor, user)
    if not name.strip():
        raise InvalidInput("Name the token after what will use it, e.g. 'ERP sync'.", details={"name": name})
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=name.strip(), prefix=raw[:10], digest=_digest(raw), expires_at=expires_at)
    token.full_clean()
    token.save()
    return IssuedToken(token=token, raw=raw)


def api_token_authenticate(*, raw: str) -> ApiToken | None:
    """The live token for this raw value in the current instance, or None."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=_digest(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.expires_at and token.expires_at <= now:
        return None
    # One write a minute at most: this row is read on every API request.
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def api_token_revoke(*, token: ApiToken, actor: AbstractUser | None = None) -> ApiToken:
    _require_token_rights(actor, token.user)
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return token
