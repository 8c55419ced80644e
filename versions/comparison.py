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
            "duration_s": run.duration_s, "cost_usd": float(run.cost_usd), "tool_calls": len(calls)}


VERDICTS = {
    "running": "Running on both versions…",
    "same": "Both succeeded with the same result",
    "differ": "Both succeeded; the results differ",
    "test_failed": "The test version failed",
    "current_failed": "The current version failed; the test version succeeded",
    "both_failed": "Both versions failed",
    "cancelled": "Cancelled before both versions finished",
}


def verdict(finished: bool, a: dict[str, Any], b: dict[str, Any], differs: bool) -> str:
    """One word for a test: how the test version did against the current one."""
    if not finished:
        return "running"
    if "cancelled" in (a["status"], b["status"]):
        return "cancelled"
    ok_a, ok_b = a["status"] == "succeeded", b["status"] == "succeeded"
    if ok_a and ok_b:
        return "differ" if differs else "same"
    if not ok_a and not ok_b:
        return "both_failed"
    return "test_failed" if ok_a else "current_failed"


def compare(test: SandboxTest) -> dict[str, Any]:
    runs = {test.current_run_id: test.current_run, test.test_run_id: test.test_run}
    calls: dict[Any, list[ToolCall]] = {pk: [] for pk in runs}
    for call in ToolCall.objects.filter(run_id__in=list(runs)).order_by("started_at", "id"):
        calls[call.run_id].append(call)
    current, new = test.current_run, test.test_run
    a, b = _side(current, calls[current.pk]), _side(new, calls[new.pk])
    spec_a = _specifics(test.session.agent_type, calls[current.pk])
    spec_b = _specifics(test.session.agent_type, calls[new.pk])
    finished = current.is_finished and new.is_finished
    differences = {k: {"current": spec_a.get(k), "test": spec_b.get(k)} for k in spec_a if spec_a.get(k) != spec_b.get(k)}
    tools_added = [t for t in b["tools_used"] if t not in a["tools_used"]]
    tools_removed = [t for t in a["tools_used"] if t not in b["tools_used"]]
    differs = bool(differences or tools_added or tools_removed or a["output"] != b["output"])
    outcome = verdict(finished, a, b, differs)
    client = test.client
    return {
        "id": test.pk, "task": test.task, "created_at": test.created_at,
        "client": {"id": client.pk, "name": client.name} if client else None,
        "specialization": test.specialization or {},
        "finished": finished, "verdict": outcome, "verdict_label": VERDICTS[outcome],
        "current": {**a, **spec_a}, "test": {**b, **spec_b},
        "tools_added": tools_added, "tools_removed": tools_removed,
        "tool_calls_change": b["tool_calls"] - a["tool_calls"],
        "cost_change_usd": round(b["cost_usd"] - a["cost_usd"], 6),
        "output_length_change": b["output_length"] - a["output_length"],
        "output_length_change_pct": (round(100 * (b["output_length"] - a["output_length"]) / a["output_length"], 1)
                                     if a["output_length"] else None),
        "differences": differences,
    }


def time_left(expires_at, now) -> str:
    """ "23 h 12 min", "45 min", "less than a minute" or "" once expired."""
    seconds = int((expires_at - now).total_seconds())
    if seconds <= 0:
        return ""
    hours, minutes = divmod(seconds // 60, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "less than a minute"


def session_dict(session, with_tests: bool = True) -> dict[str, Any]:
    from django.utils import timezone

    now = timezone.now()
    expired = session.expires_at <= now
    out = {"id": str(session.pk), "agent_type": session.agent_type, "current_version": session.current_version,
           "test_version": session.test_version, "status": session.status, "created_at": session.created_at,
           "expires_at": session.expires_at, "expired": expired,
           "time_left": "" if expired or session.status != "active" else time_left(session.expires_at, now),
           "created_by": getattr(session.created_by, "email", None), "decided_at": session.decided_at,
           "decided_by": getattr(session.decided_by, "email", None), "decision_reason": session.decision_reason,
           "notes": session.notes}
    if with_tests:
        tests = session.tests.select_related("current_run", "test_run", "session", "client")
        out["tests"] = [compare(t) for t in tests]
        out["summary"] = {
            "tests_run": len(out["tests"]),
            "finished": sum(t["finished"] for t in out["tests"]),
            "passed": sum(t["verdict"] in ("same", "differ", "current_failed") for t in out["tests"]),
            "failed": sum(t["verdict"] in ("test_failed", "both_failed") for t in out["tests"]),
        }
        from .evals.gating import eval_comparison

        out["evals"] = eval_comparison(agent_type=session.agent_type, current_version=session.current_version,
                                       test_version=session.test_version)
    return out
