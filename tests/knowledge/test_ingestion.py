"""Ingestion (issue #17 part 2): text with its headings and pages, chunks replaced in one
transaction, every bad file a readable failure with nothing indexed, duplicate or stale deliveries
resolved to one ingestion — in-process, and once through the real worker."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from tuning.knowledge import services
from tuning.knowledge.extract import chunk_blocks, extract
from tuning.knowledge.models import Chunk, Document, DocumentStatus

from ..conftest import wait_for
from .conftest import TONE, VOICE, docx_bytes, encrypted_pdf, guidelines_pdf, image_only_pdf, pdf_bytes, upload


@pytest.fixture
def client_a(in_a, make_client):
    return make_client("Desert Bloom Cosmetics")


def _ingest(client, name: str, data: bytes, **kwargs) -> Document:
    document = services.document_upload(actor=None, client=client, uploaded_file=upload(name, data), **kwargs)
    services.document_ingest(document_id=document.pk, revision=document.revision)
    document.refresh_from_db()
    return document


def _chunks(document: Document) -> list[tuple[str, int | None, str]]:
    return list(Chunk.objects.filter(document=document).order_by("ordinal").values_list("heading", "page", "text"))


def test_a_pdf_keeps_its_pages_and_headings(client_a):
    document = _ingest(client_a, "guidelines.pdf", guidelines_pdf())
    assert document.status == DocumentStatus.READY, document.error
    assert (document.pages, document.progress, document.chunks_count) == (3, 100, 4)
    assert document.processed_at is not None
    chunks = _chunks(document)
    assert [(heading, page) for heading, page, _ in chunks] == [
        ("Voice", 1), ("Voice › Tone", 1), ("Logo", 2), ("Logo › Colours", 3)]
    assert chunks[0][2] == VOICE and chunks[1][2].startswith("Never use urgency language")
    # indexed in the document's language: english stems "pressuring" to the word of the text
    hits = Chunk.objects.extra(where=["search_vector @@ plainto_tsquery('english', %s)"], params=["pressuring"])
    assert [c.heading for c in hits] == ["Voice › Tone"]
    assert set(Chunk.objects.values_list("config", flat=True)) == {"english"}


def test_a_docx_keeps_headings_and_tables(client_a):
    document = _ingest(client_a, "style.docx", docx_bytes(), language="fr")
    assert document.status == DocumentStatus.READY, document.error
    chunks = _chunks(document)
    assert [(h, p) for h, p, _ in chunks] == [("Style guide", None), ("Style guide › Numbers", None)]
    assert chunks[1][2] == "Spell out numbers from one to nine; use digits from 10.\n\nSay | Avoid\n\nglow | flawless"
    assert set(Chunk.objects.filter(document=document).values_list("config", flat=True)) == {"french"}


def test_html_markdown_and_csv_keep_their_structure():
    html = extract(data=b"<html><head><style>p{}</style></head><body><h1>Voice</h1><script>x()</script>"
                        b"<p>Warm.</p><h2>Tone</h2><p>Calm.</p></body></html>", file_type="html")
    assert [(b.headings, b.text) for b in html.blocks] == [(("Voice",), "Warm."), (("Voice", "Tone"), "Calm.")]
    md = extract(data=b"# Voice\nWarm\nand plain.\n\n## Tone\n```\n# not a heading\n```\n", file_type="md")
    assert [(b.headings, b.text) for b in md.blocks] == [(("Voice",), "Warm and plain."),
                                                          (("Voice", "Tone"), "``` # not a heading ```")]
    rows = extract(data=b"term,use\nglow,always\n", file_type="csv")
    assert [b.text for b in rows.blocks] == ["term | use", "term: glow; use: always"]


def test_chunks_follow_paragraphs_and_never_cross_a_page(client_a, settings):
    settings.KNOWLEDGE_CHUNK_CHARS = 400
    paragraph = "Our captions are short and warm. " * 5  # 164 characters: two fit in a chunk, three do not
    document = _ingest(client_a, "long.pdf", pdf_bytes([[("h1", "Captions")] + [("p", paragraph)] * 5,
                                                        [("p", paragraph)]]))
    chunks = _chunks(document)
    assert all(len(text) <= 400 for _, _, text in chunks)
    assert [p for _, p, _ in chunks] == [1, 1, 1, 2]  # 2 + 2 + 1 paragraphs on page 1, then page 2 alone
    assert [h for h, _, _ in chunks] == ["Captions"] * 4  # the section continues onto page 2
    long = chunk_blocks(extract(data=("A sentence here. " * 200).encode(), file_type="txt").blocks, chunk_chars=500)
    assert len(long) > 5 and all(len(c.text) <= 500 and c.text.endswith(".") for c in long)


@pytest.mark.parametrize(("name", "data", "message"), [
    ("locked.pdf", encrypted_pdf, "locked.pdf is password-protected: upload a copy without a password."),
    ("scan.pdf", image_only_pdf,
     "scan.pdf has no text layer (scanned images?): upload a PDF with text, or a DOCX."),
    ("blank.docx", lambda: docx_bytes(empty=True), "blank.docx has no text: it is empty, or all of it is in images."),
])
def test_a_bad_file_fails_with_a_readable_reason_and_nothing_indexed(client_a, name, data, message):
    document = _ingest(client_a, name, data())
    assert (document.status, document.error, document.chunks_count) == (DocumentStatus.FAILED, message, 0)
    assert not Chunk.objects.filter(document=document).exists()


def test_the_page_cap_fails_with_the_count(client_a, settings):
    settings.KNOWLEDGE_MAX_PAGES = 2
    document = _ingest(client_a, "guidelines.pdf", guidelines_pdf())
    assert document.status == DocumentStatus.FAILED
    assert document.error == ("guidelines.pdf has 3 pages; documents are at most 2 pages (KNOWLEDGE_MAX_PAGES). "
                              "Split it.")


def test_a_reupload_replaces_the_chunks_atomically(client_a, make_user, django_capture_on_commit_callbacks):
    admin = make_user("instance_admin")
    document = _ingest(client_a, "voice.md", f"# Voice\n{VOICE}\n\n## Tone\n{TONE}".encode())
    old = _chunks(document)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        replaced = services.document_replace(actor=admin, document=document,
                                             uploaded_file=upload("voice-2026.md", b"# Voice\nBold and bright."))
    assert len(callbacks) == 2  # the old file's removal, and the new revision's ingestion
    assert (replaced.revision, replaced.status) == (2, DocumentStatus.PROCESSING)
    assert _chunks(document) == old  # still searchable while the new file is read
    assert services.document_ingest(document_id=document.pk, revision=1) == "skipped"  # an old revision's task
    assert services.document_ingest(document_id=document.pk, revision=2) == "ready"
    assert _chunks(document) == [("Voice", None, "Bold and bright.")]
    assert services.document_ingest(document_id=document.pk, revision=2) == "skipped"  # a duplicate delivery


def _ready(document_id: int, *, revision: int) -> Document:
    """Ingest the revision here, or wait for the worker that took it first."""
    services.document_ingest(document_id=document_id, revision=revision)
    return wait_for(lambda: Document.objects.filter(pk=document_id, revision=revision,
                                                    status=DocumentStatus.READY).first(), timeout=60)


def test_a_search_during_a_reupload_sees_the_old_chunks_or_the_new_never_a_mix(live_instance, worker_media):
    """Real threads against real PostgreSQL: a reader polls the chunks while the new revision is indexed.
    (Committed data in an instance of its own: not django_db(transaction=True), whose flush would empty
    the public tables — the instances and their hosts — for every test after it.)"""
    from tuning.services import client_create

    instance = live_instance.instance

    connection.set_tenant(instance)
    try:
        client = client_create(name="Atomic Co")
        old_text = "\n\n".join(f"Old paragraph {i} about tone. " * 20 for i in range(30)).encode()
        new_text = "\n\n".join(f"New paragraph {i} about tone. " * 20 for i in range(40)).encode()
        # The data is committed, so the session's worker (if one runs) may ingest before this test
        # does: whoever does, the reader must never see a mix.
        document = services.document_upload(actor=None, client=client, uploaded_file=upload("old.txt", old_text))
        document = _ready(document.pk, revision=1)
        old_count = document.chunks_count
        services.document_replace(actor=None, document=document, uploaded_file=upload("new.txt", new_text))
        seen: set[tuple[int, int]] = set()
        done = threading.Event()

        def reader() -> None:
            with schema_context(instance.schema_name):
                while not done.is_set():
                    texts = list(Chunk.objects.filter(document_id=document.pk).values_list("text", flat=True))
                    seen.add((sum(t.startswith("Old") for t in texts), sum(t.startswith("New") for t in texts)))
            connection.close()

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            _ready(document.pk, revision=2)
        finally:
            done.set()
            thread.join()
        new_count = Document.objects.get(pk=document.pk).chunks_count
        assert seen <= {(old_count, 0), (0, new_count)}, seen
        assert new_count != old_count
    finally:
        connection.set_schema_to_public()


def test_a_stale_processing_document_is_queued_again_when_read(client_a, make_user, api, instance_a,
                                                               django_capture_on_commit_callbacks, settings):
    document = services.document_upload(actor=None, client=client_a, uploaded_file=upload("a.md", b"# A\nB"))
    http = api(instance_a, make_user("instance_admin"))
    with django_capture_on_commit_callbacks() as fresh:
        http.get("/api/v1/knowledge/documents")
    assert fresh == []  # processing, but recently: its worker may still be at it
    Document.objects.filter(pk=document.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks() as stale:
        http.get(f"/api/v1/knowledge/documents/{document.pk}")
        http.get("/api/v1/knowledge/documents")  # a second reader queues nothing more
    assert len(stale) == 1
    assert settings.CELERY_BEAT_SCHEDULE["recover-knowledge-ingestions"]["task"] == "knowledge.recover_ingestions"


# --- the real worker ------------------------------------------------------------------------------


@pytest.mark.live
def test_the_worker_ingests_once_whatever_the_deliveries(live_instance, celery_worker, api, worker_media):
    """Upload through the API, the worker ingests; a duplicate task and a lost-worker recovery change nothing
    twice. (The worker stores and reads files under the default MEDIA_ROOT, as the server does.)"""
    from tuning.knowledge.tasks import knowledge_ingest
    from tuning.services import client_create

    instance, admin = live_instance.instance, live_instance.admin
    with schema_context(instance.schema_name):
        client = client_create(name="Desert Bloom Cosmetics")
    http = api(instance, admin)
    logged = len(_worker_log(celery_worker))  # (ids restart in every instance: read the log from here)
    pdf = http.post("/api/v1/knowledge/documents", {"client_id": client.pk, "kind": "brand_guidelines",
                                                    "file": upload("guidelines.pdf", guidelines_pdf())}).json()
    docx = http.post("/api/v1/knowledge/documents", {"client_id": client.pk, "kind": "style_guide",
                                                     "file": upload("style.docx", docx_bytes())}).json()

    def ready(document_id: int):
        body = http.get(f"/api/v1/knowledge/documents/{document_id}").json()
        assert body["status"] != "failed", body["error"]
        return body if body["status"] == "ready" else None

    first = wait_for(lambda: ready(pdf["id"]), timeout=60)
    assert (first["pages"], first["chunks_count"]) == (3, 4)
    assert wait_for(lambda: ready(docx["id"]), timeout=60)["chunks_count"] == 2
    with schema_context(instance.schema_name):
        chunk_ids = set(Chunk.objects.filter(document_id=pdf["id"]).values_list("pk", flat=True))
        # a duplicate delivery of the same revision does nothing
        knowledge_ingest.delay(document_id=pdf["id"], revision=1)
        # a worker that died mid-ingestion: the document stays processing with old progress …
        Document.objects.filter(pk=docx["id"]).update(status=DocumentStatus.PROCESSING, progress=40,
                                                      updated_at=timezone.now() - timedelta(minutes=10))
    # … and reading it queues it again; the worker finishes it once
    again = wait_for(lambda: ready(docx["id"]), timeout=60)
    assert again["chunks_count"] == 2 and again["progress"] == 100
    with schema_context(instance.schema_name):
        assert Chunk.objects.filter(document_id=docx["id"]).count() == 2
        wait_for(lambda: f"document {pdf['id']} revision 1: skipped" in _worker_log(celery_worker)[logged:],
                 timeout=30)
        assert set(Chunk.objects.filter(document_id=pdf["id"]).values_list("pk", flat=True)) == chunk_ids
        assert Document.objects.get(pk=pdf["id"]).processed_at.isoformat().startswith(first["processed_at"][:19])
    connection.set_schema_to_public()


def _worker_log(worker) -> str:
    worker.log.flush()
    return open(worker.log.name).read()


@pytest.mark.live
def test_a_worker_killed_mid_ingestion_is_replaced_and_the_document_ingested_once(live_instance, api, settings,
                                                                                   worker_media, request):
    """SIGKILL the worker half-way through a long PDF: the document stays processing with its progress;
    once it is stale, reading it queues it again, and another worker ingests it, once."""
    from tuning.knowledge.tasks import knowledge_ingest
    from tuning.services import client_create

    from ..processes import WorkerProcess, process_env

    settings.KNOWLEDGE_STALE_AFTER_S = 2
    instance, admin = live_instance.instance, live_instance.admin
    paragraph = "Every caption for the launch keeps to the brand voice: warm, plain and confident. " * 6
    long_pdf = pdf_bytes([[("h1", f"Section {n}"), ("p", paragraph), ("p", paragraph)] for n in range(1, 301)])
    doomed = WorkerProcess({**process_env(), "DATABASE_POOL_MAX_SIZE": "4"}, "k1-killed", concurrency=2,
                           queues="knowledge-killed").start()
    try:
        with schema_context(instance.schema_name):
            client = client_create(name="Desert Bloom Cosmetics")
            with transaction.atomic():
                document = services.document_upload(actor=admin, client=client,
                                                    uploaded_file=upload("long.pdf", long_pdf))
                # the upload's own message goes only to the doomed worker (a worker of the session
                # would take it from the default queue)
                transaction.get_connection().run_on_commit.clear()
            knowledge_ingest.apply_async(kwargs={"document_id": document.pk, "revision": 1}, queue="knowledge-killed")
            wait_for(lambda: 10 <= Document.objects.get(pk=document.pk).progress < 80, timeout=60, interval=0.02)
            doomed.kill()
            killed_at = Document.objects.get(pk=document.pk)
            assert killed_at.status == DocumentStatus.PROCESSING and not Chunk.objects.filter(document=document).exists()
            time.sleep(0.5)
            assert Document.objects.get(pk=document.pk).progress == killed_at.progress  # no one works on it
    finally:
        if doomed.alive():
            doomed.stop()
        connection.set_schema_to_public()
    worker = request.getfixturevalue("celery_worker")  # the spare: it takes the default queue
    logged = len(_worker_log(worker))  # (ids restart in every instance: count from here)
    http = api(instance, admin)

    def ready():
        body = http.get(f"/api/v1/knowledge/documents/{document.pk}").json()  # reading it recovers it once stale
        assert body["status"] != "failed", body["error"]
        return body if body["status"] == "ready" else None

    body = wait_for(ready, timeout=120, interval=0.5)
    assert (body["pages"], body["progress"]) == (300, 100)
    with schema_context(instance.schema_name):
        ordinals = list(Chunk.objects.filter(document_id=document.pk).values_list("ordinal", flat=True))
    assert ordinals == list(range(body["chunks_count"])) and len(ordinals) >= 300
    assert _worker_log(worker)[logged:].count(f"document {document.pk} revision 1: ready") == 1
    connection.set_schema_to_public()
