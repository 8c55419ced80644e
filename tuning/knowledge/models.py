"""Documents and their chunks (DESIGN §12).

A `Document` belongs to a client (tier 3) or, with no client, to the instance (tier 2). Its file is
kept through Django's storage API under a path of the instance's schema and a random directory
(`document_path`), never served by URL: the admin and the API stream it after asking the policy.
Ingestion (a Celery job) extracts the text and replaces the document's `Chunk` rows in one
transaction; each chunk keeps its heading path and page, and is indexed for PostgreSQL full-text
search in the document's language (`search_vector`, built with `config`) and for trigram
similarity of its words (`Term`, pg_trgm), and, with an embedding provider, by its vector (`embedding`, pgvector).
`client` is copied onto every chunk so a search filters one column.
"""

from __future__ import annotations

import re
import secrets

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVectorField
from django.db import connection, models
from django.db.models.functions import Cast
from django.utils.text import get_valid_filename
from pgvector.django import HnswIndex, VectorField

from tuning.models import Client


class DocumentKind(models.TextChoices):
    BRAND_GUIDELINES = "brand_guidelines", "Brand guidelines"
    STYLE_GUIDE = "style_guide", "Style guide"
    PAST_WORK = "past_work", "Past work"
    REFERENCE = "reference", "Reference"
    OTHER = "other", "Other"


class DocumentStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


# The PostgreSQL text search configuration of each language a document may be in; any other
# language is indexed with `simple` (words as written, no stemming).
SEARCH_CONFIGS = {"en": "english", "ar": "arabic", "fr": "french", "de": "german"}


EMBEDDING_DIMENSIONS = 1024
EMBEDDING_SQL = f"c.embedding::vector({EMBEDDING_DIMENSIONS})"  # the indexed expression


def search_config(language: str) -> str:
    return SEARCH_CONFIGS.get((language or "").split("-")[0].lower(), "simple")


def document_path(document: Document, filename: str) -> str:
    """knowledge/<schema>/<random>/<file name>: per instance, and not guessable from anything a
    user sees (the random part is 128 bits)."""
    name = get_valid_filename(filename)[-120:] or "document"
    return f"knowledge/{connection.schema_name}/{secrets.token_hex(16)}/{name}"


class Document(models.Model):
    client = models.ForeignKey(Client, null=True, blank=True, on_delete=models.CASCADE, related_name="documents",
                               help_text="Empty: an instance-wide document, searched by runs for every client.")
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=DocumentKind.choices, default=DocumentKind.REFERENCE)
    language = models.CharField(max_length=10, default="en", help_text="en, ar, fr, de … (search stems these four).")
    file = models.FileField(upload_to=document_path, max_length=300)
    original_name = models.CharField(max_length=255, blank=True)
    file_type = models.CharField(max_length=10, blank=True, help_text="What the content is: pdf, docx, html, md, txt, csv.")
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=DocumentStatus.choices, default=DocumentStatus.PROCESSING)
    error = models.TextField(blank=True, help_text="Why processing failed, in words the uploader can act on.")
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent of the ingestion done.")
    chunks_count = models.PositiveIntegerField(default=0)
    revision = models.PositiveIntegerField(default=1, help_text="1, then one more for each re-upload.")
    pinned = models.BooleanField(default=False, help_text="Told to every run for the client as a bounded excerpt.")
    pin_excerpt = models.TextField(blank=True, help_text="The part pinned; empty: the document's beginning.")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["client", "status"])]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    client = models.ForeignKey(Client, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    heading = models.CharField(max_length=500, blank=True, help_text="The section path, e.g. 'Voice › Tone'.")
    page = models.PositiveIntegerField(null=True, blank=True)
    config = models.CharField(max_length=20, default="simple", help_text="The text search configuration used.")
    search_vector = SearchVectorField(null=True)
    # Only with an embedding provider (tuning.knowledge.embeddings): filled after ingestion. Declared
    # without its dimensions, which django-tenants' clone_schema drops from a type in `public`
    # ("vector", then the HNSW index fails: "column does not have dimensions"; denishpatel/pg-clone-schema
    # #157, whose clone_schema django-tenants vendors); the index is on the
    # cast to vector(1024) instead, and the search orders by that same expression (`EMBEDDING_SQL`).
    embedding = VectorField(null=True, blank=True)

    class Meta:
        ordering = ["document", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="knowledge_chunk_ordinal")]
        indexes = [
            GinIndex(fields=["search_vector"], name="knowledge_chunk_fts"),
            models.Index(fields=["client"], name="knowledge_chunk_client"),
            HnswIndex(OpClass(Cast("embedding", VectorField(dimensions=EMBEDDING_DIMENSIONS)),
                              name="vector_cosine_ops"),
                      name="knowledge_chunk_embedding", m=16, ef_construction=64),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


TERM_MIN_CHARS, TERM_MAX_CHARS = 5, 60
_TERM = re.compile(rf"[^\W\d_]{{{TERM_MIN_CHARS},{TERM_MAX_CHARS}}}")


def document_terms(texts) -> list[str]:
    """The distinct words (letters only, TERM_MIN_CHARS to TERM_MAX_CHARS of them) of `texts`, lower
    case, sorted."""
    return sorted({word.lower() for text in texts for word in _TERM.findall(text)})


class Term(models.Model):
    """A word of a document (its lexicon: each word of at least TERM_MIN_CHARS letters once, lower
    case, as written), trigram-indexed: a query word that no document in scope has (a misspelt
    product name, "Lumnara") is corrected to the most similar of these ("luminara") before the
    full-text search. Short strings: far cheaper to compare than whole passages."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="terms")
    client = models.ForeignKey(Client, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    term = models.CharField(max_length=TERM_MAX_CHARS)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["document", "term"], name="knowledge_term_unique")]
        indexes = [GinIndex(fields=["term"], opclasses=["gin_trgm_ops"], name="knowledge_term_trgm")]

    def __str__(self) -> str:
        return self.term
