"""The embedding provider (issue #17 part 3): optional semantic ranking for knowledge search.

Off unless `KNOWLEDGE_EMBEDDINGS_API_KEY` is set: then each ready document's chunks get an
embedding (a job after ingestion, `services.document_embed`; a beat sweep embeds what is missing,
so documents uploaded before the key was set are embedded too), and a search embeds its query and
fuses the nearest chunks (pgvector, cosine) with the full-text ranking (`selectors`). Without a key,
or while the provider is down, search is full-text only and nothing else changes.

Two request shapes, the only ones that matter: Voyage AI's (Anthropic's recommended embeddings;
`input_type` document/query) and OpenAI's (and the many servers that speak it). Both answer
`{"data": [{"index": i, "embedding": [...]}]}`. Every vector has `DIMENSIONS` numbers (asked for with
`output_dimension` / `dimensions`), which the column and its HNSW index are built for.

The URL is platform configuration, not an instance's input, so it is called directly (httpx2, the
SDK's own HTTP client), not through the egress client that vets instance-supplied URLs.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

import httpx2
from django.conf import settings

logger = logging.getLogger(__name__)

DIMENSIONS = 1024  # models.EMBEDDING_DIMENSIONS: the indexed cast
BATCH = 64  # texts per request: well within both providers' limits (Voyage 1,000; OpenAI 2,048)
_DEFAULTS = {
    "voyage": ("https://api.voyageai.com/v1/embeddings", "voyage-3.5-lite"),
    "openai": ("https://api.openai.com/v1/embeddings", "text-embedding-3-small"),
}


class EmbeddingError(Exception):
    """The provider could not embed (down, refused, or answered something that is not embeddings).
    `retryable`: down or busy (a 429, a 5xx, no connection), worth asking again later."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Provider:
    kind: str
    url: str
    model: str
    api_key: str

    def _body(self, texts: list[str], input_type: str) -> dict:
        if self.kind == "voyage":
            return {"model": self.model, "input": texts, "input_type": input_type, "output_dimension": DIMENSIONS}
        return {"model": self.model, "input": texts, "dimensions": DIMENSIONS}

    def embed(self, texts: list[str], *, input_type: str, timeout: float, attempts: int = 3) -> list[list[float]]:
        """One vector per text, in order. Retries a 429/5xx or a dropped connection (backing off);
        anything else, or the last failure, is an EmbeddingError."""
        vectors: list[list[float]] = []
        with httpx2.Client(timeout=timeout) as client:
            for start in range(0, len(texts), BATCH):
                vectors += self._batch(client, texts[start:start + BATCH], input_type, attempts)
        return vectors

    def _batch(self, client: httpx2.Client, texts: list[str], input_type: str, attempts: int) -> list[list[float]]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        for attempt in range(1, attempts + 1):
            try:
                response = client.post(self.url, json=self._body(texts, input_type), headers=headers)
            except httpx2.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return _vectors(response, len(texts))
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code != 429 and response.status_code < 500:
                    raise EmbeddingError(problem)
            if attempt < attempts:
                time.sleep(min(4.0, 0.25 * 2 ** attempt))
        raise EmbeddingError(problem, retryable=True)


def _vectors(response, count: int) -> list[list[float]]:
    try:
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        vectors = [[float(x) for x in item["embedding"]] for item in data]
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbeddingError(f"the provider's answer is not embeddings ({type(exc).__name__})") from exc
    if len(vectors) != count or any(len(v) != DIMENSIONS for v in vectors):
        raise EmbeddingError(f"expected {count} vectors of {DIMENSIONS} numbers, got {len(vectors)} of "
                             f"{len(vectors[0]) if vectors else 0}")
    return vectors


def provider() -> Provider | None:
    """The configured provider, or None: semantic ranking is off."""
    key = settings.KNOWLEDGE_EMBEDDINGS_API_KEY
    if not key:
        return None
    kind = settings.KNOWLEDGE_EMBEDDINGS_PROVIDER
    url, model = _DEFAULTS[kind]
    return Provider(kind=kind, url=settings.KNOWLEDGE_EMBEDDINGS_URL or url,
                    model=settings.KNOWLEDGE_EMBEDDINGS_MODEL or model, api_key=key)


def embed_documents(texts: list[str]) -> list[list[float]]:
    configured = provider()
    if configured is None:
        raise EmbeddingError("no embedding provider is configured")
    return configured.embed(texts, input_type="document", timeout=30.0)


def embed_query(query: str) -> list[float] | None:
    """The query's vector, or None when semantic ranking is off or the provider does not answer in
    time (the search goes on with full-text ranking alone; a person waits at most the timeout)."""
    configured = provider()
    if configured is None:
        return None
    try:
        return _embed_query_cached(configured, query)
    except EmbeddingError as exc:
        logger.warning("knowledge search without semantic ranking: %s", exc)
        return None


@functools.lru_cache(maxsize=512)
def _embed_query_cached(configured: Provider, query: str) -> list[float]:
    # An agent asks the same question again within a run, and people repeat searches: one call each.
    return configured.embed([query], input_type="query", timeout=settings.KNOWLEDGE_EMBEDDINGS_QUERY_TIMEOUT_S,
                            attempts=1)[0]
