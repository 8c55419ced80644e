"""Outbound event webhooks: subscriptions, emitting events, delivering them (issue #21, DESIGN §15).

**Emitting.** `webhook_emit(type, data)` is called by each app where the change it reports is
written, inside that transaction: one statement writes the event and a delivery per enabled
subscription that wants the type (nothing at all when none does), so an event exists exactly when
its change committed. After the commit a Celery task is queued per delivery; the beat sweep
(`webhooks.sweep`) sends those whose task was lost (the broker was down, the worker died).

**Delivering.** An attempt first claims the delivery in the database (a conditional update: due,
pending, not under way), so a duplicate task or a second worker never sends it twice at once; it
POSTs the event through the egress client, signed per Standard Webhooks with the subscription's
secret, with the event's id as `webhook-id` on every attempt (the receiver's idempotency key).
Every attempt is logged (status, latency, an excerpt of the answer). A 2xx ends the delivery; a
410 Gone ends it and disables the subscription; anything else is tried again on the Standard
Webhooks schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each ±10 %), then given up. A
subscription that has failed for `WEBHOOK_DISABLE_AFTER_S` (a day) with no success in between is
disabled; both disablings notify the instance's admins by e-mail. Re-enabling it sends what waited.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import connection, transaction
from django.utils import timezone

from spokestack import metrics
from spokestack.accounts import policy
from spokestack.db import execute_prepared
from spokestack.egress import EgressClient, EgressError, EgressHTTPError, EgressRefused, default_client, vet_url
from spokestack.errors import Conflict, InvalidInput, NotFound
from spokestack.secrets import EncryptedSecret, SecretDecryptionError
from tuning import audit
from tuning.models import Entity, Tier

from .events import CATALOGUE, EVENT_TYPES
from .models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookSubscription

logger = logging.getLogger(__name__)

VIEW, MANAGE = "webhook.view", "webhook.manage"
EXCERPT_CHARS = 500
MAX_SUBSCRIPTIONS = 50


def retry_schedule() -> list[float]:
    """Seconds to wait after each failed attempt (the Standard Webhooks schedule unless configured)."""
    return [float(s) for s in settings.WEBHOOK_RETRY_SCHEDULE]


def max_attempts() -> int:
    return len(retry_schedule()) + 1


def retry_delay(attempts_made: int) -> float | None:
    """The wait before the next attempt after `attempts_made` attempts, jittered ±10 %; None: give up."""
    schedule = retry_schedule()
    if attempts_made > len(schedule):
        return None
    return schedule[attempts_made - 1] * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not a secret


# --- subscriptions -------------------------------------------------------------------------------


def _event_types(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"event_types: give a non-empty list of event types, among {', '.join(EVENT_TYPES)}.",
                           details={"event_types": ["a non-empty list of event types"]})
    unknown = sorted(set(value) - set(CATALOGUE))
    if unknown:
        raise InvalidInput(f"event_types: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not an event "
                           f"type; choose among {', '.join(EVENT_TYPES)}.", details={"event_types": unknown})
    return sorted(set(value), key=EVENT_TYPES.index)


def _vetted_url(url: Any) -> str:
    """The URL, refused (400) when the egress policy would refuse to send to it (a private address,
    a cloud metadata address, a non-http scheme, credentials in it) — the same check as each send."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("url: give the https URL that receives the events.", details={"url": ["required"]})
    url = url.strip()
    if len(url) > 500:
        raise InvalidInput("url: at most 500 characters.", details={"url": ["too long"]})
    try:
        vet_url(url, resolver=None)  # its form and literal addresses; names are resolved (and checked) at each send
    except EgressRefused as exc:
        raise InvalidInput(f"url: {exc.message}", details={"url": [exc.reason]}) from None
    except EgressError as exc:
        raise InvalidInput(f"url: {exc.message}", details={"url": ["refused"]}) from None
    return url


def _record(actor, subscription: WebhookSubscription, action: str, field: str = "", old: Any = None,
            new: Any = None) -> None:
    audit.record(actor=actor, tier=Tier.INSTANCE, entity=Entity.WEBHOOK_SUBSCRIPTION, entity_id=subscription.pk,
                 action=action, field=field, old=old, new=new)


def _snapshot(subscription: WebhookSubscription) -> dict[str, Any]:
    return {"url": subscription.url, "description": subscription.description,
            "event_types": list(subscription.event_types), "enabled": subscription.enabled}


@transaction.atomic
def subscription_create(*, actor: AbstractUser | None, url: Any, event_types: Any,
                        description: str = "") -> tuple[WebhookSubscription, str]:
    """A new subscription and its `whsec_` secret (shown this once: only its encrypted form is kept)."""
    from skills.signing import new_webhook_secret

    policy.require(actor, MANAGE)
    if WebhookSubscription.objects.count() >= MAX_SUBSCRIPTIONS:
        raise Conflict(f"An instance has at most {MAX_SUBSCRIPTIONS} event webhooks; delete one first.")
    secret = new_webhook_secret()
    subscription = WebhookSubscription(url=_vetted_url(url), event_types=_event_types(event_types),
                                       description=str(description or "")[:200], created_by=actor)
    subscription.secret = EncryptedSecret.seal(secret, schema=connection.schema_name)
    subscription.save()
    _record(actor, subscription, "create", new=_snapshot(subscription))
    return subscription, secret


@transaction.atomic
def subscription_update(*, actor: AbstractUser | None, subscription_id: int, **changes: Any) -> WebhookSubscription:
    """Change the URL, event types, description or enabled; one audit entry per changed field.
    Enabling a disabled subscription clears why it was disabled and sends what waited."""
    policy.require(actor, MANAGE)
    subscription = WebhookSubscription.objects.select_for_update().filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound("No such event webhook.", details={"subscription_id": subscription_id})
    before = _snapshot(subscription)
    if "url" in changes:
        subscription.url = _vetted_url(changes["url"])
    if "event_types" in changes:
        subscription.event_types = _event_types(changes["event_types"])
    if "description" in changes:
        subscription.description = str(changes["description"] or "")[:200]
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise InvalidInput("enabled: true or false.", details={"enabled": ["not a boolean"]})
        if changes["enabled"] and not subscription.enabled:
            subscription.disabled_reason, subscription.failing_since = "", None
        subscription.enabled = changes["enabled"]
    subscription.save()
    after = _snapshot(subscription)
    for field, old in before.items():
        if after[field] != old:
            _record(actor, subscription, "update", field, old, after[field])
    if after["enabled"] and not before["enabled"]:
        due = list(subscription.deliveries.filter(status=DeliveryStatus.PENDING).values_list("pk", flat=True))
        WebhookDelivery.objects.filter(pk__in=due).update(next_attempt_at=timezone.now())
        _enqueue(due)
    return subscription


@transaction.atomic
def subscription_rotate_secret(*, actor: AbstractUser | None, subscription_id: int) -> str:
    """A new secret (shown once); deliveries from now on are signed with it, and for
    `WEBHOOK_ROTATION_OVERLAP_S` (a day) with the old one as well, in the same header."""
    from skills.signing import new_webhook_secret

    policy.require(actor, MANAGE)
    subscription = WebhookSubscription.objects.select_for_update().filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound("No such event webhook.", details={"subscription_id": subscription_id})
    secret = new_webhook_secret()
    # Deliveries carry both signatures for a day, so the receiver can switch without losing one.
    subscription.previous_secret = subscription.secret
    subscription.previous_secret_until = timezone.now() + timedelta(seconds=float(settings.WEBHOOK_ROTATION_OVERLAP_S))
    subscription.secret = EncryptedSecret.seal(secret, schema=connection.schema_name)
    subscription.save(update_fields=["secret", "previous_secret", "previous_secret_until", "updated_at"])
    _record(actor, subscription, "update", "secret", "(secret)", "(new secret)")
    return secret


@transaction.atomic
def subscription_delete(*, actor: AbstractUser | None, subscription_id: int) -> None:
    policy.require(actor, MANAGE)
    subscription = WebhookSubscription.objects.filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound("No such event webhook.", details={"subscription_id": subscription_id})
    _record(actor, subscription, "delete", old=_snapshot(subscription))
    subscription.delete()


@audit.rollback_handler(Entity.WEBHOOK_SUBSCRIPTION)
def _subscription_rollback(*, change: Any, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    """Undo one entry through the services above (so `webhook.manage` is asked again): a creation
    deletes the subscription, a field change sets the field back. A deleted subscription cannot be
    restored: its secret, which the receiver verifies, is not kept in the log."""
    subscription = WebhookSubscription.objects.filter(pk=int(change.entity_id)).first()
    if change.action == "delete" or subscription is None:
        raise InvalidInput(f"Entry #{change.pk}: a deleted event webhook cannot be restored: its secret is not kept "
                           "in the log, so its receiver could not verify it. Create it again with the settings in "
                           "the entry.", details={"audit_id": change.pk, "restore": change.old_value})
    if change.action == "create":
        subscription_delete(actor=actor, subscription_id=subscription.pk)
    elif change.field == "secret":
        raise InvalidInput(f"Entry #{change.pk}: a secret is never kept in the log; rotate it again instead.")
    else:
        current = _snapshot(subscription).get(change.field)
        if current != change.new_value:
            raise Conflict(f"The event webhook's {change.field} changed again after entry #{change.pk}; change it "
                           "directly instead.", details={"audit_id": change.pk, "current": current})
        subscription_update(actor=actor, subscription_id=subscription.pk, **{change.field: change.old_value})


# --- emitting ------------------------------------------------------------------------------------

# Records the event in `webhook_body` (a CTE of one row: its `payload`) for every subscription that
# wants its type, with a delivery each (`webhook_deliveries`): parameters `emit_params`. A statement
# that makes a change may emit its event itself (agents.services.run_finish).
EMIT_CTES = """
webhook_wanted AS (
    SELECT id FROM webhooks_webhooksubscription WHERE enabled AND %(webhook_type)s = ANY(event_types)
), webhook_event AS (
    INSERT INTO webhooks_webhookevent (id, type, client_id, payload, created_at)
    SELECT %(webhook_id)s, %(webhook_type)s, %(webhook_client)s, payload, now() FROM webhook_body
     WHERE EXISTS (SELECT FROM webhook_wanted)
 RETURNING id
), webhook_deliveries AS (
    INSERT INTO webhooks_webhookdelivery (id, subscription_id, event_id, status, attempts, next_attempt_at,
                                          last_error, created_at)
    SELECT gen_random_uuid(), webhook_wanted.id, webhook_event.id, 'pending', 0, now(), '', now()
      FROM webhook_wanted, webhook_event
 RETURNING id::text
)"""
_EMIT_SQL = f"""
WITH webhook_body AS (SELECT %(payload)s::jsonb AS payload), {EMIT_CTES}
SELECT id FROM webhook_deliveries
"""  # noqa: S608 - built from constants, not from input


def emit_params(event_type: str, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """EMIT_CTES' parameters for `event_type` with `data`, and the event as sent (its payload)."""
    if event_type not in CATALOGUE:
        raise ValueError(f"unknown event type {event_type!r}")
    payload = {"type": event_type, "timestamp": timezone.now().isoformat(), "data": data}
    return ({"webhook_id": f"msg_{uuid.uuid4().hex}", "webhook_type": event_type,
             "webhook_client": data.get("client_id")}, payload)


def webhook_emit(event_type: str, data: dict[str, Any]) -> list[str]:
    """Record `event_type` with `data` for every subscription that wants it, in the caller's
    transaction, and send it after the commit; also publish it on the instance websocket's `events`
    topic. Returns the new deliveries' ids. A failure is logged, never raised: an event must not
    fail the change it reports (the change stands; the event is lost, and the log says so)."""
    params, payload = emit_params(event_type, data)
    params["payload"] = json.dumps(payload, default=str)
    try:
        if connection.in_atomic_block:  # a savepoint: a failure leaves the caller's transaction usable
            with transaction.atomic():
                rows = execute_prepared(_EMIT_SQL, params)
        else:
            rows = execute_prepared(_EMIT_SQL, params)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.warning("could not record the %s event in %s", event_type, connection.schema_name, exc_info=True)
        rows = []
    return webhook_emitted([row[0] for row in rows], payload)


def webhook_emitted(deliveries: list[str], payload: dict[str, Any]) -> list[str]:
    """After a statement recorded an event (EMIT_CTES): send its deliveries once the transaction
    commits, and publish it to the instance's live viewers. Returns `deliveries`."""
    _enqueue(deliveries)
    schema = connection.schema_name
    transaction.on_commit(lambda: _publish(schema, payload), robust=True)
    return deliveries


def _publish(schema: str, payload: dict[str, Any]) -> None:
    from spokestack.realtime import publish_instance_event

    try:
        publish_instance_event(schema, "events", payload)
    except Exception:  # noqa: BLE001 - live viewers are a courtesy; the webhooks carry the event
        logger.warning("could not publish the %s event on the live channel", payload["type"], exc_info=True)


def _enqueue(delivery_ids: list[str], *, manual: bool = False) -> None:
    """Queue each delivery's attempt after the commit (the sweep sends it if the broker is down)."""
    if not delivery_ids:
        return
    from spokestack.tasks import enqueue_on_commit

    from .tasks import deliver

    for delivery_id in delivery_ids:
        enqueue_on_commit(deliver, delivery_id=str(delivery_id), **({"manual": True} if manual else {}))


# --- delivering ----------------------------------------------------------------------------------

_CLAIM_SQL = """
WITH claimed AS (
    UPDATE webhooks_webhookdelivery delivery
       SET attempts = delivery.attempts + 1, locked_until = clock_timestamp() + make_interval(secs => %(lock)s)
      FROM webhooks_webhooksubscription subscription
     WHERE delivery.id = %(id)s::uuid AND subscription.id = delivery.subscription_id AND subscription.enabled
       AND delivery.status = 'pending' AND delivery.next_attempt_at <= clock_timestamp()
       AND (delivery.locked_until IS NULL OR delivery.locked_until < clock_timestamp())
    RETURNING delivery.id, delivery.attempts
)
INSERT INTO webhooks_webhookattempt (delivery_id, number, status_code, ok, latency_ms, response_excerpt, error, manual,
                                     created_at)
SELECT id, attempts, NULL, false, 0, '', %(unfinished)s, %(manual)s, clock_timestamp() FROM claimed
RETURNING id, number
"""
UNFINISHED = "No answer recorded: the worker stopped during this attempt (it is made again with the same webhook-id)."


def delivery_attempt(*, delivery_id: str, manual: bool = False, egress: EgressClient | None = None) -> str:
    """Make the delivery's next attempt if it is due and nobody is making one; returns what came of
    it: "sent", "retry", "failed", or "skipped" (not due, under way, ended, or its subscription off)."""
    timeout = float(settings.WEBHOOK_TIMEOUT_S)
    # The claim logs the attempt at once: if this process dies mid-send, the log says so.
    rows = execute_prepared(_CLAIM_SQL, {"id": str(delivery_id), "lock": timeout * 3 + 10, "unfinished": UNFINISHED,
                                         "manual": manual})
    if not rows:
        return "skipped"
    attempt_id, number = rows[0]
    delivery = WebhookDelivery.objects.select_related("subscription", "event").get(pk=delivery_id)
    subscription, event = delivery.subscription, delivery.event
    ok, status_code, excerpt, error, latency = _send(subscription, event, timeout=timeout, egress=egress)
    now = timezone.now()
    with transaction.atomic():
        WebhookAttempt.objects.filter(pk=attempt_id).update(status_code=status_code, ok=ok, latency_ms=round(latency, 1),
                                                            response_excerpt=excerpt[:EXCERPT_CHARS], error=error[:500])
        update: dict[str, Any] = {"locked_until": None, "last_status_code": status_code, "last_error": error[:500]}
        if ok:
            update.update(status=DeliveryStatus.SUCCEEDED, next_attempt_at=None, ended_at=now)
            outcome = "sent"
        elif status_code == 410:
            update.update(status=DeliveryStatus.FAILED, next_attempt_at=None, ended_at=now)
            outcome = "failed"
        else:
            delay = retry_delay(number)
            if delay is None:
                update.update(status=DeliveryStatus.FAILED, next_attempt_at=None, ended_at=now)
                outcome = "failed"
            else:
                update.update(next_attempt_at=now + timedelta(seconds=delay))
                outcome = "retry"
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**update)
        if ok:
            WebhookSubscription.objects.filter(pk=subscription.pk, failing_since__isnull=False).update(
                failing_since=None)
        else:
            WebhookSubscription.objects.filter(pk=subscription.pk, failing_since__isnull=True).update(failing_since=now)
            if status_code == 410:
                _disable(subscription.pk, f"Its URL answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC: the receiver "
                                          "says it no longer exists.")
            else:
                _disable_if_failing_too_long(subscription.pk, now)
    metrics.webhook_attempted(event.type, outcome, latency / 1000)
    wait = (update["next_attempt_at"] - now).total_seconds() if outcome == "retry" else None
    if wait is not None and wait <= float(settings.WEBHOOK_COUNTDOWN_MAX_S):
        _retry_later(str(delivery.pk), wait)
    return outcome


def _send(subscription: WebhookSubscription, event: WebhookEvent, *, timeout: float,
          egress: EgressClient | None) -> tuple[bool, int | None, str, str, float]:
    """One signed POST: (ok, status code, answer excerpt, error, latency ms)."""
    from skills.signing import encode_payload, signature_headers

    body = encode_payload(event.payload)
    started = time.monotonic()
    try:
        secret = subscription.secret.reveal()
        overlap = subscription.previous_secret_until and subscription.previous_secret_until > timezone.now()
        also = (subscription.previous_secret.reveal(),) if overlap and subscription.previous_secret else ()
    except SecretDecryptionError as exc:
        return False, None, "", f"The subscription's secret cannot be read: {exc.message}", 0.0
    headers = {**signature_headers(secret, msg_id=event.pk, body=body, also=also), "content-type": "application/json"}
    secret = also = None  # noqa: F841 - drop the plaintext as soon as the signatures are made
    try:
        response = (egress or default_client()).request("POST", subscription.url, content=body, headers=headers,
                                                        follow_redirects=False, timeout=timeout)
    except EgressHTTPError as exc:
        latency = (time.monotonic() - started) * 1000
        return False, exc.status_code, _excerpt(exc.body), exc.message, latency
    except EgressError as exc:
        return False, None, "", exc.message, (time.monotonic() - started) * 1000
    return True, response.status_code, _excerpt(response.content), "", (time.monotonic() - started) * 1000


def _excerpt(body: bytes) -> str:
    return body[:EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def _retry_later(delivery_id: str, seconds: float) -> None:
    """Queue the next attempt with a countdown (short waits only: the sweep sends the long ones)."""
    from .tasks import deliver

    try:
        deliver.apply_async(kwargs={"delivery_id": delivery_id}, countdown=max(0.0, seconds))
    except Exception:  # noqa: BLE001 - the sweep sends it when it is due
        logger.warning("could not queue the retry of webhook delivery %s; the sweep will", delivery_id, exc_info=True)


def _disable_if_failing_too_long(subscription_id: int, now: datetime) -> None:
    limit = timedelta(seconds=float(settings.WEBHOOK_DISABLE_AFTER_S))
    since = WebhookSubscription.objects.filter(pk=subscription_id).values_list("failing_since", flat=True).first()
    if since is not None and now - since >= limit:
        hours = limit.total_seconds() / 3600
        _disable(subscription_id, f"Every delivery has failed since {since:%Y-%m-%d %H:%M} UTC ({hours:g} h or more "
                                  "with no success).")


def _disable(subscription_id: int, reason: str) -> None:
    """Disable the subscription (once: only the update that turns it off notifies)."""
    if not WebhookSubscription.objects.filter(pk=subscription_id, enabled=True).update(
            enabled=False, disabled_reason=reason[:300], updated_at=timezone.now()):
        return
    subscription = WebhookSubscription.objects.get(pk=subscription_id)
    _record(None, subscription, "update", "enabled", True, False)
    schema = connection.schema_name
    transaction.on_commit(lambda: _notify_disabled(schema, subscription_id, reason), robust=True)


def _notify_disabled(schema: str, subscription_id: int, reason: str) -> None:
    from django.contrib.auth import get_user_model
    from django.core.mail import send_mail
    from django_tenants.utils import schema_context

    try:
        with schema_context(schema):
            subscription = WebhookSubscription.objects.get(pk=subscription_id)
            admins = get_user_model().objects.filter(is_active=True, groups__name="instance_admin").exclude(email="")
            recipients = sorted({u.email for u in admins})
        logger.warning("event webhook %s of %s disabled: %s", subscription_id, schema, reason)
        if recipients:
            send_mail(subject=f"Event webhook disabled: {subscription}",
                      message=f"The event webhook {subscription.url} was disabled. {reason}\n\nEvents for it wait "
                              "as pending deliveries; enable it again in the admin (Event webhooks) once the "
                              "receiver works, and they are sent.", from_email=None, recipient_list=recipients)
    except Exception:  # noqa: BLE001 - a notification must not undo the disabling
        logger.warning("could not notify the admins of %s that webhook %s was disabled", schema, subscription_id,
                       exc_info=True)


@transaction.atomic
def delivery_redeliver(*, actor: AbstractUser | None, delivery_id: Any) -> WebhookDelivery:
    """Send a delivery again (one more attempt now, whatever came of it before), with the same
    webhook-id; 409 while an attempt is under way or its subscription is disabled."""
    policy.require(actor, MANAGE)
    try:
        uuid.UUID(str(delivery_id))
    except ValueError:
        raise NotFound("No such delivery.", details={"delivery_id": str(delivery_id)}) from None
    delivery = WebhookDelivery.objects.select_for_update().select_related("subscription").filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound("No such delivery.", details={"delivery_id": str(delivery_id)})
    if not delivery.subscription.enabled:
        raise Conflict("Its event webhook is disabled; enable it first.")
    if delivery.locked_until and delivery.locked_until > timezone.now():
        raise Conflict("An attempt is under way; wait for it to end.")
    # After the schedule ran out, the redelivery is one attempt (retry_delay gives up after it);
    # before, a failed redelivery goes on with the schedule.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.PENDING, next_attempt_at=timezone.now(),
                                                          ended_at=None)
    delivery.refresh_from_db()
    _enqueue([str(delivery.pk)], manual=True)
    return delivery


def deliveries_sweep(*, limit: int = 500) -> int:
    """Queue the due deliveries of the current instance whose task was lost (beat)."""
    due = list(WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now(), subscription__enabled=True)
        .exclude(locked_until__gt=timezone.now()).order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    from .tasks import deliver

    for delivery_id in due:
        deliver.apply_async(kwargs={"delivery_id": str(delivery_id)})
    return len(due)
