"""The live test of issue #17: a PDF and a DOCX uploaded through the API to daphne, ingested by the
real Celery worker, then the copy agent run by that worker with a scripted model (the real SDK and
a local fake Messages API) that calls `search_knowledge`: the passages and their citations are in
the tool result the model receives and in the run's events."""

from __future__ import annotations

import http.client
import json
import uuid

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from agents.models import RunEvent
from spokestack.accounts.services import api_token_create
from tuning.services import client_create

from ..conftest import wait_for
from .conftest import docx_bytes, pdf_bytes

pytestmark = pytest.mark.live

SERUM = ("The Taif Rose Glow Serum is a hydrating serum with Taif rose water and date seed oil. Write its name "
         "exactly so; say 'dermatologist tested' for it and for nothing else.")
VOICE = "Warm, confident and poetic: short sensory sentences, never an exclamation mark in a headline."


@pytest.fixture
def stack(live_instance, celery_worker, daphne_server, fake_model):
    instance = live_instance.instance
    with schema_context(instance.schema_name):
        client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
        other = client_create(name="Gulf Bank", vertical="finance")
        token = api_token_create(user=live_instance.admin, name="live").raw
    connection.set_schema_to_public()
    return {"instance": instance, "host": instance.domains.get().domain, "port": daphne_server, "token": token,
            "client": client, "other": other, "model": fake_model}


def _request(stack, method, path, body: bytes | None = None, content_type: str = "application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", stack["port"], timeout=30)
    conn.request(method, path, body=body, headers={
        "Host": f"{stack['host']}:{stack['port']}", "Authorization": f"Bearer {stack['token']}",
        "Content-Type": content_type})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


def _upload(stack, *, name: str, data: bytes, fields: dict[str, str]):
    """POST /api/v1/knowledge/documents as multipart/form-data, the way a browser or curl sends it."""
    boundary = f"----spokestack{uuid.uuid4().hex}"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
             for key, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return _request(stack, "POST", "/api/v1/knowledge/documents", body, f"multipart/form-data; boundary={boundary}")


def test_uploaded_documents_are_ingested_and_the_copy_agent_cites_their_passages(stack):
    client_id = stack["client"].pk
    pdf = pdf_bytes([[("h1", "Voice"), ("p", VOICE)], [("h1", "Products"), ("p", SERUM)]])
    status, created_pdf = _upload(stack, name="guidelines.pdf", data=pdf, fields={
        "client_id": str(client_id), "title": "Desert Bloom brand guidelines", "kind": "brand_guidelines"})
    assert status == 201, created_pdf
    status, created_docx = _upload(stack, name="style.docx", data=docx_bytes(), fields={
        "client_id": str(client_id), "title": "Desert Bloom style guide", "kind": "style_guide"})
    assert status == 201, created_docx
    assert {created_pdf["status"], created_docx["status"]} == {"processing"}

    def ready(document_id):
        status, body = _request(stack, "GET", f"/api/v1/knowledge/documents/{document_id}")
        assert status == 200 and body["status"] != "failed", body
        return body if body["status"] == "ready" else None

    pdf_doc = wait_for(lambda: ready(created_pdf["id"]), timeout=90, interval=0.3)
    docx_doc = wait_for(lambda: ready(created_docx["id"]), timeout=90, interval=0.3)
    assert pdf_doc["pages"] == 2 and pdf_doc["chunks_count"] >= 2 and docx_doc["chunks_count"] >= 2

    # people find them too, with the same citations; another client's search does not
    status, found = _request(stack, "GET", f"/api/v1/knowledge/search?q=Taif+Rose+Glow+Serum&client_id={client_id}")
    assert status == 200 and found["results"][0]["citation"] == "Desert Bloom brand guidelines, p. 2 › Products"
    status, elsewhere = _request(stack, "GET", f"/api/v1/knowledge/search?q=Taif+Rose+Glow+Serum"
                                               f"&client_id={stack['other'].pk}")
    assert status == 200 and elsewhere["results"] == []

    marker = f"[kn-live-{uuid.uuid4().hex[:8]}]"
    stack["model"].script(marker, [
        {"content": [{"type": "text", "text": "Checking the guidelines first."},
                     {"type": "tool_use", "id": "toolu_s1", "name": "search_knowledge",
                      "input": {"query": "Taif Rose Glow Serum", "kinds": ["brand_guidelines"]}},
                     {"type": "tool_use", "id": "toolu_s2", "name": "search_knowledge",
                      "input": {"query": "spell out numbers", "limit": 2}}],
         "stop_reason": "tool_use"},
        {"content": [{"type": "text", "text": "Taif Rose Glow Serum: dermatologist tested. "
                                              "(Source: Desert Bloom brand guidelines, p. 2 › Products)"}],
         "stop_reason": "end_turn"},
    ])
    status, body = _request(stack, "POST", "/api/v1/agent/execute", json.dumps({
        "agent_type": "copy", "task": f"Write a caption for the serum {marker}", "client_id": client_id}).encode())
    assert status == 202, body
    run_id = body["run_id"]

    def finished():
        status, detail = _request(stack, "GET", f"/api/v1/agent/status/{run_id}")
        return detail if detail["status"] in ("succeeded", "failed", "cancelled") else None

    assert wait_for(finished, timeout=90, interval=0.3)["status"] == "succeeded"

    # the tool results the model received
    sent = stack["model"].requests(marker)
    assert "search_knowledge" in [t["name"] for t in sent[0]["tools"]]
    results = {b["tool_use_id"]: b for b in sent[1]["messages"][-1]["content"]}
    serum = json.loads(results["toolu_s1"]["content"])
    assert results["toolu_s1"]["is_error"] is False
    top = serum["passages"][0]
    assert top["citation"] == "Desert Bloom brand guidelines, p. 2 › Products"
    assert "Taif Rose Glow Serum" in top["excerpt"] and top["page"] == 2
    assert top["url"] == f"/admin/knowledge/document/{created_pdf['id']}/change/"
    numbers = json.loads(results["toolu_s2"]["content"])["passages"][0]
    assert numbers["citation"] == "Desert Bloom style guide › Style guide › Numbers"
    assert "Spell out numbers from one to nine" in numbers["excerpt"]

    # … and the run's events (what the admin's live page and the API's event stream show)
    with schema_context(stack["instance"].schema_name):
        events = list(RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("type", "payload"))
    finished_tools = [payload for kind, payload in events if kind == "tool.finished"]
    assert {p["name"] for p in finished_tools} == {"search_knowledge"}
    outputs = json.dumps([p.get("output") for p in finished_tools], ensure_ascii=False)
    assert "Desert Bloom brand guidelines, p. 2 › Products" in outputs
    assert "Desert Bloom style guide › Style guide › Numbers" in outputs
    status, detail = _request(stack, "GET", f"/api/v1/agent/status/{run_id}")
    assert "(Source: Desert Bloom brand guidelines, p. 2 › Products)" in json.dumps(detail, ensure_ascii=False)
