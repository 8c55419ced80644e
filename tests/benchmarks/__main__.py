"""`make bench [BENCH=name]`: run benchmarks and print one `name: value` line per figure.

Each module `tests/benchmarks/bench_<name>.py` exposes `run() -> dict[str, float | int | str]`.
The launcher starts a fresh private PostgreSQL and Redis (profile `bench`) and this module
migrates the database once before the benchmarks run against it. Benchmarks measure and
print; they never assert timings.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import time
from pathlib import Path

ONLY_BY_NAME = {"soak"}  # 30 minutes: run when named (`make bench BENCH=soak`)


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name.removeprefix("bench_") for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spokestack.settings.test")
    import django

    django.setup()
    from django.core.management import call_command

    names = argv or [name for name in available() if name not in ONLY_BY_NAME]
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    call_command("migrate", verbosity=0, interactive=False)
    for name in names:
        started = time.monotonic()
        module = importlib.import_module(f"tests.benchmarks.bench_{name}")
        for key, value in module.run().items():
            print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}", flush=True)
        print(f"# {name} took {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
