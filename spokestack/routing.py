"""Websocket routes. Apps add theirs here; nothing else imports the consumers."""

from django.urls import path

from agents.consumers import RunEventsConsumer

from .consumers import InstanceEventsConsumer

websocket_urlpatterns = [
    path("ws/events/", InstanceEventsConsumer.as_asgi()),
    path("ws/runs/<str:run_id>/", RunEventsConsumer.as_asgi()),
]
