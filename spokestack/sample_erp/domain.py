"""How a part of the sample ERP (content, commercial, publishing, resourcing, audiences) plugs in.

A `Domain` brings its seeded tables (per agency), its writable collections and any endpoint
beyond the generic ones. The server gives every `WriteKind` the same four endpoints, with the
same idempotency rule as the original drafts, plans and briefs:

    GET  /<kind>[?client=<slug>]   the seeded rows and the written ones
    POST /<kind>                   create (fields checked against `fields`, then `check`)
    GET  /<kind>/<id>              one row (another agency's id is 404)
    PATCH /<kind>/<id>             change fields of a row (seeded rows too; `status` only if `statuses`)

A domain's own endpoints (`routes`) get the app and read through `app.store`; a custom write
goes through `ErpStore.write`, which applies it under the store's lock with the idempotency key
checked first and the write logged, so "exactly once" holds for every write the ERP has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

NUMBER = (int, float)
# field -> (accepted types, required)
Fields = Mapping[str, tuple[tuple[type, ...], bool]]


@dataclass(frozen=True)
class WriteKind:
    name: str  # the collection, e.g. "estimates" (its URL and table)
    id_word: str  # "estimate": ids are "<agency>-<id_word>-0001"
    fields: Fields
    # Raises server.ErpError(400, ...) for a body the fields accept but the business does not
    # (an allocation over a person's capacity, an end date before the start). Runs under the lock.
    check: Callable[[Any, str, dict[str, Any]], None] | None = None  # (store, agency, body)
    # Fields the ERP fills in on create: (agency, body) -> extra fields (e.g. the agency's currency).
    defaults: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
    client_required: bool = True  # body["client"] must be one of the agency's clients
    status: str = "draft"  # a new row's status
    # The statuses a PATCH may set; empty: `status` cannot be patched.
    statuses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Domain:
    name: str
    # agency -> {table: rows}; a table named like a WriteKind is that collection's seeded rows
    seed: Callable[[str], dict[str, list[dict[str, Any]]]] = lambda agency: {}
    writes: tuple[WriteKind, ...] = ()
    # app -> [(path regex, {method: handler(request) -> (status, payload[, headers])})], API key required
    routes: Callable[[Any], list[tuple[str, dict[str, Callable[..., tuple[Any, ...]]]]]] = lambda app: []
