"""`python -m spokestack.sample_erp --port N`: serve the sample ERP until SIGINT or SIGTERM.

Keys default to the documented demo keys (`data.DEMO_API_KEYS`); `--api-key alpha=KEY` (repeat
per agency) replaces them. `--latency-ms`, `--fail PATH[=STATUS]` and `--allow-reset` are for
tests of timeouts, HTTP errors and clean state (with `--allow-reset`, `/_faults` makes answers
come late or never; see `server.py`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .data import AGENCIES, DEMO_API_KEYS
from .server import ErpConfig, make_server


def _api_key(text: str) -> tuple[str, str]:
    agency, _, key = text.partition("=")
    if not agency or not key:
        raise argparse.ArgumentTypeError(f"expected AGENCY=KEY, got {text!r}")
    return agency, key


def _failure(text: str) -> tuple[str, int]:
    path, _, status = text.partition("=")
    if not path.startswith("/") or not (status or "503").isdigit():
        raise argparse.ArgumentTypeError(f"expected /PATH or /PATH=STATUS, got {text!r}")
    return path, int(status or 503)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m spokestack.sample_erp", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--data-dir", type=Path, help="keep writes in DIR/state.json across restarts")
    parser.add_argument("--api-key", action="append", default=[], metavar="AGENCY=KEY",
                        type=_api_key,
                        help=f"an agency's key (agencies: {', '.join(AGENCIES)}); replaces the demo keys")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay every response by this many ms")
    parser.add_argument("--fail", action="append", default=[], metavar="PATH[=STATUS]",
                        type=_failure,
                        help="answer requests under PATH with STATUS (default 503) and write nothing")
    parser.add_argument("--allow-reset", action="store_true",
                        help="enable POST /_reset and the answer faults of /_faults (tests only)")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = ErpConfig(api_keys=dict(args.api_key) if args.api_key else dict(DEMO_API_KEYS),
                           latency_ms=args.latency_ms, failures=dict(args.fail), allow_reset=args.allow_reset,
                           data_dir=args.data_dir, quiet=args.quiet)
        server = make_server(host=args.host, port=args.port, config=config)
    except (ValueError, OSError) as exc:
        print(f"sample ERP: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwinds serve_forever through `finally`
    print(f"sample ERP listening on {server.base_url} for agencies {', '.join(config.api_keys)}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
