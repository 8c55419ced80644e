"""Agency instances (tenants) and the hosts they answer on. Both live in the public schema."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from spokestack.secrets import EncryptedSecretField

DEFAULT_APPROVAL_SLA_HOURS = 24
MAX_APPROVAL_SLA_HOURS = 720  # 30 days


class Instance(TenantMixin):
    """One agency: its own PostgreSQL schema, users, tuning, skills and runs.

    Created only through `instance_provision`, which clones the template schema and sets up
    roles and the first admin in one transaction.
    """

    class Tier(models.TextChoices):
        FREE = "free", "Free"
        STARTER = "starter", "Starter"
        PROFESSIONAL = "professional", "Professional"
        ENTERPRISE = "enterprise", "Enterprise"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    name = models.CharField(max_length=120)
    tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.STARTER)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    region = models.CharField(max_length=40, blank=True, help_text="Market the agency mostly serves, e.g. GCC, EU, US.")
    language = models.CharField(max_length=10, default="en", help_text="Default output language (ISO 639-1).")
    timezone = models.CharField(max_length=64, default="UTC")
    suspended_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The agency's ERP, reached by core tools through spokestack.erp (set by instance_set_erp).
    erp_base_url = models.URLField(max_length=500, blank=True, help_text="Base URL of the agency's ERP API.")
    erp_api_key = EncryptedSecretField(bound_to="schema_name", help_text="Sent as X-Api-Key; write-only.")
    approval_sla_hours = models.PositiveIntegerField(
        "approval SLA (hours)", default=DEFAULT_APPROVAL_SLA_HOURS, validators=[MinValueValidator(1), MaxValueValidator(MAX_APPROVAL_SLA_HOURS)],
        help_text="How long a tool call that needs approval waits for a decision before it fails (1–720 h). "
                  "Applies to requests made after the change.")

    # Platform staff's overrides of the tier's limits (spokestack/tenancy/tiers.py LIMIT_KEYS); empty: the tier's.
    limits_override = models.JSONField(default=dict, blank=True,
                                       help_text="Overrides of the tier's limits, set by platform staff.")

    # Schemas are created by provisioning (cloned) and dropped only on an explicit delete.
    auto_create_schema = True
    auto_drop_schema = True

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Domain(DomainMixin):
    """A host name an instance answers on (`alpha.localhost`, `beta.example.com`)."""

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain
