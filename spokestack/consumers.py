"""Instance-wide live events (`ws/events/`): run status changes, pending approvals, notifications.

A client picks topics; the group names are built from the handshake's instance, so a client on
one instance's host can never join a group of another.
"""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .realtime import WS_CLOSE_UNAUTHENTICATED, group_name

EVENT_TOPICS = {"runs", "approvals", "notifications"}


class InstanceEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        if not self.scope["user"].is_authenticated:
            await self.close(code=WS_CLOSE_UNAUTHENTICATED)
            return
        self.schema = self.scope["instance"].schema_name
        self.joined: set[str] = set()
        await self.accept()

    async def receive_json(self, content, **kwargs) -> None:
        topic = content.get("subscribe") if isinstance(content, dict) else None
        if topic not in EVENT_TOPICS:
            await self.send_json({"error": f"Unknown topic {topic!r}; choose one of {sorted(EVENT_TOPICS)}."})
            return
        group = group_name(self.schema, topic)
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.add(group)
        await self.send_json({"subscribed": topic})

    async def disconnect(self, code) -> None:
        for group in getattr(self, "joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def instance_event(self, message: dict) -> None:
        await self.send_json({"topic": message["topic"], "data": message["data"]})
