"""Documents in the admin (#17): the Documents page, upload, a document's page (status, progress,
passages, Open file, Replace, Delete, Pin/Unpin), the client page's panel and the prompt preview's
pinned excerpt with its source; each as the policy allows, never another client's."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from tuning.knowledge.models import Document
from tuning.knowledge.pins import document_pin
from tuning.knowledge.services import document_ingest, document_upload
from tuning.models import TuningChange

from ..conftest import HOST_A
from .conftest import VOICE, docx_bytes, guidelines_pdf, upload


@pytest.fixture
def world(in_a, make_client, make_user, assigned):
    mine = make_client("Mine Cosmetics", vertical="beauty", region="GCC", language="en")
    other = make_client("Other Bank", vertical="finance")
    return {"instance": in_a, "mine": mine, "other": other, "admin": make_user("instance_admin"),
            "am_mine": assigned("account_manager", mine), "am_other": assigned("account_manager", other),
            "contact": assigned("client_contact", mine)}


def browser_as(user) -> HttpClient:
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(user)
    return http


def ingest(document: Document) -> Document:
    document.refresh_from_db()
    assert document_ingest(document_id=document.pk, revision=document.revision) == "ready"
    document.refresh_from_db()
    return document


def test_upload_watch_it_become_ready_open_pin_and_see_it_in_the_prompt_preview(world):
    w = world
    http = browser_as(w["am_mine"])
    form = http.get("/admin/knowledge/document/add/").content.decode()
    assert "Mine Cosmetics" in form and "Other Bank" not in form
    assert "The whole instance" not in form, "an account manager uploads for their clients only"
    posted = http.post("/admin/knowledge/document/add/", {
        "document-title": "Mine brand guidelines", "document-kind": "brand_guidelines", "document-language": "en",
        "document-client": str(w["mine"].pk), "document-file": upload("guidelines.pdf", guidelines_pdf()),
        "document-reason": "Kick-off pack."})
    assert posted.status_code == 302, posted.content.decode()[:2000]
    document = Document.objects.get()
    assert posted["Location"] == f"/admin/knowledge/document/{document.pk}/change/"
    assert (document.client, document.uploaded_by, document.status) == (w["mine"], w["am_mine"], "processing")

    page = http.get(posted["Location"]).content.decode()
    assert "Processing · " in page and 'data-live="1"' in page and "/status/" in page
    status = http.get(f"/admin/knowledge/document/{document.pk}/status/").json()
    assert (status["status"], status["finished"]) == ("processing", False)

    ingest(document)
    status = http.get(f"/admin/knowledge/document/{document.pk}/status/").json()
    assert (status["status"], status["finished"], status["pages"]) == ("ready", True, 3)
    page = http.get(f"/admin/knowledge/document/{document.pk}/change/").content.decode()
    assert 'data-live="0"' in page and "Ready" in page and VOICE in page
    assert "Voice › Tone" in page or "Tone" in page
    assert 'id="pin-excerpt"' in page and 'maxlength="2000"' in page and "Voice" in page

    opened = http.get(f"/admin/knowledge/document/{document.pk}/file/")
    body = b"".join(opened.streaming_content)
    assert opened.status_code == 200 and body.startswith(b"%PDF") and len(body) == document.size_bytes

    pinned = http.post(f"/admin/knowledge/document/{document.pk}/pin/",
                       {"excerpt": "Speak warmly and plainly.", "reason": "The CMO asked."})
    assert pinned.status_code == 302
    document.refresh_from_db()
    assert (document.pinned, document.pin_excerpt) == (True, "Speak warmly and plainly.")
    assert TuningChange.objects.get(entity="document", field="pin").reason == "The CMO asked."
    page = http.get(f"/admin/knowledge/document/{document.pk}/change/").content.decode()
    assert "told to every run for Mine Cosmetics" in page and "Unpin" in page

    preview = http.get(f"/admin/tuning/client/preview/?agent_type=copy&client={w['mine'].pk}").content.decode()
    assert "## From Mine brand guidelines (Brand guidelines)\nSpeak warmly and plainly." in preview
    assert f'Pinned excerpt from <a href="/admin/knowledge/document/{document.pk}/change/">Mine brand guidelines</a>' \
        in preview

    unpinned = http.post(f"/admin/knowledge/document/{document.pk}/unpin/", {"reason": "Later."})
    assert unpinned.status_code == 302
    document.refresh_from_db()
    assert not document.pinned
    too_long = http.post(f"/admin/knowledge/document/{document.pk}/pin/", {"excerpt": "x" * 2001}, follow=True)
    assert "over the 2000-character bound" in too_long.content.decode()


def test_the_documents_page_lists_filters_and_searches_what_the_person_may_see(world):
    w = world
    mine = document_upload(actor=None, client=w["mine"], title="Mine guide", uploaded_file=upload("a.pdf",
                                                                                                  guidelines_pdf()))
    theirs = document_upload(actor=None, client=w["other"], title="Bank guide", uploaded_file=upload("b.docx",
                                                                                                    docx_bytes()))
    agency = document_upload(actor=None, client=None, title="Agency guide", kind="style_guide",
                             uploaded_file=upload("c.docx", docx_bytes()))
    ingest(theirs)
    am = browser_as(w["am_mine"]).get("/admin/knowledge/document/").content.decode()
    assert "Mine guide" in am and "Agency guide" in am and "Bank guide" not in am and "Other Bank" not in am
    admin = browser_as(w["admin"])
    everything = admin.get("/admin/knowledge/document/").content.decode()
    assert all(t in everything for t in ("Mine guide", "Bank guide", "Agency guide", "Instance-wide"))
    ready = admin.get("/admin/knowledge/document/?status__exact=ready").content.decode()
    assert "Bank guide" in ready and "Mine guide" not in ready
    styles = admin.get("/admin/knowledge/document/?kind__exact=style_guide").content.decode()
    assert "Agency guide" in styles and "Bank guide" not in styles
    found = admin.get("/admin/knowledge/document/?q=bank").content.decode()
    assert "Bank guide" in found and "Mine guide" not in found
    by_client = admin.get(f"/admin/knowledge/document/?client__id__exact={w['mine'].pk}").content.decode()
    assert "Mine guide" in by_client and "Agency guide" not in by_client

    # another client's account manager: the document's pages are 404s, nothing is touched
    other = browser_as(w["am_other"])
    for url in (f"/admin/knowledge/document/{mine.pk}/change/", f"/admin/knowledge/document/{mine.pk}/status/",
                f"/admin/knowledge/document/{mine.pk}/file/"):
        assert other.get(url).status_code == 404, url
    assert other.post(f"/admin/knowledge/document/{mine.pk}/pin/", {"excerpt": "x"}).status_code == 404
    assert other.post(f"/admin/knowledge/document/{mine.pk}/replace/",
                      {"file": upload("d.docx", docx_bytes())}).status_code == 404
    assert other.post(f"/admin/knowledge/document/{mine.pk}/delete/", {"post": "yes"}).status_code == 404
    # an account manager may not pin or delete the instance-wide document
    am_http = browser_as(w["am_mine"])
    assert am_http.post(f"/admin/knowledge/document/{agency.pk}/pin/", {"excerpt": "x"}).status_code == 403
    page = am_http.get(f"/admin/knowledge/document/{agency.pk}/change/").content.decode()
    assert 'id="pin-form"' not in page and 'id="document-delete"' not in page
    assert Document.objects.filter(pinned=True).count() == 0


def test_replace_and_delete_through_the_services_and_a_contact_uploads_but_does_not_pin(world):
    w = world
    document = ingest(document_upload(actor=None, client=w["mine"], title="Guide",
                                      uploaded_file=upload("a.pdf", guidelines_pdf())))
    contact = browser_as(w["contact"])
    page = contact.get(f"/admin/knowledge/document/{document.pk}/change/").content.decode()
    assert 'id="pin-form"' not in page and 'id="replace-form"' in page and 'id="document-delete"' not in page
    assert contact.post(f"/admin/knowledge/document/{document.pk}/pin/", {"excerpt": "x"}).status_code == 403
    replaced = contact.post(f"/admin/knowledge/document/{document.pk}/replace/",
                            {"file": upload("b.docx", docx_bytes()), "reason": "New edition."})
    assert replaced.status_code == 302
    document.refresh_from_db()
    assert (document.revision, document.status, document.file_type) == (2, "processing", "docx")
    assert TuningChange.objects.get(entity="document", field="file").reason == "New edition."

    am = browser_as(w["am_mine"])
    confirm = am.get(f"/admin/knowledge/document/{document.pk}/delete/").content.decode()
    assert "Guide" in confirm and "chunks and its stored file" in confirm
    deleted = am.post(f"/admin/knowledge/document/{document.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not Document.objects.exists()
    assert TuningChange.objects.filter(entity="document", action="delete").count() == 1


def test_the_client_page_lists_its_documents_and_uploads_one(world):
    w = world
    document_pin(actor=None, document_id=ingest(document_upload(
        actor=None, client=w["mine"], title="Pinned guide", uploaded_file=upload("a.pdf", guidelines_pdf()))).pk,
        excerpt="Warm.")
    document_upload(actor=None, client=w["other"], title="Bank guide", uploaded_file=upload("b.docx", docx_bytes()))
    http = browser_as(w["am_mine"])
    client_url = f"/admin/tuning/client/{w['mine'].pk}/change/"
    page = http.get(client_url).content.decode()
    assert 'id="client-documents"' in page and "Pinned guide" in page and "pinned" in page
    assert "Bank guide" not in page and 'id="client-document-upload"' in page
    assert 'formenctype="multipart/form-data"' in page
    posted = http.post(f"/admin/knowledge/document/add/?next={client_url}", {
        "name": "Mine Cosmetics", "document-title": "Style guide", "document-kind": "style_guide",
        "document-language": "en", "document-client": str(w["mine"].pk),
        "document-file": upload("s.docx", docx_bytes())})
    assert posted.status_code == 302 and posted["Location"] == client_url
    assert Document.objects.filter(client=w["mine"], title="Style guide", kind="style_guide").exists()
    refused = http.post(f"/admin/knowledge/document/add/?next={client_url}", {
        "document-title": "Nothing", "document-kind": "reference", "document-language": "en",
        "document-client": str(w["mine"].pk)}, follow=True)
    assert "The document was not uploaded." in refused.content.decode()
    # a client of another account manager is not a choice: the form refuses it
    foreign = http.post("/admin/knowledge/document/add/", {
        "document-title": "X", "document-kind": "reference", "document-language": "en",
        "document-client": str(w["other"].pk), "document-file": upload("x.docx", docx_bytes())})
    assert foreign.status_code == 400 and not Document.objects.filter(title="X").exists()
