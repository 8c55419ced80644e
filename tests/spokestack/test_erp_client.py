"""The ERP client: the instance's URL and key, through the egress client, with errors a model can read,
and writes whose answer was lost resent with the same idempotency key (the sample ERP's write log judges)."""

import json
import logging
import socket
import time
import urllib.request

import pytest

from spokestack.egress import EgressClient
from spokestack.erp import ErpClient, ErpError, ErpNotConfigured
from spokestack.errors import InvalidInput
from spokestack.sample_erp import DEMO_API_KEYS, start_sample_erp
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


# --- side effects whose outcome is unknown: resent with the same key, never reported as "not saved" ----


DRAFT = {"client": "gulf-bank", "content": "Open an SME account in 10 minutes. Terms apply."}


@pytest.fixture
def sample(db, egress_loopback):
    """Instance A pointed at its own sample ERP (real HTTP on loopback), whose write log is the judge."""
    server, base_url = start_sample_erp(allow_reset=True)
    egress_loopback(server.server_port)
    instance = instance_set_erp(instance=Instance.objects.get(schema_name="tenant_a"), base_url=base_url,
                                api_key=DEMO_API_KEYS["alpha"])
    yield instance, base_url
    server.stop()


def erp_call(base_url, method, path, body=None):
    """The sample ERP's own answer (its test endpoints and the write log), outside the client under test."""
    request = urllib.request.Request(base_url + path, method=method, data=None if body is None else
                                     json.dumps(body).encode(), headers={"X-Api-Key": DEMO_API_KEYS["alpha"],
                                                                         "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def erp_writes(base_url):
    """The write log. Late answers may still be sleeping in the ERP: their writes are logged already."""
    return erp_call(base_url, "GET", "/writes")


def assert_outcome_unknown(error, what="POST /drafts"):
    assert error.code == "erp_outcome_unknown" and error.message.startswith(f"The ERP's answer to {what} was lost")
    assert "may or may not have saved it" in error.message
    for wrong in ("not saved", "was not saved", "try again later", "failed"):
        assert wrong not in error.message.lower(), error.message


def test_a_post_answered_after_the_timeout_is_resent_with_the_same_key_and_saved_once(sample):
    instance, base_url = sample
    erp_call(base_url, "POST", "/_faults", {"path": "/drafts", "delay_ms": 1500, "times": 1})
    record = ErpClient.for_instance(instance, timeout=0.3).post("/drafts", DRAFT, idempotency_key="run-1:call-1")
    log = erp_writes(base_url)
    assert log["count"] == 1 and record["id"] == log["results"][0]["resource_id"]
    assert [r["idempotency_key"] for r in log["replays"]] == ["run-1:call-1"] == [log["results"][0]["idempotency_key"]]


def test_a_post_that_never_gets_an_answer_is_outcome_unknown_and_saved_once(sample):
    instance, base_url = sample
    erp_call(base_url, "POST", "/_faults", {"path": "/drafts", "delay_ms": 2000})
    started = time.monotonic()
    with pytest.raises(ErpError) as error:
        ErpClient.for_instance(instance, timeout=0.3).post("/drafts", DRAFT, idempotency_key="run-1:call-2")
    assert time.monotonic() - started <= 3 * 0.3 + 1.0, "the resends stay within about three timeouts"
    assert_outcome_unknown(error.value)
    assert "no answer within 0.3 s" in error.value.message and "3 attempts" in error.value.message
    assert "exactly the same input is safe" in error.value.message
    log = erp_writes(base_url)
    assert log["count"] == 1 and len(log["replays"]) == 2


def test_a_connection_cut_after_the_write_is_resent_and_saved_once(sample):
    instance, base_url = sample
    erp_call(base_url, "POST", "/_faults", {"path": "/drafts", "drop": True, "times": 1})
    record = ErpClient.for_instance(instance, timeout=2).post("/drafts", DRAFT, idempotency_key="run-1:call-3")
    log = erp_writes(base_url)
    assert log["count"] == 1 and len(log["replays"]) == 1 and record["id"] == log["results"][0]["resource_id"]


def test_connections_that_keep_being_cut_are_outcome_unknown(sample):
    instance, base_url = sample
    erp_call(base_url, "POST", "/_faults", {"path": "/drafts", "drop": True})
    with pytest.raises(ErpError) as error:
        ErpClient.for_instance(instance, timeout=2).post("/drafts", DRAFT, idempotency_key="run-1:call-4")
    assert_outcome_unknown(error.value)
    assert "the connection was cut before the ERP answered" in error.value.message
    assert erp_writes(base_url)["count"] == 1


def test_a_post_without_a_key_is_never_resent(sample):
    instance, base_url = sample
    erp_call(base_url, "POST", "/_faults", {"path": "/drafts", "delay_ms": 800})
    with pytest.raises(ErpError) as error:
        ErpClient.for_instance(instance, timeout=0.2).post("/drafts", DRAFT)
    assert_outcome_unknown(error.value)
    assert "not sent again" in error.value.message and "could save it twice" in error.value.message
    assert "is safe" not in error.value.message
    log = erp_writes(base_url)
    assert log["count"] == 1 and log["replays"] == []


def test_a_get_that_times_out_is_not_resent_and_keeps_its_message(erp):
    instance, server = erp
    server.route("/api/slow", Reply.json({}, delay=1.0))
    with pytest.raises(ErpError) as error:
        ErpClient.for_instance(instance, timeout=0.2).get("/slow")
    assert error.value.code == "erp_timeout"
    assert error.value.message == "The ERP did not answer GET /slow within 0.2 s; try again later."
    assert len(server.requests) == 1


def test_a_post_that_could_not_connect_is_not_resent_nothing_was_sent(db, egress_loopback):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    egress_loopback(port)
    instance = instance_set_erp(instance=Instance.objects.get(schema_name="tenant_a"),
                                base_url=f"http://127.0.0.1:{port}", api_key=API_KEY)
    with pytest.raises(ErpError) as error:
        ErpClient.for_instance(instance).post("/drafts", DRAFT, idempotency_key="run-1:call-5")
    assert error.value.code == "erp_unreachable"
    assert error.value.message == "The ERP could not be reached for POST /drafts; try again later."


def test_a_gateway_timeout_is_resent_and_in_progress_conflicts_wait_for_the_first(erp):
    """504 from a gateway: the ERP behind it may have saved. A resend that meets the first request
    still in progress gets 409 (the IETF Idempotency-Key draft); the next one gets the replay."""
    instance, server = erp
    replies = iter([Reply.json({"detail": "upstream timed out"}, status=504),
                    Reply.json({"detail": "a request with this key is in progress"}, status=409),
                    Reply.json({"id": 7}, status=201, headers={"Idempotent-Replayed": "true"})])
    server.route("/api/drafts", lambda request: next(replies))
    assert ErpClient.for_instance(instance, timeout=1).post("/drafts", DRAFT, idempotency_key="k-9") == {"id": 7}
    assert [r.headers["idempotency-key"] for r in server.requests] == ["k-9"] * 3
    assert [r.body for r in server.requests] == [server.requests[0].body] * 3


def test_an_erp_that_refuses_the_resend_settles_the_outcome(erp):
    """A 4xx answer to the resend is the ERP judging the same request again: not saved, for a reason it gives."""
    instance, server = erp
    replies = iter([Reply.json({}, status=504), Reply.json({"detail": "client is archived"}, status=422)])
    server.route("/api/drafts", lambda request: next(replies))
    with pytest.raises(ErpError) as error:
        ErpClient.for_instance(instance, timeout=1).post("/drafts", DRAFT, idempotency_key="k-10")
    assert error.value.code == "erp_http_error" and error.value.status_code == 422
    assert error.value.message == "The ERP answered POST /drafts with HTTP 422: client is archived."
