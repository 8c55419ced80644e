"""An account manager uploads a client's brand guidelines in the admin, watches the document become
ready, pins an excerpt and finds it in the prompt preview with its source (#17)."""

import os

import pytest
from django_tenants.utils import schema_context

from ..conftest import PASSWORD, host_of
from .support import SCREENSHOTS, in_thread, log_in

# The preview needs a catalog in daphne's process (see test_tuning_admin.py).
os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")

EXCERPT = "Warm, confident and poetic. Never use discount or urgency language."


def _guidelines_docx() -> bytes:
    import io

    import docx

    document = docx.Document()
    document.add_heading("Lumen Skin brand guidelines", level=1)
    document.add_heading("Voice", level=2)
    document.add_paragraph("Warm, confident and poetic; short sensory sentences.")
    document.add_heading("Words we avoid", level=2)
    document.add_paragraph("Never write sale, hurry or flawless.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.mark.browser
@pytest.mark.live
def test_upload_watch_ready_pin_and_see_the_excerpt_in_the_preview(live_instance, daphne_server, page):
    from spokestack.accounts.services import user_create
    from tuning.knowledge.models import Document
    from tuning.knowledge.services import document_ingest
    from tuning.services import client_assign, client_create

    schema = live_instance.instance.schema_name
    with schema_context(schema):
        manager = user_create(email="am@agency.example", password=PASSWORD, role="account_manager")
        lumen = client_create(name="Lumen Skin", vertical="beauty", region="GCC")
        client_assign(user=manager, client=lumen, role="account_manager")
    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    log_in(page, base, "am@agency.example", f"/admin/knowledge/document/add/?client={lumen.pk}")
    assert page.locator("#id_document-client").input_value() == str(lumen.pk)
    page.fill("#id_document-title", "Lumen brand guidelines")
    page.select_option("#id_document-kind", "brand_guidelines")
    page.set_input_files("#id_document-file", files=[{
        "name": "lumen-guidelines.docx", "buffer": _guidelines_docx(),
        "mimeType": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}])
    page.screenshot(path=str(SCREENSHOTS / "knowledge_upload.png"), full_page=True)
    page.click("#document-upload-submit")
    page.wait_for_url("**/admin/knowledge/document/*/change/")
    with schema_context(schema):
        document = Document.objects.get(title="Lumen brand guidelines")

    # whichever worker reads it (the session's, or this test), the page follows until it is ready
    in_thread(schema, lambda: document_ingest(document_id=document.pk, revision=document.revision))
    page.wait_for_function("document.getElementById('document-status').textContent.trim() === 'Ready'",
                           timeout=30_000)
    page.wait_for_selector("#document-chunks-table")
    assert "Voice" in page.locator("#document-chunks-table").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "knowledge_document_ready.png"), full_page=True)

    page.fill("#pin-excerpt", EXCERPT)
    page.fill("#pin-reason", "The CMO asked for the voice in every run.")
    page.click("#pin-submit")
    page.wait_for_selector("ul.messagelist")
    assert page.locator("#pin-state").inner_text() == "Pinned"
    assert "told to every run for Lumen Skin" in page.locator("#pin-panel").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "knowledge_document_pinned.png"), full_page=True)

    page.goto(f"{base}/admin/tuning/client/preview/?agent_type=copy&client={lumen.pk}")
    page.wait_for_selector("#tier-3")
    section = page.locator(f"#tier-3 .section[data-field='knowledge.pin.{document.pk}']")
    text = section.inner_text()
    assert "From Lumen brand guidelines (Brand guidelines)" in text and EXCERPT in text
    assert "Pinned excerpt from Lumen brand guidelines" in text
    section.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "knowledge_prompt_preview.png"), full_page=True)

    page.goto(f"{base}/admin/knowledge/document/?client__id__exact={lumen.pk}")
    assert "Lumen brand guidelines" in page.locator("#result_list").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "knowledge_documents.png"), full_page=True)

    page.goto(f"{base}/admin/tuning/client/{lumen.pk}/change/")
    panel = page.locator("#client-documents")
    assert "Lumen brand guidelines" in panel.inner_text() and "pinned" in panel.inner_text()
    page.locator("#client-panels").screenshot(path=str(SCREENSHOTS / "knowledge_client_panel.png"))
