"""Semantic ranking (issue #17 part 3): with an embedding provider configured, chunks are embedded
after ingestion and a search fuses pgvector's nearest chunks with the full-text ranking; without
one nothing changes, and a provider that is down never fails a search. The provider is the local
fake (tests/fakes/messages_api.py, POST /v1/embeddings), whose vectors put "shades" next to
"palette" while sharing no word."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from tuning.knowledge.embeddings import EmbeddingError
from tuning.knowledge.models import Chunk, Document, DocumentKind
from tuning.knowledge.selectors import knowledge_search
from tuning.knowledge.services import document_embed, document_ingest, document_upload, documents_embed_missing
from tuning.services import client_create

from ..conftest import wait_for
from .conftest import upload

PALETTE = "Our palette is sand, saffron and midnight blue. Keep the background light and never place saffron on blue."
VOICE = "Warm and confident, never shouting: the desert light ritual is our signature moment in every campaign."
FONTS = "Headlines are set in Canela; body text in Inter at sixteen points or larger."
QUESTION = "which shades may we use"  # no word in common with PALETTE


@pytest.fixture
def semantic(settings, fake_model):
    """The fake embeddings API as the provider, for this process."""
    settings.KNOWLEDGE_EMBEDDINGS_API_KEY = "test-embeddings-key"
    settings.KNOWLEDGE_EMBEDDINGS_URL = f"{fake_model.base_url}/v1/embeddings"
    fake_model.embeddings_status = 200
    fake_model.embedding_requests.clear()
    yield fake_model
    fake_model.embeddings_status = 200


def _guidelines(client, title="Brand guidelines", text=None):
    body = text or f"# Voice\n\n{VOICE}\n\n# Palette\n\n{PALETTE}\n\n# Typography\n\n{FONTS}\n"
    document = document_upload(actor=None, client=client, title=title, kind=DocumentKind.BRAND_GUIDELINES,
                               language="en", uploaded_file=upload("guidelines.md", body.encode()))
    assert document_ingest(document_id=document.pk, revision=document.revision) == "ready"
    return document


@pytest.fixture
def bloom(in_a):
    return client_create(name="Desert Bloom Cosmetics", vertical="beauty")


def test_without_a_provider_nothing_is_embedded_and_the_meaning_alone_finds_nothing(bloom, fake_model):
    fake_model.embedding_requests.clear()
    document = _guidelines(bloom)
    assert document_embed(document_id=document.pk) == 0 and documents_embed_missing() == 0
    assert not Chunk.objects.filter(document=document, embedding__isnull=False).exists()
    assert [p.heading for p in knowledge_search(query=QUESTION, client=bloom)] == []
    assert fake_model.embedding_requests == []


def test_with_a_provider_a_question_finds_the_passage_that_means_it(bloom, semantic):
    document = _guidelines(bloom)
    assert document_embed(document_id=document.pk) == 3
    assert not Chunk.objects.filter(document=document, embedding__isnull=True).exists()
    assert semantic.embedding_requests == [("document", 3)]
    top = knowledge_search(query=QUESTION, client=bloom)[0]
    assert top.heading == "Palette" and top.citation == "Brand guidelines › Palette"
    assert semantic.embedding_requests[-1] == ("query", 1)
    # The exact phrase still wins: the full-text ranking puts it first, and fusion keeps it there.
    assert knowledge_search(query="desert light ritual", client=bloom)[0].heading == "Voice"
    # A second delivery of the job finds nothing left to embed, and calls the provider for nothing.
    calls = len(semantic.embedding_requests)
    assert document_embed(document_id=document.pk) == 0 and len(semantic.embedding_requests) == calls


def test_the_meaning_never_crosses_clients_or_instances(bloom, semantic, instance_b):
    other = client_create(name="Gulf Bank", vertical="finance")
    mine = _guidelines(bloom, text=f"# Voice\n\n{VOICE}\n")
    theirs = _guidelines(other, title="Gulf Bank colours", text="# Colours\n\nGulf Bank colours are navy and gold.\n")
    for document in (mine, theirs):
        document_embed(document_id=document.pk)
    found = knowledge_search(query=QUESTION, client=bloom, limit=10)
    assert theirs.pk not in {p.document_id for p in found}
    assert knowledge_search(query=QUESTION, client=other)[0].document_id == theirs.pk
    connection.set_tenant(instance_b)
    b_client = client_create(name="Desert Bloom Cosmetics", vertical="beauty")
    assert knowledge_search(query=QUESTION, client=b_client, limit=10) == []


def test_a_provider_that_is_down_leaves_full_text_search_working_and_the_embedding_waits(bloom, semantic):
    document = _guidelines(bloom)
    semantic.embeddings_status = 503
    with pytest.raises(EmbeddingError, match="503") as down:
        document_embed(document_id=document.pk)
    assert down.value.retryable  # the task asks again later
    assert not Chunk.objects.filter(document=document, embedding__isnull=False).exists()
    # the search does not fail: full text alone, as without a provider
    assert knowledge_search(query="desert light ritual", client=bloom)[0].heading == "Voice"
    assert knowledge_search(query=QUESTION, client=bloom) == []
    # back up: the beat's sweep queues it (the task is the worker's); the job then embeds everything
    semantic.embeddings_status = 200
    assert documents_embed_missing() == 1
    assert document_embed(document_id=document.pk) == 3
    assert documents_embed_missing() == 0
    assert knowledge_search(query=QUESTION, client=bloom)[0].heading == "Palette"


def test_a_refusal_is_not_retried_and_says_why(bloom, semantic):
    document = _guidelines(bloom)
    semantic.embeddings_status = 401
    with pytest.raises(EmbeddingError, match="HTTP 401") as refused:
        document_embed(document_id=document.pk)
    assert not refused.value.retryable
    assert semantic.embedding_requests == [("document", 3)]  # one request: a 401 is not retried


def test_a_reupload_replaces_the_chunks_and_their_embeddings(bloom, semantic):
    from tuning.knowledge.services import document_replace

    document = _guidelines(bloom)
    document_embed(document_id=document.pk)
    document = document_replace(actor=None, document=document, uploaded_file=upload(
        "guidelines.md", f"# Typography\n\n{FONTS}\n".encode()))
    assert document_ingest(document_id=document.pk, revision=document.revision) == "ready"
    assert Chunk.objects.filter(document=document).count() == 1
    assert document_embed(document_id=document.pk) == 1
    assert [p.heading for p in knowledge_search(query=QUESTION, client=bloom)] != ["Palette"]


@pytest.mark.live
def test_the_worker_embeds_what_it_ingests_and_the_search_api_finds_it_by_meaning(live_instance, live_db, celery_worker,
                                                                                  semantic, worker_media, api):
    """The real worker, broker and provider over HTTP: an upload is ingested, then embedded by the job
    queued when it became ready; the search API then finds the passage by its meaning."""
    instance = live_instance.instance
    with schema_context(instance.schema_name):
        client = client_create(name="Desert Bloom Cosmetics", vertical="beauty")
        # committed (live_instance): the upload's on-commit enqueue reaches the worker
        document = document_upload(
            actor=None, client=client, title="Brand guidelines", kind=DocumentKind.BRAND_GUIDELINES, language="en",
            uploaded_file=upload("guidelines.md", f"# Voice\n\n{VOICE}\n\n# Palette\n\n{PALETTE}\n".encode()))

        def embedded():
            chunks = Chunk.objects.filter(document_id=document.pk)
            return (Document.objects.filter(pk=document.pk, status="ready").exists() and chunks.exists()
                    and not chunks.filter(embedding__isnull=True).exists())

        wait_for(embedded, timeout=90, interval=0.3)
    assert ("document", 2) in semantic.embedding_requests
    found = api(instance, live_instance.admin).get(f"/api/v1/knowledge/search?q={QUESTION}&client_id={client.pk}")
    assert found.status_code == 200, found.content
    assert found.json()["results"][0]["citation"] == "Brand guidelines › Palette"
    connection.set_schema_to_public()
