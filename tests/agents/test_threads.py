"""Threads (issue #16 part 1): services and API — turns continue the conversation, one turn at a
time, closed threads take nothing, the version is pinned, access is scoped like runs.

The loop runs in-process (execute_run) through the real anthropic SDK and the offline model; what
the model received is read back from the run's saved conversation and from the offline answer.
"""

import uuid

import pytest
from django.db import connection

from agents.loop import execute_run
from agents.models import AgentRun, RunStatus, Thread
from agents.offline_model import SIMULATED_MARKER
from agents.services import run_version_for
from agents.threads import thread_create, thread_message_send
from spokestack.errors import Conflict
from tuning.services import client_create

THREADS = "/api/v1/threads"


@pytest.fixture
def admin_a(in_a, make_user):
    return make_user("instance_admin")


@pytest.fixture
def client_a(in_a):
    return client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")


def send(api_client, thread_id, message, **body):
    return api_client.post(f"{THREADS}/{thread_id}/messages", {"message": message, **body}, format="json")


def user_texts(messages: list[dict]) -> list[str]:
    return ["".join(b.get("text", "") for b in m["content"] if b.get("type") == "text")
            for m in messages if m["role"] == "user"]


def test_a_three_turn_thread_continues_the_conversation(in_a, admin_a, client_a, api):
    client = api(in_a, admin_a)
    created = client.post(THREADS, {"agent_type": "copy", "client_id": client_a.pk,
                                    "message": "Write an Instagram caption for the Ramadan glow collection."},
                          format="json")
    assert created.status_code == 201, created.json()
    thread_id, first = created.json()["thread"]["thread_id"], created.json()["run_id"]
    assert created.json()["websocket_url"].endswith(f"/ws/runs/{first}/")
    assert execute_run(run_id=first, worker="test") == RunStatus.SUCCEEDED
    turn1 = AgentRun.objects.get(pk=first)

    second = send(client, thread_id, "Make it shorter, and drop the second sentence.")
    assert second.status_code == 202, second.json()
    assert (second.json()["thread_id"], second.json()["thread_turn"]) == (thread_id, 2)
    turn2 = AgentRun.objects.get(pk=second.json()["run_id"])
    # what the model is sent: turn 1's whole conversation (its final answer included) + the new message
    assert turn2.messages[: len(turn1.messages)] == turn1.messages
    assert turn2.messages[-1]["role"] == "user" and "Make it shorter" in user_texts(turn2.messages)[-1]
    assert execute_run(run_id=str(turn2.pk), worker="test") == RunStatus.SUCCEEDED
    turn2.refresh_from_db()
    assert turn2.output.startswith(SIMULATED_MARKER)
    assert "Shorter version of my previous answer (turn 1" in turn2.output
    first_line = next(line for line in turn1.output.splitlines()[1:] if line.strip())
    assert first_line.split()[0] in turn2.output  # turn 1's own words, shortened
    assert len(turn2.output) < len(turn1.output)
    assert turn2.agent_version == turn1.agent_version and turn2.client == client_a

    third = send(client, thread_id, "Now suggest three hashtags to go with it.")
    assert third.status_code == 202
    run3 = third.json()["run_id"]
    assert execute_run(run_id=run3, worker="test") == RunStatus.SUCCEEDED
    turn3 = AgentRun.objects.get(pk=run3)
    assert turn3.messages[: len(turn2.messages)] == turn2.messages
    assert "Follow-up (turn 3)" in turn3.output and "previous answer (turn 2)" in turn3.output

    detail = client.get(f"{THREADS}/{thread_id}").json()
    assert detail["turns"] == 3 and detail["status"] == "open"
    assert [(m["role"], m["turn"]) for m in detail["messages"]] == [
        ("user", 1), ("assistant", 1), ("user", 2), ("assistant", 2), ("user", 3), ("assistant", 3)]
    assert detail["messages"][3]["text"] == turn2.output and detail["messages"][3]["run_id"] == str(turn2.pk)
    assert detail["messages"][5]["status"] == "succeeded" and detail["messages"][5]["cost_usd"] > 0
    assert detail["cost_usd"] == pytest.approx(sum(float(r.cost_usd) for r in (turn1, turn2, turn3)), abs=1e-6)
    status = client.get(f"/api/v1/agent/status/{turn2.pk}").json()
    assert (status["thread_id"], status["thread_turn"]) == (thread_id, 2)


def test_a_message_while_a_turn_runs_is_409_and_starts_nothing(in_a, admin_a, client_a, api):
    client = api(in_a, admin_a)
    first = client.post("/api/v1/agent/execute", {"agent_type": "copy", "task": "A tagline.",
                                                  "client_id": client_a.pk, "thread": True}, format="json").json()
    thread_id = first["thread_id"]
    assert first["thread_turn"] == 1
    busy = send(client, thread_id, "Shorter please.")
    assert busy.status_code == 409
    message = busy.json()["error"]["message"]
    assert "Turn 1 of this thread is still queued" in message and first["run_id"] in message
    assert AgentRun.objects.filter(thread_id=thread_id).count() == 1
    assert execute_run(run_id=first["run_id"], worker="test") == RunStatus.SUCCEEDED
    assert send(client, thread_id, "Shorter please.").status_code == 202


def test_a_failed_turn_is_left_out_and_the_next_continues_from_the_last_answer(in_a, admin_a, client_a):
    created = thread_create(actor=admin_a, agent_type="copy", client_id=client_a.pk, message="A tagline.")
    execute_run(run_id=str(created.turn.run.pk), worker="test")
    turn1 = AgentRun.objects.get(pk=created.turn.run.pk)
    second = thread_message_send(actor=admin_a, thread_id=created.thread.pk, message="Another one.").run
    from agents.services import run_cancel

    run_cancel(actor=admin_a, run=second)  # a cancelled turn ends it: the thread takes the next message
    third = thread_message_send(actor=admin_a, thread_id=created.thread.pk, message="Shorter.").run
    assert third.thread_turn == 3
    assert third.messages[: len(turn1.messages)] == turn1.messages
    assert "Another one." not in " ".join(user_texts(third.messages))


def test_a_closed_thread_takes_no_message(in_a, admin_a, client_a, api):
    client = api(in_a, admin_a)
    thread_id = client.post(THREADS, {"agent_type": "copy", "client_id": client_a.pk, "title": "Ramadan"},
                            format="json").json()["thread"]["thread_id"]
    closed = client.delete(f"{THREADS}/{thread_id}")
    assert closed.status_code == 200 and closed.json()["status"] == "closed" and closed.json()["closed_at"]
    refused = send(client, thread_id, "Hello again.")
    assert refused.status_code == 409 and "closed" in refused.json()["error"]["message"]
    assert "start a new thread" in refused.json()["error"]["message"]
    again = client.delete(f"{THREADS}/{thread_id}")
    assert again.status_code == 409 and "already closed" in again.json()["error"]["message"]
    assert not AgentRun.objects.filter(thread_id=thread_id).exists()


def test_closing_a_thread_cancels_the_turn_it_is_running(in_a, admin_a, client_a, api):
    client = api(in_a, admin_a)
    created = client.post(THREADS, {"agent_type": "copy", "client_id": client_a.pk, "message": "A caption."},
                          format="json").json()
    thread_id, turn = created["thread"]["thread_id"], created["run_id"]
    assert AgentRun.objects.get(pk=turn).status == RunStatus.QUEUED
    closed = client.delete(f"{THREADS}/{thread_id}")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    run = AgentRun.objects.get(pk=turn)
    assert run.status == RunStatus.CANCELLED and run.cancel_requested
    assert run.events.order_by("-seq").first().type == "run.cancelled"


def test_the_thread_keeps_its_version_after_a_newer_one_is_activated(in_a, admin_a, api):
    from versions.services import version_config_update

    version_config_update(actor=admin_a, agent_type="media_buying", changes={"pinned_version": "2.3.1"},
                          reason="the tested one")
    created = thread_create(actor=admin_a, agent_type="media_buying", message="Plan a small test campaign.")
    assert created.thread.agent_version == created.turn.run.agent_version == "2.3.1"
    execute_run(run_id=str(created.turn.run.pk), worker="test")
    version_config_update(actor=admin_a, agent_type="media_buying", changes={"pinned_version": "2.4.0"},
                          reason="the new one")
    assert run_version_for("media_buying") == "2.4.0"
    turn2 = thread_message_send(actor=admin_a, thread_id=created.thread.pk, message="Shorter.").run
    assert turn2.agent_version == "2.3.1"
    fresh = thread_create(actor=admin_a, agent_type="media_buying").thread
    assert fresh.agent_version == "2.4.0"
    listed = api(in_a, admin_a).get(THREADS).json()
    assert {(t["thread_id"], t["agent_version"]) for t in listed["results"]} == {
        (str(created.thread.pk), "2.3.1"), (str(fresh.pk), "2.4.0")}


def test_another_clients_account_manager_sees_and_touches_nothing(in_a, admin_a, client_a, assigned, api):
    other = client_create(name="Thames Outfitters", vertical="fashion")
    mine = assigned("account_manager", client_a)
    theirs = assigned("account_manager", other)
    created = api(in_a, mine).post(THREADS, {"agent_type": "copy", "client_id": client_a.pk}, format="json")
    assert created.status_code == 201, created.json()
    thread_id = created.json()["thread"]["thread_id"]
    outsider = api(in_a, theirs)
    for response in (outsider.get(f"{THREADS}/{thread_id}"), send(outsider, thread_id, "Hi."),
                     outsider.delete(f"{THREADS}/{thread_id}")):
        assert response.status_code == 404, response.json()
        assert response.json()["error"]["code"] == "not_found"
    assert outsider.get(THREADS).json()["count"] == 0
    assert [t["thread_id"] for t in api(in_a, mine).get(THREADS).json()["results"]] == [thread_id]
    refused = outsider.post(THREADS, {"agent_type": "copy", "client_id": client_a.pk}, format="json")
    assert refused.status_code == 400 and f"no client {client_a.pk}" in refused.json()["error"]["message"]
    # a client contact follows the thread but may not write to it
    contact = api(in_a, assigned("client_contact", client_a))
    assert contact.get(f"{THREADS}/{thread_id}").status_code == 200
    assert send(contact, thread_id, "Hi.").status_code == 403
    assert Thread.objects.get(pk=thread_id).status == "open" and not AgentRun.objects.exists()


def test_another_instance_gets_404(in_a, admin_a, api, instance_b, make_user):
    created = thread_create(actor=admin_a, agent_type="copy", message="A tagline.")
    thread_id = str(created.thread.pk)
    connection.set_tenant(instance_b)
    on_b = api(instance_b, make_user("instance_admin"))
    for response in (on_b.get(f"{THREADS}/{thread_id}"), send(on_b, thread_id, "Hi."),
                     on_b.delete(f"{THREADS}/{thread_id}")):
        assert response.status_code == 404
    assert on_b.get(THREADS).json()["count"] == 0
    connection.set_tenant(in_a)
    assert Thread.objects.get(pk=thread_id).status == "open"


def test_a_thread_of_an_unknown_agent_type_is_the_catalogs_404(in_a, admin_a, api):
    response = api(in_a, admin_a).post(THREADS, {"agent_type": "poetry"}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_agent_type"
    assert not Thread.objects.exists()


@pytest.mark.parametrize(("body", "message"), [
    ({"agent_type": "copy", "client_id": 999999}, "client_id: no client 999999"),
    ({"agent_type": "copy", "specialization": {"mood": "sunny"}}, "unknown key(s) mood"),
    ({"agent_type": "copy", "title": "x" * 201}, "title"),
    ({"agent_type": "copy", "message": "   "}, "message: describe"),
])
def test_bad_thread_requests_are_400_with_a_message(in_a, admin_a, api, body, message):
    response = api(in_a, admin_a).post(THREADS, body, format="json")
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]["message"]
    assert not Thread.objects.exists()


def test_bad_messages_are_400_and_unknown_threads_404(in_a, admin_a, api):
    client = api(in_a, admin_a)
    thread_id = thread_create(actor=admin_a, agent_type="copy").thread.pk
    for body, expected in (({"message": ""}, "message: describe"), ({}, "message"),
                           ({"message": "x" * 100_001}, "message: at most 100 kB"),
                           ({"message": "ok", "metadata": ["no"]}, "metadata")):
        response = client.post(f"{THREADS}/{thread_id}/messages", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert expected in response.json()["error"]["message"]
    assert client.get(f"{THREADS}/{uuid.uuid4()}").status_code == 404
    assert client.get(f"{THREADS}/not-a-uuid").status_code == 404
    assert client.get(f"{THREADS}?status=sleeping").status_code == 400


def test_the_service_refuses_a_second_message_while_the_first_turn_is_queued(in_a, admin_a):
    thread = thread_create(actor=admin_a, agent_type="copy").thread
    thread_message_send(actor=admin_a, thread_id=thread.pk, message="First.")
    with pytest.raises(Conflict, match="Turn 1 of this thread is still queued"):
        thread_message_send(actor=admin_a, thread_id=thread.pk, message="Second.")
    assert list(AgentRun.objects.filter(thread=thread).values_list("thread_turn", flat=True)) == [1]


def test_the_threads_changelist_lists_visible_threads_with_links_to_their_runs(in_a, admin_a, client_a, assigned):
    from django.test import Client as HttpClient

    from ..conftest import HOST_A

    other = client_create(name="Thames Outfitters", vertical="fashion")
    mine = thread_create(actor=admin_a, agent_type="copy", client_id=client_a.pk, title="Ramadan captions",
                         message="Three captions.")
    execute_run(run_id=str(mine.turn.run.pk), worker="test")
    theirs = thread_create(actor=admin_a, agent_type="brief", client_id=other.pk, title="Thames brief").thread

    def page(user, path):
        http = HttpClient(HTTP_HOST=HOST_A)
        http.force_login(user)
        return http.get(path)

    listed = page(admin_a, "/admin/agents/thread/")
    assert listed.status_code == 200
    html = listed.content.decode()
    assert "Ramadan captions" in html and "Thames brief" in html
    assert f"/admin/agents/agentrun/{mine.turn.run.pk}/change/" in html
    detail = page(admin_a, f"/admin/agents/thread/{mine.thread.pk}/change/")
    assert detail.status_code == 200 and f"/admin/agents/agentrun/{mine.turn.run.pk}/change/" in detail.content.decode()
    manager = assigned("account_manager", client_a)
    scoped = page(manager, "/admin/agents/thread/").content.decode()
    assert "Ramadan captions" in scoped and "Thames brief" not in scoped
    assert page(manager, f"/admin/agents/thread/{theirs.pk}/change/").status_code == 404
