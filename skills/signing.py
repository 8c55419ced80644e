"""Signed webhook deliveries per the Standard Webhooks spec (https://www.standardwebhooks.com).

Every webhook skill call carries `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the
base64-decoded part of the skill's `whsec_…` secret, so the receiver can check that the
call came from this platform, unaltered and recent. The id stays the same across retries
and doubles as the receiver's idempotency key; the timestamp is fresh on each attempt.

Delivery goes through the egress client (address policy, timeouts, size cap); timeouts,
connection failures, 429 and 5xx are retried with exponential backoff, and every failure
ends as a `WebhookError` whose message a model can read (never the secret, never the URL's
path or query). A delivery that may have been acted on but was never answered (a timeout
after sending, a connection cut, a gateway timeout) and that no later attempt settles ends
as "outcome unknown" (`webhook_outcome_unknown`), never as a failure to try again: a model
told "failed" calls again with other input, and a new webhook-id defeats the receiver's
deduplication.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spokestack.egress import (
    UNSETTLED_RESEND_STATUSES,
    EgressBadResponse,
    EgressClient,
    EgressConnectionError,
    EgressError,
    EgressHTTPError,
    EgressTimeout,
    default_client,
)

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 5 * 60
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookError(Exception):
    """A webhook call failed for good. `message` becomes the model's tool error."""

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 0,
                 code: str = "webhook_error") -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.attempts = attempts
        self.code = code


class WebhookVerificationError(Exception):
    pass


def new_webhook_secret() -> str:
    """A fresh signing secret, `whsec_` + base64 of 32 random bytes (shown once, stored encrypted)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the webhook secret is not a valid whsec_ secret") from None


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one delivery."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_headers(secret: str, *, msg_id: str, body: bytes, timestamp: int | None = None,
                      also: tuple[str, ...] = ()) -> dict[str, str]:
    """The three Standard Webhooks headers; with `also`, one more signature per extra secret in the
    same header, space-separated (a receiver accepts any that verifies: how a rotation overlaps)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(key, msg_id=msg_id, timestamp=timestamp, body=body)
                                      for key in (secret, *also)),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, *,
           tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> None:
    """Check a delivery as a receiver would (the sample ERP and skill test endpoints use it).
    Raises WebhookVerificationError; returns None when the delivery is authentic and recent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        raise WebhookVerificationError("missing or malformed webhook headers") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise WebhookVerificationError("timestamp outside the tolerance")
    expected = sign(secret, msg_id=msg_id, timestamp=timestamp, body=body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise WebhookVerificationError("no matching signature")


def encode_payload(payload: Any) -> bytes:
    """The exact bytes sent and signed: compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class WebhookResult:
    data: Any  # the parsed JSON answer
    status_code: int
    msg_id: str
    attempts: int
    elapsed_ms: float


def deliver_webhook(
    url: str,
    payload: Any,
    secret: str,
    *,
    timeout: float = 10.0,
    attempts: int = 3,
    msg_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    egress: EgressClient | None = None,
    backoff: float = 0.5,
    max_backoff: float = 8.0,
    sleep: Callable[[float], None] = time.sleep,
) -> WebhookResult:
    """POST `payload` as signed JSON to `url` and return the JSON answer.

    Retries (up to `attempts` in all, sleeping `backoff`·2ⁿ with jitter, capped) on timeouts,
    connection failures, 408/425/429 and 5xx, always with the same `webhook-id`. A 4xx, a
    redirect, a non-JSON answer or a refused address fails at once. Once an attempt may have
    been acted on unanswered, only the receiver's verdict (2xx, or a 4xx other than 409 "still
    in progress") settles it; otherwise the error is `webhook_outcome_unknown`. `headers`
    carries the skill's auth (bearer / API key); it is sent as is and never appears in an error.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    egress = egress or default_client()
    msg_id = msg_id or new_message_id()
    body = encode_payload(payload)
    started = time.monotonic()
    last_error: WebhookError | None = None
    lost: EgressError | None = None  # the first attempt that may have been acted on, unanswered
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            delay = min(max_backoff, backoff * 2 ** (attempt - 2))
            sleep(delay * (0.8 + 0.4 * secrets.SystemRandom().random()))
        send = {**(headers or {}), **signature_headers(secret, msg_id=msg_id, body=body),
                "content-type": "application/json"}
        try:
            response = egress.request("POST", url, content=body, headers=send, require_json=True,
                                      follow_redirects=False, timeout=timeout)
        except EgressError as exc:
            error, retry = _failure(exc, timeout=timeout, attempt=attempt, after_lost=lost is not None)
            lost = lost or (exc if exc.outcome_unknown else None)
            if retry:
                last_error = error
                continue
            if lost is not None and error.status_code is None:  # not the receiver's verdict
                raise _outcome_unknown(lost, timeout=timeout, attempts=attempt) from None
            raise error from None
        return WebhookResult(data=response.json(), status_code=response.status_code, msg_id=msg_id,
                             attempts=attempt, elapsed_ms=(time.monotonic() - started) * 1000)
    if lost is not None:
        raise _outcome_unknown(lost, timeout=timeout, attempts=attempts)
    assert last_error is not None
    last_error.message = f"{last_error.message} Gave up after {attempts} attempt(s)."
    last_error.args = (last_error.message,)
    raise last_error


def _failure(exc: EgressError, *, timeout: float, attempt: int, after_lost: bool) -> tuple[WebhookError, bool]:
    """(the error one attempt ended with, whether to try again)."""
    if isinstance(exc, EgressTimeout):
        return WebhookError(f"The webhook did not answer within {timeout:g} s.", attempts=attempt,
                            code="webhook_timeout"), True
    if isinstance(exc, EgressConnectionError) or (exc.outcome_unknown and not isinstance(exc, EgressHTTPError)):
        return WebhookError(f"The webhook could not be reached: {exc.message}", attempts=attempt,
                            code="webhook_unreachable"), True
    if isinstance(exc, EgressHTTPError):
        if 300 <= exc.status_code < 400:
            return WebhookError(f"The webhook answered with a redirect (HTTP {exc.status_code}); configure "
                                "the final URL.", status_code=exc.status_code, attempts=attempt,
                                code="webhook_redirect"), False
        retry = exc.status_code in RETRY_STATUSES or (after_lost and exc.status_code in UNSETTLED_RESEND_STATUSES)
        return WebhookError(f"The webhook answered HTTP {exc.status_code}{_reason(exc.body)}.",
                            status_code=exc.status_code, attempts=attempt, code="webhook_http_error"), retry
    if isinstance(exc, EgressBadResponse):
        return WebhookError(f"The webhook's answer is unusable: {exc.message} Skills must answer with JSON.",
                            attempts=attempt, code="webhook_bad_response"), False
    return WebhookError(f"The webhook call was not made: {exc.message}", attempts=attempt, code=exc.code), False


def _outcome_unknown(lost: EgressError, *, timeout: float, attempts: int) -> WebhookError:
    """The model-facing error for a call the receiver may or may not have acted on. It never says
    "failed" or "try again": either would make a model call again with other input."""
    if isinstance(lost, EgressTimeout):
        reason = f"no answer within {timeout:g} s"
    elif isinstance(lost, EgressHTTPError):
        reason = f"a gateway answered HTTP {lost.status_code}: it gave up waiting for the receiver"
    else:
        reason = "the connection was cut before it answered"
    return WebhookError(f"The webhook's answer was lost ({reason}; {attempts} attempts with the same webhook-id), "
                        "so the outcome is unknown: the receiver may or may not have acted on it. Calling this tool "
                        "again with exactly the same input is safe: it sends the same webhook-id, which tells the "
                        "receiver it is a repeat. Do not change the input to retry; if it stays unknown, tell the "
                        "user the outcome is unknown.", attempts=attempts, code="webhook_outcome_unknown",
                        status_code=lost.status_code if isinstance(lost, EgressHTTPError) else None)


def _reason(body: bytes) -> str:
    """The receiver's short explanation of a refusal, when it gives one in JSON."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value.strip():
                return ": " + " ".join(value.split())[:200]
    return ""
