"""The egress policy for SDKs that bring their own httpx2 client (the `mcp` SDK): an async httpx2
transport that vets every request (and the target of every redirect) with `spokestack.egress`,
dials only the vetted addresses (the async twin of `egress._PinnedBackend`), refuses compressed
bodies and caps each response. The egress client's async twin, beside it: one of the few modules
that import an HTTP library (tests/spokestack/test_egress.py lists who may).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
import anyio.to_thread
import httpcore2
import httpx2

from spokestack.egress import (
    REDIRECT_STATUSES,
    EgressBadResponse,
    EgressClient,
    EgressConnectionError,
    EgressError,
    EgressRefused,
    EgressResponseTooLarge,
    EgressTimeout,
    VettedTarget,
    default_ssl_context,
    vet_url,
)

MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # one HTTP response of the server; a tool result is capped again in characters


class _AsyncPinnedBackend(httpcore2.AsyncNetworkBackend):
    """`spokestack.egress._PinnedBackend` for the async pool: dials only the addresses vetted for
    each (host, port); TLS SNI, the certificate check and the Host header keep the URL's host."""

    def __init__(self) -> None:
        self._inner = httpcore2.AnyIOBackend()
        self._pins: dict[tuple[str, int], tuple[str, ...]] = {}

    def pin(self, target: VettedTarget) -> None:
        self._pins[(target.host, target.port)] = target.addresses

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        addresses = self._pins.get((host, port))
        if not addresses:
            raise httpcore2.ConnectError(f"egress: {host}:{port} was not vetted")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options or [])
            except httpcore2.ConnectTimeout:
                raise
            except httpcore2.ConnectError as exc:
                last = exc
        raise last or httpcore2.ConnectError("egress: no address connected")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("egress: unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, *, limit: int, origin: str, owner: EgressTransport) -> None:
        self._inner, self._limit, self._origin, self._owner = inner, limit, origin, owner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._inner:
            size += len(chunk)
            if size > self._limit:
                raise self._owner.fail(EgressResponseTooLarge(
                    f"{self._origin} sent a response over the {self._limit // 1024} KiB limit.", origin=self._origin))
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class EgressTransport(httpx2.AsyncBaseTransport):
    """An httpx2 async transport that sends each request under the egress policy (see the module
    docstring). The first policy failure is kept in `error`: the SDK turns a transport exception
    into a generic one (or a task-group error), and the caller reports this one instead."""

    def __init__(self, *, egress: EgressClient | None = None, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.egress = egress or EgressClient()
        self.max_response_bytes = max_response_bytes
        self.error: EgressError | None = None
        self.requests = 0
        self._backend = _AsyncPinnedBackend()
        ssl_context = self.egress.ssl_context or default_ssl_context()
        self._inner = httpx2.AsyncHTTPTransport(verify=ssl_context, trust_env=False)
        self._inner._pool = httpcore2.AsyncConnectionPool(ssl_context=ssl_context, network_backend=self._backend,
                                                          max_connections=4, max_keepalive_connections=2)

    def fail(self, error: EgressError) -> EgressError:
        if self.error is None:
            self.error = error
        return error

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            target = await anyio.to_thread.run_sync(lambda: vet_url(request.url, resolver=self.egress._resolve))
        except EgressError as exc:
            raise self.fail(exc) from None
        self._backend.pin(target)
        request.headers["accept-encoding"] = "identity"
        origin = target.origin
        self.requests += 1
        try:
            response = await self._inner.handle_async_request(request)
        except (httpx2.ConnectTimeout, httpx2.PoolTimeout):
            raise self.fail(EgressTimeout(f"{origin} did not accept a connection in time.", origin=origin)) from None
        except httpx2.TimeoutException:
            raise self.fail(EgressTimeout(f"{origin} did not answer in time.", origin=origin,
                                          outcome_unknown=True)) from None
        except httpx2.ConnectError:
            raise self.fail(EgressConnectionError(f"Could not connect to {origin}.", origin=origin)) from None
        except httpx2.TransportError:
            raise self.fail(EgressConnectionError(f"The connection to {origin} broke before it answered.",
                                                  origin=origin, outcome_unknown=True)) from None
        location = response.headers.get("location")
        if response.status_code in REDIRECT_STATUSES and location:
            try:
                next_url = request.url.join(location)
                await anyio.to_thread.run_sync(lambda: vet_url(next_url, resolver=self.egress._resolve))
            except httpx2.InvalidURL:
                await response.aclose()
                raise self.fail(EgressRefused(f"{origin} redirected to a malformed URL.", reason="malformed_url",
                                              origin=origin)) from None
            except EgressError as exc:
                await response.aclose()
                raise self.fail(EgressRefused(f"{origin} redirected to a refused address. {exc.message}",
                                              reason=getattr(exc, "reason", "blocked_address"),
                                              origin=origin)) from None
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            await response.aclose()
            raise self.fail(EgressBadResponse(f"{origin} sent a compressed body ({encoding[:20]}) although "
                                              "asked for identity.", origin=origin))
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            await response.aclose()
            raise self.fail(EgressResponseTooLarge(
                f"{origin} sent a response over the {self.max_response_bytes // 1024} KiB limit.", origin=origin))
        return httpx2.Response(status_code=response.status_code, headers=response.headers,
                               stream=_CappedStream(response.stream, limit=self.max_response_bytes, origin=origin,
                                                    owner=self),
                               extensions=response.extensions, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def async_client(*, transport: EgressTransport, headers: dict[str, str], timeout_s: float) -> httpx2.AsyncClient:
    """An httpx2.AsyncClient over `transport`; redirects are not followed by httpx2 (the SDK follows
    same-origin ones itself, each hop through the transport)."""
    timeouts = httpx2.Timeout(connect=min(transport.egress.connect_timeout, timeout_s), read=timeout_s,
                              write=timeout_s, pool=timeout_s)
    return httpx2.AsyncClient(transport=transport, headers=headers, timeout=timeouts, trust_env=False,
                              follow_redirects=False, max_redirects=3)
