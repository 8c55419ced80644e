"""API tokens. Users, groups and guardian's object permissions live in each instance's schema."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A bearer token for API clients (ERP, scripts), scoped to one user of one instance.

    Only a SHA-256 digest is stored: the token itself is shown once, when it is created, and a
    leaked database row cannot be replayed. Tokens live in the instance's schema, so a token of
    one instance is unknown on every other instance's host.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What uses this token, e.g. 'ERP sync'.")
    prefix = models.CharField(max_length=12, editable=False, help_text="First characters, to recognise the token.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
