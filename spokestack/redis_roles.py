"""The platform's Redis roles (DESIGN §17): the Celery broker, the cache and the channel layer, each
on the URL its setting names (by default one Redis, databases 0, 1 and 2). The broker may be behind
Redis Sentinel (`sentinel://host:26379;sentinel://host2:26379`, master CELERY_BROKER_SENTINEL_MASTER),
as kombu reads it; `redis_client` opens the same server kombu would, for the readiness check and the
queue-depth metric."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import redis
from django.conf import settings
from redis.sentinel import Sentinel


def roles() -> dict[str, str]:
    """role -> URL, in the order readiness reports them."""
    return {"broker": settings.CELERY_BROKER_URL, "cache": settings.CACHE_REDIS_URL,
            "channel layer": settings.CHANNEL_LAYER_REDIS_URL}


def redis_client(url: str, *, timeout: float = 1.0) -> redis.Redis:
    """A client of the Redis at `url`; for a Sentinel URL, of the master the sentinels name now."""
    if not url.startswith("sentinel://"):
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    nodes, password, db = [], None, 0
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        nodes.append((parsed.hostname or "localhost", parsed.port or 26379))
        password = password or (unquote(parsed.password) if parsed.password else None)
        if parsed.path.strip("/").isdigit():
            db = int(parsed.path.strip("/"))
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    sentinel = Sentinel(nodes, socket_timeout=timeout, socket_connect_timeout=timeout,
                        sentinel_kwargs=options.get("sentinel_kwargs") or {})
    return sentinel.master_for(options.get("master_name", "mymaster"), socket_timeout=timeout,
                               socket_connect_timeout=timeout, password=password, db=db)


def ping_each() -> list[str]:
    """Ping every distinct Redis role; returns the roles that answered. Raises naming the first that
    did not (so readiness says which one is down)."""
    answered = []
    for role, url in roles().items():
        client = redis_client(url)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise redis.ConnectionError(f"the {role} Redis ({_safe(url)}) does not answer: {exc}") from exc
        finally:
            client.close()
        answered.append(role)
    return answered


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = []
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        netloc = parsed.hostname or ""
        if parsed.port:
            netloc += f":{parsed.port}"
        parts.append(parsed._replace(netloc=netloc).geturl())
    return ";".join(parts)
