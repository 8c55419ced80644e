"""Event webhooks in the instance admin: subscriptions (the secret shown once, a Rotate secret
button, the reason a disabled one was turned off) and the delivery log (every attempt, with what the
receiver answered; Redeliver). Every write goes through spokestack/webhooks/services.py."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from spokestack.admin_site import InstanceModelAdmin, instance_admin
from spokestack.errors import DomainError

from . import services
from .events import CATALOGUE, EVENT_TYPES
from .models import WebhookDelivery, WebhookSubscription


class SubscriptionForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        choices=[(name, f"{name} — {CATALOGUE[name].description}") for name in EVENT_TYPES],
        help_text="The events this URL receives (payloads and examples: the README's event catalogue).")
    url = forms.URLField(max_length=500, assume_scheme="https",
                         help_text="Receives a POST signed per Standard Webhooks for each event. Private and "
                                   "metadata addresses are refused.")

    class Meta:
        model = WebhookSubscription
        fields = ["url", "description", "event_types", "enabled"]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            services._vetted_url(cleaned.get("url"))
        except DomainError as exc:
            self.add_error("url", exc.message)
        return cleaned


@admin.register(WebhookSubscription, site=instance_admin)
class WebhookSubscriptionAdmin(InstanceModelAdmin):
    view_action = "webhook.view"
    add_action = change_action = delete_action = "webhook.manage"
    form = SubscriptionForm
    list_display = ["receiver", "events", "state", "delivered_24h", "failed_24h"]
    list_filter = ["enabled"]
    search_fields = ["url", "description"]
    readonly_fields = ["disabled_reason", "failing_since", "created_by", "created_at", "recent_deliveries"]

    def get_fieldsets(self, request, obj=None):
        main = (None, {"fields": ["url", "description", "event_types", "enabled"]})
        if obj is None:
            return [main]
        return [main, ("State", {"fields": ["disabled_reason", "failing_since", "created_by", "created_at"]}),
                ("Latest deliveries", {"fields": ["recent_deliveries"]})]

    def get_queryset(self, request):
        since = timezone.now() - timezone.timedelta(hours=24)
        return super().get_queryset(request).annotate(
            ok_24h=Count("deliveries", filter=Q(deliveries__status="succeeded", deliveries__created_at__gte=since)),
            failed_24h=Count("deliveries", filter=Q(deliveries__status="failed", deliveries__created_at__gte=since)))

    @admin.display(description="Receiver", ordering="url")
    def receiver(self, subscription):
        if subscription.description:
            return format_html("{}<br><small>{}</small>", subscription.description, subscription.url)
        return subscription.url

    @admin.display(description="Events")
    def events(self, subscription):
        return ", ".join(subscription.event_types)

    @admin.display(description="State")
    def state(self, subscription):
        if not subscription.enabled:
            return format_html('<span style="color:#ba2121">Disabled</span> {}', subscription.disabled_reason)
        if subscription.failing_since:
            return format_html('<span style="color:#b26b00">Failing since {}</span>',
                               subscription.failing_since.strftime("%Y-%m-%d %H:%M"))
        return "OK"

    @admin.display(description="OK · 24 h", ordering="ok_24h")
    def delivered_24h(self, subscription):
        return subscription.ok_24h

    @admin.display(description="Failed · 24 h", ordering="failed_24h")
    def failed_24h(self, subscription):
        return subscription.failed_24h

    @admin.display(description="")
    def recent_deliveries(self, subscription):
        rows = subscription.deliveries.select_related("event").order_by("-created_at")[:10]
        if not rows:
            return "None yet."
        url = reverse("instance_admin:webhooks_webhookdelivery_changelist")
        return format_html('{}<p><a href="{}?subscription__id__exact={}">All deliveries</a></p>', format_html_join(
            "", '<div><a href="{}">{}</a> · {} · {} attempt(s){}</div>',
            ((reverse("instance_admin:webhooks_webhookdelivery_change", args=[d.pk]), d.event.type,
              d.get_status_display(), d.attempts, f" · HTTP {d.last_status_code}" if d.last_status_code else "")
             for d in rows)), url, subscription.pk)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = services.subscription_update(actor=request.user, subscription_id=obj.pk, url=data["url"],
                                                 event_types=list(data["event_types"]),
                                                 description=data["description"], enabled=data["enabled"])
        else:
            saved, secret = services.subscription_create(actor=request.user, url=data["url"],
                                                         event_types=list(data["event_types"]),
                                                         description=data["description"])
            if not data["enabled"]:
                services.subscription_update(actor=request.user, subscription_id=saved.pk, enabled=False)
            messages.warning(request, f"Signing secret of {saved.url} (shown once; give it to the receiver to verify "
                                      f"the webhook-signature header): {secret}")
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.subscription_delete(actor=request.user, subscription_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for subscription in queryset:
            services.subscription_delete(actor=request.user, subscription_id=subscription.pk)

    def get_urls(self):
        return [path("<int:subscription_id>/rotate-secret/", self.policy_view(self.rotate_view, "webhook.manage"),
                     name="webhooks_webhooksubscription_rotate"), *super().get_urls()]

    def rotate_view(self, request, subscription_id: int):
        change = reverse("instance_admin:webhooks_webhooksubscription_change", args=[subscription_id])
        if request.method != "POST":
            return HttpResponseRedirect(change)
        secret = services.subscription_rotate_secret(actor=request.user, subscription_id=subscription_id)
        messages.warning(request, f"New signing secret (shown once; deliveries are signed with it from now on): "
                                  f"{secret}")
        return HttpResponseRedirect(change)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and self.allows(request, "webhook.manage"):
            context["rotate_url"] = reverse("instance_admin:webhooks_webhooksubscription_rotate", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)

    change_form_template = "admin/webhooks/subscription_change_form.html"


@admin.register(WebhookDelivery, site=instance_admin)
class WebhookDeliveryAdmin(InstanceModelAdmin):
    view_action = "webhook.view"
    add_action = delete_action = "webhook.manage"
    change_action = "webhook.manage"
    list_display = ["created_at", "event_type", "subscription", "status", "attempts", "last_status_code",
                    "next_attempt_at", "last_error"]
    list_filter = ["status", "event__type", "subscription"]
    list_select_related = ["event", "subscription"]
    actions = ["redeliver"]
    readonly_fields = ["event_id_", "event_type", "subscription", "status", "attempts", "next_attempt_at",
                       "last_status_code", "last_error", "created_at", "ended_at", "attempt_log", "payload"]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):  # the log is read-only; Redeliver is the action
        return False

    def has_delete_permission(self, request, obj=None):  # a record of what was sent: it goes with its webhook
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.allows(request, "webhook.manage"):
            actions.pop("redeliver", None)
        return actions

    @admin.display(description="Event", ordering="event__type")
    def event_type(self, delivery):
        return delivery.event.type

    @admin.display(description="webhook-id")
    def event_id_(self, delivery):
        return format_html("<code>{}</code>", delivery.event_id)

    @admin.display(description="Attempts")
    def attempt_log(self, delivery):
        attempts = list(delivery.attempt_log.all())
        if not attempts:
            return "None yet."
        return format_html("<table><tr><th>#</th><th>When</th><th>Answer</th><th>Latency</th><th>Response</th>"
                           "</tr>{}</table>", format_html_join(
                               "", "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{} ms</td><td><code>{}</code></td></tr>",
                               ((a.number, " (redelivery)" if a.manual else "", a.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                                 f"HTTP {a.status_code}" if a.status_code else (a.error or "no answer"),
                                 f"{a.latency_ms:.0f}", a.response_excerpt or a.error) for a in attempts)))

    @admin.display(description="Body sent")
    def payload(self, delivery):
        return format_html("<pre>{}</pre>", json.dumps(delivery.event.payload, indent=2, ensure_ascii=False))

    @admin.action(description="Redeliver the selected deliveries (same webhook-id)")
    def redeliver(self, request, queryset):
        self.require(request, "webhook.manage")
        sent, refused = 0, []
        for delivery in queryset:
            try:
                services.delivery_redeliver(actor=request.user, delivery_id=delivery.pk)
                sent += 1
            except DomainError as exc:
                refused.append(f"{delivery.event.type}: {exc.message}")
        if sent:
            messages.success(request, f"{sent} delivery(ies) queued to be sent again.")
        for message in refused:
            messages.error(request, message)
