"""Live viewers through a dependency's outage (issue #12, found 7): an SSE or websocket viewer
of a run keeps getting keep-alives while the database is down, then every remaining event in
order, or, when the database stays down too long, a `reconnect` event after which a reconnect
with Last-Event-ID gets exactly the rest. With the channel layer (Redis) down, the stream reads
the log every second instead of waiting for nudges.

The viewers reach PostgreSQL through a TcpProxy (tests/faults.py) that the test cuts; whoever
writes the run's events (the test, or a real Celery worker) keeps its direct connection.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
import uuid

import pytest
import websockets
from channels.testing import WebsocketCommunicator
from django.db import connection
from django_tenants.utils import schema_context

from agents import streaming
from agents.consumers import RunEventsConsumer
from agents.models import AgentRun
from agents.services import new_claim_token, run_claim, run_finish, run_write
from agents.streaming import KEEPALIVE, StreamInterrupted, run_event_stream
from spokestack.accounts.services import api_token_create
from spokestack.realtime import WS_CLOSE_TRY_AGAIN_LATER
from spokestack.tenancy.services import instance_set_erp
from tuning.services import client_create

from ..conftest import run_async, wait_for
from ..faults import TcpProxy
from ..processes import database_url, free_port, process_env, start_daphne, stop_process

OUTAGE_SECONDS = 10


# --- the stream itself, in this process ------------------------------------------------


@pytest.fixture
def viewer_database(live_db):
    """Connections opened from now on (the stream's, in its own threads) go through a proxy the
    test can cut; this thread keeps its open, direct connection to write the run's events."""
    connection.ensure_connection()
    settings_dict = connection.settings_dict
    real_port = settings_dict["PORT"]
    proxy = TcpProxy(int(real_port)).start()
    settings_dict["PORT"] = str(proxy.port)
    try:
        yield proxy
    finally:
        settings_dict["PORT"] = real_port
        proxy.stop()


class RunWriter:
    """A run of a fresh committed instance, written the way a worker writes it."""

    def __init__(self, instance) -> None:
        self.instance = instance
        self.token = new_claim_token("stream-outage-test")
        with schema_context(instance.schema_name):
            created = AgentRun.objects.create(agent_type="copy", agent_version="1.0.0", task="Write a tagline.")
            self.run = run_claim(run_id=created.pk, worker=self.token)
        self.id = str(self.run.pk)

    def write(self, *texts: str) -> int:
        with schema_context(self.instance.schema_name):
            run_write(run=self.run, worker=self.token, events=[("text.delta", {"text": text}) for text in texts])
        return self.run.last_seq

    def finish(self) -> int:
        with schema_context(self.instance.schema_name):
            assert run_finish(run=self.run, status="succeeded", output="Done.")
        return self.run.last_seq


class Viewer:
    """run_event_stream in a thread of its own: what it yielded, and when."""

    def __init__(self, instance, run_id: str, after_seq: int = 0, **options) -> None:
        self.items: list[tuple[float, object]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=run_async, args=(self._follow(instance, run_id, after_seq, options),))
        self.thread.start()

    async def _follow(self, instance, run_id, after_seq, options) -> None:
        try:
            async for item in run_event_stream(instance=instance, run_id=run_id, after_seq=after_seq, **options):
                self.items.append((time.monotonic(), item))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def seqs(self) -> list[int]:
        return [item.seq for _, item in self.items if item is not KEEPALIVE and hasattr(item, "seq")]

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the stream did not end; it yielded {self.items[-5:]}"
        assert self.error is None, repr(self.error)


def test_the_stream_retries_its_reads_through_a_database_outage_without_gaps(live_instance, viewer_database):
    run = RunWriter(live_instance.instance)
    first = run.write("Glow", " gently")
    viewer = Viewer(live_instance.instance, run.id, keepalive=30.0)
    wait_for(lambda: viewer.seqs() and viewer.seqs()[-1] == first, timeout=10)

    viewer_database.cut()
    cut_at = time.monotonic()
    run.write(" this")
    time.sleep(2.0)
    run.write(" Ramadan.")
    time.sleep(2.0)
    viewer_database.restore()
    restored_at = time.monotonic()
    run.write(" ✨")
    last = run.finish()
    viewer.join(timeout=15)

    assert viewer.seqs() == list(range(1, last + 1)), "every event once, in order"
    keepalives = [at for at, item in viewer.items if item is KEEPALIVE]
    assert any(cut_at < at < restored_at for at in keepalives), "keep-alives while the database was down"
    assert not any(isinstance(item, StreamInterrupted) for _, item in viewer.items)


def test_the_stream_ends_with_reconnect_when_the_database_stays_down(live_instance, viewer_database):
    run = RunWriter(live_instance.instance)
    seen = run.write("Glow", " gently")
    viewer = Viewer(live_instance.instance, run.id, keepalive=30.0, outage_limit=2.0)
    wait_for(lambda: viewer.seqs() and viewer.seqs()[-1] == seen, timeout=10)

    viewer_database.cut()
    cut_at = time.monotonic()
    run.write(" this")
    viewer.join(timeout=10)
    ended = viewer.items[-1]
    assert isinstance(ended[1], StreamInterrupted), viewer.items[-3:]
    assert ended[1].last_seq == seen and ended[1].dependency == "database"
    assert 2.0 <= ended[0] - cut_at < 6.0

    viewer_database.restore()
    last = run.finish()
    rest = Viewer(live_instance.instance, run.id, after_seq=ended[1].last_seq)
    rest.join(timeout=10)
    assert rest.seqs() == list(range(seen + 1, last + 1)), "exactly the rest"


def test_a_read_that_hangs_sends_keepalives_then_reconnect(live_instance, live_db):
    """A database that accepts connections and never answers: the read hangs (until the
    connect timeout, if any), and the viewer hears keep-alives, then `reconnect`."""
    run = RunWriter(live_instance.instance)
    run.write("Glow")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # never accepted: the server never says a word
    connection.ensure_connection()
    settings_dict = connection.settings_dict
    real_port = settings_dict["PORT"]
    settings_dict["PORT"] = str(silent.getsockname()[1])
    try:
        started = time.monotonic()
        viewer = Viewer(live_instance.instance, run.id, keepalive=30.0, outage_limit=3.0)
        viewer.join(timeout=15)
    finally:
        settings_dict["PORT"] = real_port
        silent.close()  # the hung connection attempt fails now, freeing its thread
    kinds = [item for _, item in viewer.items]
    assert kinds[:-1] and all(item is KEEPALIVE for item in kinds[:-1]), kinds
    assert kinds[-1] == StreamInterrupted(last_seq=0, dependency="database")
    assert viewer.items[0][0] - started < 3.0, "the first keep-alive while the read hangs"
    assert viewer.items[-1][0] - started < 6.0


def test_the_stream_reads_the_log_every_second_while_the_channel_layer_is_down(live_instance, live_db, settings):
    dead = f"redis://127.0.0.1:{free_port()}"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                                           "CONFIG": {"hosts": [f"{dead}/2"]}}}
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"{dead}/1"}}
    run = RunWriter(live_instance.instance)
    viewer = Viewer(live_instance.instance, run.id, keepalive=30.0)
    time.sleep(0.5)
    written = run.write("Glow")
    wait_for(lambda: written in viewer.seqs(), timeout=3)
    last = run.finish()
    viewer.join(timeout=5)
    assert viewer.seqs() == list(range(1, last + 1))


def test_a_websocket_viewer_is_told_to_reconnect_when_the_database_stays_down(
        live_instance, viewer_database, monkeypatch):
    monkeypatch.setattr(streaming, "OUTAGE_LIMIT_SECONDS", 2.0)
    instance = live_instance.instance
    run = RunWriter(instance)
    seen = run.write("Glow")
    caught_up, cut = threading.Event(), threading.Event()

    async def follow():
        communicator = WebsocketCommunicator(RunEventsConsumer.as_asgi(), f"/ws/runs/{run.id}/")
        communicator.scope.update({"user": live_instance.admin, "instance": instance,
                                   "url_route": {"kwargs": {"run_id": run.id}}})
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        received = [await communicator.receive_json_from(timeout=10) for _ in range(seen)]
        caught_up.set()
        await asyncio.to_thread(cut.wait, 10)
        received.append(await communicator.receive_json_from(timeout=10))
        closed = await communicator.receive_output(timeout=5)
        await communicator.wait()

        again = WebsocketCommunicator(RunEventsConsumer.as_asgi(), f"/ws/runs/{run.id}/?after={seen}")
        again.scope.update({"user": live_instance.admin, "instance": instance,
                            "url_route": {"kwargs": {"run_id": run.id}}})
        await again.connect(timeout=10)
        refused = await again.receive_output(timeout=5)
        await again.wait()
        return received, closed, refused

    result: dict = {}
    follower = threading.Thread(target=lambda: result.setdefault("ws", run_async(follow())))
    follower.start()
    assert caught_up.wait(15)
    viewer_database.cut()
    run.write(" gently")  # the nudge makes the stream read, and find the database gone
    cut.set()
    follower.join(20)
    received, closed, refused = result["ws"]
    assert [event["seq"] for event in received[:-1]] == list(range(1, seen + 1))
    assert received[-1]["type"] == "reconnect" and received[-1]["last_seq"] == seen
    assert f"?after={seen}" in received[-1]["message"]
    assert closed == {"type": "websocket.close", "code": WS_CLOSE_TRY_AGAIN_LATER}
    assert refused == {"type": "websocket.close", "code": WS_CLOSE_TRY_AGAIN_LATER}, "still down: try again later"


# --- through daphne, with a real worker --------------------------------------------------


@pytest.fixture
def daphne_behind_proxy(django_db_setup):
    """daphne whose database is reached through a proxy the test cuts; yields (port, proxy)."""
    proxy = TcpProxy(int(connection.settings_dict["PORT"])).start()
    process, port = start_daphne({**process_env(), "DATABASE_URL": database_url(port=proxy.port)}, "stream-outage")
    yield port, proxy
    stop_process(process)
    proxy.stop()


@pytest.fixture
def outage_stack(live_instance, celery_worker, daphne_behind_proxy, sample_erp, fake_model, egress_loopback):
    from spokestack.sample_erp import DEMO_API_KEYS

    egress_loopback(sample_erp[0].server_port)
    instance = live_instance.instance
    instance_set_erp(instance=instance, base_url=sample_erp[1], api_key=DEMO_API_KEYS["alpha"])
    with schema_context(instance.schema_name):
        client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
        token = api_token_create(user=live_instance.admin, name="live").raw
    connection.set_schema_to_public()
    port, proxy = daphne_behind_proxy
    return {"instance": instance, "host": instance.domains.get().domain, "port": port, "token": token,
            "client": client, "proxy": proxy, "model": fake_model}


def request(stack, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", stack["port"], timeout=30)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Host": f"{stack['host']}:{stack['port']}", "Authorization": f"Bearer {stack['token']}",
                          "Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


class SseViewer:
    """An SSE client that records every line with the time it arrived. A silence longer than
    `timeout` fails it: a stream that hangs is what this test is about."""

    def __init__(self, stack, run_id: str, after: int = 0, timeout: float = 8.0) -> None:
        self.lines: list[tuple[float, str]] = []
        self.error: BaseException | None = None
        self.status = None
        self.thread = threading.Thread(target=self._read, args=(stack, run_id, after, timeout))
        self.thread.start()

    def _read(self, stack, run_id, after, timeout) -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", stack["port"], timeout=timeout)
            conn.request("GET", f"/api/v1/agent/runs/{run_id}/events", headers={
                "Host": f"{stack['host']}:{stack['port']}", "Authorization": f"Bearer {stack['token']}",
                "Last-Event-ID": str(after)})
            response = conn.getresponse()
            self.status = response.status
            for raw in response:
                self.lines.append((time.monotonic(), raw.decode().rstrip("\n")))
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def events(self) -> list[tuple[str, dict]]:
        """(event name, data) of every event, in order."""
        events, name = [], "message"
        for _, line in self.lines:
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                name = "message"
        return events

    def seqs(self) -> list[int]:
        return [data["seq"] for name, data in self.events() if name != "reconnect"]

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the stream did not end; last lines {self.lines[-5:]}"
        assert self.error is None, f"{self.error!r}; last lines {self.lines[-5:]}"


async def ws_messages(stack, run_id: str, connected: threading.Event) -> list[dict]:
    uri = f"ws://{stack['host']}:{stack['port']}/ws/runs/{run_id}/?after=0"
    messages = []
    async with websockets.connect(uri, host="127.0.0.1", port=stack["port"], open_timeout=10,
                                  additional_headers={"Authorization": f"Bearer {stack['token']}"}) as ws:
        connected.set()
        while True:
            try:
                message = await asyncio.wait_for(ws.recv(), timeout=20)
            except websockets.ConnectionClosed:
                break
            messages.append(json.loads(message))
    return messages


def assert_unavailable(response, data) -> None:
    assert response.status == 503, data[:300]
    assert 1 <= int(response.getheader("Retry-After")) <= 30
    error = json.loads(data)["error"]
    assert error["code"] == "unavailable" and "database" in error["message"], error


@pytest.mark.live
def test_an_sse_viewer_follows_a_run_through_a_database_outage(outage_stack):
    stack = outage_stack
    marker = f"[outage-{uuid.uuid4().hex[:8]}]"
    stack["model"].script(marker, [
        {"content": [{"type": "text", "text": "Checking the brand first. " * 4},
                     {"type": "tool_use", "id": "toolu_o1", "name": "get_brand_guidelines", "input": {}}],
         "stop_reason": "tool_use", "delay_s": 2.0},
        {"content": [{"type": "text", "text": "Now the rules. " * 6},
                     {"type": "tool_use", "id": "toolu_o2", "name": "check_brand_rules",
                      "input": {"text": "Glow gently this Ramadan."}}],
         "stop_reason": "tool_use", "delay_s": 5.0},
        {"content": [{"type": "text", "text": "Caption: Glow gently this Ramadan. ✨ " * 6}],
         "stop_reason": "end_turn", "delay_s": 8.0},
    ])
    response, data = request(stack, "POST", "/api/v1/agent/execute", {
        "agent_type": "copy", "task": f"Write a Ramadan caption {marker}", "client_id": stack["client"].pk})
    assert response.status == 202, data
    run_id = json.loads(data)["run_id"]

    sse = SseViewer(stack, run_id)
    websocket: dict = {}
    ws_connected = threading.Event()

    def follow_websocket() -> None:
        try:
            websocket["messages"] = run_async(ws_messages(stack, run_id, ws_connected))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            websocket["error"] = exc

    ws_thread = threading.Thread(target=follow_websocket)
    ws_thread.start()
    wait_for(lambda: "run.started" in [name for name, _ in sse.events()], timeout=20)
    assert ws_connected.wait(10), repr(websocket.get("error"))

    with stack["proxy"].outage(OUTAGE_SECONDS):
        cut_at = time.monotonic()
        time.sleep(1.0)
        assert_unavailable(*request(stack, "GET", "/api/v1/health/ready"))
        assert_unavailable(*request(stack, "GET", f"/api/v1/agent/runs/{run_id}/events"))
        live, live_data = request(stack, "GET", "/api/v1/health")
        assert live.status == 200, live_data
        admin, admin_page = request(stack, "GET", "/admin/login/")
        assert admin.status == 503 and admin.getheader("Content-Type").startswith("text/html"), admin_page[:300]
        assert admin.getheader("Retry-After")
    restored_at = time.monotonic()

    sse.join(timeout=60)
    ws_thread.join(60)
    assert sse.status == 200
    # The stream notices the outage at its next read (a nudge, or the 15 s keep-alive); from then
    # on it retries at most 2 s apart, with a keep-alive for each try.
    during = [at for at, line in sse.lines if cut_at < at < restored_at]
    assert any(line.startswith(":") for at, line in sse.lines if cut_at < at < restored_at), "keep-alives"
    assert max(b - a for a, b in zip(during, [*during[1:], restored_at], strict=True)) < 4.0, "no silence"

    events = sse.events()
    seqs = sse.seqs()
    if events[-1][0] == "reconnect":
        last_seen = events[-1][1]["last_seq"]
        assert seqs == list(range(1, last_seen + 1))
        rest = SseViewer(stack, run_id, after=last_seen)
        rest.join(timeout=60)
        seqs += rest.seqs()
        events = rest.events()
    assert seqs == list(range(1, len(seqs) + 1)), "every event once, in order"
    assert events[-1][0] == "run.succeeded"

    assert "error" not in websocket, repr(websocket.get("error"))
    messages = websocket["messages"]
    ws_seqs = [m["seq"] for m in messages if m.get("type") != "reconnect"]
    assert ws_seqs == list(range(1, len(ws_seqs) + 1))
    assert messages[-1]["type"] in ("run.succeeded", "reconnect")
    with schema_context(stack["instance"].schema_name):
        assert AgentRun.objects.get(pk=run_id).status == "succeeded"


@pytest.mark.live
def test_daphne_in_debug_answers_503_not_the_technical_500_page(live_db):
    """`make run` serves with DEBUG on: an outage there was an HTML traceback with status 500."""
    proxy = TcpProxy(int(connection.settings_dict["PORT"])).start()
    env = {**process_env(), "DATABASE_URL": database_url(port=proxy.port),
           "DJANGO_SETTINGS_MODULE": "spokestack.settings.dev", "DJANGO_DEBUG": "1"}
    process, port = start_daphne(env, "outage-debug")
    try:
        proxy.cut()
        stack = {"port": port, "host": "tenant-a.localhost", "token": "none"}
        assert_unavailable(*request(stack, "GET", "/api/v1/health/ready"))
        admin, page = request(stack, "GET", "/admin/login/")
        assert admin.status == 503 and b"Traceback" not in page, page[:300]
        live, _ = request(stack, "GET", "/api/v1/health")
        assert live.status == 200
    finally:
        stop_process(process)
        proxy.stop()
