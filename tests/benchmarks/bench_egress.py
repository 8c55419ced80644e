"""Egress overhead: what the guarded client adds to a signed webhook call.

Against a loopback server (under the loopback allowance, as in the tests), one signed
`deliver_webhook` call per iteration: URL checks + resolution + pinned dial + signing +
HTTP + JSON, minus the server's own time (reading, handling and writing the request,
measured inside the server). The same request through a plain `httpx2.Client` (no checks,
no signing) gives the floor the guard is compared with.
"""

from __future__ import annotations

import logging
import statistics
import time

import httpx2
from django.test import override_settings

from skills.signing import deliver_webhook, new_webhook_secret, signature_headers
from spokestack.egress import EgressClient, vet_url

from ..loopback_server import LoopbackServer, Reply

ITERATIONS = 300
WARMUP = 20


def _p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _timed_minus_server(server: LoopbackServer, call) -> list[float]:
    samples = []
    for i in range(WARMUP + ITERATIONS):
        before = len(server.server_seconds)
        started = time.perf_counter()
        call()
        elapsed = time.perf_counter() - started
        while len(server.server_seconds) == before:  # the server's timing lands just after the reply
            time.sleep(0.0001)
        if i >= WARMUP:
            samples.append(elapsed - server.server_seconds[-1])
    return samples


def run() -> dict[str, float | int | str]:
    logging.getLogger("spokestack.egress").setLevel(logging.WARNING)  # one INFO line per call otherwise
    server = LoopbackServer().start()
    server.route("/hook", Reply.json({"ok": True}))
    secret = new_webhook_secret()
    payload = {"input": {"client": "Acme", "brief": "x" * 900}, "context": {"instance": "bench", "run_id": 1}}
    url = f"http://hooks.bench.example:{server.port}/hook"
    egress = EgressClient(resolver=lambda host, port: ["127.0.0.1"])
    try:
        with override_settings(EGRESS_ALLOW_LOOPBACK=True, EGRESS_LOOPBACK_PORTS=[server.port]):
            guarded = _timed_minus_server(server, lambda: deliver_webhook(url, payload, secret, egress=egress))
            system_dns = _timed_minus_server(
                server, lambda: deliver_webhook(f"http://localhost:{server.port}/hook", payload, secret))
            vet = []
            for _ in range(ITERATIONS):
                started = time.perf_counter()
                vet_url(f"http://localhost:{server.port}/hook")
                vet.append(time.perf_counter() - started)
        body = b"x" * 1024
        sign = []
        for _ in range(ITERATIONS):
            started = time.perf_counter()
            signature_headers(secret, msg_id="msg_bench", body=body)
            sign.append(time.perf_counter() - started)
        with httpx2.Client(trust_env=False) as plain_client:
            plain_reused = _timed_minus_server(
                server, lambda: plain_client.post(f"{server.url}/hook", json=payload).json())

        def plain_fresh():
            with httpx2.Client(trust_env=False) as client:
                client.post(f"{server.url}/hook", json=payload).json()

        plain_new = _timed_minus_server(server, plain_fresh)
    finally:
        server.stop()
    overhead = _p50_ms(guarded)
    return {
        "egress_overhead_p50_ms": overhead,
        "egress_overhead_p95_ms": statistics.quantiles(guarded, n=20)[18] * 1000,
        "egress_overhead_system_dns_p50_ms": _p50_ms(system_dns),
        "egress_vet_url_system_dns_p50_ms": _p50_ms(vet),
        "webhook_sign_1kib_p50_ms": _p50_ms(sign),
        "plain_httpx2_new_client_p50_ms": _p50_ms(plain_new),
        "plain_httpx2_reused_client_p50_ms": _p50_ms(plain_reused),
        # The plain client kept open across calls is the floor; a new plain client per call
        # loads the trust store each time, which the egress client does once.
        "egress_vs_plain_reused_client_ratio": overhead / _p50_ms(plain_reused),
        "goal_egress_overhead_p50_ms": 2,
    }
