"""Reads for clients and tuning, scoped to what the actor may see. Every scoped read fails
closed: an actor with no role sees nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from spokestack.accounts import policy
from spokestack.errors import NotFound

from .models import (
    ApprovedExample,
    Client,
    ClientTuning,
    ContentRule,
    InstanceTuning,
    Memory,
    MemoryStatus,
    TuningChange,
)


def clients_visible_to(*, actor: AbstractUser | None) -> QuerySet[Client]:
    """Every client for admins and managers; the assigned ones for account managers and contacts."""
    return policy.visible_clients(actor)


def client_get(*, actor: AbstractUser | None, client_id: int | str) -> Client:
    try:
        return clients_visible_to(actor=actor).get(pk=int(client_id))
    except (Client.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such client.", details={"client_id": client_id}) from None


def tuning_version(*, tables: Sequence[str] = ()) -> tuple:
    """The id of the newest audit entry, and this transaction's id if it has recorded one; then,
    for each of `tables`, its row count and newest `updated_at`.

    Every tuning write goes through a service that records an entry, so the id changes exactly
    when some tuning may have changed (the assembler's cache key). A transaction that recorded an
    entry sees its own uncommitted state: its id keeps what it assembles private to it. Other
    writes (a run's rows, a row lock such as a thread's SELECT … FOR UPDATE) give a transaction an
    id too, but change no tuning, so they keep the shared key and its cached prompt (the
    transaction's own insert count, `pg_stat_get_xact_tuples_inserted`; it may also count inserts
    of rolled-back savepoints and of this connection's earlier transactions not yet flushed to the
    statistics, which only ever makes a key private, never shares one).

    `tables` guard a key against writes that bypass the audited services (a data migration, a fix in
    the shell): a write that sets `updated_at` (auto_now) or a delete (the count) moves the key too.
    One statement for all.
    """
    with connection.cursor() as cursor:
        cursor.execute(tuning_version_sql(tables))
        return tuple(cursor.fetchone())


def tuning_version_sql(tables: Sequence[str] = ()) -> str:
    """The statement `tuning_version` runs: one row of 2 + len(tables) columns (a statement may
    join it, as the runs' claim does)."""
    quote = connection.ops.quote_name  # table names are the callers' constants, quoted all the same
    parts = "".join(f", (SELECT count(*) || '/' || COALESCE(max(updated_at)::text, '') FROM {quote(table)})"  # noqa: S608
                    for table in tables)
    return ("SELECT COALESCE(MAX(id), 0), CASE WHEN pg_stat_get_xact_tuples_inserted("  # noqa: S608
            "'tuning_tuningchange'::regclass) > 0 THEN txid_current_if_assigned() END"
            f"{parts} FROM tuning_tuningchange")


def instance_tuning_rows(*, agent_type: str) -> list[InstanceTuning]:
    """The instance-wide row and the agent type's row (unscoped: the assembler's read)."""
    return list(InstanceTuning.objects.filter(agent_type__in=["", agent_type]))


def instance_tuning_get(*, actor: AbstractUser | None, agent_type: str = "") -> InstanceTuning | None:
    policy.require(actor, "instance_tuning.view")
    return InstanceTuning.objects.filter(agent_type=agent_type).first()


def client_tier3_rows(*, client: Client, agent_type: str) -> tuple[list[ClientTuning], list[ContentRule],
                                                                  list[ApprovedExample]]:
    """Tier 3 for one agent type, in a stable order (unscoped: the assembler's read)."""
    for_agent = Q(agent_type="") | Q(agent_type=agent_type)
    rows = list(ClientTuning.objects.filter(for_agent, client=client))
    rules = list(ContentRule.objects.filter(for_agent, client=client, active=True).order_by("kind", "id"))
    examples = list(ApprovedExample.objects.filter(for_agent, client=client).order_by("id"))
    return rows, rules, examples


def client_tuning_get(*, client: Client, agent_type: str = "") -> ClientTuning | None:
    return ClientTuning.objects.filter(client=client, agent_type=agent_type).first()


def client_rules(*, client: Client) -> QuerySet[ContentRule]:
    return ContentRule.objects.filter(client=client).select_related("created_by").order_by("kind", "id")


def client_examples(*, client: Client) -> QuerySet[ApprovedExample]:
    return ApprovedExample.objects.filter(client=client).select_related("created_by").order_by("id")


def tuning_changes_visible_to(*, actor: AbstractUser | None, client: Client | None = None) -> QuerySet[TuningChange]:
    """Admins and managers read the whole log; account managers the entries of their clients;
    whoever may not read the log (policy `audit.view`) nothing."""
    changes = TuningChange.objects.select_related("actor", "client")
    if client is not None:
        changes = changes.filter(client=client)
    if policy.acts_on_every_client(actor, "audit.view"):
        return changes
    return changes.filter(client__in=policy.clients_for(actor, "audit.view"))


def tuning_change_get(*, actor: AbstractUser | None, change_id: int | str) -> TuningChange:
    try:
        return tuning_changes_visible_to(actor=actor).get(pk=int(change_id))
    except (TuningChange.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such audit entry.", details={"audit_id": change_id}) from None


# --- memory (tier 3) ---------------------------------------------------------------------------

MEMORY_LINE_OVERHEAD = 3  # "- " and the newline around each memory in the prompt


class ToldMemory(NamedTuple):
    """What the assembler needs of an accepted memory (not a model instance: building 200 of those
    cost more than the query itself)."""

    pk: int
    text: str
    expires_at: datetime | None


@dataclass(frozen=True)
class MemorySelection:
    """The accepted, unexpired memories a run for a client is told (`included`, by id: the order
    they appear in), and the ones the size bound left out (least recently used first)."""

    included: tuple[ToldMemory, ...]
    left_out: tuple[ToldMemory, ...]
    limit: int

    @property
    def valid_until(self) -> datetime | None:
        """The first moment a memory told here expires (the assembler's cache holds until then)."""
        ends = [m.expires_at for m in self.included if m.expires_at is not None]
        return min(ends) if ends else None


def memory_prompt_limit() -> int:
    return int(getattr(settings, "MEMORY_PROMPT_MAX_CHARS", 2_000))


def memories_for_prompt(*, client: Client | int | None, now: datetime | None = None,
                        limit: int | None = None) -> MemorySelection:
    """What the assembler puts in tier 3 (unscoped: the assembler's read). A client's own accepted
    memories and the agency-wide ones; never another client's. When their text is over the bound
    (`settings.MEMORY_PROMPT_MAX_CHARS`), the least recently used (last told to a run, else
    accepted) and, among equals, the least used and oldest are left out first: one query, most
    recently used first, then each kept while it still fits."""
    now = now or timezone.now()
    limit = memory_prompt_limit() if limit is None else limit
    client_id = client.pk if isinstance(client, Client) else client
    # Plain SQL on purpose: on a cold cache this runs for every run, and with 200 memories the ORM's
    # query building and row handling took several times the query itself (tests/benchmarks/
    # bench_threads.py, memory_assembly_p50_ms).
    params: list[Any] = [MemoryStatus.ACCEPTED.value, now]
    whose = "client_id IS NULL"
    if client_id is not None:
        whose += " OR client_id = %s"
        params.append(int(client_id))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, text, expires_at FROM {Memory._meta.db_table} "  # noqa: S608 - no input in the names
            f"WHERE status = %s AND (expires_at IS NULL OR expires_at > %s) AND ({whose}) "
            "ORDER BY COALESCE(last_used_at, decided_at, created_at) DESC, use_count DESC, id DESC", params)
        rows = cursor.fetchall()
    kept, left, used = [], [], 0
    for pk, text, expires_at in rows:
        size = len(text) + MEMORY_LINE_OVERHEAD
        if used + size <= limit:
            kept.append(ToldMemory(pk, text, expires_at))
            used += size
        else:
            left.append(ToldMemory(pk, text, expires_at))
    return MemorySelection(included=tuple(sorted(kept, key=lambda m: m.pk)), left_out=tuple(reversed(left)),
                           limit=limit)


def memories_visible_to(*, actor: AbstractUser | None, client_id: int | None = None, status: str = "",
                        agency_wide: bool = False) -> QuerySet[Memory]:
    """The memories the actor may read (policy `memory.view`): every one for admins and managers
    (agency-wide ones included); an assigned client's for account managers and client contacts."""
    memories = Memory.objects.select_related("client", "proposed_by", "decided_by")
    if not policy.acts_on_every_client(actor, "memory.view"):
        memories = memories.filter(client__in=policy.clients_for(actor, "memory.view"))
    if client_id is not None:
        memories = memories.filter(client_id=client_id)
    elif agency_wide:
        memories = memories.filter(client__isnull=True)
    if status:
        memories = memories.filter(status=status)
    return memories.order_by("-id")


def memory_get(*, actor: AbstractUser | None, memory_id: int | str) -> Memory:
    try:
        return memories_visible_to(actor=actor).get(pk=int(memory_id))
    except (Memory.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such memory.", details={"memory_id": memory_id}) from None
