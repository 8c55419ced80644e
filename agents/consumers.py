"""`ws/runs/<id>/`: the same events as the SSE endpoint, with the same replay-from-seq rule
(`?after=<seq>`). The socket closes after the terminal event.

The socket ends early, with a last message saying why, then a close code:

* the database stays unreachable (agents/streaming.py): `{"type": "reconnect", "reason":
  "unavailable", "last_seq", "dependency", "message"}`, close 1013 ("try again later", RFC 6455's
  registry): reconnect with `?after=<last_seq>` in a few seconds. A connection that cannot look
  the run up for the same reason is accepted and closed with that code at once;
* the socket lived STREAM_MAX_SECONDS: `{"type": "reconnect", "reason": "max_lifetime", ...}`,
  close 4000: reconnect now with `?after=<last_seq>`;
* the viewer's token was revoked or expired, their session ended or their account was
  deactivated (close 4401), or they lost their role or their access to the run (close 4403):
  `{"type": "error", "code", "message", "last_seq"}`, within STREAM_RECHECK_SECONDS;
* the user already holds STREAM_MAX_PER_USER streams and sockets: accepted, `{"type": "error",
  "code": "throttled", ...}`, close 4429.

A handshake is refused like the API's `GET /api/v1/agent/runs/<id>/events`: a role that may not see
runs (policy `run.view`) gets `{"type": "error", "code": "forbidden", ...}` and close 4403; a run
the user does not see (another client's included) close 4404, as if it did not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from spokestack.accounts import policy
from spokestack.errors import NotAllowed, NotFound
from spokestack.outages import DEPENDENCY_ERRORS, dependency_of
from spokestack.realtime import (
    WS_CLOSE_FORBIDDEN,
    WS_CLOSE_RECONNECT,
    WS_CLOSE_TRY_AGAIN_LATER,
    WS_CLOSE_UNAUTHENTICATED,
    StreamViewer,
    TooManyStreams,
    forbidden,
    instance_sync_to_async,
)

from .streaming import StreamExpired, StreamInterrupted, StreamRefused, run_event_stream

WS_CLOSE_NOT_FOUND = 4404
WS_CLOSE_BAD_REQUEST = 4400


def _visible_run(user, run_id: str):
    """The run, asked as the API asks it: policy `run.view` for the role (NotAllowed: 4403), then
    the run among those the user sees (NotFound: 4404, also for another client's run)."""
    from .selectors import run_get

    policy.require(user, "run.view")
    return run_get(actor=user, run_id=run_id)


class RunEventsConsumer(AsyncJsonWebsocketConsumer):
    viewer: StreamViewer | None = None
    pump: asyncio.Task | None = None

    async def connect(self) -> None:
        user, instance = self.scope["user"], self.scope["instance"]
        if not user.is_authenticated:
            await self.close(code=WS_CLOSE_UNAUTHENTICATED)
            return
        run_id = self.scope["url_route"]["kwargs"]["run_id"]
        try:
            run = await instance_sync_to_async(instance)(_visible_run)(user, run_id)
        except NotAllowed as exc:
            await self.accept()  # so that the client gets the reason, not a bare 403
            await self.send_json(forbidden(exc.message).as_dict())
            await self.close(code=WS_CLOSE_FORBIDDEN)
            return
        except NotFound:
            await self.close(code=WS_CLOSE_NOT_FOUND)
            return
        except DEPENDENCY_ERRORS as exc:
            if dependency_of(exc) is None:
                raise
            # Accepted first: a handshake refused before it is accepted reaches the client as a
            # bare HTTP 403, which does not say "try again".
            await self.accept()
            await self.close(code=WS_CLOSE_TRY_AGAIN_LATER)
            return
        after = parse_qs(self.scope.get("query_string", b"").decode()).get("after", ["0"])[0]
        if not after.isdigit():
            await self.close(code=WS_CLOSE_BAD_REQUEST)
            return
        try:
            self.viewer = await instance_sync_to_async(instance)(StreamViewer.open)(
                user=user, credentials=self.scope.get("credentials"))
        except TooManyStreams as exc:
            await self.accept()  # so that the client gets the reason and the code, not a bare 403
            await self.send_json(exc.refusal.as_dict())
            await self.close(code=exc.refusal.close_code)
            return
        await self.accept()
        self.pump = asyncio.create_task(self._pump(instance, str(run.pk), int(after)))

    async def _pump(self, instance, run_id: str, after: int) -> None:
        async for event in run_event_stream(instance=instance, run_id=run_id, after_seq=after, viewer=self.viewer):
            if isinstance(event, StreamInterrupted | StreamExpired):
                await self.send_json(event.as_dict(resume=f"?after={event.last_seq}"))
                await self.close(code=WS_CLOSE_TRY_AGAIN_LATER if isinstance(event, StreamInterrupted)
                                 else WS_CLOSE_RECONNECT)
                return
            if isinstance(event, StreamRefused):
                await self.send_json(event.as_dict())
                await self.close(code=event.refusal.close_code)
                return
            if event is not None:
                await self.send_json(event.as_dict())
        await self.close()

    async def disconnect(self, code) -> None:
        pump = self.pump
        if pump is not None and not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        if self.viewer is not None:
            await instance_sync_to_async(self.scope["instance"])(self.viewer.release)()
