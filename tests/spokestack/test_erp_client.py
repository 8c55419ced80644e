"""The ERP client: the instance's URL and key, through the egress client, with errors a model can read."""

import logging

import pytest

from spokestack.egress import EgressClient
from spokestack.erp import ErpClient, ErpError, ErpNotConfigured
from spokestack.errors import InvalidInput
from spokestack.secrets import EncryptedSecret
from spokestack.tenancy.models import Instance
from spokestack.tenancy.services import instance_set_erp

from ..loopback_server import Reply

API_KEY = "erp-key-7f3a9c0d1e2b"


@pytest.fixture
def erp(db, loopback_server, egress_loopback):
    """Instance A pointed at a loopback ERP (under the test-only loopback allowance)."""
    egress_loopback(loopback_server.port)
    instance = instance_set_erp(instance=Instance.objects.get(schema_name="tenant_a"),
                                base_url=f"{loopback_server.url}/api/", api_key=API_KEY)
    return instance, loopback_server


def test_get_sends_the_key_and_returns_parsed_json(erp):
    instance, server = erp
    server.route("/api/clients", lambda request: Reply.json({"results": [{"id": 1, "name": "Acme"}]}))
    data = ErpClient.for_instance(instance).get("/clients", params={"industry": "retail"})
    assert data == {"results": [{"id": 1, "name": "Acme"}]}
    request = server.requests[0]
    assert request.method == "GET" and request.path == "/api/clients?industry=retail"
    assert request.headers["x-api-key"] == API_KEY


def test_post_sends_json_and_the_idempotency_key(erp):
    instance, server = erp
    server.route("/api/briefs", lambda request: Reply.json({"id": 7, "echo": request.json()}, status=201))
    data = ErpClient.for_instance(instance).post("briefs", {"title": "Spring launch"}, idempotency_key="run-1:call-3")
    assert data == {"id": 7, "echo": {"title": "Spring launch"}}
    request = server.requests[0]
    assert request.headers["idempotency-key"] == "run-1:call-3"
    assert request.headers["content-type"] == "application/json"


def test_a_timeout_is_a_readable_erp_error(erp):
    instance, server = erp
    server.route("/api/slow", Reply.json({}, delay=1.0))
    with pytest.raises(ErpError) as error:
        ErpClient.for_instance(instance, timeout=0.2).get("/slow")
    assert error.value.code == "erp_timeout"
    assert error.value.message == "The ERP did not answer GET /slow within 0.2 s; try again later."


def test_an_http_error_carries_the_erps_explanation(erp):
    instance, server = erp
    server.route("/api/clients/9", Reply.json({"detail": "No client with id 9."}, status=404))
    with pytest.raises(ErpError) as error:
        ErpClient.for_instance(instance).get("/clients/9")
    assert error.value.status_code == 404
    assert error.value.message == "The ERP answered GET /clients/9 with HTTP 404: No client with id 9.."


def test_the_key_never_shows_in_errors_reprs_or_logs(erp, caplog):
    instance, server = erp
    caplog.set_level(logging.DEBUG)
    server.route("/api/echo", lambda request: Reply.json({"error": f"bad key {request.headers['x-api-key']}"},
                                                         status=401))
    server.route("/api/text", Reply(200, b"<html>login</html>", {"Content-Type": "text/html"}))
    client = ErpClient.for_instance(instance)
    messages = [repr(client), repr(instance.erp_api_key), str(instance.erp_api_key)]
    for path in ("/echo", "/text"):
        with pytest.raises(ErpError) as error:
            client.get(path)
        messages += [error.value.message, str(error.value), repr(error.value)]
    assert "bad key ••••••••" in messages[3]
    assert all(API_KEY not in m for m in messages), messages
    assert API_KEY not in caplog.text and caplog.records, "the calls were logged, without the key"


def test_a_non_json_answer_is_an_erp_error(erp):
    instance, server = erp
    server.route("/api/text", Reply(200, b"ok", {"Content-Type": "text/plain"}))
    with pytest.raises(ErpError, match="not JSON") as error:
        ErpClient.for_instance(instance).get("/text")
    assert error.value.code == "erp_bad_response"


def test_paths_cannot_leave_the_erp(erp):
    instance, server = erp
    client = ErpClient.for_instance(instance)
    for path in ("http://169.254.169.254/", "//evil.example/x", "/clients/../../admin"):
        with pytest.raises(ErpError, match="not an ERP path"):
            client.get(path)
    assert server.connections == 0


def test_an_erp_whose_name_resolves_to_a_blocked_address_is_refused_at_call_time(db, loopback_server):
    instance = instance_set_erp(instance=Instance.objects.get(schema_name="tenant_a"),
                                base_url=f"http://erp.agency.example:{loopback_server.port}/api", api_key=API_KEY)
    egress = EgressClient(resolver=lambda host, port: ["127.0.0.1"])
    with pytest.raises(ErpError, match="not allowed.*resolves to 127.0.0.1.*loopback") as error:
        ErpClient.for_instance(instance, egress=egress).get("/clients")
    assert error.value.code == "erp_refused" and loopback_server.connections == 0


def test_a_resolver_can_be_injected_through_the_egress_client(erp):
    instance, server = erp
    server.route("/api/ping", Reply.json({"pong": True}))
    instance_set_erp(instance=instance, base_url=f"http://erp.agency.example:{server.port}/api")
    egress = EgressClient(resolver=lambda host, port: ["127.0.0.1"])
    assert ErpClient.for_instance(instance, egress=egress).get("ping") == {"pong": True}
    assert server.requests[0].headers["host"] == f"erp.agency.example:{server.port}"


@pytest.mark.parametrize("url, problem", [
    ("file:///etc/passwd", "Only http and https"),
    ("http://169.254.169.254/latest", "metadata"),
    ("http://10.0.0.8:8069", "private"),
    ("http://admin:pw@erp.example", "Credentials"),
    ("ftp://erp.example", "Only http and https"),
])
def test_set_erp_refuses_blocked_urls_and_saves_nothing(db, url, problem):
    instance = Instance.objects.get(schema_name="tenant_a")
    with pytest.raises(InvalidInput, match=problem):
        instance_set_erp(instance=instance, base_url=url, api_key="k")
    assert Instance.objects.get(schema_name="tenant_a").erp_base_url == ""


def test_an_instance_without_an_erp_says_so(db):
    instance = Instance.objects.get(schema_name="tenant_b")
    with pytest.raises(ErpNotConfigured, match="No ERP is configured"):
        ErpClient.for_instance(instance)


def test_a_key_copied_from_another_instance_is_reported_not_used(db):
    a = instance_set_erp(instance=Instance.objects.get(schema_name="tenant_a"), base_url="https://erp.example",
                         api_key=API_KEY)
    b = Instance.objects.get(schema_name="tenant_b")
    b.erp_base_url, b.erp_api_key = "https://erp.example", EncryptedSecret(a.erp_api_key.token)
    with pytest.raises(ErpNotConfigured, match="cannot be decrypted") as error:
        ErpClient.for_instance(b)
    assert API_KEY not in error.value.message


# --- the platform admin: the key is write-only ----------------------------------------


@pytest.fixture
def platform_client(db, client):
    from django.contrib.auth import get_user_model
    from django.db import connection

    connection.set_schema_to_public()
    staff = get_user_model().objects.create_superuser("ops@platform.example", "ops@platform.example", "pw-12345678")
    client.force_login(staff)
    return client


def _change_form_data(instance, **overrides):
    return {"name": instance.name, "tier": instance.tier, "status": instance.status, "suspended_reason": "",
            "region": "", "language": "en", "timezone": "UTC", "erp_base_url": "", "erp_api_key_new": "",
            "approval_sla_hours": str(instance.approval_sla_hours),
            "domains-TOTAL_FORMS": "0", "domains-INITIAL_FORMS": "0", **overrides}


def test_the_admin_sets_the_key_write_only(platform_client):
    instance = Instance.objects.get(schema_name="tenant_a")
    url = f"/admin/tenancy/instance/{instance.pk}/change/"
    saved = platform_client.post(url, _change_form_data(instance, erp_base_url="https://erp.agency-a.example",
                                                         erp_api_key_new=API_KEY), HTTP_HOST="localhost")
    assert saved.status_code == 302, saved.content.decode()[:2000]
    stored = Instance.objects.get(pk=instance.pk)
    assert stored.erp_api_key.reveal(schema="tenant_a") == API_KEY
    page = platform_client.get(url, HTTP_HOST="localhost").content.decode()
    assert "set (hidden)" in page and API_KEY not in page and stored.erp_api_key.token not in page

    kept = platform_client.post(url, _change_form_data(instance, erp_base_url="https://erp2.agency-a.example"),
                                HTTP_HOST="localhost")
    assert kept.status_code == 302
    assert Instance.objects.get(pk=instance.pk).erp_api_key.reveal(schema="tenant_a") == API_KEY


def test_the_admin_refuses_a_blocked_erp_url(platform_client):
    instance = Instance.objects.get(schema_name="tenant_a")
    response = platform_client.post(f"/admin/tenancy/instance/{instance.pk}/change/",
                                    _change_form_data(instance, erp_base_url="http://169.254.169.254/latest",
                                                      erp_api_key_new=API_KEY), HTTP_HOST="localhost")
    assert response.status_code == 200 and "cloud metadata address" in response.content.decode()
    assert not Instance.objects.get(pk=instance.pk).erp_api_key


def test_a_204_answer_is_none(erp):
    instance, server = erp
    server.route("/api/briefs/4/archive", Reply(204))
    assert ErpClient.for_instance(instance).post("/briefs/4/archive", idempotency_key="k-1") is None


def test_platform_staff_set_an_instance_approval_sla_within_bounds(platform_client):
    instance = Instance.objects.get(schema_name="tenant_a")
    url = f"/admin/tenancy/instance/{instance.pk}/change/"
    refused = platform_client.post(url, _change_form_data(instance, approval_sla_hours="0"), HTTP_HOST="localhost")
    assert refused.status_code == 200 and "greater than or equal to 1" in refused.content.decode()
    too_long = platform_client.post(url, _change_form_data(instance, approval_sla_hours="721"), HTTP_HOST="localhost")
    assert too_long.status_code == 200 and "less than or equal to 720" in too_long.content.decode()
    assert Instance.objects.get(pk=instance.pk).approval_sla_hours == 24
    saved = platform_client.post(url, _change_form_data(instance, approval_sla_hours="72"), HTTP_HOST="localhost")
    assert saved.status_code == 302
    assert Instance.objects.get(pk=instance.pk).approval_sla_hours == 72
    assert Instance.objects.get(schema_name="tenant_b").approval_sla_hours == 24
