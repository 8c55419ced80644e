"""Memory (issue #16 part 3, tier 3): proposed by a run through the core `remember` tool, decided
by the client's account manager, told to the next run for that client only (as the model
receives it), reversible through the audit log, bounded in size, scoped by the access policy."""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client as HttpClient
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from agents.loop import execute_run
from agents.models import RunStatus
from agents.services import run_create
from tests.browser.support import SCREENSHOTS
from tuning.assembly import assemble_prompt, platform_tier_for
from tuning.models import Client, Memory, TuningChange
from tuning.selectors import memories_for_prompt
from tuning.services import (
    client_create,
    client_rule_add,
    memory_auto_accept_enabled,
    memory_auto_accept_set,
    memory_create,
    memory_propose,
    tuning_rollback,
)

from ..conftest import HOST_A
from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401 - the fixture
from .test_admin_polish import WIDE_FIELDS

FACT = "Always use British spelling."


@pytest.fixture
def world(in_a, make_user, make_client, assigned):
    mine = make_client("Mine Cosmetics", vertical="beauty", region="GCC", language="en")
    other = make_client("Other Bank", vertical="finance")
    client_rule_add(actor=None, client=mine, kind="never", text="Never use urgency language.")
    return {"instance": in_a, "mine": mine, "other": other, "admin": make_user("instance_admin"),
            "am_mine": assigned("account_manager", mine), "am_other": assigned("account_manager", other),
            "contact": assigned("client_contact", mine)}


def _system(request: dict) -> str:
    return "\n\n".join(block["text"] for block in request["system"])


def _run(w, scripted, marker, client, turns=None):  # noqa: F811
    scripted.script(marker, turns or [text_turn("Done.")])
    run = run_create(actor=w["admin"], agent_type="copy", task=f"{marker}: a caption for the spring launch.",
                     client_id=client.pk).run
    assert execute_run(run_id=str(run.pk), worker="w-memory") == RunStatus.SUCCEEDED
    return run, scripted.requests(marker)


def test_a_run_proposes_the_account_manager_accepts_and_only_that_clients_next_run_is_told(world, scripted, api):  # noqa: F811
    w = world
    run, requests = _run(w, scripted, "mem-propose", w["mine"],
                         [tool_turn(("toolu_m1", "remember", {"fact": FACT})), text_turn("Noted.")])
    assert "remember" in [t["name"] for t in requests[0]["tools"]]
    result = requests[-1]["messages"][-1]["content"][0]
    assert result["is_error"] is False and json.loads(result["content"])["status"] == "proposed"
    memory = Memory.objects.get()
    assert (memory.client, memory.text, memory.status, memory.source) == (w["mine"], FACT, "proposed", f"run:{run.pk}")
    # a proposal is told to no run
    _, told = _run(w, scripted, "mem-before", w["mine"])
    assert FACT not in _system(told[0])

    contact, am_other, am_mine = (api(w["instance"], w[k]) for k in ("contact", "am_other", "am_mine"))
    assert contact.get(f"/api/v1/memories?client_id={w['mine'].pk}").json()["results"][0]["text"] == FACT
    refused = contact.post(f"/api/v1/memories/{memory.pk}/accept", format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"]
    assert am_other.post(f"/api/v1/memories/{memory.pk}/accept", format="json").status_code == 404
    assert am_other.get(f"/api/v1/memories/{memory.pk}").status_code == 404
    assert am_other.get("/api/v1/memories").json()["results"] == []
    accepted = am_mine.post(f"/api/v1/memories/{memory.pk}/accept", {"reason": "The client asked."}, format="json")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert accepted.json()["decided_by"] == w["am_mine"].username

    _, mine_next = _run(w, scripted, "mem-mine", w["mine"])
    system = _system(mine_next[0])
    assert FACT in system and system.index("Never use urgency language.") < system.index(FACT)
    _, other_next = _run(w, scripted, "mem-other", w["other"])
    assert FACT not in _system(other_next[0]) and FACT not in json.dumps(other_next[0]["messages"])
    assert Memory.objects.get().use_count == 1
    preview = am_mine.get(f"/api/v1/agents/copy/prompt-preview?client_id={w['mine'].pk}")
    assert preview.status_code == 200 and FACT in json.dumps(preview.json())
    assert Memory.objects.get().use_count == 1, "a preview is no run: it counts no use"

    # rolled back (the accept entry, by the account manager): the next run is no longer told it
    entry = TuningChange.objects.get(entity="memory", entity_id=str(memory.pk), field="status")
    rolled = am_mine.post(f"/api/v1/tuning/rollback/{entry.pk}", {"reason": "Too early."}, format="json")
    assert rolled.status_code == 201, rolled.content
    assert Memory.objects.get().status == "proposed"
    _, after = _run(w, scripted, "mem-after", w["mine"])
    assert FACT not in _system(after[0])
    # the accept cannot be rolled back twice (the memory is no longer what the entry left)
    assert am_mine.post(f"/api/v1/tuning/rollback/{entry.pk}", format="json").status_code == 409


def test_the_offline_model_proposes_a_lasting_preference_and_auto_accept_tells_the_next_run(world, scripted):  # noqa: F811
    w = world
    memory_auto_accept_set(actor=w["admin"], enabled=True, reason="We trust the agents.")
    run = run_create(actor=w["admin"], agent_type="copy", client_id=w["mine"].pk,
                     task="mem-offline: write a caption for the spring launch. Always use British spelling.").run
    assert execute_run(run_id=str(run.pk), worker="w-memory") == RunStatus.SUCCEEDED
    memory = Memory.objects.get()
    assert (memory.text, memory.status, memory.source) == (FACT, "accepted", f"run:{run.pk}")
    _, told = _run(w, scripted, "mem-offline-next", w["mine"])
    assert FACT in _system(told[0])
    # a task without a lasting preference proposes nothing
    run_create_plain = run_create(actor=w["admin"], agent_type="copy", client_id=w["mine"].pk,
                                  task="mem-offline-plain: write a caption for the spring launch.").run
    execute_run(run_id=str(run_create_plain.pk), worker="w-memory")
    assert Memory.objects.count() == 1


def test_people_write_edit_delete_and_every_change_is_audited_and_reversible(world, api):
    w = world
    am = api(w["instance"], w["am_mine"])
    created = am.post("/api/v1/memories", {"client_id": w["mine"].pk, "text": "  Prefers   plain words. "},
                      format="json")
    assert created.status_code == 201 and created.json()["status"] == "accepted"
    memory_id = created.json()["id"]
    assert created.json()["text"] == "Prefers plain words."
    assert am.patch(f"/api/v1/memories/{memory_id}", {"text": "Prefers short words."},
                    format="json").json()["text"] == "Prefers short words."
    assert am.patch(f"/api/v1/memories/{memory_id}", {"status": "accepted"}, format="json").status_code == 400
    assert am.post("/api/v1/memories", {"client_id": w["mine"].pk, "text": "x" * 301}, format="json").status_code == 400
    assert am.delete(f"/api/v1/memories/{memory_id}").status_code == 204
    assert not Memory.objects.filter(pk=memory_id).exists()
    entries = list(TuningChange.objects.filter(entity="memory", entity_id=str(memory_id)).order_by("id"))
    assert [(e.action, e.field) for e in entries] == [("create", ""), ("update", "text"), ("delete", "")]
    assert all(e.actor == w["am_mine"] and e.client == w["mine"] for e in entries)
    tuning_rollback(actor=w["am_mine"], change=entries[-1])
    assert Memory.objects.get(pk=memory_id).text == "Prefers short words."
    # a client contact proposes but cannot write an accepted one; an account manager cannot write agency-wide
    contact = api(w["instance"], w["contact"])
    assert contact.post("/api/v1/memories", {"client_id": w["mine"].pk, "text": "Loves teal."},
                        format="json").status_code == 403
    proposed = contact.post("/api/v1/memories", {"client_id": w["mine"].pk, "text": "Loves teal.",
                                                 "status": "proposed"}, format="json")
    assert proposed.status_code == 201 and proposed.json()["status"] == "proposed"
    assert contact.delete(f"/api/v1/memories/{proposed.json()['id']}").status_code == 403
    assert am.post("/api/v1/memories", {"text": "We are a Dubai agency."}, format="json").status_code == 403
    assert api(w["instance"], w["am_other"]).patch(f"/api/v1/memories/{memory_id}", {"text": "Hijack."},
                                                   format="json").status_code == 404
    assert api(w["instance"], w["am_other"]).delete(f"/api/v1/memories/{memory_id}").status_code == 404
    admin = api(w["instance"], w["admin"])
    agency = admin.post("/api/v1/memories", {"text": "We are a Dubai agency."}, format="json")
    assert agency.status_code == 201 and agency.json()["client_id"] is None
    # agency-wide memories reach every client's runs (and runs without a client)
    copy = platform_tier_for("copy")
    assert "Dubai agency" in assemble_prompt(platform=copy, client=w["other"]).system_text()
    assert "Dubai agency" in assemble_prompt(platform=copy, client=None).system_text()
    assert "Prefers short words" not in assemble_prompt(platform=copy, client=w["other"]).system_text()
    listed = admin.get("/api/v1/memories?status=proposed").json()["results"]
    assert [m["text"] for m in listed] == ["Loves teal."]


def test_another_instance_cannot_see_it(world, api, instance_b, make_user):
    memory = memory_create(actor=None, client=world["mine"], text=FACT)
    connection.set_tenant(instance_b)
    admin_b = make_user("instance_admin")
    b = api(instance_b, admin_b)
    assert b.get("/api/v1/memories").json()["results"] == []
    assert b.get(f"/api/v1/memories/{memory.pk}").status_code == 404
    assert b.post(f"/api/v1/memories/{memory.pk}/accept", format="json").status_code == 404
    assert FACT not in assemble_prompt(platform=platform_tier_for("copy"), client=None).system_text()


def test_the_size_bound_leaves_out_the_least_recently_used_and_the_admin_says_which(world):
    w = world
    old = memory_create(actor=None, client=w["mine"], text="Old fact that nobody has used lately.")
    used = memory_create(actor=None, client=w["mine"], text="A fact runs were told yesterday.")
    new = memory_create(actor=None, client=w["mine"], text="A fact accepted just now.")
    Memory.objects.filter(pk=old.pk).update(decided_at="2026-01-01T00:00:00Z")
    Memory.objects.filter(pk=used.pk).update(decided_at="2026-01-02T00:00:00Z", last_used_at="2026-11-30T00:00Z",
                                             use_count=7)
    limit = len(used.text) + len(new.text) + 6
    with override_settings(MEMORY_PROMPT_MAX_CHARS=limit):
        selection = memories_for_prompt(client=w["mine"])
        assert [m.pk for m in selection.included] == [used.pk, new.pk]  # by id: the order they are told
        assert [m.pk for m in selection.left_out] == [old.pk]
        prompt = assemble_prompt(platform=platform_tier_for("copy"), client=w["mine"])
        assert prompt.memory_left_out == (old.pk,)
        text = prompt.system_text()
        assert used.text in text and new.text in text and old.text not in text
        assert text.index(used.text) < text.index(new.text)
        http = HttpClient(HTTP_HOST=HOST_A)
        http.force_login(w["am_mine"])
        page = http.get(f"/admin/tuning/memory/?client__id__exact={w['mine'].pk}").content.decode()
        assert page.count("told to runs") == 2 and "left out: over the" in page
        client_page = http.get(f"/admin/tuning/client/{w['mine'].pk}/change/").content.decode()
        assert "left out (size bound)" in client_page and old.text in client_page
        assert f"1 accepted memory is left out of prompts: together they are over the {limit}-character bound" \
            in client_page


def test_admin_queue_bulk_accepts_with_a_reason_and_the_client_page_decides_one(world):
    w = world
    first = memory_propose(actor=None, client=w["mine"], text="Oxford comma, always.", source="run:x")
    second = memory_propose(actor=None, client=w["mine"], text="Sign off as 'The team'.", source="run:y")
    foreign = memory_propose(actor=None, client=w["other"], text="Other bank fact.", source="run:z")
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(w["am_mine"])
    page = http.get("/admin/tuning/memory/?status__exact=proposed").content.decode()
    assert first.text in page and foreign.text not in page
    assert "Other Bank" not in page  # the client filter names only the clients of memories one may see
    response = http.post("/admin/tuning/memory/", {"action": "accept_selected", "_selected_action": [first.pk],
                                                   "decision_reason": "Confirmed on the call."})
    assert response.status_code == 302
    first.refresh_from_db()
    assert (first.status, first.decided_by, first.decision_reason) == ("accepted", w["am_mine"],
                                                                      "Confirmed on the call.")
    entry = TuningChange.objects.filter(entity="memory", entity_id=str(first.pk), field="status").get()
    assert entry.reason == "Confirmed on the call."
    client_page = http.get(f"/admin/tuning/client/{w['mine'].pk}/change/").content.decode()
    assert "Sign off as" in client_page and f"/admin/tuning/memory/{second.pk}/reject/" in client_page
    rejected = http.post(f"/admin/tuning/memory/{second.pk}/reject/", {"next": "/admin/tuning/memory/"})
    assert rejected.status_code == 302
    second.refresh_from_db()
    assert second.status == "rejected"
    # the other client's memory: not in this account manager's queue, and its buttons are a 404
    assert http.post(f"/admin/tuning/memory/{foreign.pk}/accept/").status_code == 404
    # a client contact sees the client's memories but may not decide them
    contact = HttpClient(HTTP_HOST=HOST_A)
    contact.force_login(w["contact"])
    assert contact.post(f"/admin/tuning/memory/{second.pk}/accept/").status_code == 403
    contact_page = contact.get(f"/admin/tuning/client/{w['mine'].pk}/change/").content.decode()
    assert "Oxford comma" in contact_page and "/accept/" not in contact_page


def test_a_person_writes_and_edits_a_memory_in_the_admin_through_the_services(world):
    w = world
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(w["am_mine"])
    assert http.get("/admin/tuning/memory/add/").status_code == 200
    added = http.post("/admin/tuning/memory/add/", {"client": w["mine"].pk, "text": "Prefers teal accents.",
                                                     "expires_at_0": "", "expires_at_1": ""})
    assert added.status_code == 302, added.content.decode()[:3000]
    memory = Memory.objects.get()
    assert (memory.status, memory.source, memory.decided_by) == ("accepted", f"person:{w['am_mine'].username}",
                                                                 w["am_mine"])
    page = http.get(f"/admin/tuning/memory/{memory.pk}/change/")
    assert page.status_code == 200 and "told to runs" in page.content.decode()
    changed = http.post(f"/admin/tuning/memory/{memory.pk}/change/", {"text": "Prefers teal accents only.",
                                                                       "expires_at_0": "", "expires_at_1": ""})
    assert changed.status_code == 302, changed.content.decode()[:3000]
    assert Memory.objects.get().text == "Prefers teal accents only."
    assert [(e.action, e.field) for e in TuningChange.objects.filter(entity="memory").order_by("id")] == [
        ("create", ""), ("update", "text")]
    other = HttpClient(HTTP_HOST=HOST_A)
    other.force_login(w["am_other"])
    assert other.get(f"/admin/tuning/memory/{memory.pk}/change/").status_code == 404


def test_an_instance_admin_turns_auto_accept_on_in_the_api_and_off_in_the_admin(world, scripted, api):  # noqa: F811
    w = world
    admin, am_mine, am_other = (api(w["instance"], w[k]) for k in ("admin", "am_mine", "am_other"))
    assert admin.get("/api/v1/tuning").json()["memory_auto_accept"] is False
    assert "memory_auto_accept" not in admin.get("/api/v1/agents/copy/tuning").json()
    # off: the remember tool only proposes, and the next run is not told
    _run(w, scripted, "auto-off", w["mine"], [tool_turn(("toolu_a1", "remember", {"fact": FACT})), text_turn("Noted.")])
    assert Memory.objects.get().status == "proposed"
    _, told = _run(w, scripted, "auto-off-next", w["mine"])
    assert FACT not in _system(told[0])
    # who may change instance tuning may change it; account managers may not
    for refused in (am_mine, am_other):
        response = refused.put("/api/v1/tuning", {"memory_auto_accept": True}, format="json")
        assert response.status_code == 403 and response.json()["error"]["code"]
    assert admin.put("/api/v1/tuning", {"memory_auto_accept": "yes"}, format="json").status_code == 400
    on = admin.put("/api/v1/tuning", {"memory_auto_accept": True, "reason": "We trust the agents."}, format="json")
    assert on.status_code == 200 and on.json()["memory_auto_accept"] is True
    assert admin.get("/api/v1/tuning").json()["memory_auto_accept"] is True
    entry = TuningChange.objects.get(field="memory_auto_accept")
    assert (entry.actor, entry.old_value, entry.new_value, entry.reason) == (w["admin"], False, True,
                                                                             "We trust the agents.")
    # on: the remember tool's fact is accepted at once and told to the client's next run
    fact = "Sign off as 'The Mine team'."
    _run(w, scripted, "auto-on", w["mine"], [tool_turn(("toolu_a2", "remember", {"fact": fact})), text_turn("Noted.")])
    assert Memory.objects.get(text=fact).status == "accepted"
    _, told = _run(w, scripted, "auto-on-next", w["mine"])
    assert fact in _system(told[0]) and FACT not in _system(told[0])

    # the instance tuning page: the setting, explained, saved through the audited service
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(w["admin"])
    url = http.get("/admin/tuning/instancetuning/")["Location"]
    page = http.get(url).content.decode()
    assert "Accept agents&#x27; memories automatically" in page
    assert re.search(r'<input type="checkbox" name="memory_auto_accept"[^>]* checked', page)
    off = http.post(url, {**WIDE_FIELDS, "change_reason": "Proposals wait for a person again."})
    assert off.status_code == 302, off.content.decode()[:2000]
    assert not memory_auto_accept_enabled()
    latest = TuningChange.objects.filter(field="memory_auto_accept").latest("id")
    assert (latest.old_value, latest.new_value, latest.reason) == (True, False, "Proposals wait for a person again.")
    assert "memory auto accept" in http.get(url.replace("/change/", "/history/")).content.decode()
    # reversible: rolling the entry back turns it on again
    assert admin.post(f"/api/v1/tuning/rollback/{latest.pk}", format="json").status_code == 201
    assert memory_auto_accept_enabled()


def test_expired_memories_are_marked_by_beat_shown_as_expired_and_accepted_again_with_a_new_expiry(
        world, scripted, api):  # noqa: F811
    from tuning.tasks import expire_memories

    w = world
    assert settings.CELERY_BEAT_SCHEDULE["expire-memories"]["task"] == "tuning.expire_memories"
    past = timezone.now() - timedelta(minutes=5)
    accepted = memory_create(actor=w["am_mine"], client=w["mine"], text=FACT, expires_at=past)
    proposed = memory_propose(actor=None, client=w["mine"], text="Spring sale copy until May.", source="run:x",
                              expires_at=past)
    lasting = memory_create(actor=None, client=w["mine"], text="Prefers teal accents.")
    am, am_other = api(w["instance"], w["am_mine"]), api(w["instance"], w["am_other"])
    # before beat marks it: left out of the prompt already, and the admin says it expired
    _, told = _run(w, scripted, "expiry-before", w["mine"])
    assert FACT not in _system(told[0]) and lasting.text in _system(told[0])
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(w["am_mine"])
    assert "expired " in http.get(f"/admin/tuning/memory/{accepted.pk}/change/").content.decode()

    assert expire_memories() == 2
    assert expire_memories() == 0
    listed = {m["id"]: m["status"] for m in am.get("/api/v1/memories").json()["results"]}
    assert listed == {accepted.pk: "expired", proposed.pk: "expired", lasting.pk: "accepted"}
    entries = TuningChange.objects.filter(entity="memory", field="status", new_value="expired").order_by("entity_id")
    assert [(e.entity_id, e.actor_label, e.old_value, e.client) for e in entries] == [
        (str(accepted.pk), "system", "accepted", w["mine"]), (str(proposed.pk), "system", "proposed", w["mine"])]
    queue = http.get("/admin/tuning/memory/?status__exact=expired").content.decode()
    assert FACT in queue and "accept it again with a new expiry" in queue and lasting.text not in queue
    passed = http.get("/admin/tuning/memory/?expiry=passed").content.decode()
    assert FACT in passed and proposed.text in passed and lasting.text not in passed

    # accepted again: only with a new expiry in the future (or none), both changes one reversible group
    again = am.post(f"/api/v1/memories/{accepted.pk}/accept", format="json")
    assert again.status_code == 400 and "new expires_at" in again.json()["error"]["message"]
    stale = am.post(f"/api/v1/memories/{accepted.pk}/accept", {"expires_at": past.isoformat()}, format="json")
    assert stale.status_code == 400
    assert am.post(f"/api/v1/memories/{proposed.pk}/reject", {"expires_at": None}, format="json").status_code == 400
    assert am_other.post(f"/api/v1/memories/{accepted.pk}/accept", {"expires_at": None},
                         format="json").status_code == 404
    until = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    renewed = am.post(f"/api/v1/memories/{accepted.pk}/accept", {"expires_at": until.isoformat(),
                                                                  "reason": "Still true this quarter."}, format="json")
    assert renewed.status_code == 200, renewed.json()
    assert renewed.json()["status"] == "accepted" and renewed.json()["expires_at"].startswith(until.strftime("%Y-%m-%d"))
    _, told = _run(w, scripted, "expiry-renewed", w["mine"])
    assert FACT in _system(told[0])
    status_entry, expiry_entry = TuningChange.objects.filter(entity="memory", entity_id=str(accepted.pk),
                                                             actor=w["am_mine"], action="update").order_by("id")
    assert (status_entry.field, expiry_entry.field) == ("status", "expires_at")
    assert status_entry.group is not None and status_entry.group == expiry_entry.group
    assert am.post(f"/api/v1/tuning/rollback/{status_entry.pk}", format="json").status_code == 201
    accepted.refresh_from_db()
    assert (accepted.status, accepted.expires_at) == ("expired", past)
    # an expired memory is never told, and a new proposal of the same fact is a new memory
    assert memory_propose(actor=None, client=w["mine"], text=FACT, source="run:y").pk != accepted.pk


@pytest.mark.live
def test_a_row_lock_is_no_tuning_change_so_the_cached_prompt_serves_it(live_instance, live_db):
    """A thread's message locks its thread row (SELECT … FOR UPDATE) before its run is assembled: the
    lock gives the transaction an id but changes no tuning, so the cached prompt serves it (a
    transaction that records a tuning change keeps its prompt private: test_concurrency.py)."""
    schema = live_instance.instance.schema_name
    with schema_context(schema):
        client = client_create(name="Lock Cosmetics")
        memory_create(actor=None, client=client, text=FACT)
    seen: dict = {}

    def locker() -> None:  # a connection of its own: no inserts of this test's set-up counted on it
        try:
            with schema_context(schema):
                copy = platform_tier_for("copy")
                assemble_prompt(platform=copy, client=client)
                with transaction.atomic():
                    Client.objects.select_for_update().get(pk=client.pk)
                    with CaptureQueriesContext(connection) as queries:
                        seen["told"] = FACT in assemble_prompt(platform=copy, client=client).system_text()
                    seen["queries"] = [q["sql"] for q in queries.captured_queries]
        finally:
            connection.close()

    thread = threading.Thread(target=locker)
    thread.start()
    thread.join(30)
    assert seen["told"] is True
    assert not [sql for sql in seen["queries"] if "tuning_instancetuning" in sql or "SELECT id, text" in sql]


# daphne runs in its own process: as tests/browser/test_tuning_admin.py, it gets the tests' small
# catalog as the fallback (set before the session's daphne starts; a registered catalog still wins).
os.environ.setdefault("TUNING_PLATFORM_CATALOG", "tests.tuning.catalog.CATALOG")


@pytest.mark.browser
@pytest.mark.live
def test_an_account_manager_accepts_a_proposal_on_the_client_page_and_bulk_rejects_in_the_queue(
        live_instance, daphne_server, page):
    from spokestack.accounts.services import user_create
    from tuning.services import client_assign

    from ..conftest import PASSWORD, host_of

    with schema_context(live_instance.instance.schema_name):
        manager = user_create(email="am.memory@agency.example", password=PASSWORD, role="account_manager")
        lumen = client_create(name="Lumen Memory Skin", vertical="beauty", region="GCC")
        client_assign(user=manager, client=lumen, role="account_manager")
        memory_propose(actor=None, client=lumen, text=FACT, source="run:demo")
        memory_propose(actor=None, client=lumen, text="Sign off as 'The Lumen team'.", source="run:demo")
        memory_create(actor=None, client=lumen, text="Prefers teal accents.")
    base = f"http://{host_of(live_instance.instance)}:{daphne_server}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{base}/admin/login/?next=/admin/tuning/client/{lumen.pk}/change/")
    page.fill("#id_username", "am.memory@agency.example")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("ul.memories")
    page.locator("li.memory-proposed", has_text="British spelling").locator("button.memory-accept").click()
    page.wait_for_selector("ul.messagelist")
    panel = page.locator("ul.memories").inner_text()
    assert "told to runs · Always use British spelling." in " ".join(panel.split())
    page.screenshot(path=str(SCREENSHOTS / "memory_client_panel.png"), full_page=True)

    page.goto(f"{base}/admin/tuning/memory/?status__exact=proposed")
    page.locator("#result_list input[name=_selected_action]").first.check()
    page.select_option("select[name=action]", "reject_selected")
    page.fill("input[name=decision_reason]", "Not a lasting preference.")
    page.click("button[name=index]")
    page.wait_for_selector("ul.messagelist")
    assert "1 memory rejected" in page.locator("ul.messagelist").inner_text()
    page.goto(f"{base}/admin/tuning/memory/")
    page.screenshot(path=str(SCREENSHOTS / "memory_changelist.png"), full_page=True)
