# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""The conversation in the admin (issue #16 part 4): a thread turn's run page shows the turns
before it and a Reply box once the turn has finished; Reply starts the next turn (what the model
is sent carries the conversation so far); a refusal (a turn still running, a closed thread) is a
message on the page, not an error page; Close thread; "Continue in a thread" on a succeeded run
(the admin and POST /api/v1/agent/runs/{id}/thread); who may do what; the Threads changelist.

The loop runs in-process (execute_run) through the real anthropic SDK against the session's fake
Messages API, which answers unscripted requests with the offline model.
"""

import uuid

from django.db import connection
from django.test import Client as HttpClient
from django.utils.html import escape

from agents.loop import execute_run
from agents.models import AgentRun, RunStatus, Thread
from agents.services import run_create
from agents.threads import thread_close, thread_create, thread_message_send
from tuning.services import client_archive, client_create

from ..conftest import HOST_A, HOST_B
from ..skills.conftest import admin_a, client_a, scripted  # noqa: F401


def signed_in(user, host=HOST_A):
    http = HttpClient(HTTP_HOST=host)
    http.force_login(user)
    return http


def run_page(run_id) -> str:
    return f"/admin/agents/agentrun/{run_id}/change/"


def marked(text: str) -> tuple[str, str]:
    marker = f"[adm-thread-{uuid.uuid4().hex[:8]}]"
    return marker, f"{text} {marker}"


def finished_turn(admin, client, task) -> AgentRun:
    created = thread_create(actor=admin, agent_type="copy", client_id=client.pk, message=task)
    assert execute_run(run_id=str(created.turn.run.pk), worker="test") == RunStatus.SUCCEEDED
    return AgentRun.objects.get(pk=created.turn.run.pk)


def user_text(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


def test_reply_starts_the_next_turn_and_its_page_shows_the_conversation(admin_a, client_a, scripted):
    marker, task = marked("Write an Instagram caption for the Ramadan glow collection.")
    turn1 = finished_turn(admin_a, client_a, task)
    http = signed_in(admin_a)
    page = http.get(run_page(turn1.pk)).content.decode()
    assert 'id="thread-reply"' in page and "Message (turn 1)" in page and "Close thread" in page
    assert "Continue in a thread" not in page and 'id="thread-conversation"' not in page

    sent = http.post(f"/admin/agents/agentrun/{turn1.pk}/reply/", {"message": "Make it shorter."})
    turn2 = AgentRun.objects.get(thread=turn1.thread, thread_turn=2)
    assert sent.status_code == 302 and sent.url == run_page(turn2.pk)
    assert turn2.task == "Make it shorter." and turn2.created_by == admin_a and turn2.metadata == {"source": "admin"}
    page = http.get(sent.url).content.decode()
    assert "Sent: turn 2 started." in page and "Conversation so far" in page
    assert 'data-turn="1" data-status="succeeded"' in page and f'href="{run_page(turn1.pk)}"' in page
    answer = next(line for line in turn1.output.splitlines()[1:] if line.strip())
    assert escape(answer[:30]) in page  # turn 1's answer, above the new turn
    assert 'id="thread-wait"' in page and 'id="thread-reply"' not in page  # the turn has not finished

    assert execute_run(run_id=str(turn2.pk), worker="test") == RunStatus.SUCCEEDED
    # What the model was sent for turn 2: turn 1's answer, then the reply.
    request = scripted.requests(marker)[-1]
    assert user_text(request["messages"][-1]).startswith("Make it shorter.")
    assert [m for m in request["messages"] if m["role"] == "assistant"][-1]["content"][0]["text"] == turn1.output
    page = http.get(run_page(turn2.pk)).content.decode()
    assert 'id="thread-reply"' in page and "turn 2 of 2" in page
    earlier = http.get(run_page(turn1.pk)).content.decode()
    assert 'id="thread-later"' in earlier and f'href="{run_page(turn2.pk)}"' in earlier
    assert 'id="thread-reply"' not in earlier  # one reply box per thread: on its latest turn


def test_a_refused_reply_is_a_message_and_its_text_waits_for_the_next_reply_box(admin_a, client_a):
    turn1 = finished_turn(admin_a, client_a, "A tagline for the glow serum.")
    turn2 = thread_message_send(actor=admin_a, thread_id=turn1.thread_id, message="Another one.").run
    http = signed_in(admin_a)
    # Sent from turn 1's page (another tab) while turn 2 is still queued: 409, shown as a message.
    refused = http.post(f"/admin/agents/agentrun/{turn1.pk}/reply/", {"message": "Shorter, with an emoji."},
                        follow=True)
    assert refused.status_code == 200 and refused.redirect_chain == [(run_page(turn1.pk), 302)]
    page = refused.content.decode()
    assert "Turn 2 of this thread is still queued" in page and 'class="error"' in page
    assert AgentRun.objects.filter(thread=turn1.thread).count() == 2
    execute_run(run_id=str(turn2.pk), worker="test")
    page = http.get(run_page(turn2.pk)).content.decode()
    assert ">Shorter, with an emoji.</textarea>" in page  # what was typed is not lost
    assert ">Shorter, with an emoji.</textarea>" not in http.get(run_page(turn2.pk)).content.decode()

    empty = http.post(f"/admin/agents/agentrun/{turn2.pk}/reply/", {"message": "  "}, follow=True)
    assert "Message: describe what the agent should do." in empty.content.decode()  # (capitalised)

    thread_close(actor=admin_a, thread_id=turn1.thread_id)
    closed = http.post(f"/admin/agents/agentrun/{turn2.pk}/reply/", {"message": "Hello?"}, follow=True)
    assert closed.status_code == 200
    page = closed.content.decode()
    assert "takes no more messages; start a new thread." in page and 'id="thread-closed"' in page
    assert 'id="thread-reply"' not in page and AgentRun.objects.filter(thread=turn1.thread).count() == 2


def test_a_thread_whose_version_is_gone_refuses_the_reply_with_a_message(admin_a, client_a):
    turn1 = finished_turn(admin_a, client_a, "A tagline.")
    Thread.objects.filter(pk=turn1.thread_id).update(agent_version="0.0.1")  # a version no longer shipped
    answer = signed_in(admin_a).post(f"/admin/agents/agentrun/{turn1.pk}/reply/", {"message": "Shorter."},
                                     follow=True)
    assert answer.status_code == 200
    assert "Copy 0.0.1, the version this thread runs, is no longer available" in answer.content.decode()
    assert AgentRun.objects.filter(thread_id=turn1.thread_id).count() == 1


def test_close_thread_from_the_run_page(admin_a, client_a):
    turn1 = finished_turn(admin_a, client_a, "A tagline.")
    http = signed_in(admin_a)
    closed = http.post(f"/admin/agents/agentrun/{turn1.pk}/close-thread/", follow=True)
    assert closed.redirect_chain == [(run_page(turn1.pk), 302)]
    page = closed.content.decode()
    assert "Thread closed: it takes no more messages" in page and 'id="thread-closed"' in page
    assert 'id="thread-reply"' not in page and "Close thread" not in page
    assert Thread.objects.get(pk=turn1.thread_id).status == "closed"
    again = http.post(f"/admin/agents/agentrun/{turn1.pk}/close-thread/", follow=True)
    assert "The thread is already closed." in again.content.decode()
    assert http.get(f"/admin/agents/agentrun/{turn1.pk}/close-thread/").status_code == 405


def test_continue_a_finished_run_in_a_thread(admin_a, client_a, scripted):
    marker, task = marked("Three captions for the Ramadan glow collection.")
    run = run_create(actor=admin_a, agent_type="copy", task=task, client_id=client_a.pk,
                     specialization={"language": "en"}).run
    http = signed_in(admin_a)
    assert "Continue in a thread" not in http.get(run_page(run.pk)).content.decode()  # not finished yet
    assert execute_run(run_id=str(run.pk), worker="test") == RunStatus.SUCCEEDED
    page = http.get(run_page(run.pk)).content.decode()
    assert 'id="thread-continue"' in page and 'id="thread-reply"' not in page

    continued = http.post(f"/admin/agents/agentrun/{run.pk}/continue/", follow=True)
    assert continued.redirect_chain == [(run_page(run.pk), 302)]
    page = continued.content.decode()
    assert "Continued in a thread: this run is its turn 1. Reply below." in page
    assert 'id="thread-reply"' in page and 'id="thread-continue"' not in page and "turn 1 of 1" in page
    run.refresh_from_db()
    thread = run.thread
    assert run.thread_turn == 1 and thread.turns_count == 1 and thread.status == "open"
    assert (thread.agent_type, thread.agent_version, thread.client, thread.specialization, thread.created_by) == (
        "copy", run.agent_version, client_a, {"language": "en"}, admin_a)
    assert thread.title.startswith("Three captions")

    again = http.post(f"/admin/agents/agentrun/{run.pk}/continue/", follow=True)  # a second click
    assert "is a turn of the thread" in again.content.decode() and Thread.objects.count() == 1

    sent = http.post(f"/admin/agents/agentrun/{run.pk}/reply/", {"message": "Make it shorter."})
    turn2 = AgentRun.objects.get(thread=thread, thread_turn=2)
    assert sent.url == run_page(turn2.pk)
    assert execute_run(run_id=str(turn2.pk), worker="test") == RunStatus.SUCCEEDED
    request = scripted.requests(marker)[-1]
    assert [m for m in request["messages"] if m["role"] == "assistant"][-1]["content"][0]["text"] == run.output
    turn2.refresh_from_db()
    assert "Shorter version of my previous answer (turn 1" in turn2.output


def test_only_a_succeeded_run_can_be_continued(admin_a, client_a):
    queued = run_create(actor=admin_a, agent_type="copy", task="A tagline.", client_id=client_a.pk).run
    http = signed_in(admin_a)
    refused = http.post(f"/admin/agents/agentrun/{queued.pk}/continue/", follow=True)
    assert refused.status_code == 200
    assert "Only a succeeded run can be continued in a thread; this one is queued" in refused.content.decode()
    assert not Thread.objects.exists()
    from agents.services import run_cancel

    run_cancel(actor=admin_a, run=queued)
    page = http.post(f"/admin/agents/agentrun/{queued.pk}/continue/", follow=True).content.decode()
    assert "this one is cancelled: start a new run or thread instead." in page and "Continue in a thread" not in page


def test_a_run_of_an_archived_client_is_not_continued(admin_a, client_a):
    run = run_create(actor=admin_a, agent_type="copy", task="A tagline.", client_id=client_a.pk).run
    execute_run(run_id=str(run.pk), worker="test")
    client_archive(actor=admin_a, client=client_a, reason="contract ended")
    page = signed_in(admin_a).post(f"/admin/agents/agentrun/{run.pk}/continue/", follow=True).content.decode()
    assert "is archived" in page and not Thread.objects.exists()


def test_a_client_contact_follows_the_conversation_but_cannot_reply_close_or_continue(admin_a, client_a, assigned):
    turn1 = finished_turn(admin_a, client_a, "A tagline.")
    lone = run_create(actor=admin_a, agent_type="copy", task="Another tagline.", client_id=client_a.pk).run
    execute_run(run_id=str(lone.pk), worker="test")
    contact = signed_in(assigned("client_contact", client_a))
    page = contact.get(run_page(turn1.pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Message (turn 1)" in html and 'id="thread-reply"' not in html and "Close thread" not in html
    assert "Continue in a thread" not in contact.get(run_page(lone.pk)).content.decode()
    for path in (f"/admin/agents/agentrun/{turn1.pk}/reply/", f"/admin/agents/agentrun/{turn1.pk}/close-thread/",
                 f"/admin/agents/agentrun/{lone.pk}/continue/"):
        assert contact.post(path, {"message": "Hi."}).status_code == 403, path
    assert AgentRun.objects.filter(thread=turn1.thread).count() == 1 and Thread.objects.count() == 1
    assert Thread.objects.get().status == "open"


def test_another_clients_account_manager_gets_404_everywhere(admin_a, client_a, assigned):
    other = client_create(name="Thames Outfitters", vertical="fashion")
    turn1 = finished_turn(admin_a, client_a, "A tagline.")
    lone = run_create(actor=admin_a, agent_type="copy", task="Another tagline.", client_id=client_a.pk).run
    execute_run(run_id=str(lone.pk), worker="test")
    outsider = signed_in(assigned("account_manager", other))
    assert outsider.get(run_page(turn1.pk)).status_code == 404
    for path in (f"/admin/agents/agentrun/{turn1.pk}/reply/", f"/admin/agents/agentrun/{turn1.pk}/close-thread/",
                 f"/admin/agents/agentrun/{lone.pk}/continue/"):
        assert outsider.post(path, {"message": "Hi."}).status_code == 404, path
    assert AgentRun.objects.filter(thread=turn1.thread).count() == 1 and Thread.objects.count() == 1
    # their own account manager may do all of it
    mine = signed_in(assigned("account_manager", client_a))
    assert mine.post(f"/admin/agents/agentrun/{lone.pk}/continue/").status_code == 302
    assert mine.post(f"/admin/agents/agentrun/{turn1.pk}/reply/", {"message": "Shorter."}).status_code == 302
    assert AgentRun.objects.filter(thread=turn1.thread).count() == 2


# --- the API ------------------------------------------------------------------------------------


def test_continue_a_run_in_a_thread_through_the_api(in_a, admin_a, client_a, api, assigned):
    run = run_create(actor=admin_a, agent_type="copy", task="A tagline.", client_id=client_a.pk).run
    client = api(in_a, admin_a)
    early = client.post(f"/api/v1/agent/runs/{run.pk}/thread")
    assert early.status_code == 409 and "this one is queued" in early.json()["error"]["message"]
    execute_run(run_id=str(run.pk), worker="test")
    other = client_create(name="Thames Outfitters", vertical="fashion")
    outsider = api(in_a, assigned("account_manager", other))
    assert outsider.post(f"/api/v1/agent/runs/{run.pk}/thread").status_code == 404
    contact = api(in_a, assigned("client_contact", client_a))
    assert contact.post(f"/api/v1/agent/runs/{run.pk}/thread").status_code == 403
    assert api(in_a).post(f"/api/v1/agent/runs/{run.pk}/thread").status_code == 401
    assert not Thread.objects.exists()

    created = client.post(f"/api/v1/agent/runs/{run.pk}/thread")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["agent_type"], body["agent_version"], body["client_id"], body["turns"], body["status"]) == (
        "copy", run.agent_version, client_a.pk, 1, "open")
    assert [(m["role"], m["turn"], m["run_id"]) for m in body["messages"]] == [
        ("user", 1, str(run.pk)), ("assistant", 1, str(run.pk))]
    again = client.post(f"/api/v1/agent/runs/{run.pk}/thread")
    assert again.status_code == 200 and again.json()["thread_id"] == body["thread_id"]
    sent = client.post(f"/api/v1/threads/{body['thread_id']}/messages", {"message": "Shorter."}, format="json")
    assert sent.status_code == 202 and sent.json()["thread_turn"] == 2
    assert client.post(f"/api/v1/agent/runs/{uuid.uuid4()}/thread").status_code == 404


def test_another_instance_cannot_continue_a_run(in_a, admin_a, api, instance_b, make_user):
    run = run_create(actor=admin_a, agent_type="copy", task="A tagline.").run
    execute_run(run_id=str(run.pk), worker="test")
    connection.set_tenant(instance_b)
    admin_b = make_user("instance_admin")
    assert api(instance_b, admin_b).post(f"/api/v1/agent/runs/{run.pk}/thread").status_code == 404
    assert signed_in(admin_b, HOST_B).post(f"/admin/agents/agentrun/{run.pk}/continue/").status_code == 404
    connection.set_tenant(in_a)
    assert not Thread.objects.exists()


# --- the Threads changelist ------------------------------------------------------------------


def test_each_thread_in_the_changelist_opens_its_latest_turn(admin_a, client_a):
    turn1 = finished_turn(admin_a, client_a, "A tagline.")
    turn2 = thread_message_send(actor=admin_a, thread_id=turn1.thread_id, message="Shorter.").run
    empty = thread_create(actor=admin_a, agent_type="brief", client_id=client_a.pk, title="Empty brief").thread
    http = signed_in(admin_a)
    page = http.get("/admin/agents/thread/").content.decode()
    assert f'<a href="{run_page(turn2.pk)}" class="thread-conversation"' in page
    assert f'href="/admin/agents/thread/{empty.pk}/change/"' in page
    filtered = http.get("/admin/agents/thread/?agent_type=brief").content.decode()
    assert "Empty brief" in filtered and run_page(turn2.pk) not in filtered
    assert "Copy" in page or "copy" in page  # the agent filter offers the agents by title
    assert http.get("/admin/agents/thread/?status__exact=closed").status_code == 200


# --- two clicks at once --------------------------------------------------------------------


def test_two_continues_at_once_open_one_thread(live_instance):
    """Real threads against real PostgreSQL: the run row's lock lets one open the thread; the other
    waits, then answers the same thread."""
    import threading

    from django.db import connections
    from django_tenants.utils import schema_context

    from agents.threads import thread_continue_from_run

    from ..conftest import wait_for

    schema, admin = live_instance.instance.schema_name, live_instance.admin
    with schema_context(schema):
        run = run_create(actor=admin, agent_type="copy", task="A tagline for the glow serum.").run
        execute_run(run_id=str(run.pk), worker="test")  # (or the session's worker, if one runs)
        wait_for(lambda: AgentRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED)
    barrier, answers = threading.Barrier(2), []

    def click():
        try:
            with schema_context(schema):
                barrier.wait(5)
                answers.append(thread_continue_from_run(actor=admin, run_id=run.pk))
        finally:
            connections.close_all()

    clicks = [threading.Thread(target=click) for _ in range(2)]
    for t in clicks:
        t.start()
    for t in clicks:
        t.join(30)
    assert sorted(a.created for a in answers) == [False, True]
    assert answers[0].thread.pk == answers[1].thread.pk
    with schema_context(schema):
        assert Thread.objects.count() == 1
        run.refresh_from_db()
        assert (run.thread_id, run.thread_turn) == (answers[0].thread.pk, 1)
    connection.set_schema_to_public()
