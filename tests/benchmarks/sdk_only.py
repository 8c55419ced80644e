"""The model calls of bench_runtime's concurrency phase alone: the ceiling to compare with.

One process, one thread per run, all started at once. Each thread makes its run's three model
turns through `agents.model.call_model`: the same SDK client, connection pools and stream
handling as the worker, and the same request (system, tools) that the platform sent. Nothing
else runs: no Celery, no database, no events. The efficiency measured here is as high as
`concurrent_runs_efficiency` can get on this machine with this SDK.

`python -m tests.benchmarks.sdk_only SPEC_JSON` (written by bench_runtime: the request template
and one list of run markers per round, scripted on the fake Messages API beforehand) prints one
JSON line per round: {"makespan_s": …, "cpu_ms_per_run": …}.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from pathlib import Path


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(template: dict, marker: str) -> None:
    from agents.model import ModelRequest, call_model

    messages: list[dict] = [{"role": "user", "content": [{"type": "text", "text": f"Headline {marker}"}]}]
    while True:
        turn = call_model(ModelRequest(model=template["model"], fallback_model="", system=template["system"],
                                       tools=template["tools"], messages=messages,
                                       max_tokens=template["max_tokens"]))
        messages = [*messages, {"role": "assistant", "content": turn.content}]
        tool_uses = [block for block in turn.content if block["type"] == "tool_use"]
        if not tool_uses:
            return
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": block["id"], "content": json.dumps({"ok": True, "violations": []})}
            for block in tool_uses]})


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spokestack.settings.test")
    import django

    django.setup()
    from agents.model import get_client

    get_client()  # imported and built before the clock starts, as the worker's warm-up does
    spec = json.loads(Path(argv[0]).read_text())
    errors: list[BaseException] = []

    def run(marker: str) -> None:
        try:
            _run(spec["template"], marker)
        except BaseException as error:  # noqa: BLE001 - reported below: a failed run voids the figure
            errors.append(error)

    for markers in spec["rounds"]:
        threads = [threading.Thread(target=run, args=(marker,)) for marker in markers]
        cpu, started = _cpu_seconds(), time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            print(f"{len(errors)} run(s) failed, the first: {errors[0]!r}", file=sys.stderr)
            return 1
        print(json.dumps({"makespan_s": time.monotonic() - started,
                          "cpu_ms_per_run": (_cpu_seconds() - cpu) * 1000 / len(markers)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
