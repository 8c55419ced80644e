"""Real processes for tests and benchmarks: a Celery worker and daphne against the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The shard's own directory when the launcher runs the suite in shards (spokestack.launcher.test).
LOGS = Path(os.environ.get("SPOKESTACK_TEST_STATE") or ROOT / ".spokestack" / "test")


def process_env() -> dict[str, str]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "spokestack.settings.test",
            "PYTHONPATH": str(ROOT)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def start_daphne(env: dict[str, str], name: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"daphne-{name}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "spokestack.asgi:application"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}; see {log.name}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.1)
    stop_process(process)
    raise RuntimeError("daphne did not listen within 30 s")


class WorkerProcess:
    """A real Celery worker subprocess (threads pool, DB pool) on the private Redis and the test
    database, with the fake Messages API as its model and the sample ERP allowed on loopback."""

    def __init__(self, env: dict[str, str], name: str, concurrency: int = 16, queues: str = "") -> None:
        self.env, self.name, self.process, self.generation = env, name, None, 0
        self.concurrency = concurrency
        self.queues = queues  # comma-separated, as `celery worker -Q`; empty: the default queue

    def start(self) -> WorkerProcess:
        from spokestack.celery import app

        self.generation += 1
        LOGS.mkdir(parents=True, exist_ok=True)
        log_path = LOGS / f"celery-{self.name}-{self.generation}.log"
        self.log = open(log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "spokestack", "worker", "--loglevel", "INFO", "--pool", "threads",
             "--concurrency", str(self.concurrency), "--hostname", f"{self.name}-{self.generation}-{os.getpid()}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             *(["--queues", self.queues] if self.queues else [])],
            env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        hostname = f"{self.name}-{self.generation}-{os.getpid()}@{socket.gethostname()}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {self.process.returncode}; see {log_path}")
            if app.control.ping(destination=[hostname], timeout=0.5):
                return self
        self.stop()
        raise RuntimeError("the Celery worker did not answer a ping within 60 s")

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task, as on an OOM kill or a lost machine."""
        self.process.kill()
        self.process.wait(10)
        self.log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.log.close()


def database_url(*, port: int | None = None) -> str:
    """The test database's URL, optionally on another port (a `TcpProxy` in front of it)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{port or db['PORT']}/{db['NAME']}"
