"""Core tool handlers, shared by every version of the agents that use them (DESIGN §4–§5).

A handler is `handler(ctx: ToolContext, tool_input: dict) -> JSON-serialisable result`. The
input has already been validated against the tool's JSON Schema by the loop.

Errors — the contract with the loop:
* A handler raises `ToolError` when the request cannot work as asked (no client for a
  client-scoped tool, a channel split that does not add up, an RFP text that is empty). Its
  message tells the model what to do instead.
* A handler lets `spokestack.erp.ErpError` propagate untouched: its message is already written
  for the model (method, path, what went wrong, never the key). The loop turns both into an
  `is_error` tool result carrying `exc.message`; neither ever fails the run.
* Anything else is a bug, and the loop reports it as a generic tool failure.

Side effects: tools with `side_effect=True` write to the ERP only through `erp_write`, which
sends the call's idempotency key (so a redelivered run never writes twice) and, in sandbox
mode, reaches nothing and returns what it would have done.

Versions share these handlers; where a release changes a tool's behaviour the handler is built
by a factory with the difference as a parameter (`make_analyze_rfp(detect_weights=True)`), so
two versions differ only where their release notes say.
"""
