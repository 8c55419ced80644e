"""#15 finding 6: an instance admin adds a team member in the admin (e-mail, role, clients), the
person gets an invitation e-mail whose link sets their password, and signs in; a person who may not
open the admin is told why instead of "wrong password"; a refusal is the styled 403 page."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client as HttpClient

from spokestack.accounts import policy
from spokestack.accounts.services import role_of
from tuning.models import TuningChange

from ..conftest import HOST_A, PASSWORD

User = get_user_model()
LINK = re.compile(r"http://tenant-a\.localhost/account/welcome/[^/\s]+/[^/\s]+/")


@pytest.fixture
def world(in_a, make_user, assigned):
    from tuning.services import client_create

    mine, other = client_create(name="Mine Cosmetics"), client_create(name="Other Bank")
    return {"mine": mine, "other": other, "admin": make_user("instance_admin"),
            "manager": make_user("instance_manager"), "account_manager": assigned("account_manager", mine),
            "other_account_manager": assigned("account_manager", other)}


def browser_as(user=None) -> HttpClient:
    browser = HttpClient(HTTP_HOST=HOST_A)
    if user is not None:
        browser.force_login(user)
    return browser


def test_an_admin_adds_an_account_manager_with_a_client_and_the_invitation_sets_a_password(
        world, django_capture_on_commit_callbacks):
    browser = browser_as(world["admin"])
    form = browser.get("/admin/auth/user/add/")
    assert form.status_code == 200
    assert b'name="clients"' in form.content and b"Mine Cosmetics" in form.content
    assert b"is_staff" not in form.content and b"password1" not in form.content
    with django_capture_on_commit_callbacks(execute=True):
        added = browser.post("/admin/auth/user/add/", {"email": "Nadia@Agency.example", "first_name": "Nadia",
                                                       "role": "account_manager", "clients": [world["mine"].pk]})
    assert added.status_code == 302, added.content[:3000]
    nadia = User.objects.get(username="nadia@agency.example")
    assert role_of(nadia) == "account_manager" and nadia.is_staff and not nadia.has_usable_password()
    assert list(policy.visible_clients(nadia)) == [world["mine"]]
    entries = TuningChange.objects.filter(actor=world["admin"]).order_by("id")
    assert [e.entity for e in entries] == ["user", "client_assignment"]
    assert len({e.group for e in entries}) == 1 and entries[0].group is not None

    [invitation] = mail.outbox
    assert invitation.to == ["nadia@agency.example"]
    assert "account manager for Mine Cosmetics" in invitation.body
    link = LINK.search(invitation.body).group(0)
    person = browser_as()
    opened = person.get(link, follow=True)
    assert opened.status_code == 200 and b"Choose your password" in opened.content
    set_url = opened.redirect_chain[-1][0]
    done = person.post(set_url, {"new_password1": PASSWORD, "new_password2": PASSWORD}, follow=True)
    assert done.redirect_chain[-1][0].startswith("/admin/login/")
    assert b"Your password is set" in done.content
    signed_in = person.post("/admin/login/?next=/admin/", {"username": "nadia@agency.example", "password": PASSWORD})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/admin/"
    again = browser_as().get(link, follow=True)
    assert b"This link no longer works" in again.content


def test_the_add_form_refuses_clients_for_roles_that_see_every_client(world):
    response = browser_as(world["admin"]).post("/admin/auth/user/add/", {
        "email": "boss@agency.example", "role": "instance_manager", "clients": [world["mine"].pk]})
    assert response.status_code == 200 and b"work on every client" in response.content
    assert not User.objects.filter(username="boss@agency.example").exists() and not mail.outbox


@pytest.mark.parametrize("who", ["manager", "account_manager", "other_account_manager"])
def test_only_those_who_manage_people_may_add_or_invite(world, who):
    browser = browser_as(world[who])
    refused = browser.get("/admin/auth/user/add/")
    assert refused.status_code == 403
    assert b'id="forbidden-reason"' in refused.content and b"site-name" in refused.content
    posted = browser.post("/admin/auth/user/add/", {"email": "sneaky@agency.example", "role": "account_manager",
                                                   "clients": [world["other"].pk]})
    assert posted.status_code == 403 and not User.objects.filter(username="sneaky@agency.example").exists()
    invite = browser.post("/admin/auth/user/", {"action": "send_invitation",
                                                "_selected_action": [world["account_manager"].pk]})
    assert invite.status_code == 403 and not mail.outbox


def test_the_403_page_is_styled_and_says_why(world):
    page = browser_as(world["account_manager"]).get("/admin/auth/user/")
    assert page.status_code == 403
    text = page.content.decode()
    assert "Your role does not allow you to see the people of this instance." in text
    assert 'id="site-name"' in text and "admin/css/base.css" in text and "403 Forbidden" not in text


def test_the_send_action_mails_a_fresh_set_password_link(world):
    response = browser_as(world["admin"]).post("/admin/auth/user/", {
        "action": "send_invitation", "_selected_action": [world["account_manager"].pk]}, follow=True)
    assert response.status_code == 200 and b"Set-password link e-mailed" in response.content
    [invitation] = mail.outbox
    assert invitation.to == [world["account_manager"].email] and LINK.search(invitation.body)


def test_a_person_without_a_role_is_told_why_not_that_the_password_is_wrong(world):
    loner = User.objects.create_user(username="loner@agency.example", email="loner@agency.example",
                                     password=PASSWORD)
    response = browser_as().post("/admin/login/", {"username": "loner@agency.example", "password": PASSWORD})
    text = response.content.decode()
    assert response.status_code == 200 and "has no role in this instance" in text
    assert "correct username and password" not in text
    wrong = browser_as().post("/admin/login/", {"username": "loner@agency.example", "password": "nope"})
    assert "Please enter the correct" in wrong.content.decode()
    assert not loner.groups.exists()


def test_the_migration_makes_every_person_with_a_role_staff(world):
    from importlib import import_module

    from django.apps import apps

    person = world["account_manager"]
    User.objects.filter(pk=person.pk).update(is_staff=False)
    migration = import_module("spokestack.accounts.migrations.0002_people_with_a_role_are_staff")
    migration.staff_for_every_role(apps, None)
    person.refresh_from_db()
    assert person.is_staff and Group.objects.filter(user=person, name="account_manager").exists()
