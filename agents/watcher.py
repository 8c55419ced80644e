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
that left stops counting). The loop asks `cancelled(run_id)` and `watched(run_id)`, answered
from memory.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from django.core.cache import cache
from django_tenants.utils import schema_context

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1
REFRESH_SECONDS = 5.0
WATCH_TTL_SECONDS = 60  # a viewer refreshes its flag at least every keep-alive (15 s)
CHANGED_KEY = "run-flags-changed"


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


class RunWatcher:
    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self._runs: dict[str, str] = {}  # run id → its instance's schema
        self._cancelled: set[str] = set()
        self._watched: set[str] = set()
        self._markers: dict[str, object] = {}  # schema → the CHANGED_KEY value last seen
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, run_id: uuid.UUID | str, schema: str) -> None:
        """Follow the run's flags until `forget`. They are read once now: a viewer that joined
        before the run started is known from its first event on. (A cancel from before the run
        was claimed is on its row: the loop checks that too.)"""
        run_id = str(run_id)
        with self._lock:
            self._runs[run_id] = schema
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._poll_forever, name="run-flag-watcher", daemon=True)
                self._thread.start()
        self._read(schema, [run_id])

    def forget(self, run_id: uuid.UUID | str) -> None:
        run_id = str(run_id)
        with self._lock:
            self._runs.pop(run_id, None)
            self._cancelled.discard(run_id)
            self._watched.discard(run_id)

    def cancelled(self, run_id: uuid.UUID | str) -> bool:
        return str(run_id) in self._cancelled

    def watched(self, run_id: uuid.UUID | str) -> bool:
        """Whether a viewer may follow the run (True for runs this watcher does not follow)."""
        run_id = str(run_id)
        return run_id in self._watched or run_id not in self._runs

    def _poll_forever(self) -> None:
        refreshed = time.monotonic()
        while True:
            time.sleep(self.poll_seconds)
            with self._lock:
                by_schema: dict[str, list[str]] = {}
                for run_id, schema in self._runs.items():
                    by_schema.setdefault(schema, []).append(run_id)
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
                    logger.warning("could not read the run flags of %s", schema, exc_info=True)

    def _read(self, schema: str, run_ids: list[str]) -> None:
        keys = {run_id: (cancel_flag_key(run_id), watch_flag_key(run_id)) for run_id in run_ids}
        try:
            with schema_context(schema):
                flags = cache.get_many([key for pair in keys.values() for key in pair])
        except Exception:  # noqa: BLE001 - a cache outage must not stop runs: they go on unwatched
            logger.warning("could not read the run flags of %s", schema, exc_info=True)
            return
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
