"""The team over the API (#14 build 9): list, add with a role, change the role, deactivate — every
change audited and reversible, a role change drops the client assignments the new role cannot hold,
a deactivated person's tokens stop working; the admin's user form goes through the same services."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from spokestack.accounts import policy
from spokestack.accounts.services import role_of, user_update_role
from tuning.models import TuningChange

from ..conftest import HOST_A

User = get_user_model()


@pytest.fixture
def world(in_a, make_user, assigned):
    from tuning.services import client_create

    mine, other = client_create(name="Mine Cosmetics"), client_create(name="Other Bank")
    return {"instance": in_a, "mine": mine, "other": other, "admin": make_user("instance_admin"),
            "manager": make_user("instance_manager"), "account_manager": assigned("account_manager", mine),
            "other_account_manager": assigned("account_manager", other),
            "contact": assigned("client_contact", mine)}


@pytest.fixture
def http(world, api):
    return lambda who: api(world["instance"], world[who] if isinstance(who, str) else who)


def _entries(**filters):
    return list(TuningChange.objects.filter(**filters).order_by("id"))


def test_the_team_is_listed_with_roles_and_assignments_for_managers_only(world, http):
    listed = http("manager").get("/api/v1/users")
    assert listed.status_code == 200
    people = {p["email"]: p for p in listed.json()["results"]}
    am = people[world["account_manager"].email]
    assert (am["role"], am["is_active"], am["assignments"]) == (
        "account_manager", True, [{"client_id": world["mine"].pk, "role": "account_manager"}])
    assert people[world["admin"].email]["role"] == "instance_admin"
    one = http("manager").get(f"/api/v1/users/{world['contact'].pk}")
    assert one.status_code == 200 and one.json()["role"] == "client_contact"
    for who in ("account_manager", "other_account_manager", "contact"):
        assert http(who).get("/api/v1/users").status_code == 403
        assert http(who).get(f"/api/v1/users/{world['account_manager'].pk}").status_code == 403
    assert http("admin").get("/api/v1/users/999999").status_code == 404
    assert HttpClient(HTTP_HOST=HOST_A).get("/api/v1/users").status_code == 401


def test_the_team_list_query_count_is_constant(world, http, make_user, assigned):
    admin = http("admin")
    admin.get("/api/v1/users")
    with CaptureQueriesContext(connection) as few:
        admin.get("/api/v1/users")
    for _ in range(8):
        assigned("account_manager", world["mine"], world["other"])
    with CaptureQueriesContext(connection) as many:
        assert len(admin.get("/api/v1/users").json()["results"]) > 12
    assert len(many) == len(few)


def test_an_admin_adds_a_person_without_a_password_and_it_is_audited(world, http):
    response = http("admin").post("/api/v1/users", {"email": "Layla@Agency.example", "role": "account_manager",
                                                    "first_name": "Layla", "last_name": "Haddad",
                                                    "reason": "new hire", "ticket": "HR-12"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["email"], body["role"], body["has_password"], body["assignments"]) == (
        "layla@agency.example", "account_manager", False, [])
    person = User.objects.get(pk=body["id"])
    assert person.username == "layla@agency.example" and not person.has_usable_password()
    [entry] = _entries(entity="user", entity_id=str(person.pk))
    assert (entry.action, entry.actor, entry.reason, entry.ticket) == ("create", world["admin"], "new hire", "HR-12")
    assert entry.new_value == {"email": "layla@agency.example", "first_name": "Layla", "last_name": "Haddad",
                               "role": "account_manager"}


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"email": "x@example.com", "role": "overlord"}, 400, "role"),
    ({"email": "not-an-address", "role": "client_contact"}, 400, "email"),
    ({"email": "x@example.com", "role": "client_contact", "password": "hunter22"}, 400, "password: is not a field"),
    ({"email": "DUP", "role": "client_contact"}, 409, "already exists"),
])
def test_bad_people_are_refused(world, http, body, status, message):
    if body["email"] == "DUP":
        body = {**body, "email": world["contact"].email}
    before = (User.objects.count(), TuningChange.objects.count())
    response = http("admin").post("/api/v1/users", body, format="json")
    assert response.status_code == status, response.content
    assert message in response.json()["error"]["message"]
    assert (User.objects.count(), TuningChange.objects.count()) == before


@pytest.mark.parametrize("who", ["manager", "account_manager", "other_account_manager", "contact"])
def test_only_instance_admins_manage_people(world, http, who):
    target = world["contact"]
    assert http(who).post("/api/v1/users", {"email": "n@example.com", "role": "client_contact"},
                          format="json").status_code == 403
    assert http(who).patch(f"/api/v1/users/{target.pk}", {"role": "instance_admin"}, format="json").status_code == 403
    assert http(who).delete(f"/api/v1/users/{target.pk}").status_code == 403
    target.refresh_from_db()
    assert role_of(target) == "client_contact" and target.is_active


def test_a_role_change_drops_the_assignments_the_new_role_cannot_hold_and_rolls_back_whole(world, http):
    person, mine = world["account_manager"], world["mine"]
    admin = http("admin")
    response = admin.patch(f"/api/v1/users/{person.pk}", {"role": "client_contact", "reason": "moved to client side"},
                           format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["role"], response.json()["assignments"]) == ("client_contact", [])
    policy.forget(person)
    assert not policy.can_see_client(person, mine)
    [role_entry] = _entries(entity="user_role")
    [dropped] = _entries(entity="client_assignment", action="delete")
    assert (role_entry.field, role_entry.old_value, role_entry.new_value) == ("role", "account_manager",
                                                                               "client_contact")
    assert dropped.entity_id == f"{mine.pk}:{person.pk}:account_manager" and dropped.group == role_entry.group
    assert role_entry.group is not None
    # Rolling back the role change restores the role, then the assignment (one group).
    rolled = admin.post(f"/api/v1/tuning/rollback/{role_entry.pk}", format="json")
    assert rolled.status_code == 201, rolled.content
    fresh = User.objects.get(pk=person.pk)
    assert role_of(fresh) == "account_manager" and policy.can_see_client(fresh, mine)
    # Rolled back twice: the role is no longer what the entry set: 409.
    assert admin.post(f"/api/v1/tuning/rollback/{role_entry.pk}", format="json").status_code == 409


def test_becoming_an_instance_manager_drops_every_assignment(world):
    person = world["contact"]
    user_update_role(actor=world["admin"], user=person, role="instance_manager")
    assert [e.entity_id for e in _entries(entity="client_assignment", action="delete")] == [
        f"{world['mine'].pk}:{person.pk}:client_contact"]
    policy.forget(person)
    assert policy.sees_every_client(person)


def test_deactivation_stops_the_persons_tokens_and_reactivation_or_rollback_restores_them(world, http, api):
    person = world["account_manager"]
    theirs = api(world["instance"], person)
    assert theirs.get("/api/v1/me").status_code == 200
    assert http("admin").delete(f"/api/v1/users/{person.pk}?reason=left").status_code == 204
    assert theirs.get("/api/v1/me").status_code == 401
    person.refresh_from_db()
    assert not person.is_active and User.objects.filter(pk=person.pk).exists()  # never deleted
    [entry] = _entries(entity="user", field="is_active")
    assert (entry.old_value, entry.new_value, entry.reason) == (True, False, "left")
    listed = http("admin").get("/api/v1/users?is_active=false").json()["results"]
    assert [(p["email"], p["assignments"]) for p in listed] == [
        (person.email, [{"client_id": world["mine"].pk, "role": "account_manager"}])]
    assert http("admin").post(f"/api/v1/tuning/rollback/{entry.pk}", format="json").status_code == 201
    assert theirs.get("/api/v1/me").status_code == 200
    assert http("admin").patch(f"/api/v1/users/{person.pk}", {"is_active": False}, format="json").status_code == 200
    assert theirs.get("/api/v1/me").status_code == 401
    assert http("admin").patch(f"/api/v1/users/{person.pk}", {"is_active": True}, format="json").json()["is_active"]
    assert theirs.get(f"/api/v1/clients/{world['mine'].pk}").status_code == 200


def test_the_last_instance_admin_cannot_be_demoted_or_deactivated(world, http):
    admin = world["admin"]
    User.objects.filter(groups__name="instance_admin").exclude(pk=admin.pk).update(is_active=False)
    assert http("admin").patch(f"/api/v1/users/{admin.pk}", {"role": "client_contact"},
                               format="json").status_code == 409
    assert http("admin").delete(f"/api/v1/users/{admin.pk}").status_code == 409
    admin.refresh_from_db()
    assert admin.is_active and role_of(admin) == "instance_admin"


def test_details_change_is_audited_and_rolls_back(world, http):
    person = world["contact"]
    response = http("admin").patch(f"/api/v1/users/{person.pk}", {"last_name": "Haddad", "email": "l@new.example"},
                                   format="json")
    assert response.status_code == 200, response.content
    person.refresh_from_db()
    assert (person.username, person.email, person.last_name) == ("l@new.example", "l@new.example", "Haddad")
    fields = {e.field: e for e in _entries(entity="user", entity_id=str(person.pk), action="update")}
    assert set(fields) == {"email", "last_name"}
    assert http("admin").post(f"/api/v1/tuning/rollback/{fields['last_name'].pk}", format="json").status_code == 201
    person.refresh_from_db()
    assert person.last_name == ""


def test_the_admin_user_form_goes_through_the_audited_services(world):
    person = world["account_manager"]
    browser = HttpClient(HTTP_HOST=HOST_A)
    browser.force_login(world["admin"])
    page = browser.get(f"/admin/auth/user/{person.pk}/change/")
    assert page.status_code == 200 and b'name="role"' in page.content
    response = browser.post(f"/admin/auth/user/{person.pk}/change/", {
        "first_name": "", "last_name": "", "email": person.email, "role": "client_contact"})
    assert response.status_code == 302, response.content[:2000]
    person.refresh_from_db()
    assert role_of(person) == "client_contact" and not person.is_active  # the unchecked box deactivates
    assert [e.entity for e in _entries(entity__in=["user", "user_role", "client_assignment"],
                                       actor=world["admin"])] == ["client_assignment", "user_role", "user"]
    added = browser.post("/admin/auth/user/add/", {"email": "new@example.com", "first_name": "New",
                                                   "last_name": "Person", "role": "client_contact",
                                                   "password1": "", "password2": ""})
    assert added.status_code == 302, added.content[:2000]
    new = User.objects.get(username="new@example.com")
    assert role_of(new) == "client_contact" and not new.has_usable_password()
    assert _entries(entity="user", entity_id=str(new.pk))[0].action == "create"
    again = browser.post("/admin/auth/user/add/", {"email": "NEW@example.com", "role": "client_contact"})
    assert again.status_code == 200 and b"already exists" in again.content
