"""The one ERP client core agent tools use (DESIGN §5).

Each instance points at its agency's ERP (`Instance.erp_base_url`, `Instance.erp_api_key`,
the key encrypted and bound to the instance). Requests go through the egress client, so
the ERP is held to the same address policy as any other outbound call, and every failure
becomes an `ErpError` whose message a model can read and act on: it names the method, the
path and what went wrong, never the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spokestack.egress import (
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

API_KEY_HEADER = "X-Api-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TIMEOUT = 10.0


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
                     timeout: float = DEFAULT_TIMEOUT) -> ErpClient:
        """The client for `instance` (a tenancy.Instance), with its key decrypted for it."""
        if not instance.erp_base_url:
            raise ErpNotConfigured(f"No ERP is configured for {instance.name}: an admin must set its base URL.")
        try:
            key = instance.erp_api_key.reveal(schema=instance.schema_name) if instance.erp_api_key else ""
        except SecretDecryptionError:
            raise ErpNotConfigured(f"The ERP API key of {instance.name} cannot be decrypted; "
                                   "an admin must enter it again.") from None
        return cls(base_url=instance.erp_base_url, api_key=key, egress=egress, timeout=timeout)

    def __repr__(self) -> str:
        return f"ErpClient(base_url={self.base_url!r}, api_key={'••••••••' if self._api_key else ''!r})"

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._call("GET", path, params=params)

    def post(self, path: str, json: Any = None, *, idempotency_key: str | None = None) -> Any:
        """POST `json`. Pass the tool call's idempotency key so a retried or resumed run
        never creates the same record twice (the ERP deduplicates on it)."""
        return self._call("POST", path, json=json, idempotency_key=idempotency_key)

    def _url(self, path: str) -> str:
        if "://" in path or path.startswith("//") or any(part == ".." for part in path.split("/")):
            raise ErpError(f"'{path[:80]}' is not an ERP path: use a path such as /clients.", code="erp_bad_path")
        return f"{self.base_url}/{path.lstrip('/')}"

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
              idempotency_key: str | None = None) -> Any:
        what = f"{method} {path.split('?')[0][:120]}"
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers[API_KEY_HEADER] = self._api_key
        if idempotency_key:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        try:
            response = self.egress.request(method, self._url(path), params=params, json=json, headers=headers,
                                           require_json=True, follow_redirects=False, timeout=self.timeout)
        except EgressTimeout:
            raise ErpError(f"The ERP did not answer {what} within {self.timeout:g} s; try again later.",
                           code="erp_timeout") from None
        except EgressHTTPError as exc:
            raise ErpError(self._scrub(f"The ERP answered {what} with HTTP {exc.status_code}"
                                       f"{_problem(exc.body)}."), status_code=exc.status_code,
                           code="erp_http_error") from None
        except EgressRefused as exc:
            raise ErpError(f"The ERP address is not allowed: {exc.message}", code="erp_refused") from None
        except EgressConnectionError:
            raise ErpError(f"The ERP could not be reached for {what}; try again later.", code="erp_unreachable") from None
        except EgressResponseTooLarge:
            raise ErpError(f"The ERP answer to {what} is too large; ask for fewer records (filters, paging).",
                           code="erp_too_large") from None
        except EgressBadResponse as exc:
            raise ErpError(f"The ERP answered {what} with something that is not JSON ({exc.message})",
                           code="erp_bad_response") from None
        except EgressError as exc:
            raise ErpError(f"The ERP call {what} failed: {exc.message}") from None
        return response.json()

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
                return ": " + " ".join(value.split())[:200]
    return ""
