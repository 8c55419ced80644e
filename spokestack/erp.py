"""The one ERP client core agent tools use (DESIGN §5).

Each instance points at its agency's ERP (`Instance.erp_base_url`, `Instance.erp_api_key`,
the key encrypted and bound to the instance). Requests go through the egress client, so
the ERP is held to the same address policy as any other outbound call, and every failure
becomes an `ErpError` whose message a model can read and act on: it names the method, the
path and what went wrong, never the key.

A write whose answer is lost (a timeout after sending, a connection cut, a gateway timeout)
may have been saved. With an idempotency key it is sent again, with the same key, before the
model hears anything: the ERP saves it once and answers the resend with the first result. If
that still settles nothing, the model hears "outcome unknown", never "not saved": a model told
"not saved" writes it again, and under a new key the ERP cannot recognise the duplicate.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from spokestack.egress import (
    UNSETTLED_RESEND_STATUSES,
    EgressBadResponse,
    EgressClient,
    EgressConnectionError,
    EgressError,
    EgressHTTPError,
    EgressRefused,
    EgressResponseTooLarge,
    EgressTimeout,
    default_client,
)
from spokestack.secrets import SecretDecryptionError

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-Api-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TIMEOUT = 10.0
# A keyed POST whose answer is lost is sent again once per pause (a share of the timeout, so
# an ERP that is merely slow can finish the first), all sendings within about this many timeouts.
RESEND_PAUSES = (0.1, 0.3)
RESEND_BUDGET_TIMEOUTS = 3
MIN_RESEND_TIMEOUT = 0.1  # share of the timeout: with less time left, a resend is not worth sending


class ErpError(Exception):
    """The ERP call failed. `message` is written for the model (it becomes the tool result)."""

    def __init__(self, message: str, *, status_code: int | None = None, code: str = "erp_error") -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code


class ErpNotConfigured(ErpError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="erp_not_configured")


class ErpClient:
    """Calls one instance's ERP. Build it with `ErpClient.for_instance(instance)`."""

    def __init__(self, *, base_url: str, api_key: str, egress: EgressClient | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if not base_url:
            raise ErpNotConfigured("No ERP is configured for this instance: an admin must set its base URL.")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.egress = egress or default_client()
        self.timeout = timeout

    @classmethod
    def for_instance(cls, instance: Any, *, egress: EgressClient | None = None,
                     timeout: float | None = None) -> ErpClient:
        """The client for `instance` (a tenancy.Instance), with its key decrypted for it."""
        if not instance.erp_base_url:
            raise ErpNotConfigured(f"No ERP is configured for {instance.name}: an admin must set its base URL.")
        try:
            key = instance.erp_api_key.reveal(schema=instance.schema_name) if instance.erp_api_key else ""
        except SecretDecryptionError:
            raise ErpNotConfigured(f"The ERP API key of {instance.name} cannot be decrypted; "
                                   "an admin must enter it again.") from None
        if timeout is None:
            from django.conf import settings

            timeout = float(getattr(settings, "ERP_TIMEOUT_S", DEFAULT_TIMEOUT))
        return cls(base_url=instance.erp_base_url, api_key=key, egress=egress, timeout=timeout)

    def __repr__(self) -> str:
        return f"ErpClient(base_url={self.base_url!r}, api_key={'••••••••' if self._api_key else ''!r})"

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._call("GET", path, params=params)

    def post(self, path: str, json: Any = None, *, idempotency_key: str | None = None) -> Any:
        """POST `json`. Pass the tool call's idempotency key so a retried or resumed run
        never creates the same record twice (the ERP deduplicates on it).

        With the key, a sending whose answer is lost is repeated with the same key (at most
        `len(RESEND_PAUSES)` times, within `RESEND_BUDGET_TIMEOUTS` timeouts), and an outcome
        that stays unknown raises `ErpError(code="erp_outcome_unknown")`. Without a key it is
        never repeated (that could save it twice) and a lost answer is reported as unknown too.
        """
        return self._call("POST", path, json=json, idempotency_key=idempotency_key)

    def patch(self, path: str, json: Any = None, *, idempotency_key: str | None = None) -> Any:
        """PATCH `json` (change fields of a record); resent like `post` when its answer is lost."""
        return self._call("PATCH", path, json=json, idempotency_key=idempotency_key)

    def delete(self, path: str, *, idempotency_key: str | None = None) -> Any:
        """DELETE a record (the ERP answers with what it did); resent like `post` when its answer is lost."""
        return self._call("DELETE", path, idempotency_key=idempotency_key)

    def _url(self, path: str) -> str:
        if "://" in path or path.startswith("//") or any(part == ".." for part in path.split("/")):
            raise ErpError(f"'{path[:80]}' is not an ERP path: use a path such as /clients.", code="erp_bad_path")
        return f"{self.base_url}/{path.lstrip('/')}"

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
              idempotency_key: str | None = None) -> Any:
        what = f"{method} {path.split('?')[0][:120]}"
        url = self._url(path)
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers[API_KEY_HEADER] = self._api_key
        if idempotency_key:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        deadline = time.monotonic() + RESEND_BUDGET_TIMEOUTS * self.timeout
        timeout, attempts = self.timeout, 0
        lost: EgressError | None = None  # the first sending whose answer was lost
        while True:
            attempts += 1
            try:
                response = self.egress.request(method, url, params=params, json=json, headers=headers,
                                               require_json=True, follow_redirects=False, timeout=timeout)
            except EgressError as exc:
                if lost is None and not (method != "GET" and exc.outcome_unknown):
                    raise self._error(exc, what) from None
                if lost is not None and _verdict(exc):
                    raise self._error(exc, what) from None  # the ERP judged the same request again
                lost = lost or exc
                if not idempotency_key:
                    raise self._unknown(what, lost, attempts, resent=False) from None
                pause = RESEND_PAUSES[attempts - 1] * self.timeout if attempts <= len(RESEND_PAUSES) else None
                left = deadline - time.monotonic() - (pause or 0.0)
                if pause is None or left < MIN_RESEND_TIMEOUT * self.timeout:
                    raise self._unknown(what, lost, attempts, resent=True) from None
                logger.warning("ERP %s: answer lost (%s); sending it again with the same idempotency key "
                               "(attempt %d)", what, exc.code, attempts + 1)
                time.sleep(pause)
                timeout = min(self.timeout, left)
                continue
            return response.json()

    def _error(self, exc: EgressError, what: str) -> ErpError:
        """The model-facing error for a failure whose outcome is known (or a read's)."""
        if isinstance(exc, EgressTimeout):
            return ErpError(f"The ERP did not answer {what} within {self.timeout:g} s; try again later.",
                            code="erp_timeout")
        if isinstance(exc, EgressHTTPError):
            return ErpError(self._scrub(f"The ERP answered {what} with HTTP {exc.status_code}{_problem(exc.body)}."),
                            status_code=exc.status_code, code="erp_http_error")
        if isinstance(exc, EgressRefused):
            return ErpError(f"The ERP address is not allowed: {exc.message}", code="erp_refused")
        if isinstance(exc, EgressConnectionError):
            return ErpError(f"The ERP could not be reached for {what}; try again later.", code="erp_unreachable")
        if isinstance(exc, EgressResponseTooLarge):
            return ErpError(f"The ERP answer to {what} is too large; ask for fewer records (filters, paging).",
                            code="erp_too_large")
        if isinstance(exc, EgressBadResponse):
            return ErpError(f"The ERP answered {what} with something that is not JSON ({exc.message})",
                            code="erp_bad_response")
        return ErpError(f"The ERP call {what} failed: {exc.message}")

    def _unknown(self, what: str, lost: EgressError, attempts: int, *, resent: bool) -> ErpError:
        """The model-facing error for a write that may or may not have been saved. It never says
        "not saved" or "try again later": either would make a model write it again."""
        if isinstance(lost, EgressTimeout):
            reason = f"no answer within {self.timeout:g} s"
        elif isinstance(lost, EgressHTTPError):
            reason = f"a gateway answered HTTP {lost.status_code}: it gave up waiting for the ERP"
        else:
            reason = "the connection was cut before the ERP answered"
        if resent:
            tried = f"; {attempts} attempts with the same idempotency key"
            advice = ("Calling this tool again with exactly the same input is safe: it sends the same idempotency key, "
                      "so the ERP will not save it twice. Do not change the content to retry; if it stays unknown, "
                      "tell the user the outcome is unknown.")
        else:
            tried = ""
            advice = ("It was not sent again: without an idempotency key, sending it again could save it twice. "
                      "Check whether it was saved before sending it again, or tell the user the outcome is unknown.")
        return ErpError(f"The ERP's answer to {what} was lost ({reason}{tried}), so the outcome is unknown: the ERP "
                        f"may or may not have saved it. {advice}", code="erp_outcome_unknown",
                        status_code=lost.status_code if isinstance(lost, EgressHTTPError) else None)

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "••••••••") if self._api_key else text


def _problem(body: bytes) -> str:
    """The ERP's own explanation of an error, when it gives one in JSON, shortened."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, dict):
        for key in ("detail", "error", "message", "title"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("detail")
            if isinstance(value, str) and value.strip():
                return ": " + " ".join(value.split())[:400]
    return ""


def _verdict(exc: EgressError) -> bool:
    """Whether a resend's failure is the ERP's answer to the request itself (a 4xx refusing it),
    which settles what an earlier lost sending did: with the same key, a saved one is replayed."""
    return (isinstance(exc, EgressHTTPError) and not exc.outcome_unknown
            and exc.status_code not in UNSETTLED_RESEND_STATUSES)
