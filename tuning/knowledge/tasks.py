"""Celery work of knowledge: a document's ingestion, and the recovery of lost ones. Thin tasks: the
work is in `services` (document_ingest, documents_recover)."""

from __future__ import annotations

from celery.utils.log import get_task_logger

from spokestack.celery import app

logger = get_task_logger(__name__)


@app.task(name="knowledge.ingest", acks_late=True, reject_on_worker_lost=True, ignore_result=True,
          soft_time_limit=600, time_limit=660)
def knowledge_ingest(*, document_id: int, revision: int) -> str:
    """Extract, chunk and index one revision of a document, in the instance it was queued from.
    Safe to deliver twice: a delivery for an old revision, a finished document or one another worker
    holds does nothing."""
    from .services import document_ingest

    outcome = document_ingest(document_id=document_id, revision=revision)
    logger.info("document %s revision %s: %s", document_id, revision, outcome)
    return outcome


@app.task(name="knowledge.recover_ingestions", ignore_result=True, soft_time_limit=60, time_limit=90, public=True)
def recover_ingestions() -> int:
    """Beat: queue again, in every instance, the documents whose ingestion lost its worker or message."""
    from spokestack.tenancy.selectors import in_each_instance

    from .services import documents_embed_missing, documents_recover

    return in_each_instance(lambda schema: documents_recover() + documents_embed_missing(),
                            what="knowledge ingestion recovery")


@app.task(name="knowledge.embed", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
          soft_time_limit=600, time_limit=660, max_retries=5)
def knowledge_embed(self, *, document_id: int) -> int:
    """Embed a ready document's chunks (semantic ranking; only with a provider configured). The
    provider down: retried with backoff (1, 2, 4, 8, 16 min), then left to the beat's sweep; refused
    (4xx): logged, not retried."""
    from .embeddings import EmbeddingError
    from .services import document_embed

    try:
        done = document_embed(document_id=document_id)
    except EmbeddingError as exc:
        if not exc.retryable:  # refused (a bad key, a bad model): asking again would be refused again
            logger.error("document %s: the embedding provider refused: %s", document_id, exc)
            return 0
        logger.warning("document %s: embedding failed (%s); retrying", document_id, exc)
        raise self.retry(exc=exc, countdown=60 * 2 ** self.request.retries) from exc
    logger.info("document %s: %s chunks embedded", document_id, done)
    return done
