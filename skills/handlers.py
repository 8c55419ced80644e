"""Internal skill handlers: tools an instance can offer that run inside the platform.

A skill of execution type `internal` names one of these. A handler gets the validated input
and the call's context and returns JSON-able data; `SkillError` becomes a tool error the
model reads. Handlers read the instance's own schema only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db.models import Q


class SkillError(Exception):
    """A skill could not do what was asked; the message is written for the model."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass(frozen=True)
class InternalHandler:
    name: str
    title: str
    description: str
    input_schema: dict
    func: Callable[[dict, Any], Any]


def _client_model():
    """The instance's clients, looked up at run time: skills import no other app (DESIGN §2)."""
    return apps.get_model("tuning", "Client")


def _visible(context: Any):
    """The clients the run's creator may see (`context.client_ids`; None: every client)."""
    clients = _client_model().objects.all()
    scope = getattr(context, "client_ids", None)
    return clients if scope is None else clients.filter(pk__in=scope)


def _client_named(value: str, context: Any):
    value = (value or "").strip()
    if not value:
        return None
    return _visible(context).filter(Q(slug__iexact=value) | Q(name__iexact=value)).first()


def check_conflicts(arguments: dict, context: Any) -> dict:
    """Does this client compete with another client of the agency (same industry)?

    Names only clients the run's creator may see; the others that conflict are counted, not
    named (the agency must know a conflict exists; the person need not learn whose)."""
    client = _client_named(arguments.get("client", ""), context) if arguments.get("client") else None
    if arguments.get("client") and client is None:
        raise SkillError(f"There is no client '{arguments['client']}' this run may act for.")
    if client is None and getattr(context, "client_id", None):
        client = _visible(context).filter(pk=context.client_id).first()
    industry = arguments.get("industry") or (client.vertical if client else "")
    if not industry:
        raise SkillError("Name the client (slug or name) or the industry to check.")
    others = _client_model().objects.filter(vertical=industry)
    if client is not None:
        others = others.exclude(pk=client.pk)
    region = arguments.get("region") or ""
    if region:
        others = others.filter(region__iexact=region)
    visible = others & _visible(context)
    names = list(visible.order_by("name").values("name", "slug", "region")[:50])
    hidden = others.count() - visible.count()
    return {"client": client.name if client else None, "industry": industry, "conflict": bool(names) or hidden > 0,
            "conflicting_clients": names, "conflicting_clients_not_shown": hidden}


def list_clients(arguments: dict, context: Any) -> dict:
    """The agency's clients the run's creator may see, optionally of one industry or region."""
    clients = _visible(context)
    if arguments.get("industry"):
        clients = clients.filter(vertical=arguments["industry"])
    if arguments.get("region"):
        clients = clients.filter(region__iexact=arguments["region"])
    rows = list(clients.order_by("name").values("name", "slug", "vertical", "region", "language")[:100])
    return {"count": len(rows), "clients": rows}


HANDLERS: dict[str, InternalHandler] = {h.name: h for h in (
    InternalHandler(
        "check_conflicts", "Client conflict check",
        "Check whether a client conflicts with another client of the agency in the same industry "
        "(optionally the same region). Defaults to the run's client.",
        {"type": "object", "properties": {
            "client": {"type": "string", "description": "Client slug or name; default: the run's client."},
            "industry": {"type": "string", "description": "Industry (vertical) to check instead."},
            "region": {"type": "string"}}, "additionalProperties": False},
        check_conflicts),
    InternalHandler(
        "list_clients", "List clients",
        "List the agency's clients, optionally filtered by industry (vertical) or region.",
        {"type": "object", "properties": {"industry": {"type": "string"}, "region": {"type": "string"}},
         "additionalProperties": False},
        list_clients),
)}


def handler_choices() -> list[tuple[str, str]]:
    return [(h.name, h.title) for h in HANDLERS.values()]
