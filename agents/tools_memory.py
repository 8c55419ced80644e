"""The core `remember` tool, on every agent of every version (added by `agents.registry.register`).

The agent proposes one short, lasting fact about the run's client ("always use British
spelling"); `tuning.services.memory_propose` stores it as a proposal that an account manager
accepts (or at once when the instance opted in to `memory_auto_accept`). It writes nothing
outside the platform, so it is not gated; a sandbox run proposes nothing.
"""

from __future__ import annotations

import dataclasses

from .registry import AgentSpec, ToolContext, ToolError, ToolSpec

REMEMBER = "remember"


def remember(ctx: ToolContext, tool_input: dict) -> dict:
    from spokestack.errors import DomainError
    from tuning.services import memory_propose

    if ctx.sandbox:
        return {"status": "not saved", "why": "a sandbox run proposes no memories"}
    try:
        memory = memory_propose(actor=None, client=ctx.client, text=tool_input["fact"], source=f"run:{ctx.run_id}")
    except DomainError as exc:
        raise ToolError(exc.message) from exc
    return {"memory_id": memory.pk, "status": memory.status,
            "note": "Accepted: future runs for this client are told it." if memory.status == "accepted"
            else "Proposed: an account manager decides whether future runs are told it."}


REMEMBER_TOOL = ToolSpec(
    name=REMEMBER,
    description=(
        "Propose one lasting fact about this client (or, with no client, the agency) for future runs to be told, "
        "e.g. a preference the user stated as lasting: 'Always use British spelling.' Only durable preferences or "
        "facts, never details of this one task. One short sentence (at most 300 characters). A person accepts "
        "it before it is used. Returns the memory's id and status."),
    input_schema={"type": "object", "properties": {"fact": {"type": "string", "minLength": 1, "maxLength": 300}},
                  "required": ["fact"], "additionalProperties": False},
    handler=remember,
)


REMEMBER_PROMPT = (
    "\n## Memory\nWhen the user states a lasting preference or fact about the client (\"always use British "
    "spelling\", \"never mention prices\"), propose it with remember, one short sentence per fact; a person "
    "accepts it before future runs are told it. Never remember details of this one task.\n")


def with_core_tools(spec: AgentSpec) -> AgentSpec:
    """The spec with the platform's core memory tool added (once), and its base prompt saying when
    to use it."""
    if spec.tool(REMEMBER) is not None:
        return spec
    return dataclasses.replace(spec, tools=(*spec.tools, REMEMBER_TOOL), base_prompt=spec.base_prompt + REMEMBER_PROMPT)
