"""The events an instance can subscribe to: their names, who may see them, what their data holds.

Every delivery's body is `{"type": <event type>, "timestamp": <ISO 8601>, "data": {...}}` (the
Standard Webhooks convention). `data` always carries `client_id` (null for instance-wide events).
The same events reach the instance websocket's `events` topic (`ws/events/`, `{"subscribe":
"events"}`), each only to viewers whose role may see it (`action`, on its client).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    action: str  # the access policy's action a websocket viewer needs (on the event's client)
    example: dict[str, Any]
    properties: dict[str, Any] = field(default_factory=dict)  # JSON Schema of `data`'s fields

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "required": ["type", "timestamp", "data"], "properties": {
            "type": {"const": self.name}, "timestamp": {"type": "string", "format": "date-time"},
            "data": {"type": "object", "required": sorted(self.properties), "properties": self.properties}}}


_ID = {"type": "string", "format": "uuid"}
_CLIENT = {"type": ["integer", "null"], "description": "The client it concerns; null for instance-wide events."}
_TEXT = {"type": "string"}
_MONEY = {"type": "number", "description": "US dollars."}
_TIME = {"type": ["string", "null"], "format": "date-time"}

_RUN = {"run_id": _ID, "agent_type": _TEXT, "agent_version": _TEXT, "client_id": _CLIENT, "status": _TEXT,
        "error": _TEXT, "output": {"type": "string", "description": "The final answer, cut at 4,000 characters."},
        "output_truncated": {"type": "boolean"}, "cost_usd": _MONEY, "total_cost_usd": _MONEY,
        "iterations": {"type": "integer"}, "parent_run_id": {"type": ["string", "null"]},
        "thread_id": {"type": ["string", "null"]}, "started_at": _TIME, "finished_at": _TIME}
_RUN_EXAMPLE = {"run_id": "6f1c0f0e-2b7a-4d8e-9a53-0c1d2e3f4a5b", "agent_type": "copy", "agent_version": "2.3.1",
                "client_id": 7, "status": "succeeded", "error": "", "output": "Glow gently, all day.",
                "output_truncated": False, "cost_usd": 0.0123, "total_cost_usd": 0.0123, "iterations": 2,
                "parent_run_id": None, "thread_id": None, "started_at": "2026-12-02T10:00:00Z",
                "finished_at": "2026-12-02T10:00:09Z"}
_APPROVAL = {"approval_id": _ID, "run_id": _ID, "client_id": _CLIENT, "tool_name": _TEXT,
             "tool_input": {"type": "object"}, "rule": _TEXT, "status": _TEXT, "expires_at": _TIME}
_APPROVAL_EXAMPLE = {"approval_id": "0b6e2a52-8f7e-4f4b-a0a8-7f0e1c2d3b4a", "run_id": _RUN_EXAMPLE["run_id"],
                     "client_id": 7, "tool_name": "request_discount_approval",
                     "tool_input": {"deal_id": "D-1042", "percent": 12}, "rule": "platform: request_*",
                     "status": "pending", "expires_at": "2026-12-03T10:00:00Z"}

CATALOGUE: dict[str, EventType] = {e.name: e for e in [
    EventType("run.succeeded", "A run ended with an answer.", "run.view", {**_RUN_EXAMPLE}, _RUN),
    EventType("run.failed", "A run ended without one (its `error` says why).", "run.view",
              {**_RUN_EXAMPLE, "status": "failed", "output": "", "error": "The model is unavailable: overloaded."},
              _RUN),
    EventType("run.cancelled", "A run was cancelled.", "run.view",
              {**_RUN_EXAMPLE, "status": "cancelled", "output": "", "error": "Cancelled by request."}, _RUN),
    EventType("run.awaiting_approval", "A run stopped until people decide its gated tool calls.", "run.view",
              {"run_id": _RUN_EXAMPLE["run_id"], "agent_type": "commercial", "client_id": 7,
               "approval_ids": [_APPROVAL_EXAMPLE["approval_id"]]},
              {"run_id": _ID, "agent_type": _TEXT, "client_id": _CLIENT,
               "approval_ids": {"type": "array", "items": _ID}}),
    EventType("approval.requested", "A tool call waits for a person's approval.", "approval.view",
              {**_APPROVAL_EXAMPLE}, _APPROVAL),
    EventType("approval.decided", "An approval request was approved or rejected (by a person or an auto rule).",
              "approval.view",
              {**_APPROVAL_EXAMPLE, "status": "approved", "decided_by": "am@agency.example", "note": ""},
              {**_APPROVAL, "decided_by": {"type": ["string", "null"]}, "note": _TEXT}),
    EventType("approval.expired", "An approval request outlived the instance's SLA undecided.", "approval.view",
              {**_APPROVAL_EXAMPLE, "status": "expired"}, _APPROVAL),
    EventType("update.available", "A new core-agent version was analysed for this instance.", "version.view",
              {"agent_type": "brief", "from_version": "2.3.1", "version": "2.4.0", "recommendation": "review",
               "status": "pending", "breaking": False, "client_id": None},
              {"agent_type": _TEXT, "from_version": _TEXT, "version": _TEXT, "recommendation": _TEXT, "status": _TEXT,
               "breaking": {"type": "boolean"}, "client_id": _CLIENT}),
    EventType("suggestion.created", "Feedback analysis suggested a rule for people to approve.", "suggestion.view",
              {"suggestion_id": 31, "agent_type": "copy", "client_id": 7, "kind": "content_rule",
               "summary": "Never use the word 'cheap'."},
              {"suggestion_id": {"type": "integer"}, "agent_type": _TEXT, "client_id": _CLIENT, "kind": _TEXT,
               "summary": _TEXT}),
    EventType("memory.proposed", "An agent proposed a memory about a client for people to accept.", "memory.view",
              {"memory_id": 12, "client_id": 7, "text": "Prefers British spelling.", "status": "proposed",
               "run_id": _RUN_EXAMPLE["run_id"]},
              {"memory_id": {"type": "integer"}, "client_id": _CLIENT, "text": _TEXT, "status": _TEXT,
               "run_id": {"type": ["string", "null"]}}),
    EventType("document.ready", "A knowledge document was read and can be searched.", "knowledge.view",
              {"document_id": 4, "client_id": 7, "title": "Brand book 2026", "pages": 38, "chunks": 112},
              {"document_id": {"type": "integer"}, "client_id": _CLIENT, "title": _TEXT,
               "pages": {"type": ["integer", "null"]}, "chunks": {"type": "integer"}}),
    EventType("budget.warning", "A monthly budget crossed 80 % or 95 %.", "usage.view",
              {"level": 80, "scope": "client", "client_id": 7, "user_id": None, "spent_usd": 81.5,
               "limit_usd": 100.0, "month": "2026-12-01",
               "message": "Desert Bloom Cosmetics has used 82% of its monthly budget ($81.50 of $100.00 in December "
                          "2026)."},
              {"level": {"type": "integer"}, "scope": _TEXT, "client_id": _CLIENT, "user_id": {"type": ["integer", "null"]},
               "spent_usd": _MONEY, "limit_usd": _MONEY, "month": {"type": "string", "format": "date"},
               "message": _TEXT}),
]}

EVENT_TYPES = tuple(CATALOGUE)
