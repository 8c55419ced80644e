"""The address ranges egress refuses, as the project's own data.

Why a table here and not `ipaddress.is_global` / `is_private`: those answer from the
interpreter's copy of the IANA registries, which changes between patch releases and lags the
registries (Python 3.11.7 calls 192.0.0.100 and 3fff::1 global, and 64:ff9b::8.8.8.8
reserved). The platform's answer to "may we connect there?" must not change with the
interpreter, so it is decided only by the rows below; `ipaddress` is used to parse and to
hold networks, never to classify.

Rows come from, in this order:

* the IANA IPv4 Special-Purpose Address Registry
  (https://www.iana.org/assignments/iana-ipv4-special-registry) and the IANA IPv6
  Special-Purpose Address Registry (https://www.iana.org/assignments/iana-ipv6-special-registry),
  which RFC 6890 set up and RFC 8190 updated: every row, with the registry's name and RFC and
  its "Globally Reachable" column (True, False, or None where the registry says N/A);
* multicast (IANA IPv4 Multicast Address Space, RFC 5771; RFC 4291 for ff00::/8), which the
  special-purpose registries do not list;
* the IPv6 blocks that RFC 4291 deprecated and the registry no longer lists: site-local
  (fec0::/10, RFC 3879) and IPv4-compatible (::/96, RFC 4291 section 2.5.5.1);
* the "Reserved by IETF" blocks of the IANA IPv6 Address Space registry, so that every IPv6
  address outside 2000::/3 (Global Unicast) is a row.

Every row is refused, "globally reachable" ones included. Those are anycast services (PCP,
TURN, DNS-SD registration, AMT, AS112, 6a44), where "reachable" means "answered by the nearest
instance", which can be equipment inside the provider's own network, and identifier spaces
(ORCHIDv2, drone DETs) that are not locators; none of them is where a webhook or an ERP lives.
The rows that carry an IPv4 address (`embedding`) are checked by that address as well, so the
refusal can name it; an IPv4-mapped address is the IPv4 address itself and passes when it does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

# The registry revisions transcribed here (they could not be fetched live when this was written;
# the rows were checked against RFC 6890, RFC 8190, the RFCs named in each row and CPython's
# Lib/ipaddress.py on main). IPv6: the revision that added 100:0:0:1::/64 (RFC 9780, 2025),
# after 5f00::/16 (RFC 9602, 2024) and 2001:1::3/128 (RFC 9665, 2024). IPv4: the revision
# listing 192.88.99.2/32 (RFC 6751). When a registry changes, add its row here and to the
# list in tests/spokestack/test_egress.py.
REGISTRY_REVISION = "IANA IPv4 and IPv6 special-purpose registries as of 2025 (IPv6: through RFC 9780)"

IPV4_SPECIAL = "IANA IPv4 Special-Purpose Address Registry"
IPV6_SPECIAL = "IANA IPv6 Special-Purpose Address Registry"
IPV4_MULTICAST = "IANA IPv4 Multicast Address Space"
IPV6_ADDRESS_SPACE = "IANA IPv6 Address Space"

# How a refusal describes a row: the first words of the message ("a private address (...)").
UNSPECIFIED = "an unspecified address"
LOOPBACK = "a loopback address"
PRIVATE = "a private address"
SHARED = "a carrier-grade NAT address"
LINK_LOCAL = "a link-local address"
SITE_LOCAL = "a site-local address"
MULTICAST = "a multicast address"
BROADCAST = "a broadcast address"
DOCUMENTATION = "a documentation address"
BENCHMARKING = "a benchmarking address"
ANYCAST = "a special-purpose anycast address"
SPECIAL = "a special-purpose address"
TRANSLATION = "an IPv4/IPv6 translation address"
TUNNEL = "an IPv4 tunnel address"
RESERVED = "a reserved address"

# Where a row keeps an IPv4 address inside an IPv6 one.
MAPPED = "mapped"  # ::ffff:a.b.c.d, RFC 4291: the IPv4 address itself
COMPATIBLE = "compatible"  # ::a.b.c.d, deprecated
LOW_32_BITS = "low-32-bits"  # NAT64 /96 (RFC 6052 section 2.2); the local-use /48 as well
SIXTOFOUR = "6to4"  # 2002:aabb:ccdd::, bits 16-47 (RFC 3056)
TEREDO = "teredo"  # server in bits 32-63, client inverted in the low 32 bits (RFC 4380)


@dataclass(frozen=True)
class AddressRange:
    """One row: a block, what the registry calls it, and how a refusal names it."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    name: str
    rfc: str
    kind: str
    source: str
    globally_reachable: bool | None = False
    embedding: str = ""
    first: int = field(init=False, repr=False, compare=False)
    last: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "first", int(self.network.network_address))
        object.__setattr__(self, "last", int(self.network.broadcast_address))

    @property
    def citation(self) -> str:
        return f"{self.network}: {self.name}, {self.rfc}"

    def describe(self) -> str:
        return f"{self.kind} ({self.citation})"


def _row(block: str, name: str, rfc: str, kind: str, source: str, globally_reachable: bool | None = False,
         embedding: str = "") -> AddressRange:
    return AddressRange(ipaddress.ip_network(block), name, rfc, kind, source, globally_reachable, embedding)


_V4 = IPV4_SPECIAL
_V6 = IPV6_SPECIAL

ADDRESS_TABLE: tuple[AddressRange, ...] = (
    # IANA IPv4 Special-Purpose Address Registry, every row.
    _row("0.0.0.0/8", "This network", "RFC 791, section 3.2", RESERVED, _V4),
    _row("0.0.0.0/32", "This host on this network", "RFC 1122, section 3.2.1.3", UNSPECIFIED, _V4),
    _row("10.0.0.0/8", "Private-Use", "RFC 1918", PRIVATE, _V4),
    _row("100.64.0.0/10", "Shared Address Space", "RFC 6598", SHARED, _V4),
    _row("127.0.0.0/8", "Loopback", "RFC 1122, section 3.2.1.3", LOOPBACK, _V4),
    _row("169.254.0.0/16", "Link Local", "RFC 3927", LINK_LOCAL, _V4),
    _row("172.16.0.0/12", "Private-Use", "RFC 1918", PRIVATE, _V4),
    _row("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890, section 2.1", SPECIAL, _V4),
    _row("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335", SPECIAL, _V4),
    _row("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", SPECIAL, _V4),
    _row("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723", ANYCAST, _V4, True),
    _row("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155", ANYCAST, _V4, True),
    _row("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 section 2.2", SPECIAL, _V4),
    _row("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 section 2.2", SPECIAL, _V4),
    _row("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737", DOCUMENTATION, _V4),
    _row("192.31.196.0/24", "AS112-v4", "RFC 7535", ANYCAST, _V4, True),
    _row("192.52.193.0/24", "AMT", "RFC 7450", ANYCAST, _V4, True),
    _row("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", ANYCAST, _V4, None),
    _row("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751", ANYCAST, _V4),
    _row("192.168.0.0/16", "Private-Use", "RFC 1918", PRIVATE, _V4),
    _row("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", ANYCAST, _V4, True),
    _row("198.18.0.0/15", "Benchmarking", "RFC 2544", BENCHMARKING, _V4),
    _row("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737", DOCUMENTATION, _V4),
    _row("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737", DOCUMENTATION, _V4),
    _row("240.0.0.0/4", "Reserved", "RFC 1112, section 4", RESERVED, _V4),
    _row("255.255.255.255/32", "Limited Broadcast", "RFC 8190, RFC 919 section 7", BROADCAST, _V4),
    # Multicast has its own registry; a client has no business addressing a group.
    _row("224.0.0.0/4", "Multicast", "RFC 5771", MULTICAST, IPV4_MULTICAST, None),
    # IANA IPv6 Special-Purpose Address Registry, every row.
    _row("::1/128", "Loopback Address", "RFC 4291", LOOPBACK, _V6),
    _row("::/128", "Unspecified Address", "RFC 4291", UNSPECIFIED, _V6),
    _row("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", SPECIAL, _V6, embedding=MAPPED),
    _row("64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052", TRANSLATION, _V6, True, LOW_32_BITS),
    _row("64:ff9b:1::/48", "IPv4-IPv6 Translat.", "RFC 8215", TRANSLATION, _V6, embedding=LOW_32_BITS),
    _row("100::/64", "Discard-Only Address Block", "RFC 6666", SPECIAL, _V6),
    _row("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780", SPECIAL, _V6),
    _row("2001::/23", "IETF Protocol Assignments", "RFC 2928", SPECIAL, _V6),
    _row("2001::/32", "TEREDO", "RFC 4380, RFC 8190", TUNNEL, _V6, None, TEREDO),
    _row("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", ANYCAST, _V6, True),
    _row("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155", ANYCAST, _V6, True),
    _row("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665", ANYCAST, _V6, True),
    _row("2001:2::/48", "Benchmarking", "RFC 5180, RFC Errata 1752", BENCHMARKING, _V6),
    _row("2001:3::/32", "AMT", "RFC 7450", ANYCAST, _V6, True),
    _row("2001:4:112::/48", "AS112-v6", "RFC 7535", ANYCAST, _V6, True),
    _row("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", SPECIAL, _V6, None),
    _row("2001:20::/28", "ORCHIDv2", "RFC 7343", SPECIAL, _V6, True),
    _row("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", SPECIAL, _V6, True),
    _row("2001:db8::/32", "Documentation", "RFC 3849", DOCUMENTATION, _V6),
    _row("2002::/16", "6to4", "RFC 3056", TUNNEL, _V6, None, SIXTOFOUR),
    _row("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", ANYCAST, _V6, True),
    _row("3fff::/20", "Documentation", "RFC 9637", DOCUMENTATION, _V6),
    _row("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602", SPECIAL, _V6),
    _row("fc00::/7", "Unique-Local", "RFC 4193, RFC 8190", PRIVATE, _V6),
    _row("fe80::/10", "Link-Local Unicast", "RFC 4291", LINK_LOCAL, _V6),
    # Not in the special-purpose registry: multicast, and two deprecated kinds of address.
    _row("ff00::/8", "Multicast", "RFC 4291, section 2.7", MULTICAST, IPV6_ADDRESS_SPACE, None),
    _row("fec0::/10", "Site-Local (deprecated)", "RFC 3879", SITE_LOCAL, IPV6_ADDRESS_SPACE),
    _row("::/96", "IPv4-Compatible (deprecated)", "RFC 4291, section 2.5.5.1", RESERVED, IPV6_ADDRESS_SPACE,
         embedding=COMPATIBLE),
    # IANA IPv6 Address Space: with the rows above, everything outside 2000::/3 (Global Unicast).
    *(_row(block, "Reserved by IETF", rfc, RESERVED, IPV6_ADDRESS_SPACE) for block, rfc in (
        ("::/8", "RFC 4291"), ("100::/8", "RFC 4291"), ("200::/7", "RFC 4048"), ("400::/6", "RFC 4291"),
        ("800::/5", "RFC 4291"), ("1000::/4", "RFC 4291"), ("4000::/3", "RFC 4291"), ("6000::/3", "RFC 4291"),
        ("8000::/3", "RFC 4291"), ("a000::/3", "RFC 4291"), ("c000::/3", "RFC 4291"), ("e000::/4", "RFC 4291"),
        ("f000::/5", "RFC 4291"), ("f800::/6", "RFC 4291"), ("fe00::/9", "RFC 4291"),
    )),
)

# Most specific first, so the first row that holds an address is the one that names it.
_BY_VERSION: dict[int, tuple[AddressRange, ...]] = {
    version: tuple(sorted((r for r in ADDRESS_TABLE if r.network.version == version),
                          key=lambda r: -r.network.prefixlen))
    for version in (4, 6)
}


def address_range(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> AddressRange | None:
    """The most specific row holding `ip`, or None for an address in no row (a public one)."""
    value = int(ip)
    for row in _BY_VERSION[ip.version]:
        if row.first <= value <= row.last:
            return row
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address, row: AddressRange) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses `row` says `ip` carries (none for a row that embeds nothing)."""
    value = int(ip)
    if row.embedding in (MAPPED, COMPATIBLE, LOW_32_BITS):
        return (ipaddress.IPv4Address(value & 0xFFFFFFFF),)
    if row.embedding == SIXTOFOUR:
        return (ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF),)
    if row.embedding == TEREDO:
        return (ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF), ipaddress.IPv4Address(~value & 0xFFFFFFFF))
    return ()


def is_loopback(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Plain loopback (127.0.0.0/8 or ::1), not a loopback address inside another form."""
    row = address_range(ip)
    return row is not None and row.kind == LOOPBACK
