"""Side-by-side comparison of one sandbox test: the same task on the current and the test version."""

from __future__ import annotations

from typing import Any

from agents.models import AgentRun, ToolCall

from .models import SandboxTest


def _tools_used(calls: list[ToolCall]) -> list[str]:
    return list(dict.fromkeys(c.name for c in calls))


def _last_result(calls: list[ToolCall], name: str) -> Any:
    for call in reversed(calls):
        if call.name == name and not call.is_error and call.result is not None:
            return call.result
    return None


def _last_input(calls: list[ToolCall], name: str) -> dict | None:
    for call in reversed(calls):
        if call.name == name:
            return call.input
    return None


def _specifics(agent_type: str, calls: list[ToolCall]) -> dict[str, Any]:
    """What matters per agent type (media buying: bid strategy and budget split; rfp: requirements)."""
    if agent_type == "media_buying":
        bid = _last_result(calls, "recommend_bid_strategy")
        plan = _last_input(calls, "save_plan") or {}
        split = {c.get("channel"): c.get("share") for c in plan.get("channels") or [] if isinstance(c, dict)}
        if not split:
            split = (_last_input(calls, "forecast_budget") or {}).get("channel_split")
        return {"bid_strategy": bid.get("strategy") if isinstance(bid, dict) else None,
                "objective": bid.get("objective") if isinstance(bid, dict) else None,
                "budget_split": split or None}
    if agent_type == "rfp":
        analysis = _last_result(calls, "analyze_rfp")
        found = analysis.get("requirements") if isinstance(analysis, dict) else None
        return {"requirements_found": len(found) if isinstance(found, list) else None}
    return {}


def _side(run: AgentRun, calls: list[ToolCall]) -> dict[str, Any]:
    return {"run_id": str(run.pk), "version": run.agent_version, "status": run.status, "output": run.output,
            "error": run.error, "output_length": len(run.output), "tools_used": _tools_used(calls),
            # core tools' ERP writes say what they "would_have" done; webhook skills what they "would_send"
            "simulated_writes": [c.result.get("would_have") or c.result.get("would_send") for c in calls
                                 if c.side_effect and isinstance(c.result, dict) and c.result.get("simulated")],
            "tool_errors": [{"tool": c.name, "message": str(c.result)[:300]} for c in calls if c.is_error],
            "duration_s": run.duration_s, "cost_usd": float(run.cost_usd)}


def compare(test: SandboxTest) -> dict[str, Any]:
    runs = {test.current_run_id: test.current_run, test.test_run_id: test.test_run}
    calls: dict[Any, list[ToolCall]] = {pk: [] for pk in runs}
    for call in ToolCall.objects.filter(run_id__in=list(runs)).order_by("started_at", "id"):
        calls[call.run_id].append(call)
    current, new = test.current_run, test.test_run
    a, b = _side(current, calls[current.pk]), _side(new, calls[new.pk])
    spec_a = _specifics(test.session.agent_type, calls[current.pk])
    spec_b = _specifics(test.session.agent_type, calls[new.pk])
    return {
        "id": test.pk, "task": test.task, "created_at": test.created_at,
        "finished": current.is_finished and new.is_finished,
        "current": {**a, **spec_a}, "test": {**b, **spec_b},
        "tools_added": [t for t in b["tools_used"] if t not in a["tools_used"]],
        "tools_removed": [t for t in a["tools_used"] if t not in b["tools_used"]],
        "output_length_change": b["output_length"] - a["output_length"],
        "output_length_change_pct": (round(100 * (b["output_length"] - a["output_length"]) / a["output_length"], 1)
                                     if a["output_length"] else None),
        "differences": {k: {"current": spec_a.get(k), "test": spec_b.get(k)} for k in spec_a
                        if spec_a.get(k) != spec_b.get(k)},
    }


def session_dict(session, with_tests: bool = True) -> dict[str, Any]:
    from django.utils import timezone

    out = {"id": str(session.pk), "agent_type": session.agent_type, "current_version": session.current_version,
           "test_version": session.test_version, "status": session.status, "created_at": session.created_at,
           "expires_at": session.expires_at, "expired": session.expires_at <= timezone.now()}
    if with_tests:
        tests = session.tests.select_related("current_run", "test_run", "session")
        out["tests"] = [compare(t) for t in tests]
    return out
