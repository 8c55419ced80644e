"""One Redis connection pool per process for the cache, whatever the context asks (issue #13).

Django keeps a cache object per context (`caches` is an asgiref `Local`), and under ASGI every
request and every live stream or socket is a context of its own: each made its own
`RedisCache`, its own connection pool and its own Redis connection, which nothing closed
(`RedisCache.close()` does nothing) until the garbage collector happened to. 150 idle event
streams held 150 connections on the Redis every instance shares, and kept them after their
clients left. With this pool class (CACHES OPTIONS `pool_class`) every cache object of the
process draws from one pool: a connection is reused as soon as a command is done.

A burst (fifty streams ending at once, each freeing its place in its own thread) opens as many
connections as it runs commands at once; redis-py would keep them all, idle, for good. This pool
keeps `MAX_IDLE` and closes the others as they come back, so after any burst the process is back
to the one connection of its steady state.

A worker process is in a burst all the time: its runs (up to its concurrency, ten to hundreds)
read their flags as they start and end, at once. With one idle connection kept, most of those
reads opened a connection of their own and closed it (connect, handshake, close: 2–3 % of a
worker's CPU under py-spy, session 13). A worker keeps as many as it has task slots
(`keep_idle`, at `worker_init`).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis


class SharedConnectionPool(redis.ConnectionPool):
    """`from_url` answers the same pool for the same URL and options, per process; at most
    MAX_IDLE connections wait in it between commands."""

    MAX_IDLE = 1
    _shared: dict[tuple, SharedConnectionPool] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SharedConnectionPool:
        key = (os.getpid(), url, tuple(sorted((name, repr(value)) for name, value in kwargs.items())))
        with cls._shared_lock:
            pool = cls._shared.get(key)
            if pool is None:
                pool = cls._shared[key] = super().from_url(url, **kwargs)
            return pool

    def release(self, connection) -> None:
        super().release(connection)
        with self._lock:  # redis-py's own lock over its lists (redis==8.1.0, pinned)
            # get_connection takes from the end: the first ones waited longest.
            while len(self._available_connections) > self.MAX_IDLE:
                surplus = self._available_connections.pop(0)
                self._created_connections -= 1
                surplus.disconnect()


def keep_idle(connections: int) -> None:
    """Let this process's shared pools keep up to `connections` idle between commands (a worker
    process: its task slots, which use the cache at once)."""
    SharedConnectionPool.MAX_IDLE = max(1, connections)
