"""Documents (issue #17 parts 1 and 5): type checked by content, size capped, stored per instance,
audited, and isolated per client and per instance on the API and the file download."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from spokestack.errors import Conflict, InvalidInput, NotAllowed
from tuning.knowledge import services
from tuning.knowledge.files import detect_type
from tuning.knowledge.models import Chunk, Document, DocumentStatus
from tuning.models import Entity, TuningChange
from tuning.services import client_create, tuning_rollback

from .conftest import docx_bytes, guidelines_pdf, png_bytes, upload

ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200


@pytest.fixture
def world(in_a, make_client, make_user, assigned):
    mine, other = make_client("Desert Bloom Cosmetics"), make_client("Gulf Bank")
    return {"mine": mine, "other": other, "admin": make_user("instance_admin"),
            "am_mine": assigned("account_manager", mine), "am_other": assigned("account_manager", other),
            "contact": assigned("client_contact", mine)}


def test_the_type_is_read_from_the_content_not_the_name():
    assert detect_type(name="brand.txt", data=guidelines_pdf()) == "pdf"
    assert detect_type(name="style.bin", data=docx_bytes()) == "docx"
    assert detect_type(name="notes.md", data=b"# Voice\nWarm.") == "md"
    assert detect_type(name="rows.csv", data=b"a,b\n1,2\n") == "csv"
    assert detect_type(name="page", data=b"<!DOCTYPE html><html><h1>Hi</h1></html>") == "html"
    assert detect_type(name="notes", data="Plain words, é.".encode()) == "txt"
    for name, data, looks in [("guide.pdf", ELF, "a Linux program"), ("guide.docx", b"MZ\x90\x00" + b"\x00" * 60,
                                                                      "a Windows program (.exe/.dll)"),
                              ("logo.pdf", png_bytes(), "a PNG image"),
                              ("archive.docx", _zip({"readme.txt": b"hi"}), "a ZIP archive")]:
        with pytest.raises(InvalidInput) as refused:
            detect_type(name=name, data=data)
        assert refused.value.message == (f"{name}: is not a PDF, DOCX, HTML, Markdown, text or CSV file "
                                         f"(it looks like {looks}).")
    with pytest.raises(InvalidInput, match="the file is empty"):
        detect_type(name="empty.txt", data=b"")


def _zip(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_an_upload_is_stored_per_instance_hashed_audited_and_queued(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        document = services.document_upload(actor=world["am_mine"], client=world["mine"], title="Brand guidelines",
                                            kind="brand_guidelines", language="en",
                                            uploaded_file=upload("guidelines.pdf", guidelines_pdf()))
    assert len(callbacks) == 1  # the ingestion, queued after commit
    assert document.status == DocumentStatus.PROCESSING and document.file_type == "pdf"
    assert document.file.name.startswith(f"knowledge/{connection.schema_name}/")
    assert len(document.file.name.split("/")[2]) == 32  # 128 random bits: not guessable
    assert len(document.sha256) == 64 and document.size_bytes == len(guidelines_pdf())
    entry = TuningChange.objects.get(entity=Entity.DOCUMENT, entity_id=str(document.pk))
    assert entry.action == "create" and entry.tier == 3 and entry.client_id == world["mine"].pk
    assert entry.new_value["file_name"] == "guidelines.pdf"


def test_bad_uploads_are_readable_400s_and_store_nothing(world, settings):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 1000
    cases = [(upload("setup.pdf", ELF), "is not a PDF, DOCX, HTML, Markdown, text or CSV file (it looks like a Linux "
                                        "program)"),
             (upload("big.txt", b"word " * 400), "documents are at most 0.0 MB (1000 bytes"),
             (upload("empty.md", b""), "the file is empty")]
    for file, message in cases:
        with pytest.raises(InvalidInput) as refused:
            services.document_upload(actor=world["admin"], client=world["mine"], title="x", uploaded_file=file)
        assert message in refused.value.message
    assert not Document.objects.exists()
    with pytest.raises(InvalidInput, match="kind: one of"):
        services.document_upload(actor=world["admin"], client=world["mine"], kind="poem",
                                 uploaded_file=upload("a.txt", b"text"))


def test_instance_wide_documents_are_for_admins_and_managers(world):
    with pytest.raises(NotAllowed, match="Instance-wide documents"):
        services.document_upload(actor=world["am_mine"], client=None, uploaded_file=upload("a.md", b"# A\nB"))
    wide = services.document_upload(actor=world["admin"], client=None, uploaded_file=upload("agency.md", b"# A\nB"))
    assert wide.title == "agency" and TuningChange.objects.get(entity="document", entity_id=str(wide.pk)).tier == 2
    # …and everyone who may view knowledge reads them, next to their own client's only
    mine = services.document_upload(actor=world["contact"], client=world["mine"], uploaded_file=upload("m.md", b"M"))
    theirs = services.document_upload(actor=world["admin"], client=world["other"], uploaded_file=upload("o.md", b"O"))
    seen = set(services.documents_visible_to(actor=world["am_mine"]).values_list("pk", flat=True))
    assert seen == {wide.pk, mine.pk}
    assert theirs.pk in set(services.documents_visible_to(actor=world["admin"]).values_list("pk", flat=True))


def test_delete_removes_chunks_and_the_file_after_commit_and_cannot_be_rolled_back(
        world, django_capture_on_commit_callbacks):
    document = services.document_upload(actor=world["admin"], client=world["mine"],
                                        uploaded_file=upload("voice.md", b"# Voice\nWarm and plain."))
    assert services.document_ingest(document_id=document.pk, revision=1) == "ready"
    storage, name = document.file.storage, document.file.name
    assert storage.exists(name) and Chunk.objects.filter(document=document).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.document_delete(actor=world["am_mine"], document=document, reason="outdated")
    assert not Chunk.objects.filter(document_id=document.pk).exists() and not storage.exists(name)
    entry = TuningChange.objects.get(entity=Entity.DOCUMENT, entity_id=str(document.pk), action="delete")
    with pytest.raises(Conflict, match="A deleted document cannot be restored from the log; upload it again."):
        tuning_rollback(actor=world["admin"], change=entry)


def test_rolling_back_an_upload_deletes_the_document(world):
    document = services.document_upload(actor=world["admin"], client=world["mine"], uploaded_file=upload("a.md", b"A"))
    created = TuningChange.objects.get(entity=Entity.DOCUMENT, entity_id=str(document.pk), action="create")
    tuning_rollback(actor=world["admin"], change=created)
    assert not Document.objects.filter(pk=document.pk).exists()
    assert TuningChange.objects.get(rollback_of=created).action == "delete"


# --- the API --------------------------------------------------------------------------------------


def test_the_documents_api_uploads_lists_filters_and_downloads(world, api, instance_a):
    http = api(instance_a, world["contact"])
    answer = http.post("/api/v1/knowledge/documents", {
        "client_id": world["mine"].pk, "title": "Style guide", "kind": "style_guide", "language": "en",
        "file": upload("style.docx", docx_bytes())})
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["status"] == "processing" and body["file_type"] == "docx" and body["client_id"] == world["mine"].pk
    listed = http.get(f"/api/v1/knowledge/documents?client_id={world['mine'].pk}&kind=style_guide").json()
    assert [d["id"] for d in listed["results"]] == [body["id"]]
    assert http.get("/api/v1/knowledge/documents?kind=past_work").json()["results"] == []
    assert http.get("/api/v1/knowledge/documents?status=bogus").status_code == 400
    download = http.get(body["file_url"])
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="style.docx"'
    stored = Document.objects.get(pk=body["id"])
    assert b"".join(download.streaming_content) == stored.file.storage.open(stored.file.name).read()
    # a renamed executable: the 400 says what it is
    refused = http.post("/api/v1/knowledge/documents", {"client_id": world["mine"].pk, "file": upload("a.pdf", ELF)})
    assert refused.status_code == 400 and "it looks like a Linux program" in refused.json()["error"]["message"]
    missing = http.post("/api/v1/knowledge/documents", {"client_id": world["mine"].pk})
    assert missing.status_code == 400 and missing.json()["error"]["message"].startswith("file: attach")


def test_another_clients_account_manager_cannot_see_or_touch_a_document(world, api, instance_a):
    document = services.document_upload(actor=world["admin"], client=world["mine"],
                                        uploaded_file=upload("voice.md", b"# Voice\nWarm."))
    http = api(instance_a, world["am_other"])
    base = f"/api/v1/knowledge/documents/{document.pk}"
    assert http.get(base).status_code == 404
    assert http.get(f"{base}/file").status_code == 404
    assert http.put(f"{base}/file", {"file": upload("v2.md", b"# Voice\nCold.")}).status_code == 404
    assert http.delete(base).status_code == 404
    assert http.get(f"/api/v1/knowledge/documents?client_id={world['mine'].pk}").status_code == 404
    assert document.pk not in [d["id"] for d in http.get("/api/v1/knowledge/documents").json()["results"]]
    assert http.post("/api/v1/knowledge/documents", {"client_id": world["mine"].pk,
                                                     "file": upload("x.md", b"x")}).status_code == 404
    # a client contact may upload and read, not delete
    contact = api(instance_a, world["contact"])
    assert contact.get(f"{base}/file").status_code == 200
    assert contact.delete(base).status_code == 403
    assert Document.objects.filter(pk=document.pk).exists()


def test_instance_b_never_sees_instance_a_documents(world, api, instance_a, instance_b):
    document = services.document_upload(actor=world["admin"], client=world["mine"],
                                        uploaded_file=upload("voice.md", b"# Voice\nWarm."))
    connection.set_tenant(instance_b)
    with schema_context(instance_b.schema_name):
        from spokestack.accounts.services import user_create

        admin_b = user_create(email="admin-b@example.com", password="x-Pa55word!", role="instance_admin")
        client_create(name="B's client")
    http = api(instance_b, admin_b)
    assert http.get(f"/api/v1/knowledge/documents/{document.pk}").status_code == 404
    assert http.get(f"/api/v1/knowledge/documents/{document.pk}/file").status_code == 404
    assert http.get("/api/v1/knowledge/documents").json()["results"] == []
    pin = http.post(f"/api/v1/knowledge/documents/{document.pk}/pin", {"excerpt": "Warm."}, format="json")
    assert pin.status_code == 404
    assert http.delete(f"/api/v1/knowledge/documents/{document.pk}").status_code == 404
    assert http.get("/api/v1/knowledge/search?q=voice").json()["results"] == []
    connection.set_tenant(instance_a)
    document.refresh_from_db()
    assert not document.pinned
