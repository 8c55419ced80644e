"""Knowledge (issue #17): ingestion speed, search latency at scale, and search recall.

knowledge_ingest_pages_per_s: a 200-page PDF written by fpdf2 (a heading and three paragraphs a
page), uploaded through `document_upload` and ingested in-process by `document_ingest` (pypdf
extraction, chunking, the chunks' insert and their full-text vectors in one transaction); pages
divided by the ingestion's wall time.

knowledge_search_p50_ms / _p95_ms: `knowledge_search` for one client that has 10,000 chunks among
50,000 in the instance (five clients, synthetic text from the demo guidelines' vocabulary and
made-up product names, inserted with SQL and indexed like ingestion indexes them), 300 queries of
one to four words, a tenth of them misspelt product names (goal <= 20 / <= 50 ms).
knowledge_search_plan says whether the candidates came from the two GIN indexes (EXPLAIN).

search_recall_at_5: on the demo clients' brand guidelines (spokestack/demo_data.DEMO_GUIDELINES,
ingested as Markdown), the share of the labelled queries below whose expected section is among the
first five passages (goal >= 0.8).
"""

from __future__ import annotations

import random
import re
import statistics
import time

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_tenants.utils import schema_context

from . import fresh_instance

SCHEMA = "bench_knowledge"
HOST = "bench-knowledge.localhost"
CHUNKS_TOTAL = 50_000
CHUNKS_CLIENT = 10_000
CLIENTS = 5

# (client, query, sections any of which answers it): written from the demo guidelines.
LABELLED = [
    ("Desert Bloom Cosmetics", "how many hashtags in an Instagram caption", ("Writing for social media",)),
    ("Desert Bloom Cosmetics", "tone during Ramadan", ("Tone",)),
    ("Desert Bloom Cosmetics", "words we must never write", ("Words we avoid",)),
    ("Desert Bloom Cosmetics", "Taif Rose Glow Serum", ("Product names", "Claims and legal")),
    ("Desert Bloom Cosmetics", "Oud Nior parfum", ("Product names",)),
    ("Desert Bloom Cosmetics", "may we say dermatologist tested", ("Claims and legal",)),
    ("Desert Bloom Cosmetics", "exclamation marks in headlines", ("Voice",)),
    ("Desert Bloom Cosmetics", "who founded the company", ("About the brand",)),
    ("Gulf Bank", "showing the APR of a rate", ("Claims and legal",)),
    ("Gulf Bank", "emojis in posts", ("Writing for social media",)),
    ("Gulf Bank", "Salary Plus account", ("Product names",)),
    ("Gulf Bank", "how to tell customers about fees or an outage", ("Tone",)),
    ("Gulf Bank", "risk-free guaranteed returns", ("Words we avoid",)),
    ("Thames Outfitters", "waterproof or weatherproof", ("Claims and legal", "Words we avoid")),
    ("Thames Outfitters", "Mortlake Overcote", ("Product names",)),
    ("Thames Outfitters", "british spelling", ("Writing for social media",)),
    ("Thames Outfitters", "free repairs of a jacket", ("Product names", "Tone")),
    ("Hudson Cloud", "uptime SLA", ("Claims and legal", "Words we use")),
    ("Hudson Cloud", "LinkedIn posts", ("Writing for social media",)),
    ("Covent Kitchen", "is a dish allergen-free", ("Claims and legal",)),
    ("Covent Kitchen", "credit the grower", ("Writing for social media",)),
]


def _instance():
    return fresh_instance(schema=SCHEMA, host=HOST, name="Bench knowledge").instance


def _pdf(pages: int) -> bytes:
    from fpdf import FPDF

    rng = random.Random(7)
    words = _vocabulary()
    pdf = FPDF()
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("helvetica", "B", 18)
        pdf.cell(0, 10, f"Section {number}: {' '.join(rng.sample(words, 3)).title()}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", "", 11)
        for _ in range(3):
            pdf.multi_cell(0, 6, " ".join(rng.choices(words, k=90)).capitalize() + ".", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
    return bytes(pdf.output())


def _ingest_pages_per_s() -> float:
    from tuning.knowledge.services import document_ingest, document_upload

    pages = 200
    data = _pdf(pages)
    from tuning.services import client_create

    owner = client_create(name="Long documents")  # its own client: the searches below never read it
    document = document_upload(actor=None, client=owner, title="Two hundred pages", kind="reference",
                               uploaded_file=SimpleUploadedFile("long.pdf", data))
    started = time.perf_counter()
    outcome = document_ingest(document_id=document.pk, revision=document.revision)
    elapsed = time.perf_counter() - started
    assert outcome == "ready", outcome
    return pages / elapsed


def _vocabulary() -> list[str]:
    from spokestack.demo_data import DEMO_GUIDELINES

    text = " ".join(" ".join(body for _, body in guide.sections()) for guide in DEMO_GUIDELINES.values())
    words = sorted({w.lower() for w in re.findall(r"[A-Za-z]{3,}", text)})
    return words


PRODUCTS = [f"{a}{b}" for a in ("Lumi", "Sola", "Vero", "Kira", "Nova", "Zeph", "Oria", "Talo") for b in
            ("nara", "stel", "vique", "dune", "mira", "lith")]


def _synthetic_chunks() -> tuple[int, list[str]]:
    """50,000 ready chunks, 10,000 of them for the measured client; returns its id and the words."""
    from tuning.knowledge.models import Document
    from tuning.services import client_create

    words = _vocabulary()
    clients = [client_create(name=f"Synthetic {n}") for n in range(CLIENTS)]
    per_client = CHUNKS_TOTAL // CLIENTS
    documents = per_client // 1000
    with connection.cursor() as cursor:
        for client in clients:
            for d in range(documents):
                document = Document.objects.create(client=client, title=f"{client.name} document {d}",
                                                   kind="reference", status="ready", file="knowledge/none.md",
                                                   file_type="md", chunks_count=1000)
                # ~60 words a chunk (about 400 characters), frequent words more often (random()^2),
                # and a product name in one chunk of ten.
                cursor.execute(
                    """
                    INSERT INTO knowledge_chunk (document_id, client_id, ordinal, heading, page, config, text)
                    SELECT %(doc)s, %(client)s, g, 'Section ' || (g / 10), 1 + g / 5, 'english',
                           (SELECT string_agg((%(words)s::text[])[1 + floor(power(random(), 2) * %(n)s)::int], ' ')
                              FROM generate_series(1, 60 + (g %% 2)) AS w)
                           || CASE WHEN g %% 10 = 0 THEN ' ' || (%(products)s::text[])[1 + g %% %(np)s] ELSE '' END
                    FROM generate_series(0, 999) AS g
                    """,
                    {"doc": document.pk, "client": client.pk, "words": words, "n": len(words),
                     "products": PRODUCTS, "np": len(PRODUCTS)})
        cursor.execute("UPDATE knowledge_chunk SET search_vector = to_tsvector(config::regconfig, "
                       "coalesce(heading, '') || ' ' || text) WHERE search_vector IS NULL")
        cursor.execute("ANALYZE knowledge_chunk")
        cursor.execute("ANALYZE knowledge_document")
    return clients[0].pk, words


def _misspelt(name: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(name) - 1)
    return name[:i] + name[i + 1:]


def _search_latency() -> tuple[float, float, str]:
    from tuning.knowledge import selectors

    client_id, words = _synthetic_chunks()
    rng = random.Random(11)
    common = words[: len(words) // 2]
    queries = []
    for n in range(300):
        if n % 10 == 0:
            queries.append(_misspelt(rng.choice(PRODUCTS), rng))
        else:
            queries.append(" ".join(rng.sample(common, rng.randint(1, 4))))
    for query in queries[:20]:
        selectors.knowledge_search(query=query, client=client_id)
    times = []
    for query in queries:
        started = time.perf_counter()
        selectors.knowledge_search(query=query, client=client_id)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FILTER (WHERE client_id = %s), count(*) FROM knowledge_chunk", [client_id])
        mine, total = cursor.fetchone()
    plan = f"{mine} of {total} chunks are the client's; " + _plan(client_id, queries[:3])
    return statistics.median(times), times[int(len(times) * 0.95) - 1], plan


def _plan(client_id: int, queries: list[str]) -> str:
    """Which indexes the candidates came from: EXPLAIN of the ranking query of a few searches (words,
    and a misspelt product name)."""
    from tuning.knowledge.selectors import search_statement

    used: set[str] = set()
    seq = False
    for query in queries:
        sql, params, _ = search_statement(query=query, client=client_id)
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        used |= set(re.findall(r"Bitmap Index Scan on (knowledge_chunk_\w+)", plan))
        seq = seq or "Seq Scan on knowledge_chunk" in plan
    return f"index scans: {', '.join(sorted(used)) or 'none'}; sequential scan of chunks: {'yes' if seq else 'no'}"


def _recall_at_5() -> tuple[float, list[str]]:
    from spokestack.demo_data import DEMO_GUIDELINES
    from tuning.knowledge.selectors import knowledge_search
    from tuning.knowledge.services import document_ingest, document_upload
    from tuning.services import client_create

    clients = {}
    for name in sorted({client for client, _, _ in LABELLED}):
        guide = DEMO_GUIDELINES[name]
        client = clients[name] = client_create(name=name)
        document = document_upload(actor=None, client=client, title=guide.title, kind="brand_guidelines",
                                   uploaded_file=SimpleUploadedFile("guidelines.md", guide.markdown().encode()))
        assert document_ingest(document_id=document.pk, revision=document.revision) == "ready"
    hits, misses = 0, []
    for name, query, sections in LABELLED:
        found = knowledge_search(query=query, client=clients[name], limit=5)
        if any(p.heading.split(" › ")[-1] in sections for p in found):
            hits += 1
        else:
            misses.append(f"{name}: {query!r} -> {[p.heading.split(' › ')[-1] for p in found]}")
    return hits / len(LABELLED), misses


def run() -> dict[str, float | int | str]:
    instance = _instance()
    results: dict[str, float | int | str] = {}
    with schema_context(instance.schema_name):
        results["knowledge_ingest_pages_per_s"] = _ingest_pages_per_s()
        recall, misses = _recall_at_5()
        p50, p95, plan = _search_latency()
        results["knowledge_search_p50_ms"], results["knowledge_search_p95_ms"] = p50, p95
        results["knowledge_search_plan"] = plan
        results["search_recall_at_5"] = recall
        results["search_recall_queries"] = len(LABELLED)
        if misses:
            results["search_recall_misses"] = " | ".join(misses)
    connection.set_schema_to_public()
    instance.delete(force_drop=True)
    return results
