"""The one way the platform makes outbound HTTP: webhook skills, the ERP, notifications.

A tenant-defined HTTP tool that a model can call is the platform's biggest SSRF risk, so
every request goes through `EgressClient`, which enforces DESIGN §7:

* http and https only, no credentials in the URL;
* the host is resolved once and refused if ANY address is a cloud metadata address or lies
  in a row of `spokestack.egress_ranges` (every IANA special-purpose IPv4 and IPv6 block:
  loopback, private, link-local, CGNAT, documentation, protocol assignments...; multicast;
  all IPv6 outside 2000::/3), a table of the project's own, so the answer does not change
  with the interpreter's `ipaddress` tables; IPv4-mapped / IPv4-compatible / 6to4 / NAT64 /
  Teredo forms are also checked by the IPv4 address they carry, and the legacy integer,
  octal, hex and short IPv4 spellings (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`) by
  the address they mean;
* the connection dials the address that was checked: the transport's network backend is
  pinned to the vetted addresses, so there is no second lookup to rebind, while the
  request keeps the original Host header and TLS SNI / certificate check;
* redirects are followed only hop by hop, each hop vetted again (at most 3), and
  credentials are dropped when a redirect changes origin;
* connect / read timeouts plus an overall deadline, a streamed response cap (1 MiB by
  default, aborted beyond it), and `require_json` for callers that need JSON.

Errors are `EgressError` subclasses whose message is safe to show a model: they name the
origin (scheme, host, port) and the reason, never the path, query, headers or body.

Development may let loopback through for the sample ERP with `EGRESS_ALLOW_LOOPBACK` and
an explicit `EGRESS_LOOPBACK_PORTS` list; production settings refuse the flag. Only plain
loopback on a listed port is ever allowed: private ranges, metadata addresses, `0.0.0.0`
and mapped forms stay refused in every environment.
"""

from __future__ import annotations

import functools
import ipaddress
import json as jsonlib
import logging
import re
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2
from django.conf import settings

from spokestack.egress_ranges import MAPPED, address_range, embedded_ipv4, is_loopback

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[str]]

MAX_RESPONSE_BYTES = 1024 * 1024
MAX_REDIRECTS = 3
ALLOWED_SCHEMES = frozenset({"http", "https"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that carry credentials: dropped when a redirect leaves the original origin.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"})

# Instance metadata services. Most sit in ranges refused anyway; they are named so the
# refusal says what was hit, and the public-looking one (Azure's wire server) is refused only
# because it is listed here.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
    "169.254.169.253",  # AWS DNS resolver
    "169.254.170.2",  # AWS ECS task metadata
    "169.254.170.23",  # AWS EKS pod identity
    "168.63.129.16",  # Azure wire server (a public address)
    "100.100.100.200",  # Alibaba Cloud
    "192.0.0.192",  # Oracle Cloud
    "fd00:ec2::254",  # AWS IMDS over IPv6
    "fd00:ec2::23",  # AWS EKS pod identity over IPv6
))
GATEWAY_TIMEOUT = 504
# Answers to a resend that still do not settle whether an earlier sending with the same
# idempotency key was acted on: the server was busy or failing, or is still working on the
# earlier one (409, as the IETF Idempotency-Key header draft says a server answers a
# duplicate while the original is in progress). Any other answer is the server's verdict.
UNSETTLED_RESEND_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


# --- errors -----------------------------------------------------------------------------


class EgressError(Exception):
    """An outbound request failed. `message` is safe to show a model or a user.

    `outcome_unknown` is True when the request may have reached the server but no answer says
    what it did: a timeout while waiting for the answer, a connection cut after sending, an
    answer cut off or malformed, a gateway timeout (504). The server may have acted on it, so a
    caller must not report a side effect as not done; only a resend with the same idempotency
    key can settle it. It is False when nothing was sent (refused by policy, the name did not
    resolve, the connection or TLS handshake failed) or when the server's answer was read.
    """

    code = "egress_error"

    def __init__(self, message: str, *, origin: str = "", outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.origin = origin
        self.outcome_unknown = outcome_unknown


class EgressRefused(EgressError):
    """The request was refused before any connection: scheme, address or redirect policy."""

    code = "egress_refused"

    def __init__(self, message: str, *, reason: str, origin: str = "") -> None:
        super().__init__(message, origin=origin)
        self.reason = reason


class EgressConnectionError(EgressError):
    """The host did not resolve or refused the connection (worth retrying later), or the
    connection broke after the request was sent (`outcome_unknown`)."""

    code = "egress_connection_error"


class EgressTimeout(EgressError):
    """No connection in time (nothing sent), or no answer in time (`outcome_unknown`)."""

    code = "egress_timeout"


class EgressResponseTooLarge(EgressError):
    code = "egress_response_too_large"


class EgressBadResponse(EgressError):
    """The response could not be used: not JSON when JSON was required, bad encoding."""

    code = "egress_bad_response"


class EgressHTTPError(EgressError):
    """The server answered with a 4xx or 5xx status. `body` is the capped response body,
    kept for the caller to parse; it is not part of the message."""

    code = "egress_http_error"

    def __init__(self, message: str, *, status_code: int, body: bytes = b"", headers: Mapping[str, str] | None = None,
                 origin: str = "") -> None:
        # A gateway that gave up waiting does not know what the server behind it did.
        super().__init__(message, origin=origin, outcome_unknown=status_code == GATEWAY_TIMEOUT)
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})


# --- address policy ---------------------------------------------------------------------

_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


def parse_legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host written in any inet_aton / WHATWG spelling stands for, or None
    if the host is not numeric. `2130706433`, `0177.0.0.1`, `0x7f.1` and `127.1` are all
    127.0.0.1 to the C library and to browsers, so they must be to us too.

    Raises ValueError for a host that is numeric-looking but not a valid address
    (`1.2.3.4.5`, `256.1.1.1`): such a host is never a DNS name we should resolve.
    """
    parts = host.rstrip(".").split(".") if host else []
    if not parts or not _NUMERIC_PART.match(parts[-1]):
        return None  # WHATWG: a host is IPv4 only when its last label is numeric
    if len(parts) > 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        raise ValueError("not a valid IPv4 address")
    numbers = []
    for part in parts:
        if part.lower().startswith("0x"):
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                raise ValueError("not a valid IPv4 address")
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise ValueError("not a valid IPv4 address")
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def blocked_reason(ip: IPAddress) -> str | None:
    """Why the platform must not connect to `ip`, or None when it is a public address.

    Decided by METADATA_ADDRESSES and the rows of `spokestack.egress_ranges` only, never by
    `ipaddress`'s is_global / is_private, whose tables differ between Python releases. The
    reason names the row ("a documentation address (3fff::/20: Documentation, RFC 9637)").
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return "an IPv6 address with a zone"
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    row = address_range(ip)
    if row is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in embedded_ipv4(ip, row):
            reason = blocked_reason(inner)
            if reason:
                return f"{reason}, embedded in an IPv6 address ({row.citation})"
        if row.embedding == MAPPED:  # ::ffff:a.b.c.d is a.b.c.d: a mapped public address is that address
            return None
    return row.describe()


def _loopback_allowed(ip: IPAddress, port: int) -> bool:
    """The development allowance: plain loopback (not mapped, not 0.0.0.0) on a listed port."""
    return (bool(getattr(settings, "EGRESS_ALLOW_LOOPBACK", False)) and is_loopback(ip)
            and port in {int(p) for p in getattr(settings, "EGRESS_LOOPBACK_PORTS", ())})


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolves `host` to, for TCP."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0] for info in infos))


# getaddrinfo has no timeout of its own: lookups run here so a caller can stop waiting.
_DNS_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="egress-dns")


@dataclass(frozen=True)
class VettedTarget:
    """A URL that passed the policy, with the addresses the connection may dial."""

    url: httpx2.URL
    host: str  # as the transport will see it (IDNA, no brackets)
    port: int
    addresses: tuple[str, ...]

    @property
    def origin(self) -> str:
        return _origin(self.url.scheme, self.host, self.port)


def _origin(scheme: str, host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{shown}" + (f":{port}" if port and port != default else "")


def vet_url(url: str | httpx2.URL, *, resolver: Resolver | None = system_resolver) -> VettedTarget:
    """Check `url` against the egress policy and return the addresses to dial.

    With `resolver=None` only what the URL itself shows is checked (scheme, credentials,
    literal addresses, non-canonical numeric spellings): what a form validates on save
    without touching DNS. The egress client always resolves.
    """
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        raise EgressRefused("The URL is malformed.", reason="malformed_url") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = scheme or "no scheme"
        raise EgressRefused(f"Only http and https URLs are allowed, not {shown}.", reason="scheme")
    try:
        hostname = parts.hostname or ""
        explicit_port = parts.port
    except ValueError:
        raise EgressRefused("The URL has an invalid port.", reason="malformed_url") from None
    if not hostname or "%" in hostname.split("%25")[0]:
        raise EgressRefused("The URL has no usable host.", reason="malformed_url")
    port = explicit_port or (443 if scheme == "https" else 80)
    origin = _origin(scheme, hostname, port)
    if parts.username is not None or parts.password is not None:
        raise EgressRefused(f"Credentials in the URL are not allowed ({origin}); use the configured auth instead.",
                            reason="credentials_in_url", origin=origin)

    literal: IPAddress | None = None
    try:
        legacy = None if ":" in hostname else parse_legacy_ipv4(hostname)
    except ValueError:
        raise EgressRefused(f"{origin} is not a valid address.", reason="malformed_url", origin=origin) from None
    if legacy is not None:
        if str(legacy) != hostname.rstrip("."):
            reason = blocked_reason(legacy)
            detail = f"it means {legacy}, {reason}" if reason else f"write it as {legacy}"
            raise EgressRefused(f"Refused {origin}: a non-standard spelling of an IP address ({detail}).",
                                reason="blocked_address" if reason else "non_canonical_address", origin=origin)
        literal = legacy
    elif ":" in hostname:
        try:
            literal = ipaddress.ip_address(hostname)
        except ValueError:
            raise EgressRefused(f"{origin} is not a valid address.", reason="malformed_url", origin=origin) from None

    try:
        parsed = httpx2.URL(text)
    except httpx2.InvalidURL:
        raise EgressRefused(f"The URL for {origin} is malformed.", reason="malformed_url", origin=origin) from None
    host = parsed.raw_host.decode("ascii")

    if literal is not None:
        addresses = [str(literal)]
    elif resolver is None:
        return VettedTarget(url=parsed, host=host, port=port, addresses=())
    else:
        try:
            addresses = [str(a) for a in resolver(host, port)]
        except (OSError, UnicodeError):
            raise EgressConnectionError(f"The host of {origin} could not be resolved.", origin=origin) from None
        if not addresses:
            raise EgressConnectionError(f"The host of {origin} could not be resolved.", origin=origin)

    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise EgressRefused(f"Refused {origin}: it resolved to something that is not an IP address.",
                                reason="blocked_address", origin=origin) from None
        reason = blocked_reason(ip)
        if reason and not _loopback_allowed(ip, port):
            shown = "" if literal is not None else f" resolves to {ip}, which is"
            raise EgressRefused(f"Refused {origin}:{shown} {reason}; the platform only calls public addresses.",
                                reason="blocked_address", origin=origin)
    return VettedTarget(url=parsed, host=host, port=port, addresses=tuple(addresses))


# --- the pinned transport ---------------------------------------------------------------


class _PinnedBackend(httpcore2.NetworkBackend):
    """Dials only the addresses vetted for each (host, port); anything else is refused.

    httpcore2 hands `connect_tcp` the URL's host; the TLS layer later uses the same host for
    SNI and certificate checks, and the Host header comes from the URL, so swapping the
    host for its vetted address here changes only where the socket goes.
    """

    def __init__(self) -> None:
        self._inner = httpcore2.SyncBackend()
        self._pins: dict[tuple[str, int], tuple[str, ...]] = {}

    def pin(self, target: VettedTarget) -> None:
        self._pins[(target.host, target.port)] = target.addresses

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore2.NetworkStream:
        addresses = self._pins.get((host, port))
        if not addresses:
            raise httpcore2.ConnectError(f"egress: {host}:{port} was not vetted")
        last: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                               socket_options=socket_options or [])
            except httpcore2.ConnectTimeout:
                raise
            except httpcore2.ConnectError as exc:
                last = exc
        raise last or httpcore2.ConnectError("egress: no address connected")

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore2.NetworkStream:
        raise httpcore2.ConnectError("egress: unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _PinnedTransport(httpx2.HTTPTransport):
    """httpx2's transport over a connection pool whose backend is `_PinnedBackend`."""

    def __init__(self, backend: _PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool = httpcore2.ConnectionPool(ssl_context=ssl_context, network_backend=backend, max_connections=4,
                                              max_keepalive_connections=0)


@functools.lru_cache(maxsize=1)
def default_ssl_context() -> ssl.SSLContext:
    """Built once: loading the trust store costs milliseconds per request otherwise."""
    return httpx2.create_ssl_context(trust_env=False)


# --- responses and the client -----------------------------------------------------------


@dataclass
class EgressResponse:
    status_code: int
    headers: httpx2.Headers
    content: bytes
    url: str  # the final URL, after redirects
    elapsed_ms: float
    redirects: int = 0
    _json: Any = field(default=None, repr=False)

    def json(self) -> Any:
        """The parsed body; None for an empty 204 No Content."""
        if self._json is None and not (self.status_code == 204 and not self.content):
            self._json = jsonlib.loads(self.content)
        return self._json

    @property
    def text(self) -> str:
        return self.content.decode(_charset(self.headers), errors="replace")


def _charset(headers: httpx2.Headers) -> str:
    match = re.search(r"charset=([\w-]+)", headers.get("content-type", ""), re.IGNORECASE)
    return match.group(1) if match else "utf-8"


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class EgressClient:
    """Outbound HTTP under the platform's policy. Cheap to build; holds no connections
    between calls (each call dials its own vetted addresses), so it is thread-safe.

    `resolver` replaces DNS (tests inject one: a public-looking name resolving to a
    private address); `ssl_context` replaces the system trust store (tests with a local
    certificate authority).
    """

    def __init__(self, *, resolver: Resolver | None = None, connect_timeout: float | None = None,
                 read_timeout: float | None = None, total_timeout: float | None = None,
                 max_response_bytes: int = MAX_RESPONSE_BYTES, max_redirects: int = MAX_REDIRECTS,
                 ssl_context: ssl.SSLContext | None = None, user_agent: str = "SpokeStack-Egress/1") -> None:
        self.resolver = resolver or system_resolver
        self.connect_timeout = connect_timeout if connect_timeout is not None else float(
            getattr(settings, "EGRESS_CONNECT_TIMEOUT", 5.0))
        self.read_timeout = read_timeout if read_timeout is not None else float(
            getattr(settings, "EGRESS_READ_TIMEOUT", 15.0))
        self.total_timeout = total_timeout if total_timeout is not None else self.connect_timeout + self.read_timeout * 2
        self.max_response_bytes = max_response_bytes
        self.max_redirects = max_redirects
        self.ssl_context = ssl_context
        self.user_agent = user_agent

    def get(self, url: str, **kwargs: Any) -> EgressResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> EgressResponse:
        return self.request("POST", url, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        require_json: bool = False,
        follow_redirects: bool = True,
        raise_for_status: bool = True,
        timeout: float | None = None,
    ) -> EgressResponse:
        """Send one request (plus vetted redirect hops) and return the whole, capped response.

        Raises EgressRefused before any connection when the URL or a redirect breaks the
        policy; EgressTimeout, EgressConnectionError, EgressResponseTooLarge,
        EgressBadResponse (with `require_json`), and EgressHTTPError for 4xx/5xx when
        `raise_for_status`.
        """
        started = time.monotonic()
        read_timeout = timeout if timeout is not None else self.read_timeout
        total = max(self.total_timeout, read_timeout) if timeout is None else self.connect_timeout + 2 * timeout
        deadline = started + total
        if json is not None:
            content = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            send_headers = httpx2.Headers(headers or {})
            send_headers.raw  # noqa: B018 - encodes now, so a bad value fails here, not mid-request
        except (UnicodeError, TypeError, ValueError):
            raise EgressError("A request header is invalid: header values must be ASCII text.") from None
        send_headers.setdefault("user-agent", self.user_agent)
        send_headers["accept-encoding"] = "identity"
        if json is not None:
            send_headers.setdefault("content-type", "application/json")
        if require_json:
            send_headers.setdefault("accept", "application/json")

        method = method.upper()
        try:
            current = httpx2.URL(url).copy_merge_params(params) if params else url
        except httpx2.InvalidURL:
            raise EgressRefused("The URL is malformed.", reason="malformed_url") from None
        first_origin = None
        for hop in range(self.max_redirects + 1):
            target = vet_url(current, resolver=self._resolve)
            first_origin = first_origin or target.origin
            response = self._send_once(target, method, send_headers, content, read_timeout, deadline)
            location = response.headers.get("location")
            if not follow_redirects or response.status_code not in REDIRECT_STATUSES or not location:
                break
            if hop == self.max_redirects:
                raise EgressRefused(f"{first_origin} redirected more than {self.max_redirects} times.",
                                    reason="too_many_redirects", origin=first_origin)
            try:
                next_url = target.url.join(location)
            except httpx2.InvalidURL:
                raise EgressRefused(f"{target.origin} redirected to a malformed URL.", reason="malformed_url",
                                    origin=target.origin) from None
            if response.status_code in (301, 302, 303) and method != "HEAD":
                if response.status_code == 303 or method == "POST":
                    method, content = "GET", None
                    for name in ("content-type", "content-length", "transfer-encoding"):
                        send_headers.pop(name, None)
            if (next_url.scheme, next_url.raw_host, next_url.port) != (target.url.scheme, target.url.raw_host,
                                                                       target.url.port):
                for name in CREDENTIAL_HEADERS:
                    send_headers.pop(name, None)
            current = next_url

        response.redirects = hop
        response.elapsed_ms = (time.monotonic() - started) * 1000
        origin = target.origin
        # Only the origin: paths and queries may carry tokens (httpx2's own INFO line, which
        # shows the full URL, is silenced in settings.LOGGING).
        logger.info("egress %s %s -> %s in %.0f ms", method, origin, response.status_code, response.elapsed_ms)
        redirect = response.status_code in REDIRECT_STATUSES and "location" in response.headers
        if raise_for_status and (response.status_code >= 400 or redirect):
            what = "a redirect that is not followed" if redirect else "an error"
            raise EgressHTTPError(f"{origin} answered HTTP {response.status_code} ({what}).",
                                  status_code=response.status_code, body=response.content, headers=response.headers,
                                  origin=origin)
        if require_json and not (response.status_code == 204 and not response.content):
            if not _is_json_type(response.headers.get("content-type", "")):
                raise EgressBadResponse(f"{origin} did not answer with JSON (content type "
                                        f"'{response.headers.get('content-type', 'none')[:60]}').", origin=origin)
            try:
                response.json()
            except ValueError:
                raise EgressBadResponse(f"{origin} answered with invalid JSON.", origin=origin) from None
            except RecursionError:  # nested deeper than the interpreter parses
                raise EgressBadResponse(f"{origin} answered with JSON nested too deeply.", origin=origin) from None
        return response

    def _resolve(self, host: str, port: int) -> Iterable[str]:
        if self.resolver is not system_resolver:
            return self.resolver(host, port)
        future = _DNS_POOL.submit(system_resolver, host, port)
        try:
            return future.result(timeout=self.connect_timeout)
        except FutureTimeout:
            future.cancel()
            origin = _origin("http", host, None)
            raise EgressTimeout(f"Resolving {origin.removeprefix('http://')} took longer than "
                                f"{self.connect_timeout:g} s.", origin=origin) from None

    def _send_once(self, target: VettedTarget, method: str, headers: httpx2.Headers, content: bytes | None,
                   read_timeout: float, deadline: float) -> EgressResponse:
        backend = _PinnedBackend()
        backend.pin(target)
        transport = _PinnedTransport(backend, self.ssl_context or default_ssl_context())
        remaining = max(0.001, deadline - time.monotonic())
        timeouts = httpx2.Timeout(connect=min(self.connect_timeout, remaining), read=min(read_timeout, remaining),
                                  write=min(read_timeout, remaining), pool=min(self.connect_timeout, remaining))
        origin = target.origin
        started = time.monotonic()
        try:
            with httpx2.Client(transport=transport, trust_env=False, follow_redirects=False, timeout=timeouts) as client:
                with client.stream(method, target.url, headers=headers, content=content) as response:
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > self.max_response_bytes:
                        raise EgressResponseTooLarge(self._too_large(origin), origin=origin)
                    body = self._read_capped(response, origin, deadline)
                    return EgressResponse(status_code=response.status_code, headers=response.headers, content=body,
                                          url=str(target.url.copy_with(query=None, fragment=None)),
                                          elapsed_ms=(time.monotonic() - started) * 1000)
        # Before the connection is up nothing has been sent; after it, the server may have the
        # request (a write error may come after part of it went out), so the outcome is unknown.
        except (httpx2.ConnectTimeout, httpx2.PoolTimeout):
            raise EgressTimeout(f"{origin} did not accept a connection in time.", origin=origin) from None
        except httpx2.TimeoutException:
            raise EgressTimeout(f"{origin} did not answer in time.", origin=origin, outcome_unknown=True) from None
        except httpx2.LocalProtocolError:
            raise EgressError(f"The request to {origin} could not be sent: a header value is invalid.",
                              origin=origin) from None
        except httpx2.ProtocolError:  # also a server that closes the connection without answering
            raise EgressBadResponse(f"{origin} closed the connection without a valid HTTP response.", origin=origin,
                                    outcome_unknown=True) from None
        except (httpx2.ConnectError, httpx2.UnsupportedProtocol):
            raise EgressConnectionError(f"Could not connect to {origin}.", origin=origin) from None
        except httpx2.TransportError:
            raise EgressConnectionError(f"The connection to {origin} broke before it answered.", origin=origin,
                                        outcome_unknown=True) from None

    def _too_large(self, origin: str) -> str:
        return f"{origin} sent a response over the {self.max_response_bytes // 1024} KiB limit."

    def _read_capped(self, response: httpx2.Response, origin: str, deadline: float) -> bytes:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise EgressBadResponse(f"{origin} used an unsupported content encoding '{encoding[:20]}'.", origin=origin)
        # Raw bytes, so a compressed body cannot expand past the cap before it is counted.
        decoder = None if encoding in ("", "identity") else zlib.decompressobj(wbits=47)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_raw():
            if time.monotonic() > deadline:
                raise EgressTimeout(f"{origin} did not finish its response in time.", origin=origin,
                                    outcome_unknown=True)
            if decoder is not None:
                try:
                    chunk = decoder.decompress(chunk, self.max_response_bytes + 1 - size)
                except zlib.error:
                    raise EgressBadResponse(f"{origin} sent a corrupt compressed body.", origin=origin) from None
                if decoder.unconsumed_tail:
                    raise EgressResponseTooLarge(self._too_large(origin), origin=origin)
            size += len(chunk)
            if size > self.max_response_bytes:
                raise EgressResponseTooLarge(self._too_large(origin), origin=origin)
            chunks.append(chunk)
        if decoder is not None:
            tail = decoder.flush()
            if size + len(tail) > self.max_response_bytes:
                raise EgressResponseTooLarge(self._too_large(origin), origin=origin)
            chunks.append(tail)
        return b"".join(chunks)


def default_client() -> EgressClient:
    """The client product code uses when it has no reason to configure one."""
    return EgressClient()
