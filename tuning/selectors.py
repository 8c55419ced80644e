"""Reads for clients and tuning, scoped to what the actor may see. Every scoped read fails
closed: an actor with no role sees nothing."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.db.models import Q, QuerySet

from spokestack.accounts import policy
from spokestack.errors import NotFound

from .models import ApprovedExample, Client, ClientTuning, ContentRule, InstanceTuning, TuningChange


def clients_visible_to(*, actor: AbstractUser | None) -> QuerySet[Client]:
    """Every client for admins and managers; the assigned ones for account managers and contacts."""
    return policy.visible_clients(actor)


def client_get(*, actor: AbstractUser | None, client_id: int | str) -> Client:
    try:
        return clients_visible_to(actor=actor).get(pk=int(client_id))
    except (Client.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such client.", details={"client_id": client_id}) from None


def tuning_version() -> tuple[int, int | None]:
    """The id of the newest audit entry, and this transaction's id if it has written anything.

    Every tuning write goes through a service that records an entry, so the id changes exactly
    when some tuning may have changed (the assembler's cache key). A transaction that wrote
    sees its own uncommitted state: its id keeps what it assembles private to it.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0), txid_current_if_assigned() FROM tuning_tuningchange")
        newest, transaction_id = cursor.fetchone()
        return newest, transaction_id


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
