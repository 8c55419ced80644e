"""Helpers every core tool uses: which client a call is for, ERP writes, sandbox mode."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from agents.knowledge import REGIONS, VERTICALS
from agents.registry import ToolContext, ToolError

CLIENT_INPUT = {
    "type": "string",
    "minLength": 1,
    "maxLength": 60,
    "description": "The client's slug (e.g. 'gulf-bank'). Leave it out when the run is already for a client.",
}


def settings_of(ctx: ToolContext | None, declared: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The tool's settings for this call: what the run passed (the instance's effective values),
    else each declared default (a context built outside the loop has none)."""
    given = ctx.settings if ctx is not None else {}
    return {key: given.get(key, spec["default"]) for key, spec in declared.items()}


def iso_date(value: str | None, name: str) -> date | None:
    """A YYYY-MM-DD input as a date (None when not given), or a ToolError naming the field."""
    if not value:
        return None
    try:
        if len(value) != 10:  # fromisoformat also takes 20261201 and week dates: the input says YYYY-MM-DD
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ToolError(f"{name}: {value!r} is not a date; use YYYY-MM-DD.") from None


def client_slug(ctx: ToolContext, tool_input: dict) -> str:
    """The client this call is about: the run's client, else the `client` input.

    A run that is for one client cannot be pointed at another by the model: the client's rules
    and approvals were assembled for it.
    """
    given = (tool_input.get("client") or "").strip()
    if ctx.client is not None:
        # The model may name the client instead of giving its slug: both mean the run's client.
        if given and given != ctx.client.slug and given.casefold() != ctx.client.name.casefold():
            raise ToolError(f"This run is for the client '{ctx.client.slug}'; it cannot act for '{given}'. "
                            "Leave out `client` or pass that slug.")
        return ctx.client.slug
    if not given:
        raise ToolError("This tool needs to know the client. Ask the user which client this is for, "
                        "then call it again with `client` set to the client's slug (e.g. 'gulf-bank').")
    if ctx.client_scope is not None and given not in ctx.client_scope:
        # The run's creator may not see that client (or it does not exist): the same answer for
        # both, so the model learns nothing about clients outside the creator's reach.
        raise ToolError(f"There is no client '{given}' this run may act for. Ask the user which of their "
                        "clients this is for.")
    return given


def readable_clients(ctx: ToolContext, tool_input: dict) -> frozenset[str] | None:
    """The clients a listing call may return rows of: the run's client, else the `client` input,
    else the clients the run's creator may see (None: every client of the agency).

    A tool that lists records across clients (a schedule, a calendar, allocations) keeps only
    rows whose `client` is in this set, so an account manager's run never reads another
    client's records even when the model asks for "everything".
    """
    if ctx.client is not None or (tool_input.get("client") or "").strip():
        return frozenset({client_slug(ctx, tool_input)})
    return ctx.client_scope


def only_readable(rows: list[dict[str, Any]], clients: frozenset[str] | None) -> list[dict[str, Any]]:
    """`rows` whose `client` is readable (rows without a client, such as agency-wide data, stay)."""
    if clients is None:
        return rows
    return [row for row in rows if not row.get("client") or row["client"] in clients]


def client_record(ctx: ToolContext, slug: str) -> dict[str, Any]:
    """The ERP's record of the client (profile, brand guidelines, approved examples)."""
    return ctx.erp().get(f"/clients/{slug}")


def erp_write(ctx: ToolContext, path: str, body: dict[str, Any] | None,
              method: str = "POST") -> tuple[dict[str, Any], bool]:
    """Send a write (POST, PATCH or DELETE) to the ERP with the call's idempotency key. Returns
    (result, simulated).

    In sandbox mode nothing is sent: the result says what the call would have done, so a
    sandbox comparison can show it and the ERP sees zero writes.
    """
    if ctx.sandbox:
        would = {"method": method, "path": path, **({"body": body} if body is not None else {})}
        return {"simulated": True, "would_have": would}, True
    erp = ctx.erp()
    if method == "POST":
        return erp.post(path, body, idempotency_key=ctx.idempotency_key), False
    if method == "PATCH":
        return erp.patch(path, body, idempotency_key=ctx.idempotency_key), False
    if method == "DELETE":
        return erp.delete(path, idempotency_key=ctx.idempotency_key), False
    raise ValueError(f"not an ERP write method: {method}")


def written(result: dict[str, Any], simulated: bool, *, id_key: str, extra: dict[str, Any] | None = None) -> dict:
    """The model-facing result of a write: the new record's id and status, or the simulation."""
    if simulated:
        return result
    return {id_key: result.get("id"), "status": result.get("status"), "created_at": result.get("created_at"),
            **(extra or {})}


def market(ctx: ToolContext, tool_input: dict) -> tuple[str, str]:
    """(vertical, region) for benchmarks: the input, else the run's specialization, else the
    client in the platform, else the client's ERP record."""
    vertical = _pick(VERTICALS, tool_input.get("vertical"), ctx.specialization.get("vertical"),
                     getattr(ctx.client, "vertical", None))
    region = _pick(REGIONS, tool_input.get("region"), ctx.specialization.get("region"),
                   getattr(ctx.client, "region", None))
    if (vertical is None or region is None) and (ctx.client or tool_input.get("client")):
        record = client_record(ctx, client_slug(ctx, tool_input))
        vertical = vertical or _pick(VERTICALS, record.get("industry"))
        region = region or _pick(REGIONS, record.get("region"))
    if vertical is None or region is None:
        missing = " and ".join(n for n, v in (("vertical", vertical), ("region", region)) if v is None)
        raise ToolError(f"The {missing} for benchmarks is unknown. Pass `vertical` (one of {', '.join(VERTICALS)}) "
                        f"and `region` (one of {', '.join(REGIONS)}), or `client` with the client's slug.")
    return vertical, region


def _pick(allowed: tuple[str, ...], *candidates: Any) -> str | None:
    for candidate in candidates:
        if not isinstance(candidate, str):
            continue
        for option in allowed:
            if candidate.strip().lower() == option.lower():
                return option
    return None
