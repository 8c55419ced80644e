"""Documents: upload, re-upload, delete, open, and their ingestion (DESIGN §12, issue #17).

The only write path for `Document` and `Chunk`. Uploads, re-uploads and deletes are tier-3
(client) or tier-2 (instance-wide) changes: permission-checked by the policy, recorded in the
audit log in the same transaction, with the stored file removed only after the commit. The
ingestion (`document_ingest`, run by the Celery task `knowledge.ingest`) replaces a document's
chunks in one transaction, so a search sees the old chunks or the new ones, never a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from spokestack.accounts import policy
from spokestack.errors import Conflict, InvalidInput, NotAllowed, NotFound
from spokestack.tasks import enqueue_on_commit
from tuning import audit
from tuning.models import Action, Client, Entity, Tier, TuningChange

from . import embeddings
from .extract import ExtractionError, chunk_blocks, extract
from .files import detect_type, read_upload
from .models import Chunk, Document, DocumentKind, DocumentStatus, Term, document_terms, search_config

logger = logging.getLogger(__name__)

LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
MAX_TITLE = 200

# Rollbacks of other fields' entries (pins, …), registered by the module that writes them:
# field -> fn(*, change, actor, reason, ticket, document).
FIELD_ROLLBACKS: dict[str, Callable[..., None]] = {}


def document_snapshot(document: Document) -> dict[str, Any]:
    """What an audit entry keeps of a document (its file is not kept: it cannot come back from the log)."""
    return {"client_id": document.client_id, "title": document.title, "kind": document.kind,
            "language": document.language, "file_name": document.original_name, "file_type": document.file_type,
            "size_bytes": document.size_bytes, "sha256": document.sha256, "revision": document.revision}


def _tier(client: Client | None) -> int:
    return Tier.CLIENT if client is not None else Tier.INSTANCE


def _affected(client: Client | None) -> list[int] | None:
    return None if client is not None else list(Client.objects.order_by("pk").values_list("pk", flat=True))


def knowledge_require(actor: AbstractUser | None, action: str, client: Client | None) -> None:
    """The policy row, with the client; instance-wide documents (no client) are uploaded, deleted and
    pinned by the roles that act on every client, and read by everyone who may view knowledge."""
    if client is not None:
        policy.require(actor, action, client)
        return
    policy.require(actor, action)
    if action != "knowledge.view" and not policy.acts_on_every_client(actor, action):
        raise NotAllowed("Instance-wide documents (no client) are for instance admins and managers; give a client.",
                         details={"action": action, "client_id": None})


# --- reads ------------------------------------------------------------------------------------


def documents_visible_to(*, actor: AbstractUser | None, client_id: int | None = None, kind: str = "",
                         status: str = "", instance_wide: bool = False) -> QuerySet[Document]:
    """The documents the actor may read (policy `knowledge.view`): every one for the roles that act on
    every client; otherwise their clients' and the instance-wide ones."""
    documents = Document.objects.select_related("client", "uploaded_by")
    if not policy.acts_on_every_client(actor, "knowledge.view"):
        documents = documents.filter(Q(client__in=policy.clients_for(actor, "knowledge.view"))
                                     | Q(client__isnull=True))
    if client_id is not None:
        documents = documents.filter(client_id=client_id)
    elif instance_wide:
        documents = documents.filter(client__isnull=True)
    if kind:
        documents = documents.filter(kind=kind)
    if status:
        documents = documents.filter(status=status)
    return documents.order_by("-id")


def document_get(*, actor: AbstractUser | None, document_id: int | str) -> Document:
    try:
        return documents_visible_to(actor=actor).get(pk=int(document_id))
    except (Document.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such document.", details={"document_id": document_id}) from None


def document_open(*, actor: AbstractUser | None, document_id: int | str) -> tuple[Document, IO[bytes]]:
    """The document and its stored file opened for reading (the caller streams and closes it), after
    the policy (`knowledge.view`); 404 for a document the actor cannot see, or whose file is gone."""
    document = document_get(actor=actor, document_id=document_id)
    knowledge_require(actor, "knowledge.view", document.client)
    try:
        handle = document.file.storage.open(document.file.name, "rb")
    except (FileNotFoundError, OSError):
        raise NotFound(f"The file of document #{document.pk} is missing from storage; upload it again.",
                       details={"document_id": document.pk}) from None
    return document, handle


# --- writes -----------------------------------------------------------------------------------


def _clean_fields(*, title: Any, kind: Any, language: Any, file_name: str) -> tuple[str, str, str]:
    if title is None or (isinstance(title, str) and not title.strip()):
        title = file_name.rsplit(".", 1)[0] if file_name else ""
    if not isinstance(title, str) or not " ".join(title.split()):
        raise InvalidInput("title: name the document, e.g. 'Brand guidelines 2026'.", details={"title": ["required"]})
    title = " ".join(title.split())
    if len(title) > MAX_TITLE:
        raise InvalidInput(f"title: at most {MAX_TITLE} characters ({len(title)} given).",
                           details={"title": [f"at most {MAX_TITLE}"]})
    kind = kind or DocumentKind.REFERENCE
    if kind not in DocumentKind.values:
        raise InvalidInput(f"kind: one of {', '.join(DocumentKind.values)} ({kind!r} given).",
                           details={"kind": [str(kind)]})
    language = (language or "en").strip() if isinstance(language, str) else language
    if not isinstance(language, str) or not LANGUAGE.match(language):
        raise InvalidInput("language: a language code such as en, ar, fr or de (search stems these four; "
                           f"any other is indexed word by word) ({language!r} given).",
                           details={"language": [str(language)]})
    return title, kind, language


def _read_file(uploaded_file: Any) -> tuple[bytes, str, str]:
    if uploaded_file is None:
        raise InvalidInput("file: attach the document (PDF, DOCX, HTML, Markdown, text or CSV).",
                           details={"file": ["required"]})
    name = _storable(getattr(uploaded_file, "name", "") or "").replace("\\", "/").rsplit("/", 1)[-1][:255]
    data = read_upload(uploaded_file, name=name, size=getattr(uploaded_file, "size", None))
    return data, name, detect_type(name=name, data=data)


def _delete_file_on_commit(name: str) -> None:
    def remove() -> None:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("could not delete the stored file %s", name, exc_info=True)

    transaction.on_commit(remove)


@contextlib.contextmanager
def _stored(document: Document, name: str, data: bytes) -> Iterator[None]:
    """Store the file (under a new random path); remove it again if the transaction fails."""
    document.file.save(name or "document", ContentFile(data), save=False)
    try:
        yield
    except BaseException:
        default_storage.delete(document.file.name)
        raise


def _enqueue_ingest(document: Document):
    from .tasks import knowledge_ingest

    return enqueue_on_commit(knowledge_ingest, document_id=document.pk, revision=document.revision)


def _full_clean(document: Document) -> None:
    try:
        document.full_clean(exclude=["client", "uploaded_by", "file"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(f"{field}: {' '.join(messages)}", details=exc.message_dict) from exc


def _resolve_client(client: Client | None, client_id: int | None) -> Client | None:
    if client is not None or client_id is None:
        return client
    found = Client.objects.filter(pk=client_id).first()
    if found is None:
        raise NotFound("No such client.", details={"client_id": client_id})
    return found


@transaction.atomic
def document_upload(*, actor: AbstractUser | None, client: Client | None = None, client_id: int | None = None,
                    title: str = "", kind: str = DocumentKind.REFERENCE, language: str = "en",
                    uploaded_file: Any, reason: str = "", ticket: str = "") -> Document:
    """Store a document for a client (or the whole instance, client None) and queue its ingestion
    after commit. The type is decided by the content; too large, empty or unknown files are 400s."""
    client = _resolve_client(client, client_id)
    knowledge_require(actor, "knowledge.upload", client)
    data, name, file_type = _read_file(uploaded_file)
    title, kind, language = _clean_fields(title=title, kind=kind, language=language, file_name=name)
    document = Document(client=client, title=title, kind=kind, language=language, original_name=name,
                        file_type=file_type, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                        status=DocumentStatus.PROCESSING, uploaded_by=actor if getattr(actor, "pk", None) else None)
    _full_clean(document)
    with _stored(document, name, data):
        document.save(force_insert=True)
        audit.record(actor=actor, tier=_tier(client), entity=Entity.DOCUMENT, entity_id=document.pk,
                     action=Action.CREATE, new=document_snapshot(document), client=client, reason=reason,
                     ticket=ticket, affected_clients=_affected(client))
    _enqueue_ingest(document)
    return document


def _locked(document_id: int) -> Document:
    document = (Document.objects.select_for_update(of=("self",)).select_related("client")
                .filter(pk=document_id).first())
    if document is None:
        raise NotFound("No such document.", details={"document_id": document_id})
    return document


@transaction.atomic
def document_replace(*, actor: AbstractUser | None, document: Document, uploaded_file: Any, reason: str = "",
                     ticket: str = "") -> Document:
    """Re-upload: the new file becomes the next revision and is ingested; the old chunks stay
    searchable until the new ones replace them in one transaction. The old file is removed after
    commit."""
    document = _locked(document.pk)
    knowledge_require(actor, "knowledge.upload", document.client)
    data, name, file_type = _read_file(uploaded_file)
    old = document_snapshot(document)
    old_file = document.file.name
    document.original_name, document.file_type, document.size_bytes = name, file_type, len(data)
    document.sha256 = hashlib.sha256(data).hexdigest()
    document.revision += 1
    document.status, document.error, document.progress = DocumentStatus.PROCESSING, "", 0
    if getattr(actor, "pk", None):
        document.uploaded_by = actor
    with _stored(document, name, data):
        document.save(update_fields=["file", "original_name", "file_type", "size_bytes", "sha256", "revision",
                                     "status", "error", "progress", "uploaded_by", "updated_at"])
        audit.record(actor=actor, tier=_tier(document.client), entity=Entity.DOCUMENT, entity_id=document.pk,
                     action=Action.UPDATE, field="file", old=old, new=document_snapshot(document),
                     client=document.client, reason=reason, ticket=ticket, affected_clients=_affected(document.client))
    if old_file and old_file != document.file.name:
        _delete_file_on_commit(old_file)
    _enqueue_ingest(document)
    return document


@transaction.atomic
def document_delete(*, actor: AbstractUser | None, document: Document, reason: str = "", ticket: str = "",
                    _rollback_of: TuningChange | None = None) -> None:
    """Delete a document with its chunks; its stored file is removed after commit. The log keeps what
    it was, not its file: it cannot be restored from the log (upload it again)."""
    document = _locked(document.pk)
    knowledge_require(actor, "knowledge.delete", document.client)
    snapshot, document_id, client, file_name = document_snapshot(document), document.pk, document.client, \
        document.file.name
    document.delete()  # its chunks go with it (CASCADE), in this transaction
    audit.record(actor=actor, tier=_tier(client), entity=Entity.DOCUMENT, entity_id=document_id, action=Action.DELETE,
                 old=snapshot, client=client, reason=reason, ticket=ticket, affected_clients=_affected(client),
                 rollback_of=_rollback_of)
    if file_name:
        _delete_file_on_commit(file_name)


@audit.rollback_handler(Entity.DOCUMENT)
def _document_rollback(*, change: TuningChange, actor: AbstractUser | None, reason: str, ticket: str) -> None:
    """An upload is undone by deleting the document (409 once it was re-uploaded or is gone); a
    delete or a replaced file cannot be undone from the log, which keeps no files."""
    document = Document.objects.select_related("client").filter(pk=int(change.entity_id)).first()
    if change.action == Action.CREATE:
        if document is None:
            raise Conflict(f"Document {change.entity_id} was deleted already; entry #{change.pk} has nothing to undo.",
                           details={"audit_id": change.pk})
        if document.revision != (change.new_value or {}).get("revision", 1):
            raise Conflict(f"Document {change.entity_id} was uploaded again after entry #{change.pk}: delete it "
                           "directly instead.", details={"audit_id": change.pk, "revision": document.revision})
        document_delete(actor=actor, document=document, reason=reason, ticket=ticket, _rollback_of=change)
        return
    if change.action == Action.DELETE:
        raise Conflict("A deleted document cannot be restored from the log; upload it again.",
                       details={"audit_id": change.pk})
    handler = FIELD_ROLLBACKS.get(change.field)
    if handler is not None:
        if document is None:
            raise Conflict(f"Document {change.entity_id} was deleted; entry #{change.pk} cannot be rolled back.",
                           details={"audit_id": change.pk})
        handler(change=change, actor=actor, reason=reason, ticket=ticket, document=document)
        return
    raise Conflict("An earlier file of a document cannot be restored from the log; upload it again.",
                   details={"audit_id": change.pk, "field": change.field})


# --- ingestion --------------------------------------------------------------------------------


class _Superseded(Exception):
    """The document was re-uploaded or deleted while this revision was being extracted."""


@contextlib.contextmanager
def _document_lock(job: str, document_id: int) -> Iterator[bool]:
    """One `job` (ingest, embed) of a document at a time, across workers: a session advisory lock,
    released by PostgreSQL if the worker dies. Yields False when another worker holds it."""
    key = f"knowledge_{job}:{connection.schema_name}:{document_id}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [key])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])


def _current(document_id: int, revision: int) -> QuerySet[Document]:
    return Document.objects.filter(pk=document_id, revision=revision, status=DocumentStatus.PROCESSING)


def _storable(text: str) -> str:
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def document_ingest(*, document_id: int, revision: int) -> str:
    """Extract, chunk and index one revision of a document; returns what happened ("ready", "failed",
    or "skipped" for a duplicate delivery, an old revision, a deleted document or one another worker
    holds). A failure leaves the document failed with the reason and no chunks: nothing half-indexed."""
    document = _current(document_id, revision).first()
    if document is None:
        return "skipped"
    with _document_lock("ingest", document_id) as held:
        if not held:
            return "skipped"
        document = _current(document_id, revision).first()  # a delivery that finished while we waited
        if document is None:
            return "skipped"

        def progress(percent: int) -> None:
            if not _current(document_id, revision).update(progress=min(99, max(0, percent)),
                                                          updated_at=timezone.now()):
                raise _Superseded

        label = document.original_name or "The document"
        try:
            progress(1)
            with document.file.storage.open(document.file.name, "rb") as handle:
                data = handle.read()
            extracted = extract(data=data, file_type=document.file_type, progress=progress)
            chunks = chunk_blocks(extracted.blocks)
            if not chunks:
                raise ExtractionError("has no text: it is empty, or all of it is in images.")
        except _Superseded:
            return "skipped"
        except ExtractionError as exc:
            return _fail(document_id, revision, f"{label} {exc}")
        except (FileNotFoundError, OSError) as exc:
            logger.warning("document %s: its file could not be read", document_id, exc_info=True)
            return _fail(document_id, revision, f"{label}: its stored file could not be read ({type(exc).__name__}); "
                                                "upload it again.")
        except Exception as exc:  # noqa: BLE001 - any parser failure is the document's, told to its uploader
            logger.exception("document %s: extraction failed", document_id)
            return _fail(document_id, revision, f"{label} could not be read ({type(exc).__name__}: {exc}); save it "
                                                "again (or as PDF/DOCX) and upload the new file.")
        return _replace_chunks(document_id, revision, chunks, extracted.pages)


def _replace_chunks(document_id: int, revision: int, chunks: list, pages: int | None) -> str:
    """Old chunks out, new chunks in with their search vectors, document ready: one transaction."""
    with transaction.atomic():
        document = _current(document_id, revision).select_for_update(of=("self",)).first()
        if document is None:
            return "skipped"
        config = search_config(document.language)
        Chunk.objects.filter(document_id=document_id).delete()
        Chunk.objects.bulk_create([
            Chunk(document_id=document_id, client_id=document.client_id, ordinal=index, text=_storable(chunk.text),
                  heading=_storable(chunk.heading)[:500], page=chunk.page, config=config)
            for index, chunk in enumerate(chunks)], batch_size=500)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Chunk._meta.db_table} SET search_vector = "  # noqa: S608 - the table name is ours
                "to_tsvector(%s::regconfig, coalesce(heading, '') || ' ' || text) WHERE document_id = %s",
                [config, document_id])
        Term.objects.filter(document_id=document_id).delete()
        Term.objects.bulk_create([Term(document_id=document_id, client_id=document.client_id, term=term)
                                  for term in document_terms(f"{c.heading} {c.text}" for c in chunks)],
                                 batch_size=2000)
        now = timezone.now()
        Document.objects.filter(pk=document_id).update(
            status=DocumentStatus.READY, progress=100, error="", chunks_count=len(chunks), pages=pages,
            processed_at=now, updated_at=now)
        _enqueue_embed(document_id)
        from spokestack.webhooks.services import webhook_emit

        webhook_emit("document.ready", {"document_id": document_id, "client_id": document.client_id,
                                        "title": document.title, "pages": pages, "chunks": len(chunks)})
    return "ready"


def _enqueue_embed(document_id: int) -> None:
    if embeddings.provider() is not None:
        from .tasks import knowledge_embed

        enqueue_on_commit(knowledge_embed, document_id=document_id)


def document_embed(*, document_id: int) -> int:
    """Give the ready document's chunks that have none their embedding (semantic ranking), a batch
    at a time; returns how many. Nothing without a provider. Safe twice and against a re-upload: a
    chunk is written by its id, which a re-upload's new chunks never share, and a second delivery
    finds nothing left (or the first still at it: the lock). An EmbeddingError (provider down) is
    the caller's to retry; what was embedded stays."""
    if embeddings.provider() is None:
        return 0
    done = 0
    with _document_lock("embed", document_id) as held:
        while held:
            rows = list(Chunk.objects.filter(document_id=document_id, document__status=DocumentStatus.READY,
                                             embedding__isnull=True)
                        .order_by("ordinal").values_list("pk", "heading", "text")[:embeddings.BATCH * 4])
            if not rows:
                break
            vectors = embeddings.embed_documents([f"{heading}\n\n{text}" if heading else text
                                                  for _, heading, text in rows])
            Chunk.objects.bulk_update([Chunk(pk=pk, embedding=vector) for (pk, *_), vector in zip(rows, vectors,
                                                                                                   strict=True)],
                                      ["embedding"])
            done += len(rows)
    return done


def _fail(document_id: int, revision: int, message: str) -> str:
    with transaction.atomic():
        if _current(document_id, revision).select_for_update(of=("self",)).first() is None:
            return "skipped"
        Chunk.objects.filter(document_id=document_id).delete()
        Term.objects.filter(document_id=document_id).delete()
        now = timezone.now()
        Document.objects.filter(pk=document_id).update(
            status=DocumentStatus.FAILED, error=message[:2000], progress=0, chunks_count=0, processed_at=now,
            updated_at=now)
    return "failed"


def documents_recover(*, now=None) -> int:
    """Queue again the documents still processing long after their last progress (their worker died or
    their message was lost). Decided in the database: two readers at once queue a document once. A
    delivery that finds the document in another worker's hands does nothing (`_document_lock`)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.KNOWLEDGE_STALE_AFTER_S)
    sent = 0
    for document_id, revision in Document.objects.filter(status=DocumentStatus.PROCESSING, updated_at__lt=cutoff) \
            .values_list("pk", "revision")[:100]:
        if _current(document_id, revision).filter(updated_at__lt=cutoff).update(updated_at=now) == 1:
            from .tasks import knowledge_ingest

            enqueue_on_commit(knowledge_ingest, document_id=document_id, revision=revision)
            sent += 1
    return sent


def documents_embed_missing() -> int:
    """Queue the embedding of ready documents with chunks that have none (the provider was down
    past the job's retries, or the key was set after they were uploaded); returns how many. A
    duplicate of a job still running does nothing (its lock)."""
    if embeddings.provider() is None:
        return 0
    unembedded = Chunk.objects.filter(embedding__isnull=True, document__status=DocumentStatus.READY)
    documents = list(unembedded.order_by("document_id").values_list("document_id", flat=True).distinct()[:20])
    for document_id in documents:
        _enqueue_embed(document_id)
    return len(documents)
