"""Pinned excerpts (issue #17 part 4, DESIGN §12): a document's chosen part told to every run.

A client's document (its brand guidelines, its style guide, …) may be pinned into that client's
tier 3 as one bounded excerpt: the part the account manager chooses, or the document's beginning.
An instance-wide document may be pinned too, by whoever acts on every client (instance admins and
managers, support): its excerpt is then told to runs for every client (and runs without one).

The excerpt is stored on the document when it is pinned (`pin_excerpt`) and is exactly what the
model is told, so the audit entry (old and new pin, text included) says precisely what changed and
a rollback restores it byte for byte; replacing the file does not change a pin (pin again to take
the new file's beginning). Every pin change records an audit entry, so the assembler's cache key
(the newest audit id) changes with it and the next run sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.db.models import Q
from django.urls import reverse

from spokestack.accounts import policy
from spokestack.errors import Conflict, InvalidInput, NotFound
from tuning import audit
from tuning.models import Action, Client, Entity, Tier, TuningChange

from .models import Chunk, Document, DocumentStatus
from .services import FIELD_ROLLBACKS, knowledge_require

PIN_FIELD = "pin"
# How many excerpts' worth (of KNOWLEDGE_PIN_MAX_CHARS) all pins of one prompt may take together.
PINS_TOTAL_EXCERPTS = 4


def pin_max_chars() -> int:
    return int(getattr(settings, "KNOWLEDGE_PIN_MAX_CHARS", 2_000))


def pins_total_chars() -> int:
    return pin_max_chars() * PINS_TOTAL_EXCERPTS


def pin_snapshot(document: Document) -> dict[str, Any]:
    return {"pinned": document.pinned, "excerpt": document.pin_excerpt if document.pinned else ""}


def document_beginning(document: Document, limit: int | None = None) -> str:
    """The document's first `limit` characters (its passages in order, each section's heading path
    before its first one), cut after the last paragraph or sentence that fits, so a pin of "the
    beginning" does not end mid-word."""
    limit = pin_max_chars() if limit is None else limit
    parts: list[str] = []
    size, section = 0, ""
    for heading, text in Chunk.objects.filter(document=document).order_by("ordinal").values_list("heading", "text"):
        part = text.strip()
        if heading and heading != section:  # each section's heading path once, before its first passage
            part, section = f"{heading}\n{part}", heading
        parts.append(part)
        size += len(part) + 2
        if size >= limit:
            break
    text = "\n\n".join(p for p in parts if p)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    for mark in ("\n\n", "\n", ". ", " "):
        at = cut.rfind(mark)
        if at > limit // 2:
            return cut[: at + (1 if mark == ". " else 0)].rstrip()
    return cut.rstrip()


def _locked(actor: AbstractUser | None, document_id: int) -> Document:
    document = (Document.objects.select_for_update(of=("self",)).select_related("client")
                .filter(pk=document_id).first())
    if document is None or (document.client_id is not None and not policy.allows(actor, "knowledge.view",
                                                                                   document.client_id)):
        raise NotFound("No such document.", details={"document_id": document_id})
    return document


def _set_pin(*, actor: AbstractUser | None, document: Document, pinned: bool, excerpt: str, reason: str,
             ticket: str, rollback_of: TuningChange | None) -> Document:
    old = pin_snapshot(document)
    document.pinned, document.pin_excerpt = pinned, excerpt if pinned else ""
    new = pin_snapshot(document)
    if new == old:
        return document
    document.save(update_fields=["pinned", "pin_excerpt", "updated_at"])
    client = document.client
    audit.record(actor=actor, tier=Tier.CLIENT if client is not None else Tier.INSTANCE, entity=Entity.DOCUMENT,
                 entity_id=document.pk, action=Action.UPDATE, field=PIN_FIELD, old=old, new=new, client=client,
                 reason=reason, ticket=ticket, rollback_of=rollback_of,
                 affected_clients=None if client is not None else list(Client.objects.values_list("pk", flat=True)))
    return document


def _clean_excerpt(document: Document, excerpt: str | None) -> str:
    limit = pin_max_chars()
    if excerpt is None or not excerpt.strip():
        if document.status != DocumentStatus.READY:
            raise InvalidInput(f"excerpt: document #{document.pk} is {document.get_status_display().lower()}, so it "
                               "has no text to pin yet; wait until it is ready, or give the excerpt to pin.",
                               details={"excerpt": ["the document is not ready"]})
        text = document_beginning(document, limit)
        if not text:
            raise InvalidInput(f"excerpt: document #{document.pk} has no text; give the excerpt to pin.",
                               details={"excerpt": ["the document has no text"]})
        return text
    text = excerpt.strip().replace("\r\n", "\n")
    if len(text) > limit:
        raise InvalidInput(f"excerpt: {len(text)} characters is over the {limit}-character bound of a pinned "
                           "excerpt (KNOWLEDGE_PIN_MAX_CHARS); pin a shorter part.",
                           details={"excerpt": [f"at most {limit} characters"]})
    return text


@transaction.atomic
def document_pin(*, actor: AbstractUser | None, document_id: int, excerpt: str | None = None, reason: str = "",
                 ticket: str = "", _rollback_of: TuningChange | None = None) -> Document:
    """Pin the document (or change its pinned excerpt): `excerpt` is the part to tell every run, at
    most KNOWLEDGE_PIN_MAX_CHARS characters; None or blank pins the document's beginning (a ready
    document's first characters). Audited as a document update of field `pin`; reversible."""
    document = _locked(actor, document_id)
    knowledge_require(actor, "knowledge.pin", document.client)
    return _set_pin(actor=actor, document=document, pinned=True, excerpt=_clean_excerpt(document, excerpt),
                    reason=reason, ticket=ticket, rollback_of=_rollback_of)


@transaction.atomic
def document_unpin(*, actor: AbstractUser | None, document_id: int, reason: str = "", ticket: str = "",
                   _rollback_of: TuningChange | None = None) -> Document:
    """Stop telling runs the document's excerpt (the document stays searchable). Audited; reversible."""
    document = _locked(actor, document_id)
    knowledge_require(actor, "knowledge.pin", document.client)
    return _set_pin(actor=actor, document=document, pinned=False, excerpt="", reason=reason, ticket=ticket,
                    rollback_of=_rollback_of)


def pin_rollback(*, change: TuningChange, actor: AbstractUser | None, reason: str, ticket: str,
                 document: Document) -> None:
    """Restore the pin an entry replaced (registered in services.FIELD_ROLLBACKS, which the documents'
    rollback handler dispatches to); 409 when the pin changed again since."""
    current = pin_snapshot(Document.objects.select_for_update(of=("self",)).get(pk=document.pk))
    if current != change.new_value:
        raise Conflict(
            f"Document #{change.entity_id}'s pin changed again after entry #{change.pk}, so it cannot be rolled "
            "back blindly. Pin or unpin it directly instead.",
            details={"audit_id": change.pk, "field": PIN_FIELD, "current": current, "expected": change.new_value,
                     "restore": change.old_value})
    common = {"actor": actor, "document_id": document.pk, "reason": reason, "ticket": ticket,
              "_rollback_of": change}
    if change.old_value.get("pinned"):
        document_pin(excerpt=change.old_value.get("excerpt") or None, **common)
    else:
        document_unpin(**common)


FIELD_ROLLBACKS[PIN_FIELD] = pin_rollback


# --- what the assembler tells (tier 3) --------------------------------------------------------


@dataclass(frozen=True)
class PinnedExcerpt:
    document_id: int
    client_id: int | None
    title: str
    kind: str  # the display label, e.g. "Brand guidelines"
    text: str

    @property
    def field(self) -> str:
        return f"knowledge.pin.{self.document_id}"

    def render(self) -> str:
        return f"## From {self.title} ({self.kind})\n{self.text}"


@dataclass(frozen=True)
class PinSelection:
    included: tuple[PinnedExcerpt, ...]
    left_out: tuple[PinnedExcerpt, ...]  # over the total bound
    limit: int


def pins_for_prompt(*, client: Client | int | None) -> PinSelection:
    """The pinned excerpts a run for `client` is told (unscoped: the assembler's read): the
    client's own, then the instance-wide ones, each by document id, each within
    KNOWLEDGE_PIN_MAX_CHARS; once their total reaches the total bound the rest are left out."""
    client_id = client.pk if isinstance(client, Client) else client
    kinds = dict(Document._meta.get_field("kind").choices)
    whose = Q(client__isnull=True) | Q(client_id=client_id) if client_id is not None else Q(client__isnull=True)
    rows = Document.objects.filter(whose, pinned=True).exclude(pin_excerpt="")
    ordered = sorted(rows.values_list("pk", "client_id", "title", "kind", "pin_excerpt"),
                     key=lambda row: (row[1] is None, row[0]))
    per, total = pin_max_chars(), pins_total_chars()
    included: list[PinnedExcerpt] = []
    left: list[PinnedExcerpt] = []
    used = 0
    for pk, owner, title, kind, text in ordered:
        pin = PinnedExcerpt(pk, owner, title, str(kinds.get(kind, kind)), text.strip()[:per])
        size = len(pin.render())
        if used + size <= total:
            included.append(pin)
            used += size
        else:
            left.append(pin)
    return PinSelection(included=tuple(included), left_out=tuple(left), limit=total)


def pin_sections(pins: Sequence[PinnedExcerpt]) -> list[tuple[str, str]]:
    """(field, text) of each pinned excerpt, as the prompt's sections."""
    return [(pin.field, pin.render()) for pin in pins]



def with_sources(sections: Sequence[Any]) -> list[dict[str, Any]]:
    """The prompt preview's sections, each pinned excerpt with its source (the document, its kind,
    whose it is, and its admin page): one query for all of them."""
    prefix = "knowledge.pin."
    ids = [int(s.field[len(prefix):]) for s in sections if s.field.startswith(prefix)]
    documents = {d.pk: d for d in Document.objects.filter(pk__in=ids).select_related("client")} if ids else {}
    out = []
    for section in sections:
        row = {"tier": section.tier, "field": section.field, "text": section.text}
        document = documents.get(int(section.field[len(prefix):])) if section.field.startswith(prefix) else None
        if document is not None:
            row["source"] = {"title": document.title, "kind": document.get_kind_display(),
                             "owner": document.client.name if document.client_id else "instance-wide",
                             "url": reverse("instance_admin:knowledge_document_change", args=[document.pk]),
                             "chars": len(document.pin_excerpt)}
        out.append(row)
    return out
