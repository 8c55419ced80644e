"""Skills as tools in runs: offered to the model, executed through the loop, validated first,
simulated in sandbox runs, measured; and a bearer token that never leaks anywhere."""

import json
import logging

import pytest
from django.db import connection
from django.test import Client as HttpClient

from agents.loop import execute_run
from agents.models import RunStatus, ToolCall
from agents.services import run_create
from skills.models import SkillCall
from skills.selectors import metrics_of
from skills.services import skill_create
from skills.signing import verify

from ..conftest import HOST_A
from ..loopback_server import Reply
from .conftest import text_turn, tool_turn

TOKEN = "tok-b7d2e9-must-never-leak"
SCHEMA = {"type": "object", "properties": {"brand": {"type": "string"}}, "required": ["brand"],
          "additionalProperties": False}


@pytest.fixture
def hook(in_a, loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    seen = []

    def handle(request):
        seen.append(request)
        return Reply.json({"tier": "gold", "owner": "Layla"})

    loopback_server.route("/crm", handle)
    created = skill_create(actor=None, name="crm_lookup", description="Look up a brand in the agency CRM.",
                           input_schema=SCHEMA, agent_types=["copy"], webhook_url=f"http://127.0.0.1:"
                           f"{loopback_server.port}/crm", auth_type="bearer", auth_secret=TOKEN)
    return created, seen


def start(admin, client, marker, sandbox=False):
    return run_create(actor=admin, agent_type="copy", task=f"{marker}: look up the brand.", client_id=client.pk,
                      sandbox=sandbox).run


def test_a_skill_is_offered_called_signed_and_answers_the_model(hook, admin_a, client_a, scripted):
    created, seen = hook
    scripted.script("skill-run", [tool_turn(("toolu_k1", "crm_lookup", {"brand": "Desert Bloom"})),
                                  text_turn("Gold tier.")])
    run = start(admin_a, client_a, "skill-run")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    first = scripted.requests("skill-run")[0]
    tools = [t["name"] for t in first["tools"]]
    assert "crm_lookup" in tools and tools == sorted(tools)
    (request,) = seen
    verify(created.signing_secret, request.headers, request.body)
    body = request.json()
    assert body == {"input": {"brand": "Desert Bloom"}, "context": {
        "instance": "tenant_a", "run_id": str(run.pk), "client_id": client_a.pk, "user_id": admin_a.pk}}
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["webhook-id"].startswith("msg_")
    result = scripted.requests("skill-run")[-1]["messages"][-1]["content"][0]
    assert result["is_error"] is False and json.loads(result["content"]) == {"tier": "gold", "owner": "Layla"}
    call = ToolCall.objects.get()
    assert call.side_effect is True and call.result == {"tier": "gold", "owner": "Layla"}
    metrics = metrics_of(created.skill)
    assert metrics.calls == 1 and metrics.success_rate == 1.0 and metrics.p50_ms is not None


def test_model_input_is_validated_before_anything_is_sent(hook, admin_a, client_a, scripted):
    created, seen = hook
    scripted.script("skill-bad", [tool_turn(("toolu_k2", "crm_lookup", {"brand": 7, "extra": 1})), text_turn()])
    run = start(admin_a, client_a, "skill-bad")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    assert seen == []
    result = scripted.requests("skill-bad")[-1]["messages"][-1]["content"][0]
    assert result["is_error"] is True and "Invalid input for crm_lookup" in result["content"]
    assert metrics_of(created.skill).success_rate == 0.0


def test_a_sandbox_run_simulates_the_webhook(hook, admin_a, client_a, scripted):
    created, seen = hook
    scripted.script("skill-sandbox", [tool_turn(("toolu_k3", "crm_lookup", {"brand": "Desert Bloom"})), text_turn()])
    run = start(admin_a, client_a, "skill-sandbox", sandbox=True)
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    assert seen == []
    result = json.loads(scripted.requests("skill-sandbox")[-1]["messages"][-1]["content"][0]["content"])
    assert result["simulated"] is True and result["would_send"]["method"] == "POST"
    assert SkillCall.objects.get().simulated is True


def test_a_webhook_error_becomes_a_tool_error(in_a, admin_a, client_a, scripted, loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/crm", Reply(200, b"<html>not json</html>", {"Content-Type": "text/html"}))
    skill = skill_create(actor=None, name="crm_lookup", description="CRM.", input_schema=SCHEMA, agent_types=["copy"],
                         webhook_url=f"http://127.0.0.1:{loopback_server.port}/crm").skill
    scripted.script("skill-html", [tool_turn(("toolu_k4", "crm_lookup", {"brand": "X"})), text_turn()])
    run = start(admin_a, client_a, "skill-html")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    result = scripted.requests("skill-html")[-1]["messages"][-1]["content"][0]
    assert result["is_error"] is True and "JSON" in result["content"]
    assert "JSON" in metrics_of(skill).last_error


def test_disabled_skills_and_skills_of_other_agents_are_not_offered(in_a, admin_a, client_a, scripted):
    base = {"description": "x", "input_schema": {"type": "object"}, "execution_type": "internal",
            "handler": "list_clients"}
    skill_create(actor=None, name="off_skill", agent_types=["copy"], enabled=False, **base)
    skill_create(actor=None, name="brief_skill", agent_types=["brief"], **base)
    scripted.script("skill-offer", [text_turn()])
    run = start(admin_a, client_a, "skill-offer")
    execute_run(run_id=str(run.pk), worker="w1")
    tools = [t["name"] for t in scripted.requests("skill-offer")[0]["tools"]]
    assert "off_skill" not in tools and "brief_skill" not in tools


def test_the_bearer_token_appears_nowhere(hook, admin_a, client_a, scripted, api, caplog):
    created, seen = hook
    caplog.set_level(logging.DEBUG)
    scripted.script("skill-leak", [tool_turn(("toolu_k5", "crm_lookup", {"brand": "Desert Bloom"})),
                                   text_turn("Done.")])
    run = start(admin_a, client_a, "skill-leak")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    assert len(seen) == 1
    haystacks = {
        "events": json.dumps(list(run.events.values("type", "payload")), default=str),
        "messages": json.dumps(scripted.requests("skill-leak")),
        "logs": caplog.text,
        "tool calls": json.dumps(list(ToolCall.objects.values()), default=str),
    }
    http = api(connection.tenant, admin_a)
    for path in (f"/api/v1/agent/status/{run.pk}", "/api/v1/agents/copy/skills", f"/api/v1/skills/{created.skill.pk}",
                 "/api/v1/agent/runs"):
        response = http.get(path)
        assert response.status_code == 200
        haystacks[path] = response.content.decode()
    haystacks["test endpoint"] = http.post(f"/api/v1/skills/{created.skill.pk}/test", {"input": {"brand": "x"}},
                                           format="json").content.decode()
    browser = HttpClient(HTTP_HOST=HOST_A)
    browser.force_login(admin_a)
    for path in (f"/admin/agents/agentrun/{run.pk}/change/", "/admin/skills/skill/",
                 f"/admin/skills/skill/{created.skill.pk}/change/"):
        page = browser.get(path)
        assert page.status_code == 200, path
        haystacks[path] = page.content.decode()
    page = browser.post(f"/admin/skills/skill/{created.skill.pk}/test/", {"sample_input": '{"brand": "x"}'})
    assert page.status_code == 200 and b"test-result" in page.content
    haystacks["admin test"] = page.content.decode()
    leaks = [where for where, text in haystacks.items() if TOKEN in text or created.signing_secret in text]
    assert leaks == []
    assert {k.lower(): v for k, v in seen[0].headers.items()}["authorization"] == f"Bearer {TOKEN}"


@pytest.fixture
def nul_hook(in_a, loopback_server, egress_loopback):
    # Allowed here, before `scripted` overrides settings: settings changed inside a test after
    # `scripted` would be restored out of order and leak its API key into later tests.
    egress_loopback(loopback_server.port)
    return loopback_server


def test_a_webhook_answer_with_a_nul_character_leaves_the_run_going_and_says_so(nul_hook, admin_a, client_a,
                                                                                scripted):
    """PostgreSQL cannot store U+0000: the answer is kept without it, marked, and the run goes on
    (it used to fail the step's write, and the run)."""
    loopback_server = nul_hook
    loopback_server.route("/crm-nul", Reply.json({"tier": "gold\u0000", "owner": "La\u0000yla"}))
    skill_create(actor=None, name="crm_lookup", description="Look up a brand in the agency CRM.",
                 input_schema=SCHEMA, agent_types=["copy"],
                 webhook_url=f"http://127.0.0.1:{loopback_server.port}/crm-nul")
    scripted.script("skill-nul", [tool_turn(("toolu_n1", "crm_lookup", {"brand": "Desert Bloom"})),
                                  text_turn("Gold tier.")])
    run = start(admin_a, client_a, "skill-nul")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    call = ToolCall.objects.get(run=run)
    assert call.result["tier"] == "gold" and call.result["owner"] == "Layla"
    assert "2 character(s) that cannot be stored" in call.result["_note"]
    finished = run.events.get(type="tool.finished")
    assert finished.payload["removed_characters"] == 2
    sent = scripted.requests("skill-nul")[1]["messages"][-1]["content"][0]["content"]
    assert "cannot be stored" in sent and "\u0000" not in sent, "the model is told too"
