"""What a worker process needs to know about its runs in flight, without asking per run.

Two flags live in the cache, per run (keys carry the instance's schema):

* cancel: `services.run_cancel` sets it (and the row's `cancel_requested`);
* watched: a live viewer (SSE, websocket: `streaming.run_event_stream`) sets it when it joins and
  refreshes it while it stays. Runs nobody watches are not announced on the channel layer: a
  nudge costs the worker about half a millisecond, and most runs (API calls without `stream`)
  never have a viewer.

A worker may have hundreds of runs streaming at once. They register with the process's watcher,
which reads one "something changed" marker per instance schema every `POLL_SECONDS`, and every
flag of that schema's runs only when the marker moved (and every `REFRESH_SECONDS`, so a viewer
that left stops counting). The loop asks `cancelled(run_id)`, `watched(run_id)` and `lost(run_id)`,
answered from memory.

The same thread is the process's **heartbeat**: every `lease / HEARTBEATS_PER_LEASE` seconds it
renews the lease of every run an execution of this process holds, in one statement per instance
schema, on a connection of its own (outside the pool, so a pool busy with runs cannot starve it).
A lease therefore never expires under a live worker, whatever the model or a tool does, and can
be short, so a dead worker's runs are resumed within seconds. The heartbeat's answer also carries
each run's `cancel_requested`: a cancel stored in the database reaches the run with the cache
down. A run missing from the answer was taken over by another execution: the loop stops.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import psycopg
from django.conf import settings
from django.core.cache import cache
from django_tenants.utils import schema_context

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1
REFRESH_SECONDS = 5.0
WATCH_TTL_SECONDS = 60  # a viewer refreshes its flag at least every keep-alive (15 s)
CHANGED_KEY = "run-flags-changed"
HEARTBEATS_PER_LEASE = 5


def cancel_flag_key(run_id: uuid.UUID | str) -> str:
    return f"run-cancel:{run_id}"


def watch_flag_key(run_id: uuid.UUID | str) -> str:
    return f"run-watched:{run_id}"


def flags_changed() -> None:
    """Tell the watchers of the current instance to read their runs' flags now."""
    cache.set(CHANGED_KEY, uuid.uuid4().hex, timeout=None)


def mark_watched(run_id: uuid.UUID | str) -> None:
    """A viewer follows the run (call with the run's instance as the connection's schema)."""
    cache.set(watch_flag_key(run_id), True, timeout=WATCH_TTL_SECONDS)
    flags_changed()


def heartbeat_seconds() -> float:
    from .services import lease_seconds

    return lease_seconds() / HEARTBEATS_PER_LEASE


class RunWatcher:
    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self._runs: dict[str, str] = {}  # run id → its instance's schema
        self._owners: dict[str, str] = {}  # run id → the claim token of the execution holding it
        self._lost: set[str] = set()
        self._heartbeat_conn: psycopg.Connection | None = None
        self._outages: set[str] = set()  # "cache", "database": logged once per outage
        self._cancelled: set[str] = set()
        self._watched: set[str] = set()
        self._markers: dict[str, object] = {}  # schema → the CHANGED_KEY value last seen
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, run_id: uuid.UUID | str, schema: str, owner: str = "") -> None:
        """Follow the run's flags until `forget`, and keep its lease alive for `owner` (the claim
        token of the execution). The flags are read once now: a viewer that joined before the
        run started is known from its first event on. (A cancel from before the run was claimed
        is on its row: the loop checks that too.)"""
        run_id = str(run_id)
        with self._lock:
            self._runs[run_id] = schema
            if owner:
                self._owners[run_id] = owner
            self._lost.discard(run_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._poll_forever, name="run-flag-watcher", daemon=True)
                self._thread.start()
        self._read(schema, [run_id])

    def forget(self, run_id: uuid.UUID | str) -> None:
        run_id = str(run_id)
        with self._lock:
            self._runs.pop(run_id, None)
            self._owners.pop(run_id, None)
            self._cancelled.discard(run_id)
            self._watched.discard(run_id)
            self._lost.discard(run_id)

    def cancelled(self, run_id: uuid.UUID | str) -> bool:
        return str(run_id) in self._cancelled

    def lost(self, run_id: uuid.UUID | str) -> bool:
        """Whether the heartbeat found the run held by another execution (or no longer running)."""
        return str(run_id) in self._lost

    def watched(self, run_id: uuid.UUID | str) -> bool:
        """Whether a viewer may follow the run (True for runs this watcher does not follow)."""
        run_id = str(run_id)
        return run_id in self._watched or run_id not in self._runs

    def _poll_forever(self) -> None:
        refreshed = beat = time.monotonic()
        while True:
            time.sleep(self.poll_seconds)
            with self._lock:
                by_schema: dict[str, list[str]] = {}
                for run_id, schema in self._runs.items():
                    by_schema.setdefault(schema, []).append(run_id)
                owned = dict(self._owners)
            if owned and time.monotonic() - beat >= heartbeat_seconds():
                beat = time.monotonic()
                self.heartbeat(by_schema, owned)
            refresh = time.monotonic() - refreshed >= REFRESH_SECONDS
            if refresh:
                refreshed = time.monotonic()
            for schema, run_ids in by_schema.items():
                try:
                    with schema_context(schema):
                        marker = cache.get(CHANGED_KEY)
                    if refresh or marker != self._markers.get(schema):
                        self._markers[schema] = marker
                        self._read(schema, run_ids)
                except Exception:  # noqa: BLE001 - a cache outage must not stop the watcher; runs go on
                    self._failing("cache", f"could not read the run flags of {schema}")

    def heartbeat(self, by_schema: dict[str, list[str]], owned: dict[str, str]) -> None:
        """Renew the leases of the runs held here; learn of cancels and of runs taken over."""
        from .services import run_leases_renew

        for schema, run_ids in by_schema.items():
            owners = {run_id: owned[run_id] for run_id in run_ids if run_id in owned}
            if not owners:
                continue
            try:
                with self._connection().cursor() as cursor:
                    alive = run_leases_renew(schema=schema, owners=owners, cursor=cursor)
            except psycopg.Error:
                # The database is down: nothing to renew. The runs' own writes fail too and leave
                # them to their leases; this thread keeps trying, on a new connection.
                self._failing("database", f"heartbeat: could not renew the leases of {len(owners)} run(s) in {schema}")
                self._drop_connection()
                continue
            self._recovered("database")
            with self._lock:
                for run_id, owner in owners.items():
                    if self._owners.get(run_id) != owner:
                        continue  # finished meanwhile
                    if run_id not in alive:
                        continue  # not visible to this connection (yet): no news
                    if alive[run_id] is None:
                        self._lost.add(run_id)
                    elif alive[run_id]:
                        self._cancelled.add(run_id)

    def _failing(self, dependency: str, what: str) -> None:
        """Log an outage once when it starts (the watcher retries ten times a second)."""
        if dependency not in self._outages:
            self._outages.add(dependency)
            logger.warning("!!! %s (the %s is unavailable); retrying quietly until it is back", what, dependency,
                           exc_info=True)

    def _recovered(self, dependency: str) -> None:
        if dependency in self._outages:
            self._outages.discard(dependency)
            logger.warning("the %s is back: run flags and leases are read again", dependency)

    def _connection(self) -> psycopg.Connection:
        if self._heartbeat_conn is None or self._heartbeat_conn.closed:
            db = settings.DATABASES["default"]
            self._heartbeat_conn = psycopg.connect(
                dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"], port=db["PORT"] or None,
                autocommit=True, connect_timeout=2, application_name="spokestack-heartbeat",
                options="-c statement_timeout=2000", keepalives=1, keepalives_idle=5, keepalives_interval=2,
                keepalives_count=2)
        return self._heartbeat_conn

    def _drop_connection(self) -> None:
        conn, self._heartbeat_conn = self._heartbeat_conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _read(self, schema: str, run_ids: list[str]) -> None:
        keys = {run_id: (cancel_flag_key(run_id), watch_flag_key(run_id)) for run_id in run_ids}
        try:
            with schema_context(schema):
                flags = cache.get_many([key for pair in keys.values() for key in pair])
        except Exception:  # noqa: BLE001 - a cache outage must not stop runs: they go on unwatched
            self._failing("cache", f"could not read the run flags of {schema}")
            return
        self._recovered("cache")
        with self._lock:
            for run_id, (cancel_key, watch_key) in keys.items():
                if run_id not in self._runs:
                    continue
                if flags.get(cancel_key):
                    self._cancelled.add(run_id)
                if flags.get(watch_key):
                    self._watched.add(run_id)
                else:
                    self._watched.discard(run_id)


watcher = RunWatcher()
