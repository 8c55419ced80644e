"""Keeping clients and their assignments in step with the agency's ERP (#14 build 9): create, update,
archive and unarchive a client, and assign people to it, over the API; every change audited and
reversible; an archived client takes no new runs and drops out of the list, its history stays."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import AgentRun
from spokestack.accounts import policy
from tuning.models import Client, TuningChange
from tuning.services import client_archive, client_rule_add


@pytest.fixture
def world(in_a, make_user, make_client, assigned):
    mine, other = make_client("Mine Cosmetics", vertical="beauty"), make_client("Other Bank", vertical="finance")
    return {"instance": in_a, "mine": mine, "other": other, "admin": make_user("instance_admin"),
            "manager": make_user("instance_manager"), "account_manager": assigned("account_manager", mine),
            "other_account_manager": assigned("account_manager", other),
            "contact": assigned("client_contact", mine)}


@pytest.fixture
def http(world, api):
    return lambda who: api(world["instance"], world[who])


def _entries(**filters):
    return list(TuningChange.objects.filter(**filters).order_by("id"))


# --- create ---------------------------------------------------------------------------------------


def test_an_admin_creates_a_client_and_the_create_is_audited(world, http):
    response = http("admin").post("/api/v1/clients", {"name": "Gulf Home Stores", "vertical": "retail",
                                                      "region": "GCC", "language": "en", "reason": "ERP sync",
                                                      "ticket": "ERP-7"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["slug"], body["vertical"], body["archived_at"]) == (
        "Gulf Home Stores", "gulf-home-stores", "retail", None)
    client = Client.objects.get(pk=body["id"])
    [entry] = _entries(entity="client", entity_id=str(client.pk))
    assert (entry.action, entry.actor, entry.reason, entry.ticket, entry.client_id) == (
        "create", world["admin"], "ERP sync", "ERP-7", client.pk)
    assert entry.new_value == {"name": "Gulf Home Stores", "slug": "gulf-home-stores", "vertical": "retail",
                               "region": "GCC", "language": "en"}
    assert http("admin").get(f"/api/v1/clients/{client.pk}").json()["name"] == "Gulf Home Stores"


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"vertical": "retail"}, 400, "name"),
    ({"name": "X", "vertical": "astrology"}, 400, "vertical"),
    ({"name": "X", "owner": "me"}, 400, "owner: is not a field here"),
    ({"name": "Mine Cosmetics"}, 409, "slug 'mine-cosmetics' already exists"),
])
def test_a_bad_create_is_refused_and_saves_nothing(world, http, body, status, message):
    before = (Client.objects.count(), TuningChange.objects.count())
    response = http("admin").post("/api/v1/clients", body, format="json")
    assert response.status_code == status, response.content
    assert message in response.json()["error"]["message"]
    assert (Client.objects.count(), TuningChange.objects.count()) == before


@pytest.mark.parametrize(("who", "status"), [("manager", 403), ("account_manager", 403), ("contact", 403)])
def test_only_instance_admins_create_clients(world, http, who, status):
    assert http(who).post("/api/v1/clients", {"name": "Sneaky"}, format="json").status_code == status
    assert not Client.objects.filter(name="Sneaky").exists()


def test_rolling_back_a_create_archives_the_client(world, http):
    created = http("admin").post("/api/v1/clients", {"name": "Short Lived"}, format="json").json()
    [entry] = _entries(entity="client", entity_id=str(created["id"]), action="create")
    rolled = http("admin").post(f"/api/v1/tuning/rollback/{entry.pk}", {"reason": "created by mistake"},
                                format="json")
    assert rolled.status_code == 201, rolled.content
    assert (rolled.json()["field"], rolled.json()["old_value"], rolled.json()["rollback_of_id"]) == (
        "archived_at", None, entry.pk)
    assert Client.objects.get(pk=created["id"]).archived_at is not None
    # Rolled back again: 409, the client is archived already.
    assert http("admin").post(f"/api/v1/tuning/rollback/{entry.pk}", format="json").status_code == 409


# --- update (the existing PATCH) ------------------------------------------------------------------


def test_update_is_audited_and_another_clients_account_manager_gets_404_or_403(world, http):
    mine, other = world["mine"], world["other"]
    assert http("admin").patch(f"/api/v1/clients/{mine.pk}", {"region": "EU"}, format="json").status_code == 200
    assert [(e.field, e.old_value, e.new_value) for e in _entries(entity="client", action="update",
                                                                   entity_id=str(mine.pk))] == [("region", "", "EU")]
    outsider = http("other_account_manager")
    assert outsider.get(f"/api/v1/clients/{mine.pk}").status_code == 404
    assert outsider.patch(f"/api/v1/clients/{mine.pk}", {"region": "US"}, format="json").status_code == 403
    assert outsider.get(f"/api/v1/clients/{other.pk}").status_code == 200


# --- archive / unarchive --------------------------------------------------------------------------


def test_archive_hides_the_client_from_the_list_refuses_runs_and_keeps_its_history(world, http):
    mine, admin = world["mine"], http("admin")
    client_rule_add(actor=None, client=mine, kind="never", text="Say cheap")
    response = admin.post(f"/api/v1/clients/{mine.pk}/archive", {"reason": "contract ended", "ticket": "ERP-9"},
                          format="json")
    assert response.status_code == 200, response.content
    archived_at = response.json()["archived_at"]
    assert archived_at is not None
    [entry] = _entries(entity="client", field="archived_at")
    assert (entry.old_value, entry.reason, entry.ticket, entry.actor) == (None, "contract ended", "ERP-9",
                                                                          world["admin"])
    assert Client.objects.get(pk=mine.pk).archived_at.isoformat() == entry.new_value

    assert [c["name"] for c in admin.get("/api/v1/clients").json()["results"]] == ["Other Bank"]
    assert [c["name"] for c in admin.get("/api/v1/clients?archived=true").json()["results"]] == ["Mine Cosmetics"]
    assert admin.get("/api/v1/clients?archived=maybe").status_code == 400
    # Its history stays readable.
    assert admin.get(f"/api/v1/clients/{mine.pk}").json()["archived_at"] == archived_at
    assert [r["text"] for r in admin.get(f"/api/v1/clients/{mine.pk}/rules").json()] == ["Say cheap"]
    assert admin.get(f"/api/v1/clients/{mine.pk}/tuning/audit").status_code == 200

    run = admin.post("/api/v1/agent/execute", {"agent_type": "copy", "task": "Write a caption.",
                                               "client_id": mine.pk}, format="json")
    assert run.status_code == 409, run.content
    assert "Mine Cosmetics is archived" in run.json()["error"]["message"]
    assert AgentRun.objects.filter(client=mine).count() == 0
    # Archiving again changes and records nothing.
    assert admin.post(f"/api/v1/clients/{mine.pk}/archive").json()["archived_at"] == archived_at
    assert len(_entries(entity="client", field="archived_at")) == 1


def test_unarchive_takes_runs_again_and_each_step_rolls_back(world, http):
    mine, admin = world["mine"], http("admin")
    admin.post(f"/api/v1/clients/{mine.pk}/archive")
    response = admin.post(f"/api/v1/clients/{mine.pk}/unarchive", {"reason": "signed again"}, format="json")
    assert response.status_code == 200 and response.json()["archived_at"] is None
    archive, unarchive = _entries(entity="client", field="archived_at")
    assert (unarchive.old_value, unarchive.new_value) == (archive.new_value, None)
    run = admin.post("/api/v1/agent/execute", {"agent_type": "copy", "task": "Write a caption.",
                                               "client_id": mine.pk}, format="json")
    assert run.status_code == 202, run.content
    # The unarchive rolled back: archived again, at the moment it had.
    assert admin.post(f"/api/v1/tuning/rollback/{unarchive.pk}", format="json").status_code == 201
    assert Client.objects.get(pk=mine.pk).archived_at.isoformat() == archive.new_value
    # The client is archived at the archive entry's moment again, so that entry rolls back (unarchive).
    assert admin.post(f"/api/v1/tuning/rollback/{archive.pk}", format="json").status_code == 201
    assert Client.objects.get(pk=mine.pk).archived_at is None
    # Once more: the client is no longer as the archive entry left it: 409 naming both states.
    conflict = admin.post(f"/api/v1/tuning/rollback/{archive.pk}", format="json")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["details"]["current"] is None


@pytest.mark.parametrize("who", ["manager", "account_manager", "contact", "other_account_manager"])
def test_only_instance_admins_archive(world, http, who):
    mine = world["mine"]
    for verb in ("archive", "unarchive"):
        assert http(who).post(f"/api/v1/clients/{mine.pk}/{verb}").status_code == 403
    assert Client.objects.get(pk=mine.pk).archived_at is None


def test_archive_of_a_client_of_another_instance_is_404(world, http, instance_b, make_user, api):
    connection.set_tenant(instance_b)
    b_admin = make_user("instance_admin")
    assert api(instance_b, b_admin).post(f"/api/v1/clients/{world['mine'].pk}/archive").status_code == 404
    connection.set_tenant(world["instance"])
    assert Client.objects.get(pk=world["mine"].pk).archived_at is None


def test_an_archived_clients_run_is_refused_by_the_service_too(world):
    from agents.services import run_create
    from spokestack.errors import Conflict

    client_archive(actor=None, client=world["mine"])
    with pytest.raises(Conflict, match="archived"):
        run_create(actor=world["admin"], agent_type="copy", task="Write.", client_id=world["mine"].pk)


# --- assignments ----------------------------------------------------------------------------------


def test_assignments_are_listed_added_and_removed_with_audit(world, http, make_user):
    mine, manager = world["mine"], http("manager")
    listed = manager.get(f"/api/v1/clients/{mine.pk}/assignments")
    assert listed.status_code == 200
    assert {(a["email"], a["role"]) for a in listed.json()} == {
        (world["account_manager"].email, "account_manager"), (world["contact"].email, "client_contact")}
    newcomer = make_user("account_manager")
    added = manager.post(f"/api/v1/clients/{mine.pk}/assignments", {"user_id": newcomer.pk, "reason": "staffing"},
                         format="json")
    assert added.status_code == 201, added.content
    assert (added.json()["user_id"], added.json()["role"]) == (newcomer.pk, "account_manager")
    policy.forget(newcomer)
    assert policy.can_see_client(newcomer, mine)
    entry = _entries(entity="client_assignment", action="create")[-1]
    assert (entry.entity_id, entry.actor, entry.reason) == (f"{mine.pk}:{newcomer.pk}:account_manager",
                                                            world["manager"], "staffing")
    removed = manager.delete(f"/api/v1/clients/{mine.pk}/assignments/{newcomer.pk}?reason=rotation")
    assert removed.status_code == 204
    policy.forget(newcomer)
    assert not policy.can_see_client(newcomer, mine)
    assert _entries(entity="client_assignment", action="delete")[-1].reason == "rotation"
    assert manager.delete(f"/api/v1/clients/{mine.pk}/assignments/{newcomer.pk}").status_code == 404


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"user_id": 999999}, 404, "No such person"),
    ({}, 400, "user_id"),
    ({"user_id": "ADMIN"}, 400, "role: 'instance_admin' cannot be assigned"),
])
def test_bad_assignments_are_refused(world, http, body, status, message):
    if body.get("user_id") == "ADMIN":
        body = {"user_id": world["admin"].pk}
    before = TuningChange.objects.count()
    response = http("admin").post(f"/api/v1/clients/{world['mine'].pk}/assignments", body, format="json")
    assert response.status_code == status, response.content
    assert message in response.json()["error"]["message"]
    assert TuningChange.objects.count() == before


def test_account_managers_cannot_staff_clients_and_see_no_other_client(world, http, make_user):
    mine, other = world["mine"], world["other"]
    newcomer = make_user("account_manager")
    for who in ("account_manager", "other_account_manager", "contact"):
        assert http(who).get(f"/api/v1/clients/{mine.pk}/assignments").status_code == 403
        assert http(who).post(f"/api/v1/clients/{mine.pk}/assignments", {"user_id": newcomer.pk},
                              format="json").status_code == 403
        assert http(who).delete(
            f"/api/v1/clients/{mine.pk}/assignments/{world['account_manager'].pk}").status_code == 403
    policy.forget(newcomer)
    assert not policy.can_see_client(newcomer, mine) and not policy.can_see_client(newcomer, other)


def test_the_client_list_query_count_is_constant(world, http, make_client):
    admin = http("admin")
    admin.get("/api/v1/clients")
    with CaptureQueriesContext(connection) as few:
        admin.get("/api/v1/clients")
    for i in range(10):
        make_client(f"Client {i}")
    with CaptureQueriesContext(connection) as many:
        assert len(admin.get("/api/v1/clients").json()["results"]) == 12
    assert len(many) == len(few)


def test_anonymous_requests_are_401(world, api):
    anonymous, mine = api(world["instance"]), world["mine"].pk
    for method, path in [("post", "/api/v1/clients"), ("post", f"/api/v1/clients/{mine}/archive"),
                         ("post", f"/api/v1/clients/{mine}/unarchive"), ("get", f"/api/v1/clients/{mine}/assignments"),
                         ("post", f"/api/v1/clients/{mine}/assignments"),
                         ("delete", f"/api/v1/clients/{mine}/assignments/{world['contact'].pk}")]:
        assert getattr(anonymous, method)(path).status_code == 401, (method, path)
    assert Client.objects.get(pk=mine).archived_at is None
