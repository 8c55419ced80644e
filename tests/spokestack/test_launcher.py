"""The launcher shares a running profile's servers instead of stopping them (`exec` next to
`make run` used to stop the demo's PostgreSQL)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from spokestack import launcher


@pytest.fixture
def listening():
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setattr(launcher, "STATE", tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    (tmp_path / "run").mkdir()
    return tmp_path / "run"


def write(home, pid, port):
    (home / launcher.SERVICES_FILE).write_text(json.dumps(
        {"pid": pid, "DATABASE_URL": f"postgres://spokestack@127.0.0.1:{port}/spokestack",
         "REDIS_URL": "redis://127.0.0.1:6390/0"}))


def test_a_live_launcher_servers_are_shared_and_left_running(home, listening, monkeypatch):
    write(home, pid=os.getpid(), port=listening)
    monkeypatch.setattr(launcher.PrivatePostgres, "start", lambda self: pytest.fail("started a second PostgreSQL"))
    monkeypatch.setattr(launcher.PrivatePostgres, "stop", lambda self: pytest.fail("stopped the running PostgreSQL"))
    with launcher.services("run") as env:
        assert env == {"DATABASE_URL": f"postgres://spokestack@127.0.0.1:{listening}/spokestack",
                       "REDIS_URL": "redis://127.0.0.1:6390/0"}
    assert (home / launcher.SERVICES_FILE).exists()  # still the other launcher's
    with pytest.raises(SystemExit, match="stop it before --reset"), launcher.services("run", reset=True):
        pass


def test_a_file_left_by_a_dead_launcher_or_a_stopped_server_is_ignored(home, listening):
    assert launcher._running_services(home) is None  # no file
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write(home, pid=int(dead.stdout), port=listening)
    assert launcher._running_services(home) is None
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    write(home, pid=os.getpid(), port=port)
    assert launcher._running_services(home) is None
    (home / launcher.SERVICES_FILE).write_text("{not json")
    assert launcher._running_services(home) is None
