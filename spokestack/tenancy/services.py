"""Writes for instances: provisioning, suspension."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from django.contrib.auth.models import AbstractUser
from django.db import IntegrityError, transaction
from django_tenants.utils import schema_context, schema_exists

from spokestack.accounts.roles import Role, roles_sync
from spokestack.accounts.services import user_create
from spokestack.egress import EgressError, vet_url
from spokestack.errors import Conflict, InvalidInput
from spokestack.secrets import EncryptedSecret

from .models import Domain, Instance

SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{1,47}$")
HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
RESERVED_SCHEMAS = {"public", "information_schema", "instance_template"}


@dataclass(frozen=True)
class ProvisionedInstance:
    instance: Instance
    admin: AbstractUser
    admin_password: str  # shown once to whoever provisioned the instance


def _schema_from_domain(domain: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", domain.split(".")[0].lower())


@transaction.atomic
def instance_provision(
    *,
    name: str,
    domain: str,
    admin_email: str,
    schema_name: str | None = None,
    tier: str = Instance.Tier.STARTER,
    region: str = "",
    language: str = "en",
    timezone: str = "UTC",
    admin_password: str | None = None,
) -> ProvisionedInstance:
    """Create an instance: its schema (cloned from the migrated template), its host, its role
    groups and its first admin, all in one transaction, so a failure leaves nothing behind."""
    domain = domain.strip().lower()
    if not HOST_NAME.match(domain):
        raise InvalidInput(f"'{domain}' is not a valid host name.", details={"domain": domain})
    schema_name = schema_name or _schema_from_domain(domain)
    if not SCHEMA_NAME.match(schema_name) or schema_name in RESERVED_SCHEMAS or schema_name.startswith("pg_"):
        raise InvalidInput(
            f"'{schema_name}' cannot be a schema name: use 2-48 lower-case letters, digits or _ starting with a letter.",
            details={"schema_name": schema_name},
        )
    if tier not in Instance.Tier.values:
        raise InvalidInput(f"Unknown tier '{tier}'. Choose one of: {', '.join(Instance.Tier.values)}.")
    if Domain.objects.filter(domain=domain).exists():
        raise Conflict(f"The host {domain} already belongs to an instance.", details={"domain": domain})
    if Instance.objects.filter(schema_name=schema_name).exists() or schema_exists(schema_name):
        raise Conflict(f"The schema {schema_name} is taken; pass another schema name.", details={"schema_name": schema_name})

    instance = Instance(schema_name=schema_name, name=name.strip(), tier=tier, region=region,
                        language=language, timezone=timezone)
    instance.full_clean(exclude=["schema_name"])
    try:
        instance.save(verbosity=0)
        Domain.objects.create(domain=domain, tenant=instance, is_primary=True)
    except IntegrityError as exc:  # a concurrent provisioning took the host or schema first
        raise Conflict(f"The host {domain} or schema {schema_name} was taken meanwhile.") from exc

    password = admin_password or secrets.token_urlsafe(12)
    with schema_context(schema_name):
        roles_sync()
        admin = user_create(email=admin_email, password=password, role=Role.INSTANCE_ADMIN)
    return ProvisionedInstance(instance=instance, admin=admin, admin_password=password)


def instance_set_status(*, instance: Instance, status: str, reason: str = "") -> Instance:
    if status not in Instance.Status.values:
        raise InvalidInput(f"Unknown status '{status}'. Choose one of: {', '.join(Instance.Status.values)}.")
    instance.status = status
    instance.suspended_reason = reason if status == Instance.Status.SUSPENDED else ""
    instance.save(update_fields=["status", "suspended_reason"])
    return instance


def instance_set_erp(*, instance: Instance, base_url: str, api_key: str | None = None) -> Instance:
    """Point the instance at its ERP. `api_key=None` keeps the stored key, "" clears it.

    The URL is checked against the egress policy without resolving it (scheme, credentials,
    literal addresses); every request resolves and checks again, so DNS can't sneak past.
    """
    base_url = base_url.strip()
    if base_url:
        try:
            vet_url(base_url, resolver=None)
        except EgressError as exc:
            raise InvalidInput(f"ERP base URL: {exc.message}", details={"field": "erp_base_url"}) from None
    instance.erp_base_url = base_url
    fields = ["erp_base_url"]
    if api_key is not None:
        key = api_key.strip()
        instance.erp_api_key = EncryptedSecret.seal(key, schema=instance.schema_name) if key else EncryptedSecret("")
        fields.append("erp_api_key")
    instance.full_clean(exclude=["schema_name"])
    instance.save(update_fields=fields)
    return instance
