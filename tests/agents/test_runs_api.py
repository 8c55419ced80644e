"""The agent API: execute, status, cancel, list, agents — validation, permissions, isolation.

The loop runs in-process here (the run's task is enqueued only after commit, and these tests
roll back), driven by `execute_run` through the real anthropic SDK and the offline model.
"""

import uuid

import pytest
from django.db import connection

from agents.loop import execute_run
from agents.models import AgentRun, RunEvent, RunStatus, Thread, ToolCall
from tuning.services import client_create

from ..conftest import HOST_B


@pytest.fixture
def admin_a(in_a, make_user):
    return make_user("instance_admin")


@pytest.fixture
def client_a(in_a):
    return client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")


def execute(api_client, **body):
    return api_client.post("/api/v1/agent/execute", body, format="json")


def test_execute_answers_202_with_links_and_queues_the_run(in_a, admin_a, client_a, api):
    response = execute(api(in_a, admin_a), agent_type="copy", task="Write a tagline.", client_id=client_a.pk,
                       specialization={"language": "en"})
    assert response.status_code == 202, response.json()
    body = response.json()
    run = AgentRun.objects.get(pk=body["run_id"])
    assert run.status == RunStatus.QUEUED and run.client == client_a and run.created_by == admin_a
    assert body["status_url"].endswith(f"/api/v1/agent/status/{run.pk}")
    assert body["websocket_url"].endswith(f"/ws/runs/{run.pk}/")
    assert list(run.events.values_list("type", flat=True)) == ["run.queued"]


def test_an_unknown_agent_type_is_the_catalogs_404_naming_what_exists(in_a, admin_a, api):
    response = execute(api(in_a, admin_a), agent_type="poetry", task="x")
    assert response.status_code == 404, response.content
    error = response.json()["error"]
    assert error["code"] == "unknown_agent_type" and "unknown agent type 'poetry'" in error["message"]
    assert "copy" in error["message"] and AgentRun.objects.count() == 0


@pytest.mark.parametrize(("body", "message"), [
    ({"agent_type": "copy"}, "task"),
    ({"agent_type": "copy", "task": "   "}, "task: describe"),
    ({"agent_type": "copy", "task": "x" * 100_001}, "task: at most 100 kB"),
    ({"agent_type": "copy", "task": "x", "specialization": {"mood": "sunny"}}, "unknown key(s) mood"),
    ({"agent_type": "copy", "task": "x", "metadata": ["not", "an", "object"]}, "metadata"),
])
def test_bad_execute_requests_are_400_and_queue_nothing(in_a, admin_a, api, body, message):
    response = execute(api(in_a, admin_a), **body)
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]["message"]
    assert AgentRun.objects.count() == 0


def test_client_of_another_instance_is_400(in_a, admin_a, api, instance_b):
    connection.set_tenant(instance_b)
    foreign = client_create(name="Thames Outfitters", vertical="fashion")
    connection.set_tenant(in_a)
    response = execute(api(in_a, admin_a), agent_type="copy", task="x", client_id=foreign.pk)
    assert response.status_code == 400
    assert f"no client {foreign.pk} in this instance" in response.json()["error"]["message"]
    assert AgentRun.objects.count() == 0


def test_disabled_agent_is_400(in_a, admin_a, api):
    from tuning.services import instance_tuning_update

    instance_tuning_update(actor=admin_a, agent_type="copy", changes={"enabled": False}, reason="not sold here")
    response = execute(api(in_a, admin_a), agent_type="copy", task="x")
    assert response.status_code == 400
    assert "disabled for this instance" in response.json()["error"]["message"]
    assert AgentRun.objects.count() == 0


def test_client_contact_may_not_run_agents(in_a, make_user, api):
    response = execute(api(in_a, make_user("client_contact")), agent_type="copy", task="x")
    assert response.status_code == 403


def test_anonymous_is_401(in_a, client):
    response = client.post("/api/v1/agent/execute", {"agent_type": "copy", "task": "x"},
                           content_type="application/json", HTTP_HOST="tenant-a.localhost")
    assert response.status_code == 401


def test_idempotency_key_returns_the_same_run_and_refuses_a_different_body(in_a, admin_a, api):
    client = api(in_a, admin_a)
    first = client.post("/api/v1/agent/execute", {"agent_type": "copy", "task": "One"}, format="json",
                        HTTP_IDEMPOTENCY_KEY="order-42")
    again = client.post("/api/v1/agent/execute", {"agent_type": "copy", "task": "One"}, format="json",
                        HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.status_code == again.status_code == 202
    assert first.json()["run_id"] == again.json()["run_id"] and again.json()["replayed"] is True
    other = client.post("/api/v1/agent/execute", {"agent_type": "copy", "task": "Two"}, format="json",
                        HTTP_IDEMPOTENCY_KEY="order-42")
    assert other.status_code == 409
    assert AgentRun.objects.count() == 1


def test_offline_run_completes_with_tools_usage_and_a_simulated_output(in_a, admin_a, client_a, api):
    run_id = execute(api(in_a, admin_a), agent_type="rfp", client_id=client_a.pk,
                     task="Analyze this RFP: the client needs a launch campaign by March 1, budget $80,000. "
                          "Find similar past projects.").json()["run_id"]
    assert execute_run(run_id=run_id, worker="test") == RunStatus.SUCCEEDED
    run = AgentRun.objects.get(pk=run_id)
    assert run.simulated and run.output.startswith("[Simulated")
    assert run.input_tokens > 0 and run.output_tokens > 0 and run.cost_usd > 0
    assert run.iterations >= 2 and run.tool_calls.exists()
    types = list(run.events.values_list("type", flat=True))
    assert types[:2] == ["run.queued", "run.started"] and types[-1] == "run.succeeded"
    assert {"turn.started", "text.delta", "tool.started", "tool.finished", "turn.finished"} <= set(types)
    seqs = list(run.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))

    status = api(in_a, admin_a).get(f"/api/v1/agent/status/{run_id}").json()
    assert status["status"] == "succeeded" and status["tool_calls"] and status["usage"]["input_tokens"] > 0
    assert status["artifacts"][-1]["kind"] == "output"


def test_cancel_a_queued_run_stops_it_and_a_finished_one_is_409(in_a, admin_a, api):
    client = api(in_a, admin_a)
    run_id = execute(client, agent_type="copy", task="x").json()["run_id"]
    response = client.delete(f"/api/v1/agent/task/{run_id}")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert execute_run(run_id=run_id, worker="test") == "skipped"
    assert not ToolCall.objects.filter(run_id=run_id).exists()
    again = client.delete(f"/api/v1/agent/task/{run_id}")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


def test_run_of_a_is_404_on_b_for_status_events_and_cancel(in_a, admin_a, api, instance_b, make_user):
    run_id = execute(api(in_a, admin_a), agent_type="copy", task="x").json()["run_id"]
    connection.set_tenant(instance_b)
    on_b = api(instance_b, make_user("instance_admin"))
    assert on_b.defaults["HTTP_HOST"] == HOST_B
    for response in (on_b.get(f"/api/v1/agent/status/{run_id}"), on_b.get(f"/api/v1/agent/runs/{run_id}/events"),
                     on_b.delete(f"/api/v1/agent/task/{run_id}")):
        assert response.status_code == 404, response
        assert response.json()["error"]["code"] == "not_found"
    assert on_b.get("/api/v1/agent/runs").json()["count"] == 0
    connection.set_tenant(in_a)
    assert AgentRun.objects.get(pk=run_id).status == RunStatus.QUEUED


def test_unknown_and_malformed_run_ids_are_404(in_a, admin_a, api):
    client = api(in_a, admin_a)
    assert client.get(f"/api/v1/agent/status/{uuid.uuid4()}").status_code == 404
    assert client.get("/api/v1/agent/status/not-a-uuid").status_code == 404


def test_account_manager_sees_only_runs_of_assigned_clients(in_a, admin_a, api, make_user):
    from tuning.services import client_assign

    mine = client_create(name="Assigned Co")
    theirs = client_create(name="Other Co")
    manager = make_user("account_manager")
    client_assign(actor=admin_a, user=manager, client=mine, role="account_manager")
    admin_client = api(in_a, admin_a)
    for client in (mine, theirs):
        execute(admin_client, agent_type="copy", task=f"for {client.name}", client_id=client.pk)
    listed = api(in_a, manager).get("/api/v1/agent/runs").json()
    assert [r["client_id"] for r in listed["results"]] == [mine.pk]
    other_run = AgentRun.objects.get(client=theirs)
    assert api(in_a, manager).get(f"/api/v1/agent/status/{other_run.pk}").status_code == 404
    refused = execute(api(in_a, manager), agent_type="copy", task="x", client_id=theirs.pk)
    assert refused.status_code == 400


def test_run_list_filters_and_constant_queries(in_a, admin_a, client_a, api, django_assert_max_num_queries):
    client = api(in_a, admin_a)
    for n in range(3):
        execute(client, agent_type="copy", task=f"task {n}", client_id=client_a.pk)
    execute(client, agent_type="brief", task="brief")
    assert client.get("/api/v1/agent/runs?agent_type=copy").json()["count"] == 3
    assert client.get(f"/api/v1/agent/runs?client_id={client_a.pk}&status=queued").json()["count"] == 3
    assert client.get("/api/v1/agent/runs?status=bogus").status_code == 400
    assert client.get("/api/v1/agent/runs?created_after=yesterday").status_code == 400
    with django_assert_max_num_queries(12):
        response = client.get("/api/v1/agent/runs")
    assert response.json()["count"] == 4


def test_agents_lists_enabled_agents_with_their_tools(in_a, admin_a, api):
    agents = {a["agent_type"]: a for a in api(in_a, admin_a).get("/api/v1/agents").json()}
    assert {"rfp", "copy", "brief", "media_buying"} <= set(agents)
    copy_tools = {t["name"] for t in agents["copy"]["tools"]}
    assert {"get_brand_guidelines", "get_approved_examples", "check_brand_rules", "save_draft"} <= copy_tools


def test_events_are_recorded_in_order_with_unique_seq(in_a, admin_a, api):
    run_id = execute(api(in_a, admin_a), agent_type="brief", task="Brief for a launch").json()["run_id"]
    execute_run(run_id=run_id, worker="test")
    seqs = list(RunEvent.objects.filter(run_id=run_id).order_by("id").values_list("seq", flat=True))
    assert seqs == sorted(seqs) == list(range(1, len(seqs) + 1))


def test_sse_clients_may_send_accept_event_stream(in_a, admin_a, api):
    client = api(in_a, admin_a)
    bad = client.post("/api/v1/agent/execute", {"agent_type": "poetry", "task": "x", "stream": True}, format="json",
                      HTTP_ACCEPT="text/event-stream")
    assert bad.status_code == 404
    assert bad.content.startswith(b"event: error\ndata: ") and b"unknown agent type" in bad.content
    run_id = execute(client, agent_type="brief", task="Brief").json()["run_id"]
    execute_run(run_id=run_id, worker="test")
    response = client.get(f"/api/v1/agent/runs/{run_id}/events", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"


def test_the_same_idempotency_key_with_other_metadata_or_specialization_is_409_naming_them(in_a, admin_a, api):
    client = api(in_a, admin_a)
    body = {"agent_type": "copy", "task": "One", "metadata": {"po": "42"}, "specialization": {"language": "en"}}
    first = client.post("/api/v1/agent/execute", body, format="json", HTTP_IDEMPOTENCY_KEY="order-43")
    assert first.status_code == 202
    other = client.post("/api/v1/agent/execute", {**body, "metadata": {"po": "43"}, "specialization": {"language": "ar"}},
                        format="json", HTTP_IDEMPOTENCY_KEY="order-43")
    assert other.status_code == 409
    error = other.json()["error"]
    assert error["details"]["fields"] == ["metadata", "specialization"] and "metadata, specialization" in error["message"]
    assert AgentRun.objects.count() == 1


def test_the_same_idempotency_key_with_and_without_thread_is_409_and_replays_the_threaded_one(in_a, admin_a, api):
    client = api(in_a, admin_a)
    body = {"agent_type": "copy", "task": "One", "thread": True}
    first = client.post("/api/v1/agent/execute", body, format="json", HTTP_IDEMPOTENCY_KEY="order-44")
    assert first.status_code == 202 and first.json()["thread_id"]
    plain = client.post("/api/v1/agent/execute", {**body, "thread": False}, format="json",
                        HTTP_IDEMPOTENCY_KEY="order-44")
    assert plain.status_code == 409 and plain.json()["error"]["details"]["fields"] == ["thread"]
    again = client.post("/api/v1/agent/execute", body, format="json", HTTP_IDEMPOTENCY_KEY="order-44")
    assert again.status_code == 202 and again.json()["replayed"] is True
    assert again.json()["run_id"] == first.json()["run_id"]
    assert again.json()["thread_id"] == first.json()["thread_id"]
    assert AgentRun.objects.count() == 1 and Thread.objects.count() == 1


def test_an_execute_that_asks_for_an_event_stream_gets_the_stream(in_a, admin_a, api):
    response = api(in_a, admin_a).post("/api/v1/agent/execute", {"agent_type": "copy", "task": "One"}, format="json",
                                       HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
    assert response.streaming


def test_a_role_that_acts_for_assigned_clients_names_one_to_run_an_agent(in_a, assigned, client_a, api):
    manager = assigned("account_manager", client_a)
    response = execute(api(in_a, manager), agent_type="copy", task="Write a tagline.")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("client_id: your role acts for the clients assigned to you")
    assert execute(api(in_a, manager), agent_type="copy", task="Write a tagline.",
                   client_id=client_a.pk).status_code == 202
