"""Keep a Celery worker alive through a Redis (broker) outage while tasks are in flight.

Issue #12, found 2: with agent runs in flight, a Redis blip made the worker exit ("Unrecoverable
error: AttributeError: 'NoneType' object has no attribute 'hostname'"); an idle worker
reconnected fine. What happens in kombu 5.7.0 / celery 5.7.0 with the Redis transport:

1. The event loop reads a reset socket; `Consumer.start` catches the connection error and calls
   `on_connection_error_after_connected`, which first `collect()`s the connection: that tries to
   close the default channel, whose `close()` stops at its first step (reading the pending BRPOP
   reply raises a connection error, which is swallowed) before the channel is marked closed, and
   then drops the transport's link to its connection (`transport.client = None`).
2. It then `close()`s the connection, which closes that channel again. The channel's QoS restores
   the unacknowledged messages (`QoS.restore_unacked`, the runs in flight, acks_late); that needs
   a new Redis pool, whose parameters `Channel._connparams` reads from `transport.client`: None,
   so AttributeError. Celery ignores only connection errors there, so the AttributeError leaves
   the reconnect path and the worker stops. An idle worker has nothing to restore.

Upstream: the same failure (a closed transport's channel building a pool from a None
`transport.client` in `_connparams`, unacked messages not restored) is celery/kombu#970
(https://github.com/celery/kombu/issues/970, restore at warm shutdown) and celery/kombu#582
(https://github.com/celery/kombu/issues/582, the same AttributeError on a gossip restart); both
were closed without a change to this path, and kombu 5.7.0 still reads `transport.client` there.

The workaround, two small patches installed by spokestack.celery:

* A Redis channel remembers the connection parameters it was opened with, so that once its
  transport is closed, restoring or acknowledging its messages still reaches Redis: a connection
  error while Redis is down (which kombu and Celery handle), success once it is back. A run that
  finishes after the outage then acknowledges its message instead of leaving it to be delivered
  again when the visibility timeout expires.
* A failure while discarding a dead broker connection is logged and the consumer reconnects:
  such cleanup must never stop the worker (the same class of kombu bug has come back before:
  celery/kombu#320, #659, #970).

In-flight tasks keep running on their threads through the outage (the database is separate);
a message that could not be acknowledged is redelivered by Redis's visibility timeout, and the
run's own claim refuses a second execution.
"""

from __future__ import annotations

import functools
import logging

logger = logging.getLogger(__name__)

_installed = False


def install() -> None:
    """Apply both patches (idempotent). Called when the Celery app is created."""
    global _installed
    if _installed:
        return
    _installed = True
    _remember_redis_connparams()
    _survive_connection_cleanup_errors()


def _remember_redis_connparams() -> None:
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    channel_cls = kombu_redis.Channel
    original_init = channel_cls.__init__
    original_connparams = channel_cls._connparams

    @functools.wraps(original_connparams)
    def _connparams(self, asynchronous=False):
        remembered = self.__dict__.setdefault("_spokestack_connparams", {})
        if self.connection.client is not None:
            remembered[asynchronous] = original_connparams(self, asynchronous=asynchronous)
        elif asynchronous not in remembered:
            # A connection error, not an AttributeError: kombu and Celery recover from it.
            raise RedisConnectionError("the broker connection of this channel is closed")
        return dict(remembered[asynchronous])

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._connparams(asynchronous=False)  # the async ones were made by the init's ping

    channel_cls._connparams = _connparams
    channel_cls.__init__ = __init__


def _survive_connection_cleanup_errors() -> None:
    from celery.worker.consumer.consumer import Consumer

    original = Consumer.on_connection_error_after_connected

    @functools.wraps(original)
    def on_connection_error_after_connected(self, exc):
        try:
            original(self, exc)
        except Exception:
            logger.exception("Cleaning up the lost broker connection failed; reconnecting anyway")

    Consumer.on_connection_error_after_connected = on_connection_error_after_connected
