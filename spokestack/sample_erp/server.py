"""The sample ERP's HTTP service: a small JSON API over the seeded agency data in `data.py`.

Why it exists: core agent tools (rfp, copy, brief, media_buying) reach an agency's ERP over
HTTP through one ERP client. The demo and the tests need a real one to talk to, with real
sockets, status codes, latency and failures, so that the client's timeouts, error mapping and
idempotency keys are exercised the same way they would be against a customer's system. It uses
the standard library only, so `make run` can start it next to the platform and a test can start
it in-process on a free loopback port::

    server, base_url = start_sample_erp(allow_reset=True)
    ...  # urllib / httpx against base_url with header X-Api-Key
    server.stop()

Contract, briefly:
* Every endpoint except `GET /health` needs `X-Api-Key`; the key names the agency and every
  read and write is scoped to it (401 without or with an unknown key). Another agency's ids
  are 404, exactly like ids that do not exist.
* Errors are JSON `{"error": {"code": ..., "message": ...}}`: 400 bad JSON or invalid fields,
  401, 404, 405, 409 idempotency key reused with a different request, 413 body too large.
* `POST /drafts`, `/plans`, `/briefs` write. With an `Idempotency-Key` header the first result
  is stored and every later request with that key (same agency, same path and body) gets it
  back with `Idempotent-Replayed: true`, writing nothing. `GET /writes` is the agency's write
  log (one entry per real write) plus the replays, so tests can prove "exactly once".
* Test switches, fixed at start (tests may change `server.app.config` between requests):
  `latency_ms` delays every response, `failures` maps a path prefix to an HTTP status that
  is returned instead (nothing is written), `allow_reset` enables `POST /_reset` and `/_faults`.
* Answer faults, only with `allow_reset`, per agency (the key's), set over HTTP so a test can
  reach an ERP that runs in another process: `POST /_faults {"path": "/drafts", "delay_ms":
  1500, "drop": false, "times": 1}` makes requests under the path do their work at once (a
  write is saved and its idempotency key recorded) and answer `delay_ms` later, or never
  (`drop`: the connection is closed unanswered), as a slow ERP or one that dies after saving
  would. `times` uses the fault up after that many requests (leave it out: every request), so
  a retry can meet the first request still in flight and get its replay. `GET /_faults` lists
  the agency's faults, `DELETE /_faults` clears them, `POST /_reset` clears everyone's.
* With a data directory, writes survive a restart (`state.json`, rewritten after each write).
* `POST /hooks/competitor-check` is a webhook skill target (the demo seeds a `competitor_check`
  skill per agency pointing at it): it takes the skills executor's body `{"input": {"text": ...},
  "context": {...}}`, authenticated like every endpoint by the agency's `X-Api-Key` (the skill's
  API-key auth), and answers which competitors of the agency's clients the text names. It
  checks the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
  `webhook-signature`) only for agencies given a `whsec_` secret in `webhook_secrets`: the
  platform creates each skill's signing secret itself and shows it once, so the ERP that
  `make run` starts does not know it and does not verify signatures (tests configure it).
  `POST /hooks/roas-optimizer` is the same for the upgrade scenario's `roas_optimizer` skill
  (Gamma): `{"input": {"client": "<name or slug>"}}` → the client's ROAS target and average order
  value from its industry.
* `POST /hooks/events/<agency>` receives the platform's event webhooks (the demo subscribes each
  instance to it), without an API key: the Standard Webhooks signature is the proof, checked when
  the agency has a `webhook_secrets` entry. It keeps the last 200 per agency, once per `webhook-id`;
  `GET /events-received` (with the agency's key) lists them, newest first.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import json
import logging
import os
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import data
from .domain import NUMBER, Domain, WriteKind

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
STATE_FILE = "state.json"
STATE_VERSION = 1
WEBHOOK_TOLERANCE_S = 5 * 60  # as skills.signing: a delivery older or newer than this is refused
MAX_FAULT_DELAY_MS = 600_000


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ErpError(Exception):
    """An HTTP error with a message written for whoever has to fix the request."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


@dataclass
class ErpConfig:
    """How one server behaves. `api_keys` maps agency slug -> key."""

    api_keys: dict[str, str] = field(default_factory=lambda: dict(data.DEMO_API_KEYS))
    latency_ms: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # path prefix -> HTTP status
    allow_reset: bool = False
    data_dir: Path | None = None
    quiet: bool = True
    webhook_secrets: dict[str, str] = field(default_factory=dict)  # agency -> whsec_ secret to verify with

    def __post_init__(self) -> None:
        unknown = (set(self.api_keys) | set(self.webhook_secrets)) - set(data.AGENCIES)
        if unknown:
            raise ValueError(f"unknown agencies {sorted(unknown)}; known: {sorted(data.AGENCIES)}")
        for secret in self.webhook_secrets.values():
            _webhook_key(secret)  # a malformed secret fails at start, not on the first delivery
        if len(set(self.api_keys.values())) != len(self.api_keys) or not all(self.api_keys.values()):
            raise ValueError("every agency needs its own non-empty API key")
        for prefix, status in self.failures.items():
            if not prefix.startswith("/") or not 400 <= status <= 599:
                raise ValueError(f"a failure needs a path starting with '/' and a 4xx/5xx status, not {prefix}={status}")
        if self.latency_ms < 0:
            raise ValueError("latency_ms cannot be negative")

    def agency_for_key(self, key: str) -> str | None:
        found = None
        for agency, expected in self.api_keys.items():
            if hmac.compare_digest(key.encode(), expected.encode()):  # constant time per key
                found = agency
        return found

    def failure_for(self, path: str) -> int | None:
        for prefix, status in self.failures.items():
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return status
        return None


class AnswerDropped(Exception):  # noqa: N818 - an instruction to the HTTP layer, not an error
    """The request was handled; the HTTP layer must close the connection without answering."""


@dataclass
class AnswerFault:
    """An answer fault (see the module docstring): requests under `path` are handled, then
    answered `delay_ms` late, or never when `drop`. `times` counts the requests it has left."""

    path: str
    delay_ms: int = 0
    drop: bool = False
    times: int | None = None

    @classmethod
    def from_json(cls, body: Any) -> AnswerFault:
        if not isinstance(body, dict):
            raise ErpError(400, "invalid", "The body must be a JSON object.")
        unknown = sorted(set(body) - {"path", "delay_ms", "drop", "times"})
        if unknown:
            raise ErpError(400, "invalid", f"Unknown field(s) {', '.join(unknown)}; allowed: path, delay_ms, drop, "
                           "times.")
        path, delay_ms, drop, times = (body.get("path"), body.get("delay_ms", 0), body.get("drop", False),
                                       body.get("times"))
        if not isinstance(path, str) or not path.startswith("/") or path.startswith("/_"):
            raise ErpError(400, "invalid", "path: an endpoint path such as /drafts (test endpoints cannot be faulted).")
        if not isinstance(delay_ms, int) or isinstance(delay_ms, bool) or not 0 <= delay_ms <= MAX_FAULT_DELAY_MS:
            raise ErpError(400, "invalid", f"delay_ms: a whole number of milliseconds from 0 to {MAX_FAULT_DELAY_MS}.")
        if not isinstance(drop, bool):
            raise ErpError(400, "invalid", "drop: true or false.")
        if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
            raise ErpError(400, "invalid", "times: a whole number from 1, or leave it out for every request.")
        if not delay_ms and not drop:
            raise ErpError(400, "invalid", "Give delay_ms or drop: a fault that does neither changes nothing.")
        return cls(path=path.rstrip("/") or "/", delay_ms=delay_ms, drop=drop, times=times)

    def matches(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "delay_ms": self.delay_ms, "drop": self.drop, "times": self.times}


def _webhook_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret must be whsec_ followed by base64") from None


def verify_webhook_signature(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
    """Standard Webhooks verification, as `skills.signing.verify` does it (restated here: the
    sample ERP uses the standard library only). Raises a 401 ErpError when the delivery is not
    signed with `secret`, or is not recent."""
    try:
        msg_id = headers.get("webhook-id") or ""
        timestamp = int(headers.get("webhook-timestamp") or "")
        signatures = (headers.get("webhook-signature") or "").split()
    except ValueError:
        msg_id, timestamp, signatures = "", 0, []
    if not msg_id or not signatures:
        raise ErpError(401, "bad_signature", "Send the webhook-id, webhook-timestamp and webhook-signature headers.")
    if abs((time.time() if now is None else now) - timestamp) > WEBHOOK_TOLERANCE_S:
        raise ErpError(401, "bad_signature", "The webhook timestamp is too old or in the future.")
    digest = hmac.new(_webhook_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode("ascii")
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise ErpError(401, "bad_signature", "The webhook signature does not match.")


# --- the writable collections -----------------------------------------------------------------

# field -> (accepted types, required). Unknown fields are refused, so a caller's typo is a 400
# with the allowed names rather than silently dropped data; free-form extras go in `metadata`.
_NUMBER = NUMBER


def _plan_defaults(agency: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"currency": data.AGENCIES[agency].currency}


CORE = Domain(
    name="core",
    writes=(
        WriteKind("drafts", "draft", {"client": ((str,), True), "content": ((str,), True), "title": ((str,), False),
                                      "channel": ((str,), False), "language": ((str,), False),
                                      "metadata": ((dict,), False)}),
        WriteKind("plans", "plan", {"client": ((str,), True), "budget": (_NUMBER, True), "name": ((str,), False),
                                    "currency": ((str,), False), "channels": ((list,), False),
                                    "forecast": ((dict,), False), "notes": ((str,), False),
                                    "metadata": ((dict,), False)},
                  defaults=_plan_defaults),
        WriteKind("briefs", "brief", {"client": ((str,), True), "title": ((str,), True), "objective": ((str,), True),
                                      "audience": ((str,), False), "channels": ((list,), False),
                                      "budget": (_NUMBER, False), "deadline": ((str,), False),
                                      "notes": ((str,), False), "metadata": ((dict,), False)},
                  statuses=("draft", "in_review", "approved", "archived")),
    ),
)


def domains() -> tuple[Domain, ...]:
    """Every part of the ERP: the core collections and each plugged-in domain."""
    from . import audiences, commercial, content, publishing, resourcing

    return (CORE, audiences.DOMAIN, commercial.DOMAIN, content.DOMAIN, publishing.DOMAIN, resourcing.DOMAIN)


def write_kinds() -> dict[str, WriteKind]:
    return {kind.name: kind for domain in domains() for kind in domain.writes}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _empty_agency_state() -> dict[str, Any]:
    return {**{name: [] for name in write_kinds()}, "changes": {}, "writes": [], "replays": [], "idempotency": {}}


def check_fields(fields: Mapping[str, tuple[tuple[type, ...], bool]], body: Any, *, partial: bool = False) -> dict:
    """`body` as the ERP keeps it (None values dropped), or a 400 naming the first wrong field."""
    if not isinstance(body, dict):
        raise ErpError(400, "invalid", "The body must be a JSON object.")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ErpError(400, "invalid", f"Unknown field(s) {', '.join(unknown)}; allowed: {', '.join(fields)}.")
    if partial and not body:
        raise ErpError(400, "invalid", f"Send at least one field to change: {', '.join(fields)}.")
    for name, (types, required) in fields.items():
        value = body.get(name)
        if value is None:
            if required and not partial:
                raise ErpError(400, "invalid", f"{name}: this field is required.")
            continue
        if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
            wanted = "a number" if types is _NUMBER else f"a JSON {types[0].__name__.replace('dict', 'object')}"
            raise ErpError(400, "invalid", f"{name}: must be {wanted}.")
        if isinstance(value, str) and required and not value.strip():
            raise ErpError(400, "invalid", f"{name}: cannot be blank.")
    if body.get("budget") is not None and body["budget"] <= 0:
        raise ErpError(400, "invalid", "budget: must be greater than 0.")
    return {k: v for k, v in body.items() if v is not None}


class ErpStore:
    """The seeded (read-only) tables and what callers wrote, per agency, behind one lock.

    One lock for all state keeps the idempotency rule simple and true under concurrency: the
    check for a key and the write it guards happen together, so two racing requests with one
    key write once. Changes to a row (seeded or written) are kept apart, as an overlay applied
    when rows are read, so the seed stays the seed.
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        self._lock = threading.RLock()  # re-entrant: a WriteKind's check reads the store under it
        self.kinds = write_kinds()
        self._seed = {agency: self._seeded(agency) for agency in data.AGENCIES}
        self._state_path = Path(data_dir) / STATE_FILE if data_dir else None
        self._state = self._load()

    @staticmethod
    def _seeded(agency: str) -> dict[str, list[dict[str, Any]]]:
        tables = data.seed(agency)
        for domain in domains():
            for table, rows in domain.seed(agency).items():
                if table in tables:
                    raise ValueError(f"the {domain.name} domain seeds {table!r}, which another domain seeds")
                tables[table] = rows
        return tables

    # persistence
    def _load(self) -> dict[str, dict[str, Any]]:
        state = {agency: _empty_agency_state() for agency in data.AGENCIES}
        if self._state_path and self._state_path.exists():
            saved = json.loads(self._state_path.read_text(encoding="utf-8"))
            if saved.get("version") != STATE_VERSION:
                raise ValueError(f"{self._state_path} is not a version {STATE_VERSION} sample ERP state file")
            for agency, tables in saved["agencies"].items():
                if agency in state:
                    state[agency].update(tables)
        return state

    def _save(self) -> None:
        if not self._state_path:
            return
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": STATE_VERSION, "agencies": self._state}, ensure_ascii=False),
                       encoding="utf-8")
        os.replace(tmp, self._state_path)  # readers never see half a file

    def reset(self) -> None:
        with self._lock:
            self._state = {agency: _empty_agency_state() for agency in data.AGENCIES}
            self._save()

    # reads
    def table(self, agency: str, name: str) -> list[dict[str, Any]]:
        """A seeded table of the agency (a domain's reference data: rate card, channels, capacity…)."""
        return self._seed[agency].get(name, [])

    def clients(self, agency: str) -> list[dict[str, Any]]:
        return [{k: c[k] for k in ("slug", "name", "industry", "region", "language")}
                for c in self._seed[agency]["clients"]]

    def client(self, agency: str, slug: str) -> dict[str, Any]:
        for client in self._seed[agency]["clients"]:
            if client["slug"] == slug:
                return client
        raise ErpError(404, "not_found", f"No client {slug!r}. Clients: {self._client_slugs(agency)}.")

    def _client_slugs(self, agency: str) -> str:
        return ", ".join(c["slug"] for c in self._seed[agency]["clients"])

    def projects(self, agency: str, *, industry: str | None, outcome: str | None, q: str | None,
                 limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Newest first; with `q`, ranked by how many of its words a project mentions."""
        rows = [p for p in self._seed[agency]["projects"]
                if (not industry or p["industry"] == industry.lower()) and (not outcome or p["outcome"] == outcome)]
        rows.sort(key=lambda p: (-p["year"], p["id"]))
        if q:
            words = {w for w in re.findall(r"\w+", q.lower()) if len(w) > 2} or {q.lower()}

            def score(p: dict[str, Any]) -> int:
                text = " ".join([p["client"], p["industry"], p["region"], p["title"], p["summary"], p["results"],
                                 *p["services"]]).lower()
                return sum(w in text for w in words)

            scored = [(score(p), p) for p in rows]
            rows = [p for s, p in sorted(scored, key=lambda sp: -sp[0]) if s > 0]  # stable: newest first on ties
        return len(rows), rows[:limit]

    def project(self, agency: str, project_id: str) -> dict[str, Any]:
        return self._find(self._seed[agency]["projects"], project_id, "project")

    def team(self, agency: str, *, capability: str | None) -> list[dict[str, Any]]:
        wanted = capability.lower() if capability else None
        return [m for m in self._seed[agency]["team"] if not wanted or wanted in m["capabilities"]]

    def records(self, agency: str, kind: str, *, client: str | None = None) -> list[dict[str, Any]]:
        """The collection's rows, seeded then written, each with its changes applied."""
        if client:
            self.client(agency, client)  # 404 for a client this agency does not have
        with self._lock:
            changes = self._state[agency]["changes"].get(kind, {})
            rows = [{**row, **changes.get(row["id"], {})}
                    for row in [*self._seed[agency].get(kind, []), *self._state[agency][kind]]]
        return [r for r in rows if not client or r.get("client") == client]

    def record(self, agency: str, kind: str, record_id: str) -> dict[str, Any]:
        return self._find(self.records(agency, kind), record_id, self.kinds[kind].id_word)

    @staticmethod
    def _find(rows: list[dict[str, Any]], record_id: str, what: str) -> dict[str, Any]:
        for row in rows:
            if row["id"] == record_id:
                return row
        raise ErpError(404, "not_found", f"No {what} {record_id!r}.")

    def write_log(self, agency: str) -> dict[str, Any]:
        with self._lock:
            state = self._state[agency]
            return {"count": len(state["writes"]), "results": list(state["writes"]), "replays": list(state["replays"])}

    # writes
    def write(self, agency: str, method: str, path: str, body: Any, idempotency_key: str | None,
              apply: Callable[[dict[str, Any]], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """Apply one write exactly once per idempotency key. Returns (record, replayed).

        `apply(state)` runs under the lock with the agency's state, makes the change and returns
        the record the caller gets back (it must have an `id`); an ErpError it raises writes
        nothing. A repeated key with the same method, path and body gets the first record back.
        """
        fingerprint = hashlib.sha256(json.dumps([method, path, body], sort_keys=True).encode()).hexdigest()
        with self._lock:
            state = self._state[agency]
            if idempotency_key is not None:
                first = state["idempotency"].get(idempotency_key)
                if first is not None:
                    if first["fingerprint"] != fingerprint:
                        raise ErpError(409, "idempotency_key_reused",
                                       f"Idempotency-Key {idempotency_key!r} was used for a different request "
                                       f"({first['path']}); use a new key for a new request.")
                    state["replays"].append({"method": method, "path": path, "idempotency_key": idempotency_key,
                                             "timestamp": _now(), "resource_id": first["response"]["id"]})
                    self._save()
                    return first["response"], True
            record = apply(state)
            state["writes"].append({"seq": len(state["writes"]) + 1, "method": method, "path": path,
                                    "idempotency_key": idempotency_key, "timestamp": _now(),
                                    "resource_id": record["id"]})
            if idempotency_key is not None:
                state["idempotency"][idempotency_key] = {"path": path, "fingerprint": fingerprint, "response": record}
            self._save()
        return record, False

    def create(self, agency: str, kind: str, body: Any, *, path: str,
               idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
        """Write one record of a collection, or return the first result for a repeated key."""
        spec = self.kinds[kind]
        fields = check_fields(spec.fields, body)
        if spec.client_required and fields.get("client") not in {c["slug"] for c in self._seed[agency]["clients"]}:
            raise ErpError(400, "invalid", f"client: no client {fields.get('client')!r}. "
                                           f"Clients: {self._client_slugs(agency)}.")

        def apply(state: dict[str, Any]) -> dict[str, Any]:
            if spec.check is not None:
                spec.check(self, agency, fields)
            extra = spec.defaults(agency, fields) if spec.defaults is not None else {}
            record = {"id": f"{agency}-{spec.id_word}-{len(state[kind]) + 1:04d}", **extra, **fields,
                      "status": spec.status, "created_at": _now()}
            state[kind].append(record)
            return record

        return self.write(agency, "POST", path, body, idempotency_key, apply)

    def change(self, state: dict[str, Any], agency: str, kind: str, record_id: str,
               changes: dict[str, Any]) -> dict[str, Any]:
        """Inside `write`'s apply: record `changes` to a row (404 if there is none); the changed row."""
        row = self._find([*self._seed[agency].get(kind, []), *state[kind]], record_id, self.kinds[kind].id_word)
        overlay = state["changes"].setdefault(kind, {}).setdefault(record_id, {})
        overlay.update(changes, updated_at=_now())
        return {**row, **overlay}

    def update(self, agency: str, kind: str, record_id: str, body: Any, *, path: str,
               idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
        """PATCH a row's fields (`client` stays; `status` only to one of the kind's statuses)."""
        spec = self.kinds[kind]
        allowed = {k: v for k, v in spec.fields.items() if k != "client"}
        if spec.statuses:
            allowed["status"] = ((str,), False)
        changes = check_fields(allowed, body, partial=True)
        if "status" in changes and changes["status"] not in spec.statuses:
            raise ErpError(400, "invalid", f"status: {changes['status']!r} is not one of {', '.join(spec.statuses)}.")

        def apply(state: dict[str, Any]) -> dict[str, Any]:
            self._find([*self._seed[agency].get(kind, []), *state[kind]], record_id, spec.id_word)
            if spec.check is not None:
                current = next(r for r in self.records(agency, kind) if r["id"] == record_id)
                spec.check(self, agency, {**current, **changes, "id": record_id})
            return self.change(state, agency, kind, record_id, changes)

        return self.write(agency, "PATCH", path, body, idempotency_key, apply)

    def competitors_named(self, agency: str, text: str) -> tuple[list[dict[str, str]], list[str]]:
        """(the competitors of the agency's clients that `text` names, whole words in any case;
        every competitor checked)."""
        found, checked = [], []
        for client in self._seed[agency]["clients"]:
            for name in client["competitors"]:
                checked.append(name)
                if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE):
                    found.append({"competitor": name, "client": client["slug"]})
        return found, sorted(checked)


# --- the application: routing, auth, switches --------------------------------------------------

# (ROAS target, average order value in USD) by client industry: the roas_optimizer skill's answer.
ROAS_BY_INDUSTRY = {"beauty": (4.2, 65.0), "fashion": (3.6, 120.0), "food": (2.8, 35.0), "retail": (3.4, 90.0),
                    "technology": (2.5, 240.0), "finance": (2.0, 300.0), "travel": (3.0, 410.0)}

# A handler returns (status, payload) or (status, payload, extra headers).
Handler = Callable[["Request"], tuple[Any, ...]]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    agency: str = ""

    def json(self) -> Any:
        if not self.body:
            raise ErpError(400, "bad_json", "The body is empty; send a JSON object.")
        try:
            return json.loads(self.body, parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ErpError(400, "bad_json", f"The body is not valid JSON: {exc}.") from None
        except RecursionError:
            raise ErpError(400, "bad_json", "The body is nested too deeply.") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")  # json.loads would accept NaN and Infinity


class SampleErpApp:
    """Turns a parsed request into (status, JSON payload, extra headers). No sockets here."""

    def __init__(self, config: ErpConfig) -> None:
        self.config = config
        self.store = ErpStore(config.data_dir)
        self._faults: dict[str, list[AnswerFault]] = {}  # agency -> its answer faults, first match wins
        self._faults_lock = threading.Lock()
        self._events: dict[str, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=200))
        collection = r"(?P<id>[^/]+)"
        kinds = "|".join(re.escape(name) for name in self.store.kinds)
        # (path pattern, {method: handler}, needs an API key)
        self.routes: list[tuple[re.Pattern[str], dict[str, Handler], bool]] = [
            (re.compile(p), methods, auth) for p, methods, auth in [
                (r"/health", {"GET": self.health}, False),
                (r"/agency", {"GET": self.agency}, True),
                (r"/clients", {"GET": self.list_clients}, True),
                (r"/clients/(?P<slug>[^/]+)", {"GET": self.get_client}, True),
                (r"/projects", {"GET": self.list_projects}, True),
                (rf"/projects/{collection}", {"GET": self.get_project}, True),
                (r"/team", {"GET": self.list_team}, True),
                (r"/benchmarks", {"GET": self.list_benchmarks}, True),
                (rf"/(?P<kind>{kinds})", {"GET": self.list_records, "POST": self.create_record}, True),
                (rf"/(?P<kind>{kinds})/{collection}", {"GET": self.get_record, "PATCH": self.update_record}, True),
                (r"/writes", {"GET": self.writes}, True),
                (r"/hooks/competitor-check", {"POST": self.competitor_check}, True),
                (r"/hooks/roas-optimizer", {"POST": self.roas_optimizer}, True),
                (r"/hooks/events/(?P<agency>[a-z0-9_-]+)", {"POST": self.receive_event}, False),
                (r"/events-received", {"GET": self.events_received}, True),
                (r"/_reset", {"POST": self.reset}, True),
                (r"/_faults", {"GET": self.list_faults, "POST": self.add_fault, "DELETE": self.clear_faults}, True),
                *((pattern, methods, True) for domain in domains() for pattern, methods in domain.routes(self)),
            ]
        ]

    def handle(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        """Route, authenticate, apply the test switches, call the handler. Raises AnswerDropped
        when an answer fault says the request is handled but never answered."""
        if self.config.latency_ms:
            time.sleep(self.config.latency_ms / 1000)
        fault = None
        try:
            handler, request.params, needs_key = self._route(request)
            if needs_key:
                request.agency = self._authenticate(request.headers.get("X-Api-Key"))
            elif request.headers.get("X-Api-Key"):
                request.agency = self._authenticate(request.headers["X-Api-Key"])
            failure = self.config.failure_for(request.path)
            if failure is not None:
                raise ErpError(failure, "injected_failure", f"{_phrase(failure)} (failure injected for {request.path}).")
            fault = self._take_fault(request)
            status, payload, *headers = handler(request)
            answer = status, payload, (headers[0] if headers else {})
        except ErpError as exc:
            answer = exc.status, {"error": {"code": exc.code, "message": exc.message}}, exc.headers
        if fault is not None:  # the work is done (a write saved, its key recorded); the answer is late or lost
            time.sleep(fault.delay_ms / 1000)
            if fault.drop:
                raise AnswerDropped
        return answer

    def _take_fault(self, request: Request) -> AnswerFault | None:
        """The agency's first fault for this path, used up by one request. Taken before the work,
        so a repeat sent while this request is still sleeping is answered at once."""
        if not request.agency or request.path.startswith("/_"):
            return None
        with self._faults_lock:
            faults = self._faults.get(request.agency, [])
            for fault in faults:
                if fault.matches(request.path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            faults.remove(fault)
                    return fault
        return None

    def _route(self, request: Request) -> tuple[Handler, dict[str, str], bool]:
        """The handler for the request's path and method. Several patterns may match one path (a
        domain adds DELETE /posts/<id> beside the generic GET/PATCH): the first with the method wins,
        and 405 lists every method any of them allows."""
        allowed: list[str] = []
        for pattern, methods, needs_key in self.routes:
            match = pattern.fullmatch(request.path)
            if not match or (request.path.startswith("/_") and not self.config.allow_reset):
                continue
            if request.method in methods:
                return methods[request.method], match.groupdict(), needs_key
            allowed += [method for method in methods if method not in allowed]
        if allowed:
            listed = ", ".join(allowed)
            raise ErpError(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}; "
                           f"use {listed}.", headers={"Allow": listed})
        raise ErpError(404, "not_found", f"No endpoint {request.path}.")

    def _authenticate(self, key: str | None) -> str:
        if not key:
            raise ErpError(401, "not_authenticated", "Send the agency's API key in the X-Api-Key header.")
        agency = self.config.agency_for_key(key)
        if agency is None:
            raise ErpError(401, "not_authenticated", "Invalid API key.")
        return agency

    @staticmethod
    def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
        value = request.query.get(name)
        if not value:
            return None
        for option in allowed:
            if value.lower() == option.lower():
                return option
        raise ErpError(400, "invalid", f"{name}: {value!r} is not one of {', '.join(allowed)}.")

    # handlers
    def health(self, request: Request) -> tuple[int, Any]:
        payload: dict[str, Any] = {"status": "ok", "service": "spokestack-sample-erp"}
        if request.agency:
            payload["agency"] = request.agency
        return 200, payload

    def agency(self, request: Request) -> tuple[int, Any]:
        return 200, data.AGENCIES[request.agency].as_dict()

    def list_clients(self, request: Request) -> tuple[int, Any]:
        rows = self.store.clients(request.agency)
        return 200, {"count": len(rows), "results": rows}

    def get_client(self, request: Request) -> tuple[int, Any]:
        return 200, self.store.client(request.agency, request.params["slug"])

    def list_projects(self, request: Request) -> tuple[int, Any]:
        raw_limit = request.query.get("limit") or str(DEFAULT_LIMIT)
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise ErpError(400, "invalid", f"limit: must be a whole number from 1 to {MAX_LIMIT}.")
        count, rows = self.store.projects(
            request.agency, industry=self._choice(request, "industry", data.VERTICALS),
            outcome=self._choice(request, "outcome", ("won", "lost")), q=request.query.get("q") or None,
            limit=int(raw_limit))
        return 200, {"count": count, "results": rows}

    def get_project(self, request: Request) -> tuple[int, Any]:
        return 200, self.store.project(request.agency, request.params["id"])

    def list_team(self, request: Request) -> tuple[int, Any]:
        rows = self.store.team(request.agency, capability=request.query.get("capability") or None)
        return 200, {"count": len(rows), "results": rows}

    def list_benchmarks(self, request: Request) -> tuple[int, Any]:
        rows = data.benchmarks(vertical=self._choice(request, "vertical", data.VERTICALS),
                               region=self._choice(request, "region", data.REGIONS),
                               channel=self._choice(request, "channel", data.CHANNELS))
        return 200, {"count": len(rows), "results": rows}

    def list_records(self, request: Request) -> tuple[int, Any]:
        rows = self.store.records(request.agency, request.params["kind"], client=request.query.get("client") or None)
        return 200, {"count": len(rows), "results": rows}

    def get_record(self, request: Request) -> tuple[int, Any]:
        return 200, self.store.record(request.agency, request.params["kind"], request.params["id"])

    def create_record(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        key = self.idempotency_key(request)
        record, replayed = self.store.create(request.agency, request.params["kind"], request.json(),
                                             path=request.path, idempotency_key=key)
        return 201, record, ({"Idempotent-Replayed": "true"} if replayed else {})

    def update_record(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        key = self.idempotency_key(request)
        record, replayed = self.store.update(request.agency, request.params["kind"], request.params["id"],
                                             request.json(), path=request.path, idempotency_key=key)
        return 200, record, ({"Idempotent-Replayed": "true"} if replayed else {})

    @staticmethod
    def idempotency_key(request: Request) -> str | None:
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 255:
            raise ErpError(400, "invalid", "Idempotency-Key: must be 1 to 255 characters.")
        return key

    def competitor_check(self, request: Request) -> tuple[int, Any]:
        """The demo's webhook skill: which known competitors of the agency's clients a text names."""
        secret = self.config.webhook_secrets.get(request.agency)
        if secret:
            verify_webhook_signature(secret, request.headers, request.body)
        body = request.json()
        skill_input = body.get("input") if isinstance(body, dict) else None
        text = skill_input.get("text") if isinstance(skill_input, dict) else None
        if not isinstance(text, str):
            raise ErpError(400, "invalid", 'Send the skill call body {"input": {"text": "..."}, "context": {...}}.')
        found, checked = self.store.competitors_named(request.agency, text)
        return 200, {"ok": not found, "competitors_found": found, "checked": checked}

    def roas_optimizer(self, request: Request) -> tuple[int, Any]:
        """The upgrade scenario's webhook skill (the demo seeds `roas_optimizer` in Gamma): a ROAS
        target and an average order value for a client named in the input, from its industry."""
        secret = self.config.webhook_secrets.get(request.agency)
        if secret:
            verify_webhook_signature(secret, request.headers, request.body)
        body = request.json()
        skill_input = body.get("input") if isinstance(body, dict) else None
        name = skill_input.get("client") if isinstance(skill_input, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ErpError(400, "invalid", 'Send the skill call body {"input": {"client": "..."}, "context": {...}}.')
        wanted = name.strip().lower()
        for client in self.store.clients(request.agency):
            if wanted in (client["slug"].lower(), client["name"].lower()):
                target, aov = ROAS_BY_INDUSTRY.get(client["industry"], (3.0, 80.0))
                return 200, {"client": client["name"], "roas_target": target, "average_order_value": aov,
                             "currency": "USD", "basis": f"{client['industry']} benchmarks, last 12 months"}
        raise ErpError(404, "not_found", f"No client named {name!r}; use a client's name or slug.")

    def receive_event(self, request: Request) -> tuple[int, Any]:
        """The platform's event webhooks for an agency (the demo subscribes each instance here): kept,
        the last 200 per agency, once per webhook-id (a retry is acknowledged, not kept twice)."""
        agency = request.params["agency"]
        if agency not in data.AGENCIES:
            raise ErpError(404, "not_found", f"No agency {agency!r}.")
        secret = self.config.webhook_secrets.get(agency)
        if secret:
            verify_webhook_signature(secret, request.headers, request.body)
        event = request.json()
        if not isinstance(event, dict) or "type" not in event:
            raise ErpError(400, "invalid", 'Send an event: {"type", "timestamp", "data"}.')
        msg_id = request.headers.get("webhook-id", "")
        with self._faults_lock:
            kept = self._events[agency]
            if not any(e["webhook_id"] == msg_id for e in kept):
                kept.append({"webhook_id": msg_id, "received_at": time.time(), **event})
        return 200, {"received": True}

    def events_received(self, request: Request) -> tuple[int, Any]:
        with self._faults_lock:
            rows = list(self._events[request.agency])
        return 200, {"count": len(rows), "results": rows[::-1]}

    def writes(self, request: Request) -> tuple[int, Any]:
        return 200, self.store.write_log(request.agency)

    def reset(self, request: Request) -> tuple[int, Any]:
        self.store.reset()
        with self._faults_lock:
            self._faults.clear()
        return 200, {"reset": True}

    def list_faults(self, request: Request) -> tuple[int, Any]:
        with self._faults_lock:
            rows = [fault.as_dict() for fault in self._faults.get(request.agency, [])]
        return 200, {"count": len(rows), "results": rows}

    def add_fault(self, request: Request) -> tuple[int, Any]:
        fault = AnswerFault.from_json(request.json())
        with self._faults_lock:
            self._faults.setdefault(request.agency, []).append(fault)
            return 201, fault.as_dict()

    def clear_faults(self, request: Request) -> tuple[int, Any]:
        with self._faults_lock:
            self._faults.pop(request.agency, None)
        return self.list_faults(request)


# --- HTTP ------------------------------------------------------------------------------------


class _RequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.0: one request per connection, so a stopped server leaves no live keep-alive threads."""

    server: SampleErpServer
    server_version = "SpokeStackSampleERP/1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        app = self.server.app
        try:
            body = self._read_body()
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/") or "/"
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            status, payload, headers = app.handle(Request(method, path, query, self.headers, body))
        except AnswerDropped:
            self.close_connection = True  # closed with no status line: the client's answer is lost
            return
        except ErpError as exc:
            status, payload, headers = exc.status, {"error": {"code": exc.code, "message": exc.message}}, {}
        except Exception:
            logger.exception("sample ERP: %s %s failed", method, self.path)
            status, payload, headers = 500, {"error": {"code": "server_error", "message": "Internal error."}}, {}
        encoded = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(encoded)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(encoded)

    def _read_body(self) -> bytes:
        raw_length = self.headers.get("Content-Length") or "0"
        if not raw_length.isdigit():
            raise ErpError(400, "bad_request", "Content-Length must be a number.")
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ErpError(413, "too_large", f"The body is over {MAX_BODY_BYTES} bytes.")
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        if not self.server.app.config.quiet:
            super().log_message(format, *args)  # the request line only: keys are headers, never logged


class SampleErpServer(ThreadingHTTPServer):
    """The HTTP server plus `stop()`. Handler threads are daemons so `stop()` never waits on a
    request that is sleeping for injected latency."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops bursts of parallel tool calls into SYN retries

    def __init__(self, host: str, port: int, app: SampleErpApp) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app = app
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve our own name (a DNS lookup); the address is enough.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    @property
    def base_url(self) -> str:
        host = self.server_name if self.address_family == socket.AF_INET else f"[{self.server_name}]"
        return f"http://{host}:{self.server_port}"

    def start_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sample-erp", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket, and wait for the serving thread. Safe to call twice."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server_close()


def make_server(*, host: str = "127.0.0.1", port: int = 0, config: ErpConfig | None = None) -> SampleErpServer:
    return SampleErpServer(host, port, SampleErpApp(config or ErpConfig()))


def start_sample_erp(port: int = 0, *, host: str = "127.0.0.1", api_keys: Mapping[str, str] | None = None,
                     data_dir: str | Path | None = None, latency_ms: int = 0,
                     failures: Mapping[str, int] | None = None, allow_reset: bool = False,
                     quiet: bool = True, webhook_secrets: Mapping[str, str] | None = None,
                     ) -> tuple[SampleErpServer, str]:
    """Serve in a background thread; returns (server, base_url). Port 0 picks a free port.

    `api_keys` maps agency slug -> key (default: `data.DEMO_API_KEYS`). Stop with `server.stop()`
    or `stop_sample_erp(server)`.
    """
    config = ErpConfig(api_keys=dict(api_keys) if api_keys is not None else dict(data.DEMO_API_KEYS),
                       latency_ms=latency_ms, failures=dict(failures or {}), allow_reset=allow_reset,
                       data_dir=Path(data_dir) if data_dir else None, quiet=quiet,
                       webhook_secrets=dict(webhook_secrets or {}))
    server = make_server(host=host, port=port, config=config)
    server.start_in_thread()
    return server, server.base_url


def stop_sample_erp(server: SampleErpServer) -> None:
    server.stop()
