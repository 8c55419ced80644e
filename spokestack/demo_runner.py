"""What `make run` prints once the platform is up: where to go, how to log in, and one demo run
per seeded instance executed through the public API and streamed to the terminal (SSE).

This runs in the launcher's process, without Django: a plain API client of the platform.
"""

from __future__ import annotations

import http.client
import json
import textwrap
from pathlib import Path

from spokestack.demo_data import DEMO_INSTANCES, DEMO_PASSWORD, PLATFORM_ADMIN, PLATFORM_HOST


def announce(*, port: int, env: dict[str, str]) -> None:
    lines = [
        "",
        "SpokeStack is running. Ctrl-C stops every process it started.",
        "",
        f"  Platform admin  http://{PLATFORM_HOST}:{port}/admin/   {PLATFORM_ADMIN} / {DEMO_PASSWORD}",
    ]
    for demo in DEMO_INSTANCES:
        lines.append(f"  {demo.name:<14}  http://{demo.host}:{port}/admin/   {demo.admin_email} / {DEMO_PASSWORD}")
    model = "Claude (ANTHROPIC_API_KEY is set)" if env.get("ANTHROPIC_API_KEY") else "offline model (no ANTHROPIC_API_KEY)"
    lines += [
        "",
        f"  API docs        http://alpha.localhost:{port}/api/docs/",
        f"  Health          http://alpha.localhost:{port}/api/v1/health/ready",
        f"  Model           {model}",
        "",
    ]
    print("\n".join(lines), flush=True)


def _describe(event: dict) -> str | None:
    payload, kind = event["payload"], event["type"]
    if kind == "child.event":  # a delegated run's event, inside its parent's stream
        inner = _describe({"type": payload["type"], "payload": payload["payload"]})
        return f"  ↳ {payload['agent_type']} {payload['run_id'][:8]}: {inner}" if inner else None
    if kind == "delegation.started":
        return f"delegated to {payload['agent_type']} (run {payload['run_id'][:8]}): {payload['task'][:80]}"
    if kind == "text.delta":
        return None
    if kind == "tool.started":
        return f"tool {payload['name']}({json.dumps(payload['input'], ensure_ascii=False)[:100]})"
    if kind == "tool.finished":
        state = "error" if payload["is_error"] else "ok"
        return f"tool {payload['name']} {state} in {payload['duration_ms']} ms"
    if kind == "turn.finished":
        usage = payload["usage"]
        return f"turn {payload['iteration']}: {payload['stop_reason']}, {usage['input_tokens']} in / {usage['output_tokens']} out"
    if kind in ("run.succeeded", "run.failed", "run.cancelled"):
        return f"{kind} (${payload.get('cost_usd', 0):.4f})" + (f": {payload['error']}" if payload.get("error") else "")
    return kind


def stream_run(*, port: int, host: str, token: str, body: dict, prefix: str) -> str:
    """POST /api/v1/agent/execute with stream=true and print the events; returns the output."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("POST", "/api/v1/agent/execute", body=json.dumps({**body, "stream": True}),
                       headers={"Host": f"{host}:{port}", "Authorization": f"Bearer {token}",
                                "Content-Type": "application/json", "Accept": "text/event-stream"})
    response = connection.getresponse()
    if response.status != 200:
        print(f"{prefix} execute failed: HTTP {response.status} {response.read()[:300]!r}", flush=True)
        return ""
    output = ""
    for raw in response:
        line = raw.decode().rstrip("\n")
        if not line.startswith("data: "):
            continue
        event = json.loads(line[6:])
        if event["type"] == "text.delta":
            output += event["payload"]["text"]
        described = _describe(event)
        if described:
            print(f"{prefix} #{event['seq']:<3} {described}", flush=True)
        if event["type"] in ("run.succeeded", "run.failed", "run.cancelled"):
            break
        if event["type"] == "run.awaiting_approval":  # a person decides in the admin; the demo goes on
            print(f"{prefix}      waiting for a person's approval: Agents › Approval requests", flush=True)
            break
    connection.close()
    return output


def run_demos(*, port: int, credentials: Path) -> None:
    demos = json.loads(credentials.read_text())
    credentials.unlink()
    for demo in demos:
        prefix = f"[{demo['host'].split('.')[0]}]"
        print(f"\n{prefix} {demo['name']}: {demo['agent_type']} agent for {demo['client']}", flush=True)
        output = stream_run(port=port, host=demo["host"], token=demo["token"], prefix=prefix, body={
            "agent_type": demo["agent_type"], "task": demo["task"], "client_id": demo["client_id"]})
        if output:
            summary = " ".join(output.split())
            summary = summary if len(summary) <= 600 else summary[:600] + " …"
            print(textwrap.indent(summary, f"{prefix}   "), flush=True)
    print(flush=True)
