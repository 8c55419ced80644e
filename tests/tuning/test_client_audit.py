"""Client details (name, slug, vertical, region, language) are audited and reversible like tuning."""

import pytest
from django.db import connection
from django.test import Client as HttpClient

from spokestack.errors import NotAllowed
from tuning.models import Client, TuningChange
from tuning.services import client_update

from ..conftest import HOST_A


@pytest.fixture
def world(in_a, make_user, make_client, assigned):
    mine = make_client("Mine Cosmetics", vertical="beauty", region="GCC", language="en")
    return {"instance": in_a, "mine": mine, "admin": make_user("instance_admin"),
            "manager": make_user("instance_manager"), "account_manager": assigned("account_manager", mine),
            "client_contact": assigned("client_contact", mine)}


def _entries(client):
    # The client's field changes (its create entry, written by client_create, is tested in test_clients_api.py).
    return list(TuningChange.objects.filter(entity="client", entity_id=str(client.pk), action="update")
                .order_by("id"))


def test_an_edit_records_one_entry_per_changed_field(world):
    mine, admin = world["mine"], world["admin"]
    client_update(actor=admin, client=mine, changes={"vertical": "fashion"}, reason="new brand line",
                  ticket="OPS-31")
    [entry] = _entries(mine)
    assert (entry.tier, entry.action, entry.field) == (3, "update", "vertical")
    assert (entry.old_value, entry.new_value, entry.actor, entry.actor_label) == ("beauty", "fashion", admin,
                                                                               admin.get_username())
    assert (entry.reason, entry.ticket, entry.client_id, entry.affected_clients) == (
        "new brand line", "OPS-31", mine.pk, [mine.pk])
    assert Client.objects.get(pk=mine.pk).vertical == "fashion"


def test_unchanged_fields_record_nothing(world):
    mine, admin = world["mine"], world["admin"]
    client_update(actor=admin, client=mine, changes={"vertical": "beauty", "region": "GCC", "name": mine.name})
    assert _entries(mine) == []
    client_update(actor=admin, client=mine, changes={"vertical": "beauty", "region": "EU"})
    assert [(e.field, e.old_value, e.new_value) for e in _entries(mine)] == [("region", "GCC", "EU")]


def test_an_invalid_edit_saves_and_records_nothing(world):
    mine, admin = world["mine"], world["admin"]
    before = TuningChange.objects.count()
    with pytest.raises(Exception, match="vertical"):
        client_update(actor=admin, client=mine, changes={"vertical": "astrology"})
    assert TuningChange.objects.count() == before and Client.objects.get(pk=mine.pk).vertical == "beauty"


@pytest.mark.parametrize("role", ["manager", "account_manager", "client_contact"])
def test_only_instance_admins_edit_details(world, role):
    mine = world["mine"]
    with pytest.raises(NotAllowed):
        client_update(actor=world[role], client=mine, changes={"vertical": "fashion"})
    assert _entries(mine) == [] and Client.objects.get(pk=mine.pk).vertical == "beauty"


def test_rollback_restores_the_value_and_is_audited(world, api):
    mine, admin = world["mine"], world["admin"]
    client_update(actor=admin, client=mine, changes={"vertical": "fashion", "language": "ar"})
    vertical = next(e for e in _entries(mine) if e.field == "vertical")
    http = api(world["instance"], admin)
    history = http.get(f"/api/v1/clients/{mine.pk}/tuning/audit").json()["results"]
    assert {(e["field"], e["old_value"], e["new_value"]) for e in history if e["entity"] == "client"
            and e["action"] == "update"} == {
        ("vertical", "beauty", "fashion"), ("language", "en", "ar")}
    rolled = http.post(f"/api/v1/tuning/rollback/{vertical.pk}", {"reason": "wrong client"}, format="json")
    assert rolled.status_code == 201, rolled.content
    body = rolled.json()
    assert (body["rollback_of_id"], body["field"], body["old_value"], body["new_value"], body["reason"]) == (
        vertical.pk, "vertical", "fashion", "beauty", "wrong client")
    fresh = Client.objects.get(pk=mine.pk)
    assert (fresh.vertical, fresh.language) == ("beauty", "ar")  # only the rolled-back field
    assert http.get(f"/api/v1/clients/{mine.pk}").json()["vertical"] == "beauty"


def test_rollback_after_a_later_change_is_409_and_changes_nothing(world, api):
    mine, admin = world["mine"], world["admin"]
    client_update(actor=admin, client=mine, changes={"vertical": "fashion"})
    [first] = _entries(mine)
    client_update(actor=admin, client=mine, changes={"vertical": "retail"})
    before = TuningChange.objects.count()
    response = api(world["instance"], admin).post(f"/api/v1/tuning/rollback/{first.pk}", format="json")
    assert response.status_code == 409
    details = response.json()["error"]["details"]
    assert (details["current"], details["expected"], details["restore"]) == ("retail", "fashion", "beauty")
    assert TuningChange.objects.count() == before and Client.objects.get(pk=mine.pk).vertical == "retail"


def test_rollback_needs_the_right_to_edit_details(world, api):
    mine = world["mine"]
    client_update(actor=world["admin"], client=mine, changes={"vertical": "fashion"})
    [entry] = _entries(mine)
    response = api(world["instance"], world["manager"]).post(f"/api/v1/tuning/rollback/{entry.pk}", format="json")
    assert response.status_code == 403
    assert Client.objects.get(pk=mine.pk).vertical == "fashion" and len(_entries(mine)) == 1


def test_instance_b_cannot_see_or_roll_back_the_entry(world, api, instance_b, make_user):
    mine = world["mine"]
    client_update(actor=world["admin"], client=mine, changes={"vertical": "fashion"})
    [entry] = _entries(mine)
    connection.set_tenant(instance_b)
    assert not TuningChange.objects.filter(pk=entry.pk).exists()
    b = api(instance_b, make_user("instance_admin"))
    assert all(e["entity"] != "client" for e in b.get("/api/v1/tuning/audit").json()["results"])
    assert b.post(f"/api/v1/tuning/rollback/{entry.pk}", format="json").status_code == 404
    connection.set_tenant(world["instance"])
    assert Client.objects.get(pk=mine.pk).vertical == "fashion" and len(_entries(mine)) == 1


def _management():
    data = {}
    for prefix in ("tunings", "rules", "examples"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0", f"{prefix}-MIN_NUM_FORMS": "0",
                     f"{prefix}-MAX_NUM_FORMS": "1000"})
    return data


def _details(client, **changes):
    return {"name": client.name, "slug": client.slug, "vertical": client.vertical, "region": client.region,
            "language": client.language, **_management(), **changes}


def test_the_admin_edit_is_audited_and_shown_in_history(world):
    mine, admin = world["mine"], world["admin"]
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(admin)
    saved = http.post(f"/admin/tuning/client/{mine.pk}/change/", _details(mine, vertical="food"))
    assert saved.status_code == 302
    [entry] = _entries(mine)
    assert (entry.field, entry.old_value, entry.new_value, entry.actor) == ("vertical", "beauty", "food", admin)
    history = http.get(f"/admin/tuning/client/{mine.pk}/history/")
    assert history.status_code == 200 and b"client details" in history.content
    http.post(f"/admin/tuning/tuningchange/{entry.pk}/rollback/", {"reason": "typo"})
    assert Client.objects.get(pk=mine.pk).vertical == "beauty"
    assert TuningChange.objects.latest("id").rollback_of_id == entry.pk


def test_the_admin_does_not_let_an_account_manager_edit_details(world):
    mine = world["mine"]
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(world["account_manager"])
    http.post(f"/admin/tuning/client/{mine.pk}/change/", _details(mine, vertical="food"))
    assert Client.objects.get(pk=mine.pk).vertical == "beauty" and _entries(mine) == []
