"""Searching the knowledge base (issue #17 part 3, DESIGN §12): ranked passages with citations.

One search serves the agents' `search_knowledge` tool (the run's client, no person) and people
(`knowledge_search_for`, asking the policy first). It reads the documents of one client and the
instance's own (client=None) that are ready, never another client's: `Chunk.client` is copied from
the document, so the scope is one column.

Ranking: PostgreSQL full-text search in each chunk's own language, with trigram similarity (pg_trgm)
for names and product terms. A query word that no document in scope has as a word (a misspelt
product name, "Lumnara") is first corrected to the most similar word of their lexicons (`Term`:
"luminara"). The score is how much of the query a passage covers (the query's lexemes in the chunk's
configuration that its `search_vector` has) plus ts_rank_cd of the exact phrase (`phraseto_tsquery`)
and of `websearch_to_tsquery(chunk.config, query)` (the words near each other). The candidates come
from the GIN full-text index alone (see `_SEARCH_SQL`); only those are ranked. With an embedding provider configured, the query's nearest chunks by meaning
(pgvector's HNSW index) are fused with that ranking by reciprocal rank (`_fuse`): "which shades may
we use" finds the passage on the palette that shares no word with it. Without one, or while the
provider does not answer, the ranking is the full-text one alone.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from django.contrib.auth.models import AbstractUser
from django.db import connection, transaction
from django.db.models import Q

from spokestack.accounts import policy
from spokestack.errors import InvalidInput

from . import embeddings
from .models import EMBEDDING_SQL, SEARCH_CONFIGS, Document, DocumentKind, DocumentStatus, search_config

MAX_LIMIT = 10
MAX_QUERY_CHARS = 300
EXCERPT_CHARS = 400
# The score: how much of the query the passage covers (0-1: the query's lexemes in the chunk's own
# language that it has, a misspelt word counted by its trigram similarity), then the exact phrase
# and the words near each other (ts_rank_cd, normalised to 0-1) to order passages that cover as much.
W_COVER, W_PHRASE, W_NEAR = 1.0, 0.5, 0.25
# A word no document has as a word is corrected to a word of theirs this similar (pg_trgm similarity,
# 0-1): "lumnara" to "luminara" (0.55).
WORD_SIMILARITY = 0.5
_CONFIGS = (*dict.fromkeys(SEARCH_CONFIGS.values()), "simple")
_TRIGRAM_WORD = re.compile(r"\w{5,}")
_MAX_TRIGRAM_WORDS = 4
_KIND_LABELS = dict(DocumentKind.choices)


@dataclass(frozen=True)
class Passage:
    """One ranked passage and where it comes from, as the tool and the API return it."""

    document_id: int
    title: str
    kind: str
    heading: str
    page: int | None
    excerpt: str
    score: float
    citation: str
    url: str
    chunk_id: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def document_admin_url(document_id: int) -> str:
    """The instance admin's page of the document (the admin's default URL for knowledge.Document)."""
    return f"/admin/knowledge/document/{document_id}/change/"


def citation_text(*, title: str, page: int | None, heading: str) -> str:
    """"Brand guidelines — Desert Bloom, p. 3 › Voice": the document, then its page, then its section."""
    text = title
    if page:
        text += f", p. {page}"
    if heading:
        text += f" › {heading}"
    return text


def kind_label(kind: str) -> str:
    return str(_KIND_LABELS.get(kind, kind))


def clean_kinds(kinds) -> list[str]:
    """The kinds asked for, each one of DocumentKind; an unknown one is a 400 that lists them."""
    if not kinds:
        return []
    if isinstance(kinds, str):
        kinds = [k for k in kinds.split(",")]
    chosen = [str(k).strip() for k in kinds if str(k).strip()]
    unknown = [k for k in chosen if k not in DocumentKind.values]
    if unknown:
        raise InvalidInput(f"kinds: {unknown[0]!r} is not a document kind; use {', '.join(DocumentKind.values)}.",
                           details={"kinds": [f"choose from {', '.join(DocumentKind.values)}"]})
    return list(dict.fromkeys(chosen))


def _clean_query(query: str) -> str:
    query = " ".join(str(query or "").replace("\x00", " ").split())
    if not query:
        raise InvalidInput("q: say what to search for, e.g. 'tone of voice'.", details={"q": ["required"]})
    return query[:MAX_QUERY_CHARS]


# The candidates come from the GIN full-text index only: the any-word tsquery (the OR of the
# query's lexemes in each configuration the documents in scope use, so a french chunk matches its
# french stems), the best `FTS_CANDIDATES` of them by a cheap rank. Only those rows are ranked, each
# with its own configuration's form of the query (`qc`). The documents in scope are a filter, never
# an index condition (`document_id + 0`): the client's index and the GIN index already narrow the
# rows, and a third bitmap only costs time. A query word no document in scope has as a word was
# replaced by its correction from the lexicon first (`_corrections`).
FTS_CANDIDATES = 60

# One EXISTS per word, each with its own constant tsquery, so each is a GIN index probe.
_WORD_KNOWN_SQL = ("EXISTS (SELECT 1 FROM knowledge_chunk c WHERE c.search_vector @@ {any_w} AND {client_clause} "
                   "AND (c.document_id + 0) = ANY(%(documents)s))")

# The most similar word of the documents in scope (trigram similarity, pg_trgm's `%` on the
# lexicon's GIN index), for each word no document has.
_CORRECTION_SQL = """
SELECT w, best.term FROM unnest(%(unknown)s::text[]) AS w
CROSS JOIN LATERAL (
    SELECT t.term FROM knowledge_term t
    WHERE t.term %% w AND {client_clause} AND (t.document_id + 0) = ANY(%(documents)s)
    ORDER BY similarity(t.term, w) DESC, t.term
    LIMIT 1
) AS best
"""

_SEARCH_SQL = """
WITH params AS MATERIALIZED (
    SELECT {any_q} AS any_q
), qc AS MATERIALIZED (
    SELECT cfg::text AS config, tsvector_to_array(to_tsvector(cfg, %(q)s)) AS lexemes,
           phraseto_tsquery(cfg, %(q)s) AS phrase, websearch_to_tsquery(cfg, %(q)s) AS near
    FROM unnest(%(configs)s::regconfig[]) AS cfg
), candidates AS (
    SELECT c.id FROM knowledge_chunk c CROSS JOIN params
    WHERE c.search_vector @@ params.any_q AND {client_clause} AND (c.document_id + 0) = ANY(%(documents)s)
    ORDER BY ts_rank(c.search_vector, params.any_q) DESC
    LIMIT {fts_candidates}
)
SELECT c.id, c.document_id, c.heading, c.page, c.text,
       COALESCE(LEAST(1.0, (length(c.search_vector) - length(ts_delete(c.search_vector, qc.lexemes)))::float
                           / GREATEST(cardinality(qc.lexemes), 1)), 0) * {w_cover}
     + {w_phrase} * COALESCE(ts_rank_cd(c.search_vector, qc.phrase, 32), 0)
     + {w_near} * COALESCE(ts_rank_cd(c.search_vector, qc.near, 32), 0)
       AS score
FROM candidates
JOIN knowledge_chunk c ON c.id = candidates.id
LEFT JOIN qc ON qc.config = c.config
ORDER BY score DESC, c.document_id DESC, c.ordinal
LIMIT %(limit)s
"""


def _any_word_query(configs: list[str], param: str = "%(q)s") -> str:
    parts = [f"replace(plainto_tsquery('{cfg}', {param})::text, ' & ', ' | ')" for cfg in configs]
    # An empty part (stop words only in that language) is dropped; nothing at all matches nothing.
    return ("COALESCE(NULLIF(array_to_string(array_remove(ARRAY[" + ", ".join(parts) + "], ''), ' | '), ''),"
            " '')::tsquery")


def _all_words_query(configs: list[str]) -> str:
    """Every word of the query, in any one configuration: (a & b in english) | (a & b in french)."""
    parts = [f"NULLIF('(' || plainto_tsquery('{cfg}', %(q)s)::text || ')', '()')" for cfg in configs]
    return ("COALESCE(NULLIF(array_to_string(array_remove(ARRAY[" + ", ".join(parts) + "], NULL), ' | '), ''),"
            " '')::tsquery")


def _client_clause(client_id: int | None, alias: str = "c") -> str:
    return f"({alias}.client_id = %(client)s OR {alias}.client_id IS NULL)" if client_id else f"{alias}.client_id IS NULL"


@dataclass(frozen=True)
class _InScope:
    """The ready documents a search reads: {id: (title, kind)}, and their search configurations."""

    documents: dict[int, tuple[str, str]]
    configs: list[str]


def _in_scope(client_id: int | None, kinds: list[str]) -> _InScope:
    documents = Document.objects.filter(status=DocumentStatus.READY)
    documents = documents.filter(Q(client_id=client_id) | Q(client__isnull=True)) if client_id else \
        documents.filter(client__isnull=True)
    if kinds:
        documents = documents.filter(kind__in=kinds)
    rows = list(documents.values_list("pk", "title", "kind", "language"))
    configs = sorted({search_config(language) for *_, language in rows})
    return _InScope({pk: (title, kind) for pk, title, kind, _ in rows}, [c for c in configs if c in _CONFIGS])


def search_statement(*, query: str, client=None, kinds=None, limit: int = 5,
                     match: str = "any") -> tuple[str, dict, _InScope]:
    """The ranking query, its parameters and the documents in scope (what `knowledge_search` runs;
    the benchmark EXPLAINs it). Reads which documents are in scope first, and corrects the query's
    longer words that no chunk of theirs has (`_corrections`): `q` is the query as searched,
    `corrected` maps each corrected word to its correction. `match` "all": only chunks with every
    word are candidates (see `knowledge_search`)."""
    query = _clean_query(query)
    kinds = clean_kinds(kinds)
    limit = max(1, min(int(limit or 5), MAX_LIMIT))
    client_id = getattr(client, "pk", client)
    client_id = int(client_id) if client_id else None
    scope = _in_scope(client_id, kinds)
    params: dict = {"q": query, "limit": limit, "client": client_id, "documents": sorted(scope.documents),
                    "configs": scope.configs or ["simple"], "corrected": {}}
    if scope.documents:
        params["corrected"] = _corrections(params)
        for word, term in params["corrected"].items():
            params["q"] = re.sub(rf"(?i)\b{re.escape(word)}\b", term, params["q"])
    return _compose(params, match), params, scope


def _corrections(params: dict) -> dict[str, str]:
    """{word: correction} for the query's longer words (at most four) that no chunk in scope has as a
    word in any of their configurations, each to the most similar word of their lexicons (trigram
    similarity at least WORD_SIMILARITY); a word with nothing similar enough stays as it is."""
    words = list(dict.fromkeys(w.lower() for w in _TRIGRAM_WORD.findall(params["q"])))[:_MAX_TRIGRAM_WORDS]
    if not words:
        return {}
    client_clause = _client_clause(params["client"])
    probes = ", ".join(_WORD_KNOWN_SQL.format(any_w=_any_word_query(params["configs"], f"%(k{n})s"),
                                              client_clause=client_clause) for n in range(len(words)))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT {probes}", {**params, **{f"k{n}": word for n, word in enumerate(words)}})
        unknown = [word for word, known in zip(words, cursor.fetchone(), strict=True) if not known]
        if not unknown:
            return {}
        # for this transaction only (is_local): a pooled connection keeps no setting
        cursor.execute("SELECT set_config('pg_trgm.similarity_threshold', %s, true)", [str(WORD_SIMILARITY)])
        cursor.execute(_CORRECTION_SQL.format(client_clause=_client_clause(params["client"], "t")),
                       {**params, "unknown": unknown})
        return {word: term for word, term in cursor.fetchall() if term != word}


def _compose(params: dict, match: str) -> str:
    return _SEARCH_SQL.format(
        any_q=_all_words_query(params["configs"]) if match == "all" else _any_word_query(params["configs"]),
        client_clause=_client_clause(params["client"]), fts_candidates=FTS_CANDIDATES,
        w_cover=W_COVER, w_phrase=W_PHRASE, w_near=W_NEAR,
    )


def knowledge_search(*, query: str, client=None, kinds=None, limit: int = 5) -> list[Passage]:
    """The passages that best answer `query` among the ready documents of `client` (a Client, its
    id, or None) and the instance's own, best first. No permission check: the caller is a run for
    that client (its tool) or `knowledge_search_for`, which asks the policy. With an embedding
    provider, the full-text ranking is fused with the nearest chunks by meaning (`_fuse`)."""
    sql, params, scope = search_statement(query=query, client=client, kinds=kinds, limit=limit, match="all")
    if not scope.documents:
        return []
    vector = embeddings.embed_query(params["q"])
    wanted = params["limit"]
    if vector is not None:
        params["limit"] = SEMANTIC_CANDIDATES  # more of each ranking to fuse
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        # Enough passages with every word: they are the best (each covers the whole query; a passage
        # without some word covers less), so the any-word search, which reads far more rows for
        # common words, would return the same ones. Otherwise search with any word.
        several_words = len(_WORD.findall(params["q"])) > 1
        if len(rows) < wanted and several_words:
            cursor.execute(_compose(params, "any"), params)
            rows = cursor.fetchall()
        if vector is not None:
            rows = _fuse(rows, _nearest(cursor, vector, params))
    terms = _terms(params["q"])  # the corrected query's: the excerpt shows "Luminara" for "Lumnara"
    passages = []
    for chunk_id, document_id, heading, page, text, score in rows[:wanted]:
        title, kind = scope.documents[document_id]
        passages.append(Passage(
            document_id=document_id, title=title, kind=kind, heading=heading, page=page,
            excerpt=excerpt(text, terms), score=round(float(score), 4),
            citation=citation_text(title=title, page=page, heading=heading),
            url=document_admin_url(document_id), chunk_id=chunk_id))
    return passages


# --- semantic ranking (only with an embedding provider) --------------------------------------

SEMANTIC_CANDIDATES = 20
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009): 1 / (60 + rank) from each ranking

# The nearest chunks in scope by cosine distance, from the HNSW index. Its iterative scan goes on
# past the first `ef_search` neighbours until enough rows pass the client and document filters
# (pgvector 0.8; "relaxed": in roughly that order, so the rows are sorted again here).
_NEAREST_SQL = """
SELECT c.id, c.document_id, c.heading, c.page, c.text, {embedding} <=> %(vector)s::vector AS distance
FROM knowledge_chunk c
WHERE c.embedding IS NOT NULL AND {client_clause} AND (c.document_id + 0) = ANY(%(documents)s)
ORDER BY {embedding} <=> %(vector)s::vector
LIMIT {limit}
"""


def _nearest(cursor, vector: list[float], params: dict) -> list[tuple]:
    cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                   "set_config('hnsw.ef_search', '100', true)")
    cursor.execute(_NEAREST_SQL.format(client_clause=_client_clause(params["client"]), limit=SEMANTIC_CANDIDATES,
                                       embedding=EMBEDDING_SQL),
                   {**params, "vector": "[" + ",".join(f"{x:.7g}" for x in vector) + "]"})
    return sorted(cursor.fetchall(), key=lambda row: row[-1])


def _fuse(lexical: list[tuple], nearest: list[tuple]) -> list[tuple]:
    """Reciprocal rank fusion: each passage scores 1/(RRF_K + rank) in each ranking it is in, summed
    (a passage both rankings put first scores 2/61 ≈ 0.033); best first. Nothing is weighted by the
    two rankings' raw scores, which are not comparable."""
    fused: dict[int, list] = {}
    for ranking in (lexical, nearest):
        for rank, row in enumerate(ranking, start=1):
            entry = fused.setdefault(row[0], [*row[:5], 0.0])
            entry[5] += 1.0 / (RRF_K + rank)
    return sorted((tuple(entry) for entry in fused.values()), key=lambda row: (-row[5], -row[1], row[0]))


def knowledge_search_for(actor: AbstractUser | None, *, query: str, client_id: int | None = None, kinds=None,
                         limit: int = 5) -> list[Passage]:
    """A person's search (policy knowledge.view): a client they may see (404 for one they cannot) and
    the instance's documents; without a client, the instance's documents only, as a run without a
    client searches."""
    client = None
    if client_id is not None:
        from tuning.selectors import client_get

        client = client_get(actor=actor, client_id=client_id)
    policy.require(actor, "knowledge.view", client)
    return knowledge_search(query=query, client=client, kinds=kinds, limit=limit)


# --- the excerpt ----------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def _terms(query: str) -> list[str]:
    """The query's words as prefixes (five letters at most), so 'guidelines' finds 'guideline' and a
    misspelt 'Luminra' still finds 'Luminara'."""
    return list(dict.fromkeys(w.lower()[:5] for w in _WORD.findall(query) if len(w) >= 3))


def excerpt(text: str, terms: list[str], size: int = EXCERPT_CHARS) -> str:
    """About `size` characters of `text` around the densest run of query terms, cut at word
    boundaries, with … where it was cut."""
    text = " ".join(text.split())
    if len(text) <= size:
        return text
    hits = [m.start() for m in _WORD.finditer(text) if any(m.group().lower().startswith(t) for t in terms)]
    start = 0
    if hits:
        best = max(hits, key=lambda h: sum(1 for other in hits if h <= other < h + size * 3 // 4))
        start = max(0, best - size // 5)
    end = min(len(text), start + size)
    start = max(0, end - size)
    if start > 0:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 40 else start
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > end - 40 else end
    return ("…" if start > 0 else "") + text[start:end].strip() + ("…" if end < len(text) else "")
