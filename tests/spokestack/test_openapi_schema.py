"""The OpenAPI document itself (issue #13, finding 10): generated without a warning, valid
OpenAPI 3, a bearer scheme, paginated envelopes for paged lists, and the error envelope for every
4xx and 5xx an operation can answer. tests/spokestack/test_openapi_contract.py checks it against
the live server."""

import pytest
from django.core.management import call_command

from ..conftest import HOST_A

PAGED = ["/api/v1/agent/runs", "/api/v1/approvals", "/api/v1/clients", "/api/v1/tuning/audit",
         "/api/v1/clients/{client_id}/tuning/audit"]


@pytest.fixture(scope="module")
def document(django_db_setup, django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/schema/?format=json", HTTP_HOST=HOST_A)
    assert response.status_code == 200
    return response.json()


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_the_document_is_generated_without_warnings_and_is_valid_openapi(tmp_path):
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))


def test_a_bearer_token_is_the_declared_scheme(document):
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer") and "create_api_token" in scheme["description"]
    for label, operation in operations(document):
        if operation.get("security") != [{}]:
            assert {"bearerAuth": []} in operation["security"], label
            assert "401" in operation["responses"], label


def test_paged_lists_document_the_envelope_and_its_parameters(document):
    for path in PAGED:
        operation = document["paths"][path]["get"]
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        envelope = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert set(envelope["required"]) == {"count", "results"}, path
        assert {"count", "next", "previous", "results"} <= set(envelope["properties"]), path
        assert {"page", "page_size"} <= {p["name"] for p in operation["parameters"]}, path
        assert "404" in operation["responses"], path  # a page past the last one


def test_every_operation_documents_its_body_and_its_errors_in_the_envelope(document):
    envelope = "#/components/schemas/ErrorEnvelope"
    for label, operation in operations(document):
        responses = operation["responses"]
        assert {"400", "503"} <= set(responses), label
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == {"$ref": envelope}, (label, code)
            elif code != "204":
                assert response.get("content"), (label, code)  # no 2xx without a documented body
        if operation.get("requestBody"):
            assert {"413", "415"} <= set(responses), label
        for code in ("429", "503"):
            if code in responses:
                assert "Retry-After" in responses[code]["headers"], (label, code)
