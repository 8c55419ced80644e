"""Live streams and sockets carry only what their viewer may see, for no longer than they may
(issue #13, found 3 and 6).

* `ws/events/` delivers an approval message only to viewers who may see its client;
* a revoked token, a deactivated user, a removed role or a withdrawn assignment ends a socket or
  an SSE stream within seconds, with a close code and a message that say why;
* a stream ends at its maximum lifetime with `reconnect` and the last seq;
* a user holds at most STREAM_MAX_PER_USER streams and sockets (429, or close 4429);
* idle streams hold no Redis connection or channel-layer subscription once their client left.

Everything goes through `spokestack.asgi.application` in this process (the websocket middleware,
Django's ASGI handler, the views), except the Redis measurement, which needs daphne's process.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
import uuid
from importlib import import_module
from urllib.parse import urlsplit

import psutil
import pytest
import redis
import websockets
from channels.testing import ApplicationCommunicator, WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client
from django_tenants.utils import schema_context

from agents.approvals import approval_request_create
from agents.models import AgentRun, ToolCall, ToolCallStatus
from agents.services import new_claim_token, run_claim, run_finish, run_write
from agents.tasks import notify_approvers, run_agent
from spokestack.accounts.models import ApiToken
from spokestack.accounts.services import api_token_create, api_token_revoke, user_create
from spokestack.asgi import application
from spokestack.realtime import StreamPlace
from tuning.services import client_assign, client_create, client_unassign

from ..conftest import run_async, wait_for
from ..processes import process_env, start_daphne, stop_process

RECHECK = 0.5  # STREAM_RECHECK_SECONDS in these tests
CLOSED_WITHIN = 3.0  # "within seconds": a few re-checks


# --- the instance, its people and their runs ---------------------------------------------


class Agency:
    """A committed instance with two clients (Desert Bloom, Dune Coffee), an account manager and a
    client contact of Desert Bloom, and an API token for each person."""

    def __init__(self, live_instance) -> None:
        self.instance = live_instance.instance
        self.schema = self.instance.schema_name
        self.host = self.instance.domains.get().domain
        with schema_context(self.schema):
            self.bloom = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
            self.dune = client_create(name="Dune Coffee", vertical="food", region="GCC", language="en")
            self.admin = live_instance.admin
            self.manager = user_create(email="am@bloom.example", password=None, role="account_manager")
            self.contact = user_create(email="contact@bloom.example", password=None, role="client_contact")
            client_assign(user=self.manager, client=self.bloom, role="account_manager")
            client_assign(user=self.contact, client=self.bloom, role="client_contact")
            self.tokens = {who: api_token_create(user=getattr(self, who), name="live").raw
                           for who in ("admin", "manager", "contact")}

    def revoke(self, who: str) -> None:
        with schema_context(self.schema):
            api_token_revoke(token=ApiToken.objects.get(user=getattr(self, who)))

    def unassign(self, who: str) -> None:
        role = {"manager": "account_manager", "contact": "client_contact"}[who]
        with schema_context(self.schema):
            client_unassign(user=getattr(self, who), client=self.bloom, role=role)

    def run(self, client=None) -> LiveRun:
        return LiveRun(self, client)

    def approval(self, client=None) -> str:
        """A gated call of a new run of `client` and its approval request, made by the service
        (which publishes it on commit)."""
        with schema_context(self.schema):
            run = AgentRun.objects.create(agent_type="copy", agent_version="1.0.0", task="Publish the post.",
                                          client=client)
            call = ToolCall.objects.create(run=run, tool_use_id=f"toolu_{uuid.uuid4().hex[:12]}", name="publish_post",
                                           input={"text": "Glow gently."}, status=ToolCallStatus.AWAITING_APPROVAL,
                                           idempotency_key=uuid.uuid4().hex)
            return str(approval_request_create(run=run, tool_call=call, rule="platform confirmation pattern "
                                                                             "'publish_*'").pk)


class LiveRun:
    """A run written the way a worker writes it."""

    def __init__(self, agency: Agency, client) -> None:
        self.schema = agency.schema
        self.worker = new_claim_token("stream-access-test")
        with schema_context(self.schema):
            created = AgentRun.objects.create(agent_type="copy", agent_version="1.0.0", task="Write a tagline.",
                                              client=client, created_by=agency.admin)
            self.row = run_claim(run_id=created.pk, worker=self.worker)
        self.id = str(self.row.pk)

    def write(self, *texts: str) -> int:
        with schema_context(self.schema):
            run_write(run=self.row, worker=self.worker, events=[("text.delta", {"text": text}) for text in texts])
        return self.row.last_seq

    def finish(self) -> int:
        with schema_context(self.schema):
            assert run_finish(run=self.row, status="succeeded", output="Done.")
        return self.row.last_seq


@pytest.fixture
def streams(settings):
    """Stream settings for these tests: re-checks every RECHECK seconds."""
    settings.STREAM_RECHECK_SECONDS = RECHECK
    settings.STREAM_MAX_SECONDS = 120.0
    settings.STREAM_MAX_PER_USER = 20
    return settings


@pytest.fixture
def agency(live_instance, streams, monkeypatch):
    # Tasks (a run's, the approvers' e-mail) are not queued for the worker of another test.
    monkeypatch.setattr(notify_approvers, "delay", lambda **kwargs: None)
    monkeypatch.setattr(run_agent, "apply_async", lambda **kwargs: None)
    return Agency(live_instance)


# --- clients of the ASGI application, in this process ------------------------------------


def ws_client(agency: Agency, path: str, who: str | None = "admin") -> WebsocketCommunicator:
    headers = [(b"host", agency.host.encode())]
    if who is not None:
        headers.append((b"authorization", f"Bearer {agency.tokens[who]}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def connected(agency: Agency, path: str, who: str = "admin") -> WebsocketCommunicator:
    ws = ws_client(agency, path, who)
    accepted, _ = await ws.connect(timeout=10)
    assert accepted
    return ws


async def subscribed(agency: Agency, who: str, topic: str = "approvals") -> tuple[WebsocketCommunicator, dict]:
    ws = await connected(agency, "/ws/events/", who)
    await ws.send_json_to({"subscribe": topic})
    return ws, await ws.receive_json_from(timeout=10)


async def messages_until_closed(ws: WebsocketCommunicator, timeout: float) -> tuple[list[dict], int, float]:
    """Every message up to the close frame: (messages, close code, when it closed)."""
    received = []
    while True:
        output = await ws.receive_output(timeout=timeout)
        if output["type"] == "websocket.close":
            return received, output.get("code", 1000), time.monotonic()
        received.append(json.loads(output["text"]))


async def nothing_within(ws: WebsocketCommunicator, seconds: float) -> bool:
    return await ws.receive_nothing(timeout=seconds, interval=0.05)


class Sse:
    """An SSE request through the whole ASGI application (middleware, tenant, DRF, the view)."""

    def __init__(self, agency: Agency, path: str, who: str = "admin", last_event_id: int | None = None,
                 method: str = "GET", body: dict | None = None) -> None:
        headers = [(b"host", agency.host.encode()), (b"authorization", f"Bearer {agency.tokens[who]}".encode()),
                   (b"accept", b"text/event-stream")]
        if last_event_id is not None:
            headers.append((b"last-event-id", str(last_event_id).encode()))
        self.body = json.dumps(body).encode() if body is not None else b""
        if body is not None:
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": headers, "client": ("127.0.0.1", 40000), "server": (agency.host, 80)}
        self.app = ApplicationCommunicator(application, scope)
        self.text = ""
        self.ended_at: float | None = None

    async def start(self) -> tuple[int, dict[str, str]]:
        await self.app.send_input({"type": "http.request", "body": self.body, "more_body": False})
        start = await self.app.receive_output(timeout=10)
        assert start["type"] == "http.response.start"
        return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}

    async def read(self, timeout: float) -> bool:
        """Read one chunk; False once the response ended."""
        message = await self.app.receive_output(timeout=timeout)
        self.text += message.get("body", b"").decode()
        if not message.get("more_body", False):
            self.ended_at = time.monotonic()
            return False
        return True

    async def read_to_end(self, timeout: float) -> list[tuple[str, str | None, dict]]:
        deadline = time.monotonic() + timeout
        while await self.read(timeout=max(0.1, deadline - time.monotonic())):
            pass
        return self.events()

    async def read_events(self, count: int, timeout: float = 10) -> list[tuple[str, str | None, dict]]:
        deadline = time.monotonic() + timeout
        while len(self.events()) < count and await self.read(timeout=max(0.1, deadline - time.monotonic())):
            pass
        return self.events()

    async def leave(self) -> None:
        await self.app.send_input({"type": "http.disconnect"})
        await self.app.wait(timeout=10)

    def events(self) -> list[tuple[str, str | None, dict]]:
        """(event, id, data) of every complete event."""
        found = []
        for block in self.text.split("\n\n")[:-1]:
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
            if "data" in fields:
                found.append((fields.get("event", "message"), fields.get("id"), json.loads(fields["data"])))
        return found


# --- what a socket carries ------------------------------------------------------------------


def test_approvals_reach_only_viewers_who_may_see_their_client(agency):
    async def scenario():
        admin, admin_ack = await subscribed(agency, "admin")
        manager, manager_ack = await subscribed(agency, "manager")
        contact, contact_ack = await subscribed(agency, "contact")
        assert admin_ack == manager_ack == {"subscribed": "approvals"}
        assert contact_ack == {"error": "Your role does not allow you to see approvals."}

        for_dune = await asyncio.to_thread(agency.approval, agency.dune)
        for_bloom = await asyncio.to_thread(agency.approval, agency.bloom)
        for_nobody = await asyncio.to_thread(agency.approval, None)

        to_admin = [(await admin.receive_json_from(timeout=5))["data"] for _ in range(3)]
        assert [m["approval_id"] for m in to_admin] == [for_dune, for_bloom, for_nobody]
        to_manager = (await manager.receive_json_from(timeout=5))["data"]
        assert (to_manager["approval_id"], to_manager["client_id"]) == (for_bloom, agency.bloom.pk)
        assert to_manager["pending"] == 1, "the pending count of Desert Bloom alone, not of the instance"
        assert await nothing_within(manager, 1.0), "neither Dune Coffee's request nor one without a client"
        assert await nothing_within(contact, 0.2), "a client contact sees no approval requests"

        # An assignment withdrawn: the next re-check narrows what the socket carries.
        await asyncio.to_thread(agency.unassign, "manager")
        await asyncio.sleep(RECHECK * 3)
        await asyncio.to_thread(agency.approval, agency.bloom)
        assert (await admin.receive_json_from(timeout=5))["data"]["client_id"] == agency.bloom.pk
        assert await nothing_within(manager, 1.0)
        for ws in (admin, manager, contact):
            await ws.disconnect()

    run_async(scenario())


def test_the_topics_nothing_published_on_are_gone_with_a_pointer(agency):
    async def scenario():
        ws = await connected(agency, "/ws/events/")
        for topic, pointer in (("runs", "ws/runs/<run_id>/"), ("notifications", "GET /api/v1/updates")):
            await ws.send_json_to({"subscribe": topic})
            answer = await ws.receive_json_from(timeout=5)
            assert f"There is no '{topic}' topic" in answer["error"] and pointer in answer["error"], answer
        await ws.disconnect()

    run_async(scenario())


# --- credentials and roles that stop counting ---------------------------------------------


def test_a_revoked_token_ends_its_sockets_and_streams_within_seconds(agency):
    run = agency.run(agency.bloom)
    seen = run.write("Glow", " gently")

    async def scenario():
        events, _ = await subscribed(agency, "admin")
        follower = await connected(agency, f"/ws/runs/{run.id}/")
        assert [(await follower.receive_json_from(timeout=5))["seq"] for _ in range(seen)] == list(range(1, seen + 1))
        sse = Sse(agency, f"/api/v1/agent/runs/{run.id}/events")
        assert (await sse.start())[0] == 200
        await sse.read_events(seen)

        await asyncio.to_thread(agency.revoke, "admin")
        revoked_at = time.monotonic()
        for ws in (events, follower):
            messages, code, closed_at = await messages_until_closed(ws, timeout=CLOSED_WITHIN + 2)
            assert code == 4401 and closed_at - revoked_at < CLOSED_WITHIN
            assert messages[-1]["type"] == "error" and messages[-1]["code"] == "not_authenticated"
            assert "the API token was revoked" in messages[-1]["message"]
        assert messages[-1]["last_seq"] == seen
        ended = await sse.read_to_end(timeout=CLOSED_WITHIN + 2)
        assert sse.ended_at - revoked_at < CLOSED_WITHIN
        assert ended[-1][0] == "error" and ended[-1][2]["code"] == "not_authenticated"
        assert "the API token was revoked" in ended[-1][2]["message"]

        refused = Sse(agency, f"/api/v1/agent/runs/{run.id}/events")
        assert (await refused.start())[0] == 401, "an EventSource that reconnects is refused, and stops"

    run_async(scenario())


def test_a_browser_socket_ends_when_its_session_does(agency):
    """The admin's live page authenticates with its session: signing out ends the socket."""
    run = agency.run(agency.bloom)
    run.write("Glow")
    with schema_context(agency.schema):
        browser = Client()
        browser.force_login(agency.admin)
        session_key = browser.cookies[settings.SESSION_COOKIE_NAME].value

    def sign_out() -> None:
        with schema_context(agency.schema):
            import_module(settings.SESSION_ENGINE).SessionStore(session_key).delete()

    async def scenario():
        ws = WebsocketCommunicator(application, f"/ws/runs/{run.id}/", headers=[
            (b"host", agency.host.encode()), (b"origin", f"http://{agency.host}".encode()),
            (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode())])
        assert (await ws.connect(timeout=10))[0]
        await ws.receive_json_from(timeout=5)
        await asyncio.to_thread(sign_out)
        messages, code, _ = await messages_until_closed(ws, timeout=CLOSED_WITHIN)
        assert code == 4401 and "the session ended" in messages[-1]["message"]

    run_async(scenario())


def test_a_removed_role_a_withdrawn_assignment_or_a_deactivated_user_ends_the_stream(agency):
    run = agency.run(agency.bloom)
    run.write("Glow")

    async def scenario():
        manager = await connected(agency, f"/ws/runs/{run.id}/", "manager")
        manager_events, _ = await subscribed(agency, "manager")
        contact = await connected(agency, f"/ws/runs/{run.id}/", "contact")
        await manager.receive_json_from(timeout=5)
        await contact.receive_json_from(timeout=5)

        def remove_role() -> None:
            with schema_context(agency.schema):
                agency.manager.groups.remove(Group.objects.get(name="account_manager"))

        await asyncio.to_thread(remove_role)
        for ws in (manager, manager_events):
            messages, code, _ = await messages_until_closed(ws, timeout=CLOSED_WITHIN)
            assert code == 4403 and messages[-1]["code"] == "forbidden"
            assert "no longer has a role" in messages[-1]["message"]

        await asyncio.to_thread(agency.unassign, "contact")
        messages, code, _ = await messages_until_closed(contact, timeout=CLOSED_WITHIN)
        assert code == 4403 and "may no longer see this run" in messages[-1]["message"]

        def deactivate() -> None:
            with schema_context(agency.schema):
                agency.admin.is_active = False
                agency.admin.save(update_fields=["is_active"])

        admin = await connected(agency, f"/ws/runs/{run.id}/", "admin")
        await admin.receive_json_from(timeout=5)
        await asyncio.to_thread(deactivate)
        messages, code, _ = await messages_until_closed(admin, timeout=CLOSED_WITHIN)
        assert code == 4401 and "the account was deactivated" in messages[-1]["message"]

    run_async(scenario())


# --- lifetime -------------------------------------------------------------------------------


def test_a_stream_ends_at_its_maximum_lifetime_with_reconnect_and_resumes_exactly(agency, streams):
    streams.STREAM_MAX_SECONDS = 1.5
    run = agency.run(agency.bloom)
    seen = run.write("Glow", " gently")

    async def scenario():
        opened = time.monotonic()
        sse = Sse(agency, f"/api/v1/agent/runs/{run.id}/events")
        assert (await sse.start())[0] == 200
        events = await sse.read_to_end(timeout=10)
        assert 1.4 <= sse.ended_at - opened < 4.0
        assert [data["seq"] for name, _, data in events[:-1]] == list(range(1, seen + 1))
        name, event_id, data = events[-1]
        assert (name, event_id, data["reason"], data["last_seq"]) == ("reconnect", str(seen), "max_lifetime", seen)
        assert f"Last-Event-ID: {seen}" in data["message"]

        follower = await connected(agency, f"/ws/runs/{run.id}/?after={seen - 1}")
        messages, code, _ = await messages_until_closed(follower, timeout=10)
        assert code == 4000
        assert [m["seq"] for m in messages[:-1]] == [seen]
        assert messages[-1] == {**messages[-1], "type": "reconnect", "reason": "max_lifetime", "last_seq": seen}
        assert f"?after={seen}" in messages[-1]["message"]

        events_socket, _ = await subscribed(agency, "admin")
        messages, code, _ = await messages_until_closed(events_socket, timeout=10)
        assert code == 4000 and messages[-1]["type"] == "reconnect"

        # The reconnect gets exactly the rest.
        await asyncio.to_thread(run.write, " this Ramadan.")
        last = await asyncio.to_thread(run.finish)
        rest = Sse(agency, f"/api/v1/agent/runs/{run.id}/events", last_event_id=seen)
        assert (await rest.start())[0] == 200
        assert [data["seq"] for _, _, data in await rest.read_to_end(timeout=10)] == list(range(seen + 1, last + 1))

    run_async(scenario())


# --- the per-user cap ----------------------------------------------------------------------


def test_a_user_holds_at_most_the_cap_of_streams_and_sockets(agency, streams):
    streams.STREAM_MAX_PER_USER = 2
    run = agency.run(agency.bloom)
    run.write("Glow")

    async def scenario():
        first = Sse(agency, f"/api/v1/agent/runs/{run.id}/events")
        assert (await first.start())[0] == 200
        second = await connected(agency, f"/ws/runs/{run.id}/")

        third = Sse(agency, f"/api/v1/agent/runs/{run.id}/events")
        status, headers = await third.start()
        await third.read_to_end(timeout=5)
        assert status == 429 and 1 <= int(headers["retry-after"]) <= 60
        error = json.loads(third.text.split("data: ", 1)[1]) if third.text.startswith("event:") else \
            json.loads(third.text)
        error = error.get("error", error)
        assert error["code"] == "throttled" and error["details"]["max"] == 2, error
        assert "You already have 2 live event streams or sockets open" in error["message"]

        refused = ws_client(agency, "/ws/events/")
        accepted, _ = await refused.connect(timeout=10)
        assert accepted, "accepted, so that the code and the reason reach the client"
        messages, code, _ = await messages_until_closed(refused, timeout=5)
        assert code == 4429 and messages == [{"type": "error", "code": "throttled", "message": error["message"]}]

        others = await connected(agency, f"/ws/runs/{run.id}/", "manager")  # the cap is per user
        await others.disconnect()

        await first.leave()  # a place is freed when a stream ends
        again = await connected(agency, "/ws/events/")
        await again.disconnect()
        await second.disconnect()

    run_async(scenario())


def test_an_execute_over_the_cap_says_the_run_goes_on_and_how_to_follow_it(agency, streams):
    streams.STREAM_MAX_PER_USER = 1
    run = agency.run(agency.bloom)

    async def scenario():
        held = await connected(agency, f"/ws/runs/{run.id}/")
        execute = Sse(agency, "/api/v1/agent/execute", method="POST",
                      body={"agent_type": "copy", "task": "Write a tagline.", "client_id": agency.bloom.pk,
                            "stream": True})
        status, _ = await execute.start()
        await execute.read_to_end(timeout=5)
        await held.disconnect()
        return status, execute.text

    status, text = run_async(scenario())
    assert status == 429, text
    error = json.loads(text.split("data: ", 1)[1])["error"]
    assert "was started and goes on without you" in error["message"] and error["details"]["run_id"], error
    with schema_context(agency.schema):
        assert AgentRun.objects.filter(pk=error["details"]["run_id"]).exists()


def test_places_expire_so_a_crashed_server_does_not_hold_them(agency, streams):
    """A place is a member of a sorted set scored with the end of its lease: one whose lease ended
    (its daphne died) no longer counts, and the set itself expires."""
    streams.STREAM_MAX_PER_USER = 1
    with schema_context(agency.schema):
        place = StreamPlace.take(agency.admin.pk)
        client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
        score = client.zscore(place.key, place.member)
        assert time.time() + 55 < score <= time.time() + 61
        assert 0 < client.ttl(place.key) <= 66
        client.zadd(place.key, {place.member: time.time() - 1})  # its server died a minute ago
        again = StreamPlace.take(agency.admin.pk)
        assert client.zcard(again.key) == 1
        again.release()


# --- Redis connections after idle streams (daphne) ----------------------------------------


def daphne_redis_clients(pid: int) -> tuple[int, dict[str, int], int]:
    """daphne's connections to Redis, from Redis' own CLIENT LIST: (all, per database, the
    channel-layer subscriptions they hold)."""
    port = urlsplit(settings.REDIS_URL).port
    ours = {c.laddr.port for c in psutil.Process(pid).net_connections("tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED}
    per_db: dict[str, int] = {}
    subscriptions = 0
    for client in redis.Redis.from_url(settings.REDIS_URL).client_list():
        if int(client["addr"].rsplit(":", 1)[1]) in ours:
            per_db[client["db"]] = per_db.get(client["db"], 0) + 1
            subscriptions += int(client.get("sub", 0)) + int(client.get("psub", 0))
    return sum(per_db.values()), per_db, subscriptions


@pytest.mark.live
def test_idle_streams_leave_no_redis_connection_behind(live_instance, live_db):
    instance = live_instance.instance
    host = instance.domains.get().domain
    with schema_context(instance.schema_name):
        token = api_token_create(user=live_instance.admin, name="streams").raw
    agency = type("Agency", (), {"schema": instance.schema_name, "admin": live_instance.admin})()
    run = LiveRun(agency, None)
    run.write("Waiting for a decision.")
    process, port = start_daphne({**process_env(), "STREAM_MAX_PER_USER": "100"}, "stream-access")
    headers = {"Host": f"{host}:{port}", "Authorization": f"Bearer {token}"}

    def open_sse():
        """A stream that has joined the run's group (its first event came) and sits idle."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"/api/v1/agent/runs/{run.id}/events", headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        while not response.fp.readline().startswith(b"id: "):
            pass
        return conn

    def hang_up(conn) -> None:
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()

    async def open_sockets(count: int, opened: threading.Event, leave: threading.Event) -> None:
        sockets = [await websockets.connect(f"ws://{host}:{port}/ws/runs/{run.id}/", host="127.0.0.1", port=port,
                                            additional_headers={"Authorization": f"Bearer {token}"})
                   for _ in range(count)]
        for ws in sockets:
            await ws.recv()
        opened.set()
        await asyncio.to_thread(leave.wait, 60)
        for ws in sockets:
            ws.transport.abort()  # gone without a close frame, like a client that crashed

    try:
        hang_up(open_sse())  # the first stream opens the process's connections, and leaves the channel layer
        baseline = wait_for(lambda: (now := daphne_redis_clients(process.pid))[2] == 0 and now, timeout=10)
        threads = [psutil.Process(process.pid).num_threads()]

        streams = [open_sse() for _ in range(50)]
        opened, leave = threading.Event(), threading.Event()
        sockets = threading.Thread(target=run_async, args=(open_sockets(10, opened, leave),))
        sockets.start()
        assert opened.wait(30)
        time.sleep(1.0)
        during = daphne_redis_clients(process.pid)
        threads.append(psutil.Process(process.pid).num_threads())
        for conn in streams:
            hang_up(conn)
        leave.set()
        sockets.join(30)
        try:
            after = wait_for(lambda: (now := daphne_redis_clients(process.pid))[0] <= baseline[0] and
                             now[2] <= baseline[2] and now, timeout=10)
        finally:
            print(f"\ndaphne and Redis, (connections, by database, channel-layer subscriptions): before {baseline}, "
                  f"with 50 SSE streams and 10 sockets open {during}, "
                  f"after they left {daphne_redis_clients(process.pid)}; daphne's threads {threads}")
        assert during[0] <= baseline[0] + 2, "an idle stream holds no Redis connection of its own"
        assert after[0] <= baseline[0] and after[2] <= baseline[2], "nothing stays once the clients left"
    finally:
        stop_process(process)
