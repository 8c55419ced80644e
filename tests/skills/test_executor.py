"""The skill executor on its own: the address policy at call time, retries with one webhook-id per
tool call, and model-readable errors."""

from django.db import connection

from skills.executor import SkillContext, message_id_for, skill_execute
from skills.services import skill_create
from spokestack.egress import EgressClient

from ..loopback_server import Reply

SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}}


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
