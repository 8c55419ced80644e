"""The egress client: the SSRF corpus of issue 5 refused before any connection, DNS pinning,
redirects re-checked hop by hop, timeouts, the response cap, TLS to a pinned address, and
the rule that no other product module speaks HTTP."""

import ast
import datetime
import gzip
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from spokestack import egress_ranges
from spokestack.egress import (
    EgressBadResponse,
    EgressClient,
    EgressConnectionError,
    EgressError,
    EgressHTTPError,
    EgressRefused,
    EgressResponseTooLarge,
    EgressTimeout,
    blocked_reason,
    parse_legacy_ipv4,
    vet_url,
)
from spokestack.egress_ranges import ADDRESS_TABLE

from ..conftest import ROOT
from ..loopback_server import LoopbackServer, Reply


@pytest.fixture
def connects(monkeypatch):
    """Every TCP connect attempted during the test (on top of the network guard)."""
    attempts = []
    guarded = socket.socket.connect

    def spy(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
        return guarded(sock, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    return attempts


def resolver_from(table):
    """A resolver that answers from `table` and records every lookup."""
    calls = []

    def resolve(host, port):
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown host")
        answer = table[host]
        return answer(len(calls)) if callable(answer) else answer

    resolve.calls = calls
    return resolve


def corpus(port):
    """Issue 5's SSRF corpus, aimed at a listening loopback port where the address allows."""
    return [
        f"http://127.0.0.1:{port}/",
        f"http://localhost:{port}/",
        f"http://0.0.0.0:{port}/",
        f"http://[::1]:{port}/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://2130706433:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://0x7f.1:{port}/",
        f"http://127.1:{port}/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://168.63.129.16/machine",
        "https://[::]/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "ftp://example.com/pub/file",
        "dict://127.0.0.1:11211/stat",
        f"http://user:pass@127.0.0.1:{port}/",
    ]


@pytest.mark.parametrize("index", range(len(corpus(1))))
def test_ssrf_corpus_is_refused_before_any_connection(index, loopback_server, connects):
    url = corpus(loopback_server.port)[index]
    with pytest.raises(EgressRefused) as refused:
        EgressClient().get(url)
    assert refused.value.reason in {"blocked_address", "scheme", "credentials_in_url"}
    assert loopback_server.connections == 0 and connects == []


@pytest.mark.parametrize("index", range(len(corpus(1))))
def test_the_loopback_allowance_lets_through_only_plain_loopback_on_its_port(index, loopback_server,
                                                                            egress_loopback, connects):
    egress_loopback(loopback_server.port)
    loopback_server.route("/", Reply.json({"ok": True}))
    url = corpus(loopback_server.port)[index]
    plain_loopback = url.startswith((f"http://127.0.0.1:{loopback_server.port}", f"http://localhost:{loopback_server.port}",
                                     f"http://[::1]:{loopback_server.port}"))
    if not plain_loopback:
        with pytest.raises(EgressRefused):
            EgressClient().get(url)
        assert loopback_server.connections == 0 and connects == []
    elif "[::1]" not in url:  # the test server listens on IPv4 only
        assert EgressClient().get(url).json() == {"ok": True}


def test_loopback_on_an_unlisted_port_stays_refused(loopback_server, egress_loopback, connects):
    egress_loopback(loopback_server.port + 1)
    with pytest.raises(EgressRefused, match="loopback"):
        EgressClient().get(loopback_server.url)
    assert connects == []


def test_the_test_settings_grant_no_loopback_allowance(settings):
    assert settings.EGRESS_ALLOW_LOOPBACK is False and settings.EGRESS_LOOPBACK_PORTS == []


@pytest.mark.parametrize("spelling, address", [
    ("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"), ("017700000001", "127.0.0.1"), ("10.1", "10.0.0.1"), ("0xa9.0xfe.0xa9.0xfe",
                                                                                        "169.254.169.254"),
    ("8.8.8.8", "8.8.8.8"), ("example.com", None), ("1e100.net", None),
])
def test_legacy_ipv4_spellings_mean_what_the_c_library_says(spelling, address):
    parsed = parse_legacy_ipv4(spelling)
    assert (str(parsed) if parsed else None) == address
    if address:
        assert str(ipaddress.ip_address(socket.inet_aton(spelling))) == address


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.0.0.1", "0x100.1.1.1", "08.1.1.1", "1.0x"])
def test_numeric_hosts_that_are_no_address_are_refused(host):
    with pytest.raises(EgressRefused):
        vet_url(f"http://{host}/", resolver=None)


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "93.184.215.14"])
def test_public_addresses_pass(address):
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", ["2002:7f00:1::", "64:ff9b::a9fe:a9fe", "2001:0:4136:e378:8000:63bf:80ff:fffe",
                                     "198.18.0.1", "192.0.2.1", "fec0::1", "ff02::1"])
def test_embedded_and_special_purpose_addresses_are_refused(address):
    assert blocked_reason(ipaddress.ip_address(address))


# --- the special-purpose address table (issue 13, finding 7) -----------------------------

# Every block of the two IANA special-purpose registries, written out here so that dropping a
# row from the table fails a test instead of silently shrinking the parametrized cases below.
IANA_IPV4_SPECIAL = [
    "0.0.0.0/8", "0.0.0.0/32", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.0.0/29", "192.0.0.8/32", "192.0.0.9/32", "192.0.0.10/32", "192.0.0.170/32",
    "192.0.0.171/32", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24", "192.88.99.2/32",
    "192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
    "255.255.255.255/32",
]
IANA_IPV6_SPECIAL = [
    "::1/128", "::/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "100:0:0:1::/64",
    "2001::/23", "2001::/32", "2001:1::1/128", "2001:1::2/128", "2001:1::3/128", "2001:2::/48", "2001:3::/32",
    "2001:4:112::/48", "2001:10::/28", "2001:20::/28", "2001:30::/28", "2001:db8::/32", "2002::/16",
    "2620:4f:8000::/48", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10",
]
# A public IPv4 address carried inside each IPv6 form that embeds one, so that the form's own
# row is what refuses it (8.8.8.8; Teredo stores the client bit-inverted: f7f7:f7f7).
PUBLIC_INSIDE = {
    "64:ff9b::/96": "64:ff9b::808:808", "64:ff9b:1::/48": "64:ff9b:1::808:808", "2002::/16": "2002:808:808::1",
    "2001::/32": "2001:0:808:808:8000:63bf:f7f7:f7f7", "::/96": "::808:808",
}


def _an_address_only_this_row_claims(row):
    """An address inside `row` that no more specific row of the table claims (so the refusal
    must name this row), for the embedding forms one that carries a public IPv4 address."""
    if str(row.network) in PUBLIC_INSIDE:
        return ipaddress.ip_address(PUBLIC_INSIDE[str(row.network)])
    net = row.network
    first, last = int(net.network_address), int(net.broadcast_address)
    for value in (first + 1, first, last - 1, last, (first + last) // 2):
        if not first <= value <= last:
            continue
        candidate = ipaddress.IPv6Address(value) if net.version == 6 else ipaddress.IPv4Address(value)
        if not any(candidate in other.network and other.network.prefixlen > net.prefixlen
                   for other in ADDRESS_TABLE if other.network.version == net.version):
            return candidate
    raise AssertionError(f"no address of {net} is left to its own row")


def test_the_table_carries_every_iana_special_purpose_block_with_its_name_and_rfc():
    rows = {str(row.network): row for row in ADDRESS_TABLE}
    missing = [block for block in IANA_IPV4_SPECIAL + IANA_IPV6_SPECIAL if block not in rows]
    assert missing == []
    for row in ADDRESS_TABLE:
        assert row.name and row.rfc.startswith("RFC "), row
    assert egress_ranges.REGISTRY_REVISION  # the registry revision the table was transcribed from


def test_ipv6_outside_global_unicast_and_ipv4_multicast_are_rows_too():
    """Everything outside 2000::/3 (IANA IPv6 Address Space) is a row of the table."""
    v6 = [row.network for row in ADDRESS_TABLE if row.network.version == 6]
    covered = list(ipaddress.collapse_addresses([*v6, ipaddress.ip_network("2000::/3")]))
    assert covered == [ipaddress.ip_network("::/0")]
    assert ipaddress.ip_network("224.0.0.0/4") in {row.network for row in ADDRESS_TABLE}


@pytest.mark.parametrize("row", ADDRESS_TABLE, ids=lambda row: str(row.network))
def test_an_address_in_every_row_of_the_table_is_refused_naming_the_row(row, connects):
    address = _an_address_only_this_row_claims(row)
    if row.network == ipaddress.ip_network("::ffff:0:0/96"):
        address = ipaddress.ip_address("::ffff:10.1.2.3")  # a mapped address is its IPv4 address
        row = next(r for r in ADDRESS_TABLE if str(r.network) == "10.0.0.0/8")
    resolve = resolver_from({"looks-public.example": [str(address)]})
    with pytest.raises(EgressRefused) as refused:
        vet_url("https://looks-public.example/hook", resolver=resolve)
    assert refused.value.reason == "blocked_address"
    assert f"resolves to {address}, which is" in refused.value.message
    assert f"{row.network}: {row.name}, {row.rfc}" in refused.value.message
    assert connects == []


@pytest.mark.parametrize("address, row", [
    ("192.0.0.1", "192.0.0.0/29: IPv4 Service Continuity Prefix"),
    ("192.0.0.100", "192.0.0.0/24: IETF Protocol Assignments"),
    ("192.0.0.9", "192.0.0.9/32: Port Control Protocol Anycast"),
    ("192.0.0.10", "192.0.0.10/32: Traversal Using Relays around NAT Anycast"),
    ("3fff::1", "3fff::/20: Documentation, RFC 9637"),
    ("3fff:fff:ffff::1", "3fff::/20: Documentation, RFC 9637"),
    ("5f00::1", "5f00::/16: Segment Routing (SRv6) SIDs"),
    ("2620:4f:8000::53", "2620:4f:8000::/48: Direct Delegation AS112 Service"),
    ("192.88.99.1", "192.88.99.0/24: Deprecated (6to4 Relay Anycast)"),
])
def test_the_findings_are_refused_whatever_the_interpreter_says(address, row):
    """192.0.0.0/24 and 3fff::/20 passed on Python 3.11's own tables; the registry's globally
    reachable anycast rows (PCP, TURN, AS112) are refused too: none is a place a webhook lives."""
    reason = blocked_reason(ipaddress.ip_address(address))
    assert reason and row in reason


@pytest.mark.parametrize("inner, row", [
    ("127.0.0.1", "127.0.0.0/8: Loopback"), ("10.0.0.1", "10.0.0.0/8: Private-Use"),
    ("169.254.169.254", "cloud metadata"), ("192.0.0.100", "192.0.0.0/24: IETF Protocol Assignments"),
    ("100.64.0.1", "100.64.0.0/10: Shared Address Space"), ("0.0.0.0", "0.0.0.0/32: This host on this network"),
])
@pytest.mark.parametrize("form", ["mapped", "6to4", "nat64", "nat64_local", "teredo", "compatible"])
def test_ipv6_forms_of_a_refused_ipv4_address_are_refused_naming_it(inner, row, form):
    v4 = int(ipaddress.IPv4Address(inner))
    spelled = {
        "mapped": (0xFFFF << 32) | v4,
        "6to4": (0x2002 << 112) | (v4 << 80) | 1,
        "nat64": (0x64FF9B << 96) | v4,
        "nat64_local": (0x64FF9B0001 << 80) | v4,
        "teredo": (0x20010000 << 96) | (int(ipaddress.IPv4Address("65.54.227.120")) << 64) | (v4 ^ 0xFFFFFFFF),
        "compatible": v4,
    }[form]
    address = ipaddress.IPv6Address(spelled)
    if address == ipaddress.IPv6Address("::"):  # 0.0.0.0 spelled IPv4-compatible is the unspecified address
        row = "::/128: Unspecified Address"
    reason = blocked_reason(address)
    assert reason and row in reason, (address, reason)
    assert "embedded in an IPv6 address" in reason or address == ipaddress.IPv6Address("::")


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "208.67.222.222", "168.63.129.17", "2606:4700:4700::1111",
                                     "2001:4860:4860::8888", "2a00:1450:4001:82b::200e", "::ffff:8.8.8.8",
                                     "192.0.1.1", "192.0.3.1", "2001:200::1"])
def test_public_addresses_pass_the_vetting(address, connects):
    resolve = resolver_from({"public.example": [address]})
    target = vet_url("https://public.example/api", resolver=resolve)
    assert target.addresses == (address,) and connects == []


def test_the_verdict_does_not_depend_on_the_interpreter_address_tables(monkeypatch):
    """With every ipaddress predicate answering 'public' the table still refuses, and with every
    one answering 'not public' a public address still passes."""
    predicates = ["is_private", "is_global", "is_reserved", "is_loopback", "is_link_local", "is_multicast",
                  "is_unspecified", "is_site_local"]
    for lie in (False, True):
        for cls in (ipaddress.IPv4Address, ipaddress.IPv6Address):
            for name in predicates:
                if hasattr(cls, name):
                    value = (not lie) if name == "is_global" else lie
                    monkeypatch.setattr(cls, name, property(lambda self, v=value: v))
        verdicts = {a: blocked_reason(ipaddress.ip_address(a)) for a in ("10.0.0.1", "::1", "3fff::1", "8.8.8.8",
                                                                         "2606:4700:4700::1111")}
        assert all(verdicts[a] for a in ("10.0.0.1", "::1", "3fff::1")), verdicts
        assert verdicts["8.8.8.8"] is None and verdicts["2606:4700:4700::1111"] is None, verdicts


def test_the_loopback_allowance_still_means_plain_loopback_only(settings):
    settings.EGRESS_ALLOW_LOOPBACK, settings.EGRESS_LOOPBACK_PORTS = True, [8765]
    for address in ("127.0.0.1", "127.9.9.9", "::1"):
        assert vet_url(f"http://[{address}]:8765/" if ":" in address else f"http://{address}:8765/",
                       resolver=None).addresses == (address,)
    for url in ("http://127.0.0.1:8766/", "http://[::ffff:127.0.0.1]:8765/", "http://0.0.0.0:8765/",
                "http://[::127.0.0.1]:8765/", "http://[64:ff9b::7f00:1]:8765/", "http://10.0.0.1:8765/"):
        with pytest.raises(EgressRefused):
            vet_url(url, resolver=None)


# --- DNS ---------------------------------------------------------------------------------


def test_a_public_looking_name_resolving_to_a_private_address_is_refused(connects):
    resolve = resolver_from({"api.totally-public-agency.com": ["10.20.30.40"]})
    with pytest.raises(EgressRefused, match="resolves to 10.20.30.40, which is a private address") as refused:
        EgressClient(resolver=resolve).post("https://api.totally-public-agency.com/hook?token=s3cr3t", json={})
    assert refused.value.reason == "blocked_address"
    assert "s3cr3t" not in refused.value.message and "/hook" not in refused.value.message
    assert resolve.calls == ["api.totally-public-agency.com"] and connects == []


def test_one_private_address_among_public_ones_is_enough_to_refuse(connects):
    resolve = resolver_from({"mixed.example": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
                                               "169.254.169.254"]})
    with pytest.raises(EgressRefused, match="metadata"):
        EgressClient(resolver=resolve).get("http://mixed.example/")
    assert connects == []


def test_an_unresolvable_host_is_a_connection_error():
    with pytest.raises(EgressConnectionError, match="could not be resolved"):
        EgressClient(resolver=resolver_from({})).get("http://nowhere.example/")


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(loopback_server, egress_loopback,
                                                                            connects):
    """DNS rebinding: the second answer would be private; it is never asked for."""
    egress_loopback(loopback_server.port)
    loopback_server.route("/ping", Reply.json({"pong": True}))
    resolve = resolver_from({"rebind.example": lambda n: ["127.0.0.1"] if n == 1 else ["10.0.0.1"]})
    response = EgressClient(resolver=resolve).get(f"http://rebind.example:{loopback_server.port}/ping")
    assert response.json() == {"pong": True}
    assert resolve.calls == ["rebind.example"]
    assert connects == [("127.0.0.1", loopback_server.port)]
    assert loopback_server.requests[0].headers["host"] == f"rebind.example:{loopback_server.port}"


# --- redirects ---------------------------------------------------------------------------


def test_a_public_endpoint_redirecting_to_the_metadata_service_is_refused(loopback_server, egress_loopback, connects):
    egress_loopback(loopback_server.port)
    loopback_server.route("/webhook", Reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}))
    resolve = resolver_from({"hooks.public-agency.com": ["127.0.0.1"]})
    with pytest.raises(EgressRefused, match="metadata") as refused:
        EgressClient(resolver=resolve).get(f"http://hooks.public-agency.com:{loopback_server.port}/webhook")
    assert refused.value.reason == "blocked_address"
    assert len(loopback_server.requests) == 1
    assert connects == [("127.0.0.1", loopback_server.port)], "the metadata address was never dialled"


def test_redirect_hops_are_followed_at_most_three_times(loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    for n in range(5):
        loopback_server.route(f"/r{n}", Reply(307, headers={"Location": f"/r{n + 1}"}))
    loopback_server.route("/r2", Reply(302, headers={"Location": "/done"}))
    loopback_server.route("/done", Reply.json({"done": True}))
    response = EgressClient().get(f"{loopback_server.url}/r0")
    assert response.json() == {"done": True} and response.redirects == 3
    loopback_server.route("/r2", Reply(307, headers={"Location": "/r3"}))
    with pytest.raises(EgressRefused, match="more than 3 times"):
        EgressClient().get(f"{loopback_server.url}/r0")


def test_a_redirect_to_another_origin_drops_credentials(loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    resolve = resolver_from({"other.example": ["127.0.0.1"]})
    loopback_server.route("/from", Reply(302, headers={"Location": f"http://other.example:{loopback_server.port}/to"}))
    loopback_server.route("/to", Reply.json({}))
    EgressClient(resolver=resolve).get(f"{loopback_server.url}/from",
                                       headers={"Authorization": "Bearer tok", "X-Api-Key": "key"})
    first, second = loopback_server.requests
    assert first.headers["authorization"] == "Bearer tok"
    assert "authorization" not in second.headers and "x-api-key" not in second.headers


def test_redirects_are_not_followed_when_the_caller_says_so(loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/moved", Reply(301, headers={"Location": "/elsewhere"}))
    with pytest.raises(EgressHTTPError, match="redirect that is not followed") as error:
        EgressClient().post(f"{loopback_server.url}/moved", json={}, follow_redirects=False)
    assert error.value.status_code == 301 and len(loopback_server.requests) == 1


# --- timeouts, size, content -------------------------------------------------------------


def test_a_slow_server_times_out(loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/slow", Reply.json({}, delay=1.0))
    with pytest.raises(EgressTimeout, match="did not answer in time"):
        EgressClient(read_timeout=0.2).get(f"{loopback_server.url}/slow")


def test_a_trickling_server_hits_the_overall_deadline(loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)

    def trickle():
        import time
        for _ in range(50):
            time.sleep(0.05)
            yield b" "

    loopback_server.route("/trickle", lambda request: Reply(200, trickle(), {"Content-Type": "application/json"}))
    with pytest.raises(EgressTimeout):
        EgressClient(read_timeout=0.5, total_timeout=0.6).get(f"{loopback_server.url}/trickle")


def test_errors_say_whether_the_server_may_have_acted_on_the_request(loopback_server, egress_loopback):
    """Nothing sent (refused connection): known. Sent and unanswered (a timeout, a connection closed
    without an answer, a gateway timeout): unknown, so a write must not be reported as not done."""
    from spokestack.sample_erp import DEMO_API_KEYS, start_sample_erp

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    erp, erp_url = start_sample_erp(allow_reset=True)
    try:
        egress_loopback(loopback_server.port, closed_port, erp.server_port)
        loopback_server.route("/slow", Reply.json({}, delay=1.0))
        loopback_server.route("/gateway", Reply.json({}, status=504))
        key = {"X-Api-Key": DEMO_API_KEYS["alpha"]}
        EgressClient().post(f"{erp_url}/_faults", json={"path": "/clients", "drop": True}, headers=key)
        cases = [(f"http://127.0.0.1:{closed_port}/", EgressConnectionError, False),
                 (f"{loopback_server.url}/slow", EgressTimeout, True),
                 (f"{loopback_server.url}/gateway", EgressHTTPError, True),
                 (f"{erp_url}/clients", EgressBadResponse, True)]
        for url, kind, unknown in cases:
            with pytest.raises(kind) as error:
                EgressClient(read_timeout=0.2).get(url, headers=key)
            assert error.value.outcome_unknown is unknown, url
    finally:
        erp.stop()
    assert "closed the connection without a valid HTTP response" in error.value.message


@pytest.mark.parametrize("shape", ["declared", "streamed", "gzip_bomb"])
def test_responses_over_one_mebibyte_are_aborted(shape, loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    big = b"x" * (1024 * 1024 + 1)
    replies = {
        "declared": Reply(200, big),
        "streamed": Reply(200, (b"y" * 65536 for _ in range(40))),
        "gzip_bomb": Reply(200, gzip.compress(b"\0" * (20 * 1024 * 1024)), {"Content-Encoding": "gzip"}),
    }
    loopback_server.route("/big", replies[shape])
    with pytest.raises(EgressResponseTooLarge, match="1024 KiB limit"):
        EgressClient().get(f"{loopback_server.url}/big")


def test_a_response_of_exactly_the_cap_is_read_and_gzip_is_decoded(loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/full", Reply(200, b"z" * (1024 * 1024)))
    loopback_server.route("/gz", Reply(200, gzip.compress(b'{"a": 1}'), {"Content-Encoding": "gzip",
                                                                         "Content-Type": "application/json"}))
    assert len(EgressClient().get(f"{loopback_server.url}/full").content) == 1024 * 1024
    assert EgressClient().get(f"{loopback_server.url}/gz", require_json=True).json() == {"a": 1}
    assert loopback_server.requests[0].headers["accept-encoding"] == "identity"


def test_require_json_refuses_other_answers(loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/html", Reply(200, b"<html></html>", {"Content-Type": "text/html"}))
    loopback_server.route("/broken", Reply(200, b"{nope", {"Content-Type": "application/json"}))
    with pytest.raises(EgressBadResponse, match="did not answer with JSON"):
        EgressClient().get(f"{loopback_server.url}/html", require_json=True)
    with pytest.raises(EgressBadResponse, match="invalid JSON"):
        EgressClient().get(f"{loopback_server.url}/broken", require_json=True)


def test_http_errors_are_typed_and_never_echo_the_path_or_query(loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/fail", Reply.json({"error": "boom"}, status=503))
    with pytest.raises(EgressHTTPError) as error:
        EgressClient().get(f"{loopback_server.url}/fail?api_key=topsecret", headers={"Authorization": "Bearer hush"})
    assert error.value.status_code == 503
    assert error.value.message == f"http://127.0.0.1:{loopback_server.port} answered HTTP 503 (an error)."
    assert b"boom" in error.value.body


def test_a_connection_refused_is_a_connection_error(egress_loopback):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    egress_loopback(port)
    with pytest.raises(EgressConnectionError, match="Could not connect"):
        EgressClient().get(f"http://127.0.0.1:{port}/")


# --- TLS to a pinned address -------------------------------------------------------------


def _certificate_authority(hostname):
    """A throwaway CA and a server certificate for `hostname`: (server context, client context)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return ca, cert, key


@pytest.fixture
def tls_server(tmp_path):
    ca, cert, key = _certificate_authority("api.public-agency.test")
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server_context.sni_names = []
    server_context.sni_callback = lambda sock, name, ctx: server_context.sni_names.append(name)
    client_context = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    server = LoopbackServer(ssl_context=server_context).start()
    server.route("/secure", Reply.json({"tls": True}))
    yield server, client_context
    server.stop()


def test_tls_dials_the_pinned_address_but_verifies_and_sends_sni_for_the_name(tls_server, egress_loopback, connects):
    server, client_context = tls_server
    egress_loopback(server.port)
    resolve = resolver_from({"api.public-agency.test": ["127.0.0.1"]})
    client = EgressClient(resolver=resolve, ssl_context=client_context)
    response = client.get(f"https://api.public-agency.test:{server.port}/secure", require_json=True)
    assert response.json() == {"tls": True}
    assert server.ssl_context.sni_names == ["api.public-agency.test"]
    assert server.requests[0].headers["host"] == f"api.public-agency.test:{server.port}"
    assert connects == [("127.0.0.1", server.port)]


def test_tls_to_a_name_the_certificate_does_not_cover_fails(tls_server, egress_loopback):
    server, client_context = tls_server
    egress_loopback(server.port)
    resolve = resolver_from({"impostor.example": ["127.0.0.1"]})
    with pytest.raises(EgressConnectionError):
        EgressClient(resolver=resolve, ssl_context=client_context).get(f"https://impostor.example:{server.port}/secure")


# --- settings ----------------------------------------------------------------------------


def _import_production(**extra):
    env = {**os.environ, "DJANGO_SECRET_KEY": "p" * 40, "SPOKESTACK_SECRET_KEYS": "k" * 40, **extra}
    return subprocess.run([sys.executable, "-c", "import spokestack.settings.production"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_production_settings_refuse_the_loopback_allowance():
    assert _import_production(EGRESS_ALLOW_LOOPBACK="0").returncode == 0
    refused = _import_production(EGRESS_ALLOW_LOOPBACK="1", EGRESS_LOOPBACK_PORTS="8765")
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr and "EGRESS_ALLOW_LOOPBACK" in refused.stderr


# --- no other HTTP client in product code ------------------------------------------------

HTTP_CLIENTS = {"httpx2", "httpx", "httpcore", "httpcore2", "requests", "urllib.request", "http.client", "aiohttp",
                "urllib3", "pycurl"}
# The model and the embedding provider are platform configuration (settings), never an instance's URL.
ALLOWED_IMPORTERS = {"spokestack/egress.py", "spokestack/egress_async.py",  # the policy, sync and async (mcp)
                     "agents/model.py", "tuning/knowledge/embeddings.py"}
# The launcher is local tooling (it drives the demo through the public API like any API client).
EXEMPT_DIRS = ("tests/", "spokestack/sample_erp/", "spokestack/launcher.py", "spokestack/demo_runner.py",
               ".venv/", ".spokestack/", "node_modules/")


def _imported_modules(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for alias in node.names:
                yield f"{node.module}.{alias.name}"


def _http_client(module):
    return next((c for c in HTTP_CLIENTS if module == c or module.startswith(c + ".")), None)


def test_only_the_egress_client_and_the_model_providers_import_an_http_client():
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(EXEMPT_DIRS) or relative in ALLOWED_IMPORTERS or "/." in f"/{relative}":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
        offenders += [f"{relative}: {module}" for module in _imported_modules(tree) if _http_client(module)]
    assert offenders == [], "outbound HTTP must go through spokestack.egress:\n" + "\n".join(offenders)


def test_the_import_scan_catches_every_spelling():
    source = "import httpx2\nfrom urllib import request\nimport http.client as c\nfrom requests.adapters import X\n"
    found = [m for m in _imported_modules(ast.parse(source)) if _http_client(m)]
    assert set(found) >= {"httpx2", "urllib.request", "http.client", "requests.adapters"}
    assert Path(ROOT / "spokestack" / "egress.py").exists()


@pytest.mark.parametrize("url", ["http://%31%32%37.0.0.1/", "http://0/", "http://[0:0:0:0:0:ffff:7f00:1]/",
                                 "http://127.0.0.1#@example.com/", "http://127.0.0.1.:80/"])
def test_more_disguises_are_refused(url, connects):
    with pytest.raises(EgressRefused):
        EgressClient().get(url)
    assert connects == []


def test_a_hanging_dns_lookup_times_out(monkeypatch):
    import threading

    release = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: release.wait(5) and [])
    try:
        with pytest.raises(EgressTimeout, match="Resolving slow-dns.example took longer than 0.2 s"):
            EgressClient(connect_timeout=0.2).get("http://slow-dns.example/")
    finally:
        release.set()


def test_params_merge_with_the_query_and_an_empty_204_counts_as_json(loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/q", Reply(204))
    response = EgressClient().get(f"{loopback_server.url}/q?a=1", params={"b": "2"}, require_json=True)
    assert response.status_code == 204 and response.json() is None
    assert loopback_server.requests[0].path == "/q?a=1&b=2"


@pytest.mark.parametrize("value", ["line\r\nX-Injected: 1", "café-ключ"])
def test_a_bad_header_value_fails_without_echoing_it(value, loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/h", Reply.json({}))
    with pytest.raises(EgressError) as error:
        EgressClient().get(f"{loopback_server.url}/h", headers={"X-Api-Key": value})
    assert value not in error.value.message and "Injected" not in error.value.message
    assert all("x-injected" not in r.headers for r in loopback_server.requests)


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "http://0x7f.1/",
                                      "http://[::ffff:10.0.0.1]/", "http://metadata.google.internal/computeMetadata/v1/"])
def test_every_redirect_hop_is_checked_like_the_first(location, loopback_server, egress_loopback, connects):
    egress_loopback(loopback_server.port)
    loopback_server.route("/go", Reply(302, headers={"Location": location}))
    resolve = resolver_from({"127.0.0.1": ["127.0.0.1"], "metadata.google.internal": ["169.254.169.254"]})
    with pytest.raises(EgressRefused):
        EgressClient(resolver=resolve).get(f"{loopback_server.url}/go")
    assert connects == [("127.0.0.1", loopback_server.port)]


def test_one_client_serves_concurrent_threads(loopback_server, egress_loopback):
    from concurrent.futures import ThreadPoolExecutor

    egress_loopback(loopback_server.port)
    for n in range(16):
        loopback_server.route(f"/n{n}", Reply.json({"n": n}))
    client = EgressClient()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: client.get(f"{loopback_server.url}/n{n}").json()["n"], range(16)))
    assert answers == list(range(16))
