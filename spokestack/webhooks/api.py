"""`/api/v1/webhooks`: event webhooks (policy `webhook.view` to read, `webhook.manage` to change).

GET/POST /webhooks · GET/PATCH/DELETE /webhooks/{id} · POST /webhooks/{id}/rotate-secret ·
GET /webhooks/{id}/deliveries · GET /webhook-deliveries/{id} (with every attempt) ·
POST /webhook-deliveries/{id}/redeliver · GET /webhooks/event-types (each type's schema and example).
The secret is in the answer of the create and of a rotation only.
"""

from __future__ import annotations

import uuid

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from spokestack.api.pagination import Pagination
from spokestack.api.params import choice_param
from spokestack.api.views import InstanceApiView, validated_body
from spokestack.errors import NotFound

from . import services
from .events import CATALOGUE, EVENT_TYPES
from .models import DeliveryStatus, WebhookDelivery, WebhookSubscription

VIEW, MANAGE = services.VIEW, services.MANAGE


class SubscriptionSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "description", "event_types", "enabled", "disabled_reason", "failing_since",
                  "created_at", "updated_at"]


class CreatedSubscriptionSerializer(SubscriptionSerializer):
    secret = serializers.CharField(help_text="whsec_ secret to verify signatures with; shown this once.")

    class Meta(SubscriptionSerializer.Meta):
        fields = [*SubscriptionSerializer.Meta.fields, "secret"]


class SubscriptionInputSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, help_text="https URL receiving a signed POST per event.")
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=list(EVENT_TYPES)), allow_empty=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)


class SubscriptionPatchSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, required=False)
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=list(EVENT_TYPES)), allow_empty=False,
                                        required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False, help_text="true re-enables it and sends what waited.")


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField()


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status_code = serializers.IntegerField(allow_null=True)
    ok = serializers.BooleanField()
    latency_ms = serializers.FloatField()
    response_excerpt = serializers.CharField()
    error = serializers.CharField()
    manual = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class DeliverySerializer(serializers.ModelSerializer):
    webhook_id = serializers.CharField(source="event_id", help_text="The webhook-id header of every attempt.")
    event_type = serializers.CharField(source="event.type")
    subscription_id = serializers.IntegerField()

    class Meta:
        model = WebhookDelivery
        fields = ["id", "webhook_id", "event_type", "subscription_id", "status", "attempts", "last_status_code",
                  "last_error", "next_attempt_at", "created_at", "ended_at"]


class DeliveryDetailSerializer(DeliverySerializer):
    payload = serializers.JSONField(source="event.payload", help_text="The body sent.")
    attempt_log = AttemptSerializer(many=True)

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "payload", "attempt_log"]


class EventTypeSerializer(serializers.Serializer):
    type = serializers.CharField()
    description = serializers.CharField()
    schema = serializers.JSONField()
    example = serializers.JSONField()


def _subscription(subscription_id: int) -> WebhookSubscription:
    subscription = WebhookSubscription.objects.filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound("No such event webhook.", details={"subscription_id": subscription_id})
    return subscription


class SubscriptionListView(InstanceApiView):
    action = {"get": VIEW, "post": MANAGE}

    @extend_schema(responses=SubscriptionSerializer(many=True), summary="The instance's event webhooks.")
    def get(self, request):
        return Response(SubscriptionSerializer(WebhookSubscription.objects.all(), many=True).data)

    @extend_schema(request=SubscriptionInputSerializer, responses={201: CreatedSubscriptionSerializer},
                   summary="Subscribe a URL to events; the answer carries its secret, this once.")
    def post(self, request):
        data = validated_body(SubscriptionInputSerializer, request.data)
        subscription, secret = services.subscription_create(actor=request.user, url=data["url"],
                                                            event_types=data["event_types"],
                                                            description=data.get("description", ""))
        return Response({**SubscriptionSerializer(subscription).data, "secret": secret}, status=201)


class SubscriptionDetailView(InstanceApiView):
    action = {"get": VIEW, "patch": MANAGE, "delete": MANAGE}

    @extend_schema(responses=SubscriptionSerializer, summary="One event webhook.")
    def get(self, request, subscription_id: int):
        return Response(SubscriptionSerializer(_subscription(subscription_id)).data)

    @extend_schema(request=SubscriptionPatchSerializer, responses=SubscriptionSerializer,
                   summary="Change its URL, events, description, or enable / disable it.")
    def patch(self, request, subscription_id: int):
        data = validated_body(SubscriptionPatchSerializer, request.data)
        _subscription(subscription_id)
        subscription = services.subscription_update(actor=request.user, subscription_id=subscription_id, **data)
        return Response(SubscriptionSerializer(subscription).data)

    @extend_schema(responses={204: None}, summary="Delete it (its deliveries and their log go with it).")
    def delete(self, request, subscription_id: int):
        services.subscription_delete(actor=request.user, subscription_id=subscription_id)
        return Response(status=204)


class SubscriptionRotateView(InstanceApiView):
    action = {"post": MANAGE}

    @extend_schema(request=None, responses=SecretSerializer, summary="A new secret, shown this once.")
    def post(self, request, subscription_id: int):
        _subscription(subscription_id)
        return Response({"secret": services.subscription_rotate_secret(actor=request.user,
                                                                       subscription_id=subscription_id)})


class SubscriptionDeliveriesView(InstanceApiView):
    action = {"get": VIEW}
    pagination_class = Pagination

    @extend_schema(responses=DeliverySerializer(many=True), summary="Its deliveries, newest first (?status=).")
    def get(self, request, subscription_id: int):
        _subscription(subscription_id)
        deliveries = WebhookDelivery.objects.filter(subscription_id=subscription_id).select_related("event")
        status = choice_param(request.query_params, "status", DeliveryStatus.values)
        if status:
            deliveries = deliveries.filter(status=status)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(deliveries.order_by("-created_at"), request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)


def _delivery(delivery_id: str) -> WebhookDelivery:
    try:
        uuid.UUID(str(delivery_id))
    except ValueError:
        raise NotFound("No such delivery.", details={"delivery_id": str(delivery_id)}) from None
    delivery = (WebhookDelivery.objects.select_related("event").prefetch_related("attempt_log")
                .filter(pk=delivery_id).first())
    if delivery is None:
        raise NotFound("No such delivery.", details={"delivery_id": str(delivery_id)})
    return delivery


class DeliveryDetailView(InstanceApiView):
    action = {"get": VIEW}

    @extend_schema(responses=DeliveryDetailSerializer, summary="One delivery, its body and every attempt.")
    def get(self, request, delivery_id: str):
        return Response(DeliveryDetailSerializer(_delivery(delivery_id)).data)


class DeliveryRedeliverView(InstanceApiView):
    action = {"post": MANAGE}

    @extend_schema(request=None, responses={202: DeliverySerializer},
                   summary="Send it again now, with the same webhook-id.")
    def post(self, request, delivery_id: str):
        delivery = services.delivery_redeliver(actor=request.user, delivery_id=_delivery(delivery_id).pk)
        return Response(DeliverySerializer(_delivery(delivery.pk)).data, status=202)


class EventTypesView(InstanceApiView):
    action = {"get": VIEW}

    @extend_schema(responses=EventTypeSerializer(many=True), summary="Every event type: its body's schema and an example.")
    def get(self, request):
        return Response([{"type": e.name, "description": e.description, "schema": e.schema(),
                          "example": {"type": e.name, "timestamp": "2026-12-02T10:00:09.123456+00:00",
                                      "data": e.example}} for e in CATALOGUE.values()])


urlpatterns = [
    path("webhooks", SubscriptionListView.as_view(), name="webhooks"),
    path("webhooks/event-types", EventTypesView.as_view(), name="webhook-event-types"),
    path("webhooks/<int:subscription_id>", SubscriptionDetailView.as_view(), name="webhook"),
    path("webhooks/<int:subscription_id>/rotate-secret", SubscriptionRotateView.as_view(), name="webhook-rotate"),
    path("webhooks/<int:subscription_id>/deliveries", SubscriptionDeliveriesView.as_view(), name="webhook-deliveries"),
    path("webhook-deliveries/<str:delivery_id>", DeliveryDetailView.as_view(), name="webhook-delivery"),
    path("webhook-deliveries/<str:delivery_id>/redeliver", DeliveryRedeliverView.as_view(),
         name="webhook-delivery-redeliver"),
]
