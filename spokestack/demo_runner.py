"""What `make run` prints once the platform is up: where to go and how to log in."""

from __future__ import annotations

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
    lines += [
        "",
        f"  API docs        http://alpha.localhost:{port}/api/docs/",
        f"  Health          http://alpha.localhost:{port}/api/v1/health/ready",
        "",
    ]
    print("\n".join(lines), flush=True)
