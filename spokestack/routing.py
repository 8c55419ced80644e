"""Websocket routes. Apps add theirs here; nothing else imports the consumers."""

from django.urls import path

from .consumers import InstanceEventsConsumer

websocket_urlpatterns = [
    path("ws/events/", InstanceEventsConsumer.as_asgi()),
]
