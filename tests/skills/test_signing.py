"""Standard Webhooks signing and signed delivery, checked by an independent implementation."""

import base64
import hashlib
import hmac
import logging
import time

import pytest

from skills.signing import (
    WebhookError,
    WebhookVerificationError,
    deliver_webhook,
    new_webhook_secret,
    sign,
    signature_headers,
    verify,
)
from spokestack.egress import EgressClient

from ..loopback_server import Reply

# --- an independent implementation of the receiver side of the spec ----------------------


def spec_verify(secret: str, headers: dict, body: bytes, *, now: float, tolerance: int = 300) -> bool:
    """Written from https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md,
    sharing no code with skills.signing."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(now - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{msg_id}.{timestamp}.{body.decode()}"
    expected = base64.b64encode(hmac.new(key, content.encode(), hashlib.sha256).digest()).decode()
    for versioned in headers["webhook-signature"].split(" "):
        version, _, signature = versioned.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


def test_the_spec_test_vector():
    """The example from the Standard Webhooks reference libraries."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=1614265330, body=body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_new_secrets_are_whsec_and_random():
    first, second = new_webhook_secret(), new_webhook_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


def test_a_platform_signature_verifies_independently_and_fails_when_tampered_or_stale():
    secret = new_webhook_secret()
    body = b'{"input":{"client":"Acme"},"context":{"instance":"tenant_a"}}'
    now = time.time()
    headers = signature_headers(secret, msg_id="msg_1", body=body, timestamp=int(now))
    assert spec_verify(secret, headers, body, now=now)
    verify(secret, headers, body, now=now)

    tampered = body.replace(b"Acme", b"Evil")
    assert not spec_verify(secret, headers, tampered, now=now)
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, tampered, now=now)

    stale = signature_headers(secret, msg_id="msg_1", body=body, timestamp=int(now) - 600)
    assert not spec_verify(secret, stale, body, now=now)
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        verify(secret, stale, body, now=now)

    other = new_webhook_secret()
    assert not spec_verify(other, headers, body, now=now)


# --- delivery through the egress client -----------------------------------------------


@pytest.fixture
def receiver(loopback_server, egress_loopback):
    """A webhook receiver on loopback, reached under the test-only allowance as a public name."""
    egress_loopback(loopback_server.port)
    url = f"http://hooks.agency-skill.example:{loopback_server.port}/hook?sig=url-token-123"
    egress = EgressClient(resolver=lambda host, port: ["127.0.0.1"])
    return loopback_server, url, egress


def test_a_real_delivery_is_signed_and_verifiable(receiver):
    server, url, egress = receiver
    secret = new_webhook_secret()
    verdicts = []

    def handle(request):
        verdicts.append(spec_verify(secret, request.headers, request.body, now=time.time()))
        return Reply.json({"conflict": False, "checked": request.json()["input"]["client"]})

    server.route("/hook", handle)
    payload = {"input": {"client": "Acme"}, "context": {"instance": "tenant_a", "run_id": 1, "client_id": 2,
                                                       "user_id": 3}}
    result = deliver_webhook(url, payload, secret, timeout=2, egress=egress)
    assert result.data == {"conflict": False, "checked": "Acme"} and result.attempts == 1
    assert verdicts == [True]
    request = server.requests[0]
    assert request.headers["webhook-id"] == result.msg_id and request.headers["content-type"] == "application/json"
    assert request.headers["host"] == f"hooks.agency-skill.example:{server.port}"


def test_5xx_and_timeouts_are_retried_with_the_same_webhook_id(receiver):
    server, url, egress = receiver
    secret = new_webhook_secret()
    replies = iter([Reply.json({}, status=503), Reply.json({}, delay=0.6), Reply.json({"ok": True})])
    server.route("/hook", lambda request: next(replies))
    slept = []
    result = deliver_webhook(url, {"input": {}}, secret, timeout=0.3, attempts=3, egress=egress, backoff=0.1,
                             sleep=slept.append)
    assert result.data == {"ok": True} and result.attempts == 3
    ids = {r.headers["webhook-id"] for r in server.requests}
    assert len(server.requests) == 3 and ids == {result.msg_id}
    assert all(spec_verify(secret, r.headers, r.body, now=time.time()) for r in server.requests)
    assert len(slept) == 2 and 0.08 <= slept[0] <= 0.12 and 0.16 <= slept[1] <= 0.24, slept


def test_giving_up_after_the_last_attempt_says_why(receiver):
    server, url, egress = receiver
    server.route("/hook", Reply.json({"error": "maintenance"}, status=502))
    with pytest.raises(WebhookError) as error:
        deliver_webhook(url, {"input": {}}, new_webhook_secret(), attempts=2, egress=egress, sleep=lambda s: None)
    assert error.value.message == "The webhook answered HTTP 502: maintenance. Gave up after 2 attempt(s)."
    assert len(server.requests) == 2


def test_a_4xx_is_not_retried_and_reads_well(receiver):
    server, url, egress = receiver
    server.route("/hook", Reply.json({"error": {"message": "field 'client' is required"}}, status=422))
    with pytest.raises(WebhookError) as error:
        deliver_webhook(url, {"input": {}}, new_webhook_secret(), attempts=3, egress=egress, sleep=lambda s: None)
    assert error.value.status_code == 422 and error.value.attempts == 1
    assert error.value.message == "The webhook answered HTTP 422: field 'client' is required."
    assert len(server.requests) == 1


def test_a_non_json_answer_is_a_tool_error(receiver):
    server, url, egress = receiver
    server.route("/hook", Reply(200, b"<html>OK</html>", {"Content-Type": "text/html"}))
    with pytest.raises(WebhookError, match="Skills must answer with JSON") as error:
        deliver_webhook(url, {"input": {}}, new_webhook_secret(), egress=egress, sleep=lambda s: None)
    assert error.value.code == "webhook_bad_response" and len(server.requests) == 1


def test_a_redirect_is_not_followed(receiver):
    server, url, egress = receiver
    server.route("/hook", Reply(307, headers={"Location": "http://169.254.169.254/"}))
    with pytest.raises(WebhookError, match="redirect"):
        deliver_webhook(url, {"input": {}}, new_webhook_secret(), egress=egress, sleep=lambda s: None)
    assert len(server.requests) == 1


def test_a_blocked_url_is_never_called():
    with pytest.raises(WebhookError, match="not made.*private") as error:
        deliver_webhook("http://192.168.1.10/hook", {"input": {}}, new_webhook_secret(), sleep=lambda s: None)
    assert error.value.code == "egress_refused"


def test_secrets_never_reach_errors_or_logs(receiver, caplog):
    server, url, egress = receiver
    caplog.set_level(logging.DEBUG)
    secret = new_webhook_secret()
    token = "bearer-token-5e6f7a8b"
    server.route("/hook", lambda request: Reply.json({"error": "unauthorized"}, status=401))
    with pytest.raises(WebhookError) as error:
        deliver_webhook(url, {"input": {}}, secret, headers={"Authorization": f"Bearer {token}"}, egress=egress)
    server.route("/hook", Reply.json({}, delay=0.5))
    with pytest.raises(WebhookError) as timeout:
        deliver_webhook(url, {"input": {}}, secret, headers={"Authorization": f"Bearer {token}"}, egress=egress,
                        timeout=0.1, attempts=2, sleep=lambda s: None)
    assert server.requests[0].headers["authorization"] == f"Bearer {token}"
    shown = " ".join([error.value.message, repr(error.value), timeout.value.message, caplog.text])
    for needle in (secret, secret.removeprefix("whsec_"), token, "url-token-123", "hook?sig"):
        assert needle not in shown
