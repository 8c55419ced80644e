"""MCP servers as skills (DESIGN §15): the writes, the tool refresh and the tool call.

An instance adds a server (its URL vetted like a webhook's; the auth secret sealed, write-only),
refreshes its tool list on demand, and chooses which tools to expose to which agent types under
which names. A tool's name is unique in the instance and must clash neither with a skill nor
with a core tool of the agent types it is offered to (the same catalog `skills.services` asks).
Every change is audited (`tuning.audit`, entity `mcp_server` / `mcp_tool`, one entry per field;
a secret recorded as set, never by value).

`mcp_tool_call` is the executor of an MCP tool: input validated against the tool's schema
before anything is sent, a sandbox run simulated, the call bounded by the server's timeout, the
answer capped at `max_result_chars`, one `McpToolCall` row per call for the metrics, and a
`SkillOutcome` back so the run loop treats it as a skill. Network exchanges never run inside a
database transaction.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from jsonschema import Draft202012Validator, SchemaError

from spokestack.accounts import policy
from spokestack.catalog import UnknownAgentType
from spokestack.egress import EgressClient, EgressRefused, vet_url
from spokestack.errors import Conflict, InvalidInput, NotFound
from spokestack.hygiene import scrub_unstorable
from spokestack.secrets import MASK, EncryptedSecret, SecretDecryptionError
from tuning import audit
from tuning.models import Action, Client, Entity, Tier, TuningChange

from .executor import SkillContext, SkillOutcome, validate_input
from .mcp_client import Endpoint, McpError, RemoteTool, call_tool, cap_text, list_tools
from .models import MCP_SERVER_NAME_PATTERN, NAME_PATTERN, McpServer, McpTool, McpToolCall, Skill
from .services import HEADER_PATTERN, MAX_SCHEMA_CHARS, SECRET_REPLACED, SECRET_SET, core_tool_names

logger = logging.getLogger(__name__)

ENTITY_SERVER = Entity.MCP_SERVER
ENTITY_TOOL = Entity.MCP_TOOL
SERVER_FIELDS = ("name", "url", "auth_header", "auth_secret", "enabled", "timeout_s", "max_result_chars")
TOOL_FIELDS = ("name", "agent_types", "enabled", "requires_approval")


# --- servers ---------------------------------------------------------------------------------


def _record(*, actor: AbstractUser | None, entity: str, entity_id: Any, action: str, field: str = "", old: Any = None,
            new: Any = None, reason: str = "", ticket: str = "") -> None:
    # Tier-2 configuration: an exposed tool reaches every client's runs of its agent types.
    audit.record(actor=actor, tier=Tier.INSTANCE, entity=entity, entity_id=entity_id, action=action, field=field,
                 old=old, new=new, reason=reason, ticket=ticket,
                 affected_clients=list(Client.objects.order_by("pk").values_list("pk", flat=True)))


def _server_snapshot(server: McpServer) -> dict[str, Any]:
    return {**{f: getattr(server, f) for f in SERVER_FIELDS if f != "auth_secret"},
            "auth_secret": SECRET_SET if server.auth_secret else None}


def _apply_server(server: McpServer, data: Mapping[str, Any]) -> bool:
    unknown = sorted(set(data) - set(SERVER_FIELDS))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a field of an MCP server (or not editable); send "
                           f"{', '.join(SERVER_FIELDS)}.", details={"field": unknown[0]})
    secret_given = False
    for field, value in data.items():
        if field == "auth_secret":
            if value:
                if not isinstance(value, str) or len(value) > 4000:
                    raise InvalidInput("auth_secret: give the header's value as text.", details={"field": "auth_secret"})
                server.auth_secret = EncryptedSecret.seal(value, schema=connection.schema_name)
                secret_given = True
            continue
        setattr(server, field, value)
    return secret_given


def _check_server(server: McpServer) -> None:
    if not isinstance(server.name, str) or not re.match(MCP_SERVER_NAME_PATTERN, server.name):
        raise InvalidInput("name: use 2–32 lowercase letters, digits and underscores, starting with a letter "
                           "(it prefixes the names of the server's tools).", details={"field": "name"})
    if McpServer.objects.filter(name=server.name).exclude(pk=server.pk).exists():
        raise InvalidInput(f"name: this instance already has an MCP server named '{server.name}'.",
                           details={"field": "name"})
    if not isinstance(server.url, str) or not server.url:
        raise InvalidInput("url: give the server's streamable HTTP endpoint, e.g. https://tools.example.com/mcp.",
                           details={"field": "url"})
    try:
        vet_url(server.url, resolver=None)
    except EgressRefused as exc:
        raise InvalidInput(f"url: {exc.message}", details={"field": "url", "reason": exc.reason}) from None
    if server.auth_header and not HEADER_PATTERN.match(server.auth_header):
        raise InvalidInput("auth_header: give a header name such as Authorization or X-Api-Key.",
                           details={"field": "auth_header"})
    for field, low, high in (("timeout_s", 1, 120), ("max_result_chars", 200, 200_000)):
        value = getattr(server, field)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidInput(f"{field}: a whole number between {low} and {high}.", details={"field": field})
    if not isinstance(server.enabled, bool):
        raise InvalidInput("enabled: true or false.", details={"field": "enabled"})
    try:
        server.full_clean(exclude=["auth_secret"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(f"{field}: {' '.join(messages)}", details={"field": field}) from None


def mcp_server_validate(*, server: McpServer, data: Mapping[str, Any]) -> None:
    """Check `data` applied to (a copy of) `server` without saving: the admin form shows the same errors."""
    import copy

    candidate = copy.copy(server)
    _apply_server(candidate, data)
    _check_server(candidate)


@transaction.atomic
def mcp_server_create(*, actor: AbstractUser | None, reason: str = "", ticket: str = "", **fields: Any) -> McpServer:
    """Add a server. Its tools are listed by `mcp_tools_refresh` (not here: no network inside a transaction)."""
    policy.require(actor, "skill.edit")
    server = McpServer()
    _apply_server(server, fields)
    _check_server(server)
    server.save()
    _record(actor=actor, entity=ENTITY_SERVER, entity_id=server.pk, action=Action.CREATE,
            new=_server_snapshot(server), reason=reason, ticket=ticket)
    logger.info("MCP server %s added by %s", server.name, getattr(actor, "email", "system"))
    return server


@transaction.atomic
def mcp_server_update(*, actor: AbstractUser | None, server: McpServer, changes: Mapping[str, Any], reason: str = "",
                      ticket: str = "") -> McpServer:
    """Change a server (enable or disable it with `enabled`); the secret stays unless a new one is given."""
    policy.require(actor, "skill.edit")
    server = _locked_server(server.pk)
    before = _server_snapshot(server)
    secret_given = _apply_server(server, changes)
    _check_server(server)
    after = _server_snapshot(server)
    if secret_given and before["auth_secret"]:
        after["auth_secret"] = SECRET_REPLACED
    changed = [f for f in SERVER_FIELDS if before[f] != after[f]]
    if not changed:
        return server
    server.save()
    for field in changed:
        _record(actor=actor, entity=ENTITY_SERVER, entity_id=server.pk, action=Action.UPDATE, field=field,
                old=before[field], new=after[field], reason=reason, ticket=ticket)
    return server


@transaction.atomic
def mcp_server_delete(*, actor: AbstractUser | None, server: McpServer, reason: str = "", ticket: str = "") -> None:
    """Remove a server and its tools (they stop being offered at once)."""
    policy.require(actor, "skill.edit")
    locked = _locked_server(server.pk)
    snapshot = {**_server_snapshot(locked), "tools": list(locked.tools.order_by("name").values_list("name", flat=True))}
    server_id = locked.pk
    locked.delete()
    _record(actor=actor, entity=ENTITY_SERVER, entity_id=server_id, action=Action.DELETE, old=snapshot, reason=reason,
            ticket=ticket)


def _locked_server(server_id: Any) -> McpServer:
    server = McpServer.objects.select_for_update().filter(pk=server_id).first()
    if server is None:
        raise NotFound("No such MCP server in this instance.", details={"server_id": str(server_id)})
    return server


def endpoint_of(server: McpServer) -> Endpoint:
    """Where and how to reach the server; the secret is revealed here only, for the request headers."""
    headers = {}
    if server.auth_secret and server.auth_header:
        headers[server.auth_header] = server.auth_secret.reveal()
    return Endpoint(url=server.url, headers=headers, timeout_s=float(server.timeout_s))


# --- tools -----------------------------------------------------------------------------------


def default_tool_name(server_name: str, remote_name: str, taken: set[str]) -> str:
    """`mcp_<server>_<tool>`, lowercased to the tool-name alphabet, at most 64 characters, made
    unique against `taken` (skills, other MCP tools, every core tool name) with a numeric suffix."""
    tail = re.sub(r"[^a-z0-9_]+", "_", remote_name.lower()).strip("_") or "tool"
    base = f"mcp_{server_name}_{tail}"[:64].rstrip("_")
    name, n = base, 2
    while name in taken:
        suffix = f"_{n}"
        name, n = base[: 64 - len(suffix)] + suffix, n + 1
    return name


def _all_core_names() -> set[str]:
    return {name for names in core_tool_names().values() for name in names}


@transaction.atomic
def _upsert_tools(server_id: int, remote: list[RemoteTool]) -> McpServer:
    server = _locked_server(server_id)
    now = timezone.now()
    existing = {t.remote_name: t for t in McpTool.objects.select_for_update().filter(server=server)}
    taken = set(Skill.objects.values_list("name", flat=True)) | set(McpTool.objects.values_list("name", flat=True)) \
        | _all_core_names()
    seen = set()
    for item in remote:
        if item.name in seen:
            continue
        seen.add(item.name)
        schema = item.input_schema if _usable_schema(item.input_schema) else {"type": "object"}
        description = item.description[:2000]
        tool = existing.get(item.name)
        if tool is None:
            name = default_tool_name(server.name, item.name, taken)
            taken.add(name)
            McpTool.objects.create(server=server, remote_name=item.name[:128], name=name, description=description,
                                   input_schema=schema, read_only=item.read_only)
        else:
            # The admin's choices (name, agent types, exposure, approval) are kept; what the server says is taken.
            tool.description, tool.input_schema, tool.read_only, tool.vanished_at = (description, schema,
                                                                                      item.read_only, None)
            tool.save(update_fields=["description", "input_schema", "read_only", "vanished_at", "updated_at"])
    McpTool.objects.filter(server=server, vanished_at__isnull=True).exclude(remote_name__in=seen).update(
        vanished_at=now, updated_at=now)
    server.tools_refreshed_at, server.last_error = now, ""
    server.save(update_fields=["tools_refreshed_at", "last_error", "updated_at"])
    return server


def _usable_schema(schema: Any) -> bool:
    if not isinstance(schema, dict) or schema.get("type", "object") != "object" or len(repr(schema)) > MAX_SCHEMA_CHARS:
        return False
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return False
    return True


def _note_error(server_id: int, message: str) -> None:
    McpServer.objects.filter(pk=server_id).update(last_error=message[:500], updated_at=timezone.now())


def mcp_tools_refresh(*, actor: AbstractUser | None, server: McpServer,
                      egress: EgressClient | None = None) -> McpServer:
    """List the server's tools and upsert them: new tools arrive not exposed under a default name,
    known ones keep the admin's choices, vanished ones are marked (and no longer offered). A
    failure is kept in `last_error` and raised as InvalidInput (400) naming what went wrong."""
    policy.require(actor, "skill.edit")
    server = McpServer.objects.filter(pk=server.pk).first()
    if server is None:
        raise NotFound("No such MCP server in this instance.")
    try:
        endpoint = endpoint_of(server)
    except SecretDecryptionError as exc:
        _note_error(server.pk, exc.message)
        raise InvalidInput(f"{server.name}: {exc.message}", details={"field": "auth_secret"}) from None
    try:
        remote = list_tools(endpoint, egress=egress)
    except McpError as exc:
        _note_error(server.pk, exc.message)
        raise InvalidInput(f"Could not list the tools of {server.name}: {exc.message}",
                           code="mcp_refresh_failed", details={"reason": exc.reason}) from None
    finally:
        endpoint = None  # noqa: F841 - the revealed secret is not kept
    server = _upsert_tools(server.pk, remote)
    _record(actor=actor, entity=ENTITY_SERVER, entity_id=server.pk, action=Action.UPDATE, field="tools",
            new=sorted(t.name for t in remote), reason="Tools refreshed")
    return server


def _check_tool(tool: McpTool, core_tools: Mapping[str, frozenset[str]]) -> None:
    if not isinstance(tool.name, str) or not re.match(NAME_PATTERN, tool.name):
        raise InvalidInput("name: use 2–64 lowercase letters, digits and underscores, starting with a letter.",
                           details={"field": "name"})
    if McpTool.objects.filter(name=tool.name).exclude(pk=tool.pk).exists():
        raise InvalidInput(f"name: another MCP tool of this instance is named '{tool.name}'.", details={"field": "name"})
    if Skill.objects.filter(name=tool.name).exists():
        raise InvalidInput(f"name: this instance has a skill named '{tool.name}'; choose another name.",
                           details={"field": "name"})
    if not isinstance(tool.agent_types, list) or not all(isinstance(a, str) for a in tool.agent_types):
        raise InvalidInput("agent_types: give a list of agent types.", details={"field": "agent_types"})
    unknown = sorted(set(tool.agent_types) - set(core_tools))
    if unknown:
        raise UnknownAgentType(f"agent_types: unknown core agent type(s) {', '.join(unknown)}; choose from "
                               f"{', '.join(sorted(core_tools))}.",
                               details={"agent_types": [f"unknown agent type {unknown[0]!r}"]})
    clashes = sorted(a for a in tool.agent_types if tool.name in core_tools[a])
    if clashes:
        raise InvalidInput(f"name: '{tool.name}' is a core tool of the {', '.join(clashes)} agent; choose another name.",
                           details={"field": "name"})
    if tool.enabled and not tool.agent_types:
        raise InvalidInput("agent_types: an exposed tool needs the agent types it is offered to.",
                           details={"field": "agent_types"})
    if tool.enabled and tool.vanished_at is not None:
        raise Conflict(f"{tool.name}: the server no longer lists this tool; refresh the server first.",
                       details={"field": "enabled"})
    for field in ("enabled", "requires_approval"):
        if not isinstance(getattr(tool, field), bool):
            raise InvalidInput(f"{field}: true or false.", details={"field": field})


def mcp_tool_validate(*, tool: McpTool, data: Mapping[str, Any],
                      core_tools: Mapping[str, frozenset[str]] | None = None) -> None:
    import copy

    candidate = copy.copy(tool)
    _apply_tool(candidate, data)
    _check_tool(candidate, core_tools if core_tools is not None else core_tool_names())


def _apply_tool(tool: McpTool, data: Mapping[str, Any]) -> None:
    unknown = sorted(set(data) - set(TOOL_FIELDS))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not an editable field of an MCP tool; send {', '.join(TOOL_FIELDS)}.",
                           details={"field": unknown[0]})
    for field, value in data.items():
        setattr(tool, field, value)


@transaction.atomic
def mcp_tool_update(*, actor: AbstractUser | None, tool: McpTool, changes: Mapping[str, Any],
                    core_tools: Mapping[str, frozenset[str]] | None = None, reason: str = "",
                    ticket: str = "") -> McpTool:
    """Expose a tool (or not) under a name, to agent types, with or without approval."""
    policy.require(actor, "skill.edit")
    locked = McpTool.objects.select_for_update().select_related("server").filter(pk=tool.pk).first()
    if locked is None:
        raise NotFound("No such MCP tool in this instance.", details={"tool_id": str(tool.pk)})
    before = {f: getattr(locked, f) for f in TOOL_FIELDS}
    _apply_tool(locked, changes)
    _check_tool(locked, core_tools if core_tools is not None else core_tool_names())
    changed = [f for f in TOOL_FIELDS if before[f] != getattr(locked, f)]
    if not changed:
        return locked
    locked.save(update_fields=[*changed, "updated_at"])
    for field in changed:
        _record(actor=actor, entity=ENTITY_TOOL, entity_id=locked.pk, action=Action.UPDATE, field=field,
                old=before[field], new=getattr(locked, field), reason=reason, ticket=ticket)
    return locked


@audit.rollback_handler(ENTITY_SERVER)
@audit.rollback_handler(ENTITY_TOOL)
def _mcp_rollback(*, change: TuningChange, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    """Undo a tool's exposure change through `mcp_tool_update`; a server's entries are not restored
    from the log (its secret is never kept there): change the server instead."""
    if change.entity == ENTITY_TOOL and change.action == Action.UPDATE and change.field in TOOL_FIELDS:
        tool = McpTool.objects.filter(pk=int(change.entity_id)).first()
        if tool is None:
            raise NotFound(f"Entry #{change.pk}: the MCP tool is gone (its server was removed or refreshed away).")
        if getattr(tool, change.field) != change.new_value:
            raise Conflict(f"Entry #{change.pk}: the tool changed since; roll back the later entry first.")
        mcp_tool_update(actor=actor, tool=tool, changes={change.field: change.old_value}, reason=reason, ticket=ticket)
        return
    raise InvalidInput(f"Entry #{change.pk}: an MCP server's changes are not rolled back from the log (its secret "
                       "is never kept there); change the server in the admin or over the API.",
                       details={"audit_id": change.pk})


# --- calls -----------------------------------------------------------------------------------


def _described_request(tool: McpTool, arguments: Any) -> dict:
    server = tool.server
    headers = {server.auth_header.lower(): MASK} if server.auth_secret and server.auth_header else {}
    return {"method": "tools/call", "url": server.url, "tool": tool.remote_name, "headers": headers,
            "arguments": arguments}


def mcp_tool_call(*, tool: McpTool, arguments: Any, context: SkillContext,
                  egress: EgressClient | None = None) -> SkillOutcome:
    """Call an MCP tool once and record the call (McpToolCall). Never raises for the tool's own
    failure: invalid input, a refused URL, a timeout, an error answer become `is_error`."""
    started = time.perf_counter()
    outcome = _call(tool, arguments, context, egress)
    outcome.duration_ms = round((time.perf_counter() - started) * 1000, 2)
    outcome.result, outcome.removed = scrub_unstorable(outcome.result)
    McpToolCall.objects.create(tool=tool, run_id=context.run_id or None, ok=not outcome.is_error,
                               simulated=outcome.simulated, test=context.test, duration_ms=outcome.duration_ms,
                               error=str(outcome.result)[:500] if outcome.is_error else "")
    return outcome


def _call(tool: McpTool, arguments: Any, context: SkillContext, egress: EgressClient | None) -> SkillOutcome:
    problem = validate_input(tool, arguments)
    if problem:
        return SkillOutcome(problem, True, 0.0)
    server = tool.server
    request = _described_request(tool, arguments)
    if not (tool.enabled and server.enabled) or tool.vanished_at is not None:
        return SkillOutcome(f"{tool.name} is not available now (disabled, or no longer listed by its server).", True,
                            0.0, request)
    if context.sandbox:
        result = {"simulated": True, "note": f"Sandbox run: {tool.name} was not called.",
                  "would_send": {"method": "tools/call", "server": server.name, "tool": tool.remote_name}}
        return SkillOutcome(result, False, 0.0, request, None, simulated=True)
    try:
        endpoint = endpoint_of(server)
    except SecretDecryptionError as exc:
        return SkillOutcome(f"{tool.name} cannot be called: {exc.message}", True, 0.0, request)
    try:
        answer = call_tool(endpoint, tool.remote_name, arguments, egress=egress)
    except McpError as exc:
        message = f"{tool.name}: {exc.message}"
        if exc.outcome_unknown:
            message += " The server may still have acted on the call: check before calling it again."
        return SkillOutcome(message, True, 0.0, request, {"error": exc.message, "reason": exc.reason})
    finally:
        endpoint = None  # noqa: F841 - drop the revealed secret as soon as the call is made
    content, capped = cap_text(answer.content, server.max_result_chars)
    response = {"is_error": answer.is_error, **({"capped": True} if capped else {})}
    if answer.is_error:
        return SkillOutcome(f"{tool.name} answered with an error: {content}", True, 0.0, request, response)
    return SkillOutcome(content, False, 0.0, request, response)
