"""Writes for the people of an instance (their roles, deactivation) and API tokens.

People are configuration (DESIGN §10): creating one, changing their role or details and
deactivating them are audit entries (`tuning.audit`: Entity.USER, Entity.USER_ROLE) written in the
same transaction, and each can be rolled back (`tuning.services.tuning_rollback` dispatches to the
handlers registered at the end of this module). A person is never deleted: their runs, feedback and
audit entries name them. The shell reaches the audit log and client assignments of the `tuning` app
here because who holds which role, and for which clients, is one fact.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from spokestack.errors import Conflict, InvalidInput
from tuning import audit
from tuning.models import Action, Client, Entity, Tier, TuningChange

from . import policy
from .models import ApiToken
from .roles import STAFF_ROLES, Role
from .selectors import assignments_by_user

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "ss_"  # noqa: S105 - a visible prefix, not a secret
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# The most powerful first: a person who (from older admin edits) holds several roles is shown as the first.
ROLE_ORDER = (Role.INSTANCE_ADMIN, Role.INSTANCE_MANAGER, Role.ACCOUNT_MANAGER, Role.CLIENT_CONTACT)
USER_DETAIL_FIELDS = ("email", "first_name", "last_name")


def role_of(user: AbstractUser) -> str | None:
    """The person's role in this instance (read from their groups, whether or not they are active)."""
    held = set(user.groups.values_list("name", flat=True)) if user.pk else set()
    return next((role for role in ROLE_ORDER if role in held), None)


def user_snapshot(user: AbstractUser) -> dict[str, Any]:
    return {"email": user.email, "first_name": user.first_name, "last_name": user.last_name, "role": role_of(user)}


def _check_role(role: Any) -> str:
    if role not in Role.values:
        raise InvalidInput(f"role: unknown role '{role}'. Choose one of: {', '.join(Role.values)}.",
                           details={"role": [str(role)]})
    return role


def _clean_email(email: Any) -> str:
    email = get_user_model().objects.normalize_email(email if isinstance(email, str) else "").strip().lower()
    if not email or "@" not in email:
        raise InvalidInput("email: give a valid e-mail address for the person (it is their login name).",
                           details={"email": [email]})
    return email


def _full_clean(user: AbstractUser) -> None:
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(f"{field}: {' '.join(messages)}", details=exc.message_dict) from exc


def _locked(user: AbstractUser) -> AbstractUser:
    """The person's row, locked for this transaction (a concurrent change waits), with nothing cached."""
    fresh = get_user_model().objects.select_for_update().get(pk=user.pk)
    policy.forget(user)
    return fresh


def _keep_an_admin(user: AbstractUser) -> None:
    """An instance keeps at least one active instance admin: someone must be able to manage people."""
    others = (get_user_model().objects.filter(is_active=True, groups__name=Role.INSTANCE_ADMIN)
              .exclude(pk=user.pk).exists())
    if not others:
        raise Conflict(f"{user.get_username()} is the last active instance admin; make someone else an instance "
                       "admin first.", details={"user_id": user.pk})


def _record(*, actor: AbstractUser | None, user: AbstractUser, entity: str = Entity.USER, action: str = Action.UPDATE,
            field: str = "", old: Any = None, new: Any = None, reason: str = "", ticket: str = "",
            rollback_of: TuningChange | None = None) -> TuningChange:
    return audit.record(actor=actor, tier=Tier.GOVERNANCE, entity=entity, entity_id=user.pk, action=action,
                        field=field, old=old, new=new, reason=reason, ticket=ticket, rollback_of=rollback_of)


@transaction.atomic
def user_create(*, email: str, password: str | None = None, role: str, first_name: str = "", last_name: str = "",
                actor: AbstractUser | None = None, reason: str = "", ticket: str = "",
                invite_from: str = "") -> AbstractUser:
    """A person of this instance with one role (every role may open the admin, so they are staff).
    The e-mail address is the login name. Without a password (the API never takes one) the person
    cannot sign in until they set one: with `invite_from` (the instance's address as the inviting
    person reaches it, e.g. "https://alpha.example.com") they are e-mailed a set-password link once
    the surrounding transaction commits (`user_invitation_send`), so the mail lists the clients
    assigned in that same transaction and no mail goes out for a person rolled back. They are
    assigned to clients separately (`tuning.services.client_assign`)."""
    policy.require(actor, "user.manage")
    _check_role(role)
    email = _clean_email(email)
    User = get_user_model()
    if User.objects.filter(username=email).exists():
        raise Conflict(f"A user with the e-mail address {email} already exists in this instance.",
                       details={"email": email})
    user = User(username=email, email=email, first_name=(first_name or "").strip(),
                last_name=(last_name or "").strip(), is_staff=role in STAFF_ROLES)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    _full_clean(user)
    user.save()
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    _record(actor=actor, user=user, action=Action.CREATE, new=user_snapshot(user), reason=reason, ticket=ticket)
    if invite_from:
        # robust: the person exists once committed; a mail server error is logged, and the admin's
        # "Send a set-password link" action sends another invitation.
        transaction.on_commit(lambda: user_invitation_send(actor=actor, user=user, base_url=invite_from), robust=True)
    return user


def user_invitation_send(*, actor: AbstractUser | None, user: AbstractUser, base_url: str) -> str:
    """E-mail the person a link to set their password (Django's password-reset token: it works once,
    stops working when the password changes, and expires after PASSWORD_RESET_TIMEOUT). Returns the
    link. Not audited: it changes nothing until the person uses it. Call it outside a transaction
    (the SMTP round trip must not hold one open)."""
    policy.require(actor, "user.manage")
    if not user.is_active:
        raise InvalidInput(f"{user.get_username()} is deactivated; reactivate them before sending an invitation.",
                           details={"user_id": user.pk})
    if not user.email:
        raise InvalidInput(f"{user.get_username()} has no e-mail address to send the invitation to.",
                           details={"user_id": user.pk})
    path = reverse("set_password", urlconf="spokestack.urls",
                   kwargs={"uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                           "token": default_token_generator.make_token(user)})
    link = base_url.rstrip("/") + path
    instance = getattr(connection, "tenant", None)
    instance_name = getattr(instance, "name", "") or "SpokeStack"
    role = role_of(user)
    clients = sorted(Client.objects.filter(pk__in=[a["client_id"] for a in
                                                   assignments_by_user([user.pk]).get(user.pk, [])])
                     .values_list("name", flat=True))
    days = max(1, round(settings.PASSWORD_RESET_TIMEOUT / 86400))
    lines = [f"Hello{' ' + user.first_name if user.first_name else ''},", "",
             f"{_actor_name(actor)} added you to {instance_name} on SpokeStack"
             f"{' as ' + Role(role).label.lower() if role else ''}"
             f"{' for ' + ', '.join(clients) if clients else ''}.", "",
             "Choose your password here (the link works once, for " f"{days} day{'s' if days != 1 else ''}):",
             link, "", f"Then sign in at {base_url.rstrip('/')}/admin/ with your e-mail address {user.email}."]
    send_mail(subject=f"You are invited to {instance_name} on SpokeStack", message="\n".join(lines),
              from_email=None, recipient_list=[user.email])
    logger.info("invitation sent to user %s", user.pk)
    return link


def _actor_name(actor: AbstractUser | None) -> str:
    if actor is None:
        return "SpokeStack"
    return actor.get_full_name() or actor.get_username()


@transaction.atomic
def user_update(*, actor: AbstractUser | None, user: AbstractUser, changes: dict[str, Any], reason: str = "",
                ticket: str = "", _rollback_of: TuningChange | None = None) -> AbstractUser:
    """Change a person's e-mail address (their login name too) or name; one audit entry per changed field."""
    policy.require(actor, "user.manage")
    unknown = sorted(set(changes) - set(USER_DETAIL_FIELDS))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: cannot be changed here; change {', '.join(USER_DETAIL_FIELDS)}, role "
                           "or is_active.", details={unknown[0]: ["unknown field"]})
    user = _locked(user)
    cleaned = {field: (value.strip() if isinstance(value, str) else value) for field, value in changes.items()}
    if "email" in cleaned:
        cleaned["email"] = _clean_email(cleaned["email"])
        if get_user_model().objects.filter(username=cleaned["email"]).exclude(pk=user.pk).exists():
            raise Conflict(f"A user with the e-mail address {cleaned['email']} already exists in this instance.",
                           details={"email": cleaned["email"]})
    changed = [field for field in USER_DETAIL_FIELDS if field in cleaned and getattr(user, field) != cleaned[field]]
    if not changed:
        return user
    olds = {field: getattr(user, field) for field in changed}
    for field in changed:
        setattr(user, field, cleaned[field])
    if "email" in changed:
        user.username = user.email
    _full_clean(user)
    user.save(update_fields=[*changed, *(["username"] if "email" in changed else [])])
    for field in changed:
        _record(actor=actor, user=user, field=field, old=olds[field], new=getattr(user, field), reason=reason,
                ticket=ticket, rollback_of=_rollback_of)
    return user


@transaction.atomic
def user_update_role(*, actor: AbstractUser | None, user: AbstractUser, role: str, reason: str = "",
                     ticket: str = "", _rollback_of: TuningChange | None = None) -> AbstractUser:
    """Give a person another role. Client assignments the new role cannot hold (an account manager's
    when they become a client contact, any when they become an instance admin or manager, who see
    every client) are dropped first, each audited; the role change and the drops are one audit group,
    so a rollback restores the role and then the assignments."""
    policy.require(actor, "user.manage")
    _check_role(role)
    user = _locked(user)
    old = role_of(user)
    held = set(user.groups.values_list("name", flat=True)) & set(Role.values)
    if held == {role}:
        return user
    if old == Role.INSTANCE_ADMIN and role != Role.INSTANCE_ADMIN and user.is_active:
        _keep_an_admin(user)
    from tuning.services import client_unassign  # the one write path of assignments, audited there

    with audit.group():
        # A role holds only the assignments of its own kind (policy.SCOPED_ROLES); none for the others.
        dropped = [a for a in assignments_by_user([user.pk]).get(user.pk, []) if a["role"] != role]
        clients = Client.objects.in_bulk([a["client_id"] for a in dropped])
        for assignment in dropped:
            client_unassign(actor=actor, user=user, client=clients[assignment["client_id"]], role=assignment["role"],
                            reason=reason or f"{user.get_username()} is now {Role(role).label.lower()}",
                            ticket=ticket)
        user.groups.remove(*Group.objects.filter(name__in=Role.values))
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        user.is_staff = role in STAFF_ROLES
        user.save(update_fields=["is_staff"])
        policy.forget(user)
        _record(actor=actor, user=user, entity=Entity.USER_ROLE, field="role", old=old, new=role, reason=reason,
                ticket=ticket, rollback_of=_rollback_of)
    return user


@transaction.atomic
def user_deactivate(*, actor: AbstractUser | None, user: AbstractUser, reason: str = "", ticket: str = "",
                    _rollback_of: TuningChange | None = None) -> AbstractUser:
    """The person can no longer sign in, and their API tokens stop working at once (authentication
    accepts tokens of active people only). Their role, client assignments and history are kept, so
    reactivating (or rolling back this entry) gives back exactly what they had."""
    policy.require(actor, "user.manage")
    user = _locked(user)
    if not user.is_active:
        return user
    if Role.INSTANCE_ADMIN in set(user.groups.values_list("name", flat=True)):
        _keep_an_admin(user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    _record(actor=actor, user=user, field="is_active", old=True, new=False, reason=reason, ticket=ticket,
            rollback_of=_rollback_of)
    return user


@transaction.atomic
def user_reactivate(*, actor: AbstractUser | None, user: AbstractUser, reason: str = "", ticket: str = "",
                    _rollback_of: TuningChange | None = None) -> AbstractUser:
    policy.require(actor, "user.manage")
    user = _locked(user)
    if user.is_active:
        return user
    user.is_active = True
    user.save(update_fields=["is_active"])
    _record(actor=actor, user=user, field="is_active", old=False, new=True, reason=reason, ticket=ticket,
            rollback_of=_rollback_of)
    return user


def _drifted(change: TuningChange, current: Any) -> Conflict:
    return Conflict(
        f"The {change.get_entity_display().lower()} {change.entity_id}"
        f"{' field ' + change.field if change.field else ''} changed again after entry #{change.pk}, so it cannot be "
        f"rolled back blindly: it is now {current!r}, the entry set it to {change.new_value!r}. Change it directly "
        "instead.",
        details={"audit_id": change.pk, "field": change.field, "current": current, "expected": change.new_value,
                 "restore": change.old_value})


def _person(change: TuningChange) -> AbstractUser:
    user = get_user_model().objects.filter(pk=int(change.entity_id)).first()
    if user is None:
        raise _drifted(change, None)
    return user


@audit.rollback_handler(Entity.USER)
def _user_rollback(*, change: TuningChange, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    """A create is undone by deactivating the person (never deleting them); a deactivation by
    reactivating, and the reverse; a detail by writing its old value back."""
    user = _person(change)
    common = {"actor": actor, "user": user, "reason": reason, "ticket": ticket, "_rollback_of": change}
    if change.action == Action.CREATE:
        if not user.is_active:
            raise _drifted(change, {"is_active": False})
        user_deactivate(**common)
    elif change.field == "is_active":
        if user.is_active != change.new_value:
            raise _drifted(change, user.is_active)
        (user_reactivate if change.old_value else user_deactivate)(**common)
    elif change.field in USER_DETAIL_FIELDS:
        if getattr(user, change.field) != change.new_value:
            raise _drifted(change, getattr(user, change.field))
        user_update(changes={change.field: change.old_value}, **common)
    else:
        raise InvalidInput(f"Entry #{change.pk} cannot be rolled back.")


@audit.rollback_handler(Entity.USER_ROLE)
def _user_role_rollback(*, change: TuningChange, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    user = _person(change)
    current = role_of(user)
    if current != change.new_value:
        raise _drifted(change, current)
    if change.old_value is None:
        raise InvalidInput(f"Entry #{change.pk} gave a role to a person who had none; change the role directly.")
    user_update_role(actor=actor, user=user, role=change.old_value, reason=reason, ticket=ticket,
                     _rollback_of=change)


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
