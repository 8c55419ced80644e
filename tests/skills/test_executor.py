"""The skill executor on its own: the address policy at call time, retries with one webhook-id per
tool call, and model-readable errors: a delivery that may have been acted on but was never answered is
"outcome unknown", never "failed, try again"."""

import json
import socket
import urllib.request

import pytest
from django.db import connection

from skills.executor import SkillContext, message_id_for, skill_execute
from skills.models import Skill
from skills.services import skill_create
from skills.signing import WebhookError, deliver_webhook, new_webhook_secret
from spokestack.demo import seed_demo_skill
from spokestack.demo_data import DEMO_INSTANCES, DEMO_SKILL_NAME
from spokestack.egress import EgressClient
from spokestack.sample_erp import DEMO_API_KEYS, start_sample_erp

from ..loopback_server import Reply

SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}}
ALPHA = DEMO_INSTANCES[0]


def make_skill(url):
    return skill_create(actor=None, name="lookup", description="Look something up.", input_schema=SCHEMA,
                        agent_types=["copy"], webhook_url=url).skill


def test_a_public_name_resolving_to_a_private_address_is_refused_before_connecting(in_a, loopback_server):
    skill = make_skill(f"http://crm.agency-hooks.example:{loopback_server.port}/x")
    private = EgressClient(resolver=lambda host, port: ["10.0.0.5"])
    outcome = skill_execute(skill=skill, arguments={"q": "x"}, context=SkillContext(instance=connection.schema_name),
                            egress=private)
    assert outcome.is_error and "was not made" in outcome.result
    assert loopback_server.connections == 0


def test_retries_keep_the_webhook_id_of_the_tool_call(in_a, loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    replies = iter([Reply.json({"error": "busy"}, status=503), Reply.json({"ok": True})])
    seen = []

    def handle(request):
        seen.append({k.lower(): v for k, v in request.headers.items()}["webhook-id"])
        return next(replies)

    loopback_server.route("/x", handle)
    skill = make_skill(f"http://127.0.0.1:{loopback_server.port}/x")
    outcome = skill_execute(skill=skill, arguments={"q": "x"}, context=SkillContext(
        instance=connection.schema_name, run_id=None, idempotency_key="run-1:toolu_1"))
    assert not outcome.is_error and outcome.result == {"ok": True}
    assert seen == [message_id_for("run-1:toolu_1")] * 2


# --- deliveries whose outcome is unknown -----------------------------------------------------


def assert_outcome_unknown(message):
    assert "the outcome is unknown: the receiver may or may not have acted on it" in message, message
    assert "exactly the same input is safe" in message and "same webhook-id" in message
    for wrong in ("failed", "try again", "not made", "could not be reached"):
        assert wrong not in message.lower(), message


def test_a_skill_whose_answers_are_cut_off_says_the_outcome_is_unknown(in_a, egress_loopback):
    """The sample ERP's webhook target acts on each delivery and drops the connection before answering."""
    server, base_url = start_sample_erp(allow_reset=True)
    try:
        egress_loopback(server.server_port)
        seed_demo_skill(ALPHA, erp_url=base_url, api_key=DEMO_API_KEYS["alpha"])
        skill = Skill.objects.get(name=DEMO_SKILL_NAME)
        request = urllib.request.Request(f"{base_url}/_faults", method="POST", headers={
            "X-Api-Key": DEMO_API_KEYS["alpha"], "Content-Type": "application/json"},
            data=json.dumps({"path": "/hooks/competitor-check", "drop": True}).encode())
        urllib.request.urlopen(request, timeout=5).close()
        outcome = skill_execute(skill=skill, arguments={"text": "Brighter than Sahara Glow."}, context=SkillContext(
            instance=connection.schema_name, idempotency_key="run-1:toolu_2"))
    finally:
        server.stop()
    assert outcome.is_error and outcome.result.startswith(f"{DEMO_SKILL_NAME}: ")
    assert_outcome_unknown(outcome.result)
    assert "the connection was cut before it answered" in outcome.result
    assert outcome.response["attempts"] == 3 and outcome.response["code"] == "webhook_outcome_unknown"


def test_timeouts_on_every_attempt_are_an_unknown_outcome_with_one_webhook_id(loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/x", Reply.json({"ok": True}, delay=0.6))
    with pytest.raises(WebhookError) as error:
        deliver_webhook(f"{loopback_server.url}/x", {"input": {}}, new_webhook_secret(), timeout=0.2, attempts=3,
                        msg_id="msg_same", sleep=lambda s: None)
    assert error.value.code == "webhook_outcome_unknown" and error.value.attempts == 3
    assert_outcome_unknown(error.value.message)
    assert error.value.message.startswith("The webhook's answer was lost (no answer within 0.2 s; 3 attempts with "
                                          "the same webhook-id)")
    assert [r.headers["webhook-id"] for r in loopback_server.requests] == ["msg_same"] * 3


def test_an_unknown_first_attempt_stays_unknown_when_later_attempts_are_refused(loopback_server, egress_loopback):
    """The first delivery may have been acted on; a busy receiver afterwards does not say it was not."""
    egress_loopback(loopback_server.port)
    replies = iter([Reply.json({}, delay=0.6), Reply.json({"error": "busy"}, status=503),
                    Reply.json({"error": "busy"}, status=503)])
    loopback_server.route("/x", lambda request: next(replies))
    with pytest.raises(WebhookError) as error:
        deliver_webhook(f"{loopback_server.url}/x", {"input": {}}, new_webhook_secret(), timeout=0.2, attempts=3,
                        sleep=lambda s: None)
    assert error.value.code == "webhook_outcome_unknown"
    assert_outcome_unknown(error.value.message)


def test_an_in_progress_conflict_after_a_timeout_is_retried(loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    replies = iter([Reply.json({}, delay=0.6), Reply.json({"error": "in progress"}, status=409),
                    Reply.json({"ok": True})])
    loopback_server.route("/x", lambda request: next(replies))
    result = deliver_webhook(f"{loopback_server.url}/x", {"input": {}}, new_webhook_secret(), timeout=0.2,
                             attempts=3, sleep=lambda s: None)
    assert result.data == {"ok": True} and result.attempts == 3


def test_a_receiver_that_cannot_be_reached_was_not_called(egress_loopback):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    egress_loopback(port)
    with pytest.raises(WebhookError) as error:
        deliver_webhook(f"http://127.0.0.1:{port}/x", {"input": {}}, new_webhook_secret(), attempts=2,
                        sleep=lambda s: None)
    assert error.value.code == "webhook_unreachable"
    assert error.value.message.startswith("The webhook could not be reached: ")
    assert error.value.message.endswith("Gave up after 2 attempt(s).")
