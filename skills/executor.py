"""The skill executor: validate the model's input, call the webhook or internal handler, record
the call for the skill's metrics, and return something a model can read.

Webhook calls POST `{"input": …, "context": {"instance", "run_id", "client_id", "user_id"}}`,
signed per Standard Webhooks through `skills.signing.deliver_webhook` (egress policy, retries on
timeouts and 5xx with the same webhook-id, derived from the tool call's idempotency key so a
redelivered run sends the same id; a call still unanswered after the retries reaches the model
as "outcome unknown", not as a failure). In a sandbox run nothing is sent: the outcome records
what would have been. The auth secret is revealed only while the headers are built; the request
this module describes back (`SkillOutcome.request`) has every secret masked.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from spokestack.egress import EgressClient
from spokestack.hygiene import scrub_unstorable
from spokestack.secrets import MASK, SecretDecryptionError

from .handlers import HANDLERS, SkillError
from .models import Skill, SkillCall
from .signing import WebhookError, deliver_webhook, encode_payload, new_message_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkillContext:
    instance: str  # the instance's schema name
    run_id: str | None = None
    client_id: int | None = None
    user_id: int | None = None
    idempotency_key: str = ""
    sandbox: bool = False
    test: bool = False
    # The ids of the clients the run's creator may see; None: every client. Internal handlers
    # never return or act on a client outside it.
    client_ids: frozenset[int] | None = None


@dataclass
class SkillOutcome:
    result: Any  # the answer's data, or an error message for the model
    is_error: bool
    duration_ms: float
    request: dict = field(default_factory=dict)  # what was (or would have been) sent, secrets masked
    response: dict | None = None
    simulated: bool = False
    # Characters of the answer PostgreSQL cannot store (U+0000, lone surrogates), removed from
    # `result` and `response`; when any were, `response["removed_characters"]` says so too.
    removed: int = 0


def message_id_for(idempotency_key: str) -> str:
    """The webhook-id of a tool call: the same for every delivery of that call."""
    if not idempotency_key:
        return new_message_id()
    return "msg_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def validate_input(skill: Skill, arguments: Any) -> str:
    """'' when the input fits the skill's schema, else a message the model can act on."""
    if not isinstance(arguments, dict):
        return f"Invalid input for {skill.name}: give an object."
    errors = sorted(Draft202012Validator(skill.input_schema or {}).iter_errors(arguments), key=lambda e: list(e.path))
    if not errors:
        return ""
    problems = "; ".join(f"{'/'.join(map(str, e.path)) or 'input'}: {e.message}" for e in errors[:5])
    return f"Invalid input for {skill.name}: {problems}. Fix the input and call it again."


def _auth_headers(skill: Skill, *, reveal: bool) -> dict[str, str]:
    if skill.auth_type == Skill.AuthType.BEARER:
        return {"authorization": f"Bearer {skill.auth_secret.reveal() if reveal else MASK}"}
    if skill.auth_type == Skill.AuthType.API_KEY:
        return {skill.auth_header.lower(): skill.auth_secret.reveal() if reveal else MASK}
    return {}


def _described_request(skill: Skill, payload: dict, msg_id: str) -> dict:
    return {"method": "POST", "url": skill.webhook_url,
            "headers": {"content-type": "application/json", **_auth_headers(skill, reveal=False),
                        "webhook-id": msg_id, "webhook-timestamp": "<time of sending>",
                        "webhook-signature": f"v1,{MASK}"},
            "body": payload}


def skill_execute(*, skill: Skill, arguments: Any, context: SkillContext,
                  egress: EgressClient | None = None) -> SkillOutcome:
    """Run a skill once and record the call (SkillCall). Never raises for a skill's own failure:
    invalid input, a refused URL, a 4xx, a timeout or a broken handler become `is_error`."""
    started = time.perf_counter()
    outcome = _execute(skill, arguments, context, egress)
    outcome.duration_ms = round((time.perf_counter() - started) * 1000, 2)
    outcome.result, outcome.removed = scrub_unstorable(outcome.result)
    if outcome.response is not None:
        outcome.response, _ = scrub_unstorable(outcome.response)
        if outcome.removed:
            outcome.response["removed_characters"] = outcome.removed
    status_code = (outcome.response or {}).get("status_code")
    SkillCall.objects.create(skill=skill, run_id=context.run_id or None, ok=not outcome.is_error,
                             simulated=outcome.simulated, test=context.test, duration_ms=outcome.duration_ms,
                             status_code=status_code,
                             error=str(outcome.result)[:500] if outcome.is_error else "")
    return outcome


def _execute(skill: Skill, arguments: Any, context: SkillContext, egress: EgressClient | None) -> SkillOutcome:
    problem = validate_input(skill, arguments)
    if problem:
        return SkillOutcome(problem, True, 0.0)
    if skill.execution_type == Skill.ExecutionType.INTERNAL:
        handler = HANDLERS.get(skill.handler)
        request = {"handler": skill.handler, "input": arguments}
        if handler is None:
            return SkillOutcome(f"{skill.name} is misconfigured (no handler '{skill.handler}').", True, 0.0, request)
        try:
            data = handler.func(arguments, context)
        except SkillError as exc:
            return SkillOutcome(exc.message, True, 0.0, request)
        except Exception as exc:  # noqa: BLE001 - a broken handler must not crash the run
            logger.exception("internal skill %s failed", skill.name)
            return SkillOutcome(f"{skill.name} failed unexpectedly ({exc.__class__.__name__}).", True, 0.0, request)
        return SkillOutcome(data, False, 0.0, request, {"data": data})

    payload = {"input": arguments, "context": {"instance": context.instance, "run_id": context.run_id,
                                               "client_id": context.client_id, "user_id": context.user_id}}
    msg_id = message_id_for(context.idempotency_key)
    request = _described_request(skill, payload, msg_id)
    if context.sandbox:
        result = {"simulated": True, "note": f"Sandbox run: {skill.name} was not called.",
                  "would_send": {"method": "POST", "url": skill.webhook_url, "body_bytes": len(encode_payload(payload))}}
        return SkillOutcome(result, False, 0.0, request, None, simulated=True)
    try:
        headers = _auth_headers(skill, reveal=True)
        signing = skill.signing_secret.reveal()
    except SecretDecryptionError as exc:
        return SkillOutcome(f"{skill.name} cannot be called: {exc.message}", True, 0.0, request)
    try:
        answer = deliver_webhook(skill.webhook_url, payload, signing, timeout=float(skill.timeout_s),
                                 msg_id=msg_id, headers=headers, egress=egress)
    except WebhookError as exc:
        return SkillOutcome(f"{skill.name}: {exc.message}", True, 0.0, request,
                            {"status_code": exc.status_code, "error": exc.message, "attempts": exc.attempts,
                             "code": exc.code})
    finally:
        headers = signing = None  # noqa: F841 - drop the plaintext as soon as the call is made
    return SkillOutcome(answer.data, False, 0.0, request,
                        {"status_code": answer.status_code, "data": answer.data, "attempts": answer.attempts})
