"""Event webhooks: subscriptions, the events they were sent, and every attempt (issue #21).

An event is written in the transaction of the change it reports (`webhook_emit`), with one
`WebhookDelivery` per subscription that wants it: the outbox. A Celery task sends each delivery
once it has committed; the beat sweep sends any whose task was lost. Every attempt is kept
(`WebhookAttempt`), so the admin and the API show what the receiver answered each time.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from spokestack.secrets import EncryptedSecretField


class WebhookSubscription(models.Model):
    url = models.URLField(max_length=500, help_text="Receives a signed POST (Standard Webhooks) for each event.")
    description = models.CharField(max_length=200, blank=True)
    event_types = ArrayField(models.CharField(max_length=40), default=list,
                             help_text="The event types it receives (see the catalogue in the README).")
    secret = EncryptedSecretField(help_text="whsec_ secret the receiver verifies signatures with; shown once.")
    previous_secret = EncryptedSecretField(help_text="The secret before the last rotation, still signed with "
                                                     "until previous_secret_until.")
    previous_secret_until = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False,
                                         help_text="The first failed attempt since its last success.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["url", "id"]
        verbose_name = "event webhook"

    def __str__(self) -> str:
        return self.description or self.url


class WebhookEvent(models.Model):
    """One event as sent: `id` is the `webhook-id` every delivery and retry of it carries."""

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    type = models.CharField(max_length=40, db_index=True)
    client_id = models.BigIntegerField(null=True, blank=True)
    payload = models.JSONField(help_text="The body sent: {type, timestamp, data}.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True,
                                           help_text="When the next attempt is due (none once it ended).")
    locked_until = models.DateTimeField(null=True, blank=True, editable=False,
                                        help_text="An attempt is under way until then.")
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["subscription", "event"], name="webhook_delivery_once")]
        indexes = [models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"),
                                name="webhook_delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.subscription}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    latency_ms = models.FloatField(default=0)
    response_excerpt = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)
    manual = models.BooleanField(default=False, help_text="A redelivery someone asked for.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_once")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
