"""The demo's webhook skill end to end: made as `seed_demo` makes it, executed by the skill
executor against a running sample ERP over loopback, signed and checked there."""

from django.db import connection

from agents import offline_model
from agents.catalog import platform_tier
from agents.registry import get_spec
from skills.executor import SkillContext, skill_execute
from skills.models import Skill, SkillCall
from skills.signing import new_webhook_secret
from spokestack.demo import seed_demo_skill
from spokestack.demo_data import DEMO_INSTANCES, DEMO_SKILL_NAME
from spokestack.sample_erp import DEMO_API_KEYS, start_sample_erp

ALPHA = DEMO_INSTANCES[0]


def test_the_demo_skill_returns_the_sample_erps_answer(in_a, egress_loopback):
    server, base_url = start_sample_erp()
    try:
        egress_loopback(server.server_port)
        assert seed_demo_skill(ALPHA, erp_url=base_url, api_key=DEMO_API_KEYS["alpha"]) == [
            f"skill {DEMO_SKILL_NAME} of {ALPHA.name}"]
        skill = Skill.objects.get(name=DEMO_SKILL_NAME)
        # the ERP verifies signatures once it knows the skill's secret (as a receiver would)
        server.app.config.webhook_secrets["alpha"] = skill.signing_secret.reveal()
        context = SkillContext(instance=connection.schema_name, idempotency_key="run-1:toolu_1")
        outcome = skill_execute(skill=skill, arguments={"text": "Brighter than Sahara Glow."}, context=context)
        assert not outcome.is_error, outcome.result
        assert outcome.result["competitors_found"] == [{"competitor": "Sahara Glow",
                                                        "client": "desert-bloom-cosmetics"}]
        assert outcome.response["status_code"] == 200
        assert outcome.request["headers"]["x-api-key"] != DEMO_API_KEYS["alpha"], "the described request is masked"

        server.app.config.webhook_secrets["alpha"] = new_webhook_secret()
        refused = skill_execute(skill=skill, arguments={"text": "x"}, context=context)
        assert refused.is_error and refused.response["status_code"] == 401
        assert list(SkillCall.objects.filter(skill=skill).values_list("ok", flat=True).order_by("id")) == [True, False]
    finally:
        server.stop()


def test_the_offline_model_calls_the_demo_skill_in_alphas_copy_run(in_a, egress_loopback):
    """Alpha's demo task shares words with the skill's description, so `make run` shows it."""
    egress_loopback(8765)
    seed_demo_skill(ALPHA, erp_url="http://127.0.0.1:8765", api_key=DEMO_API_KEYS["alpha"])
    tools = sorted([*platform_tier(get_spec("copy")).tools, Skill.objects.get(name=DEMO_SKILL_NAME).definition()],
                   key=lambda t: t["name"])
    messages = [{"role": "user", "content": ALPHA.demo_task}]
    reply = offline_model.respond({"model": "offline", "tools": tools, "messages": messages})
    calls = [block for block in reply.content if block["type"] == "tool_use"]
    if [block["name"] for block in calls] == ["search_knowledge"]:  # the task asks for the brand guidelines (#17)
        messages += [{"role": "assistant", "content": reply.content},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0]["id"],
                                                   "content": '{"passages": []}'}]}]
        reply = offline_model.respond({"model": "offline", "tools": tools, "messages": messages})
        calls = [block for block in reply.content if block["type"] == "tool_use"]
    assert DEMO_SKILL_NAME in [block["name"] for block in calls]
