"""Cancellation of the runs in flight in this process: one cache read per interval for all of them.

`services.run_cancel` sets the run's flag in the cache (and on its row). A worker process may have
hundreds of runs streaming at once; rather than each of them reading its flag on every stream
event, they register here, and one watcher thread reads every registered flag with a single
`get_many` per `POLL_SECONDS` (one per instance schema: cache keys carry the schema). The loop asks
`cancelled(run_id)`, which is answered from memory.
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


def cancel_flag_key(run_id: uuid.UUID | str) -> str:
    return f"run-cancel:{run_id}"


class CancelWatcher:
    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self._runs: dict[str, str] = {}  # run id → its instance's schema
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, run_id: uuid.UUID | str, schema: str) -> None:
        """Follow the run's flag until `forget` (a cancel from before the run was claimed is on
        its row already: the loop checks that too)."""
        run_id = str(run_id)
        with self._lock:
            self._runs[run_id] = schema
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._poll_forever, name="run-cancel-watcher", daemon=True)
                self._thread.start()

    def forget(self, run_id: uuid.UUID | str) -> None:
        run_id = str(run_id)
        with self._lock:
            self._runs.pop(run_id, None)
            self._cancelled.discard(run_id)

    def cancelled(self, run_id: uuid.UUID | str) -> bool:
        return str(run_id) in self._cancelled

    def _poll_forever(self) -> None:
        while True:
            time.sleep(self.poll_seconds)
            with self._lock:
                runs = {r: s for r, s in self._runs.items() if r not in self._cancelled}
            if runs:
                self._read(runs)

    def _read(self, runs: dict[str, str]) -> None:
        by_schema: dict[str, list[str]] = {}
        for run_id, schema in runs.items():
            by_schema.setdefault(schema, []).append(run_id)
        try:
            for schema, run_ids in by_schema.items():
                with schema_context(schema):
                    flags = cache.get_many([cancel_flag_key(r) for r in run_ids])
                cancelled = {r for r in run_ids if flags.get(cancel_flag_key(r))}
                if cancelled:
                    with self._lock:
                        self._cancelled |= cancelled & set(self._runs)
        except Exception:  # noqa: BLE001 - a cache outage must not stop the watcher; runs go on
            logger.warning("could not read run cancel flags", exc_info=True)


watcher = CancelWatcher()
