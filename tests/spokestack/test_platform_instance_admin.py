"""Platform → Add instance: the form validates, provisioning happens once after it is valid, and
the new admin's password is shown on one page, once, to the person who created the instance."""

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django_tenants.utils import schema_context, schema_exists

from spokestack.tenancy.models import Domain, Instance

from ..conftest import HOST_A, PASSWORD

ADD = "/admin/tenancy/instance/add/"
PASSWORD_FIELD = re.compile(r'id="admin-password"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*id="admin-password"')


def _staff(email):
    connection.set_schema_to_public()
    return get_user_model().objects.create_superuser(email, email, PASSWORD)


@pytest.fixture
def platform_client(db, client):
    client.force_login(_staff("ops@platform.example"))
    return client


def _add_form(**overrides):
    return {"name": "Acme Agency", "domain": "acme-admin.localhost", "admin_email": "Boss@Acme.example",
            "schema_name": "", "tier": "starter", "region": "GCC", "language": "en", "timezone": "Asia/Dubai",
            "_save": "Save", **overrides}


def _password_on(page: str) -> str | None:
    match = PASSWORD_FIELD.search(page)
    return (match.group(1) or match.group(2)) if match else None


def test_adding_an_instance_provisions_it_once_and_shows_the_password_once(platform_client):
    before = Instance.objects.count()
    response = platform_client.post(ADD, _add_form(), HTTP_HOST="localhost")

    instance = Instance.objects.get(name="Acme Agency")
    assert Instance.objects.count() == before + 1
    assert response.status_code == 302 and response["Location"] == f"/admin/tenancy/instance/{instance.pk}/created/"
    assert instance.schema_name == "acme_admin" and schema_exists("acme_admin")
    assert instance.timezone == "Asia/Dubai" and instance.region == "GCC"
    assert Domain.objects.get(tenant=instance).domain == "acme-admin.localhost"

    first = platform_client.get(response["Location"], HTTP_HOST="localhost")
    page = first.content.decode()
    password = _password_on(page)
    assert first.status_code == 200 and password, page[:3000]
    assert "shown only this once" in page and "boss@acme.example" in page
    assert "no-store" in first["Cache-Control"]
    with schema_context("acme_admin"):
        admin = get_user_model().objects.get(username="boss@acme.example")
        assert admin.check_password(password) and admin.is_staff
        assert admin.groups.filter(name="instance_admin").exists()

    second = platform_client.get(response["Location"], HTTP_HOST="localhost").content.decode()
    assert password not in second and _password_on(second) is None
    assert "is not shown again" in second and "boss@acme.example" in second
    change = platform_client.get(f"/admin/tenancy/instance/{instance.pk}/change/", HTTP_HOST="localhost")
    assert change.status_code == 200 and password not in change.content.decode()
    # Nothing keeps it: not the history, not a session.
    entry = LogEntry.objects.get(object_id=str(instance.pk), content_type__model="instance")
    assert entry.is_addition() and password not in entry.change_message
    assert not any(password in str(s.get_decoded()) for s in Session.objects.all())


def test_the_password_page_shows_nothing_to_other_platform_staff(platform_client, client):
    response = platform_client.post(ADD, _add_form(), HTTP_HOST="localhost")
    created_url = response["Location"]
    from django.test import Client

    colleague = Client()
    colleague.force_login(_staff("other-ops@platform.example"))
    page = colleague.get(created_url, HTTP_HOST="localhost").content.decode()
    assert _password_on(page) is None and "is not shown again" in page
    # ... and the creator still sees it, once.
    assert _password_on(platform_client.get(created_url, HTTP_HOST="localhost").content.decode())


@pytest.mark.parametrize("overrides, field_error", [
    ({"schema_name": "tenant_a"}, "The schema &#x27;tenant_a&#x27; is taken: enter another schema name."),
    ({"domain": "tenant-a.other.localhost"}, "The schema &#x27;tenant_a&#x27; (derived from the host) is taken"),
    ({"domain": HOST_A}, f"The host {HOST_A} already belongs to the instance Instance A"),
    ({"domain": "https://acme.example.com/"}, "is not a host name: enter lower-case letters"),
    ({"domain": "acme.example.org"}, "This deployment does not answer on acme.example.org: add it"),
    ({"domain": "1acme.localhost"}, "&#x27;1acme&#x27; (derived from the host) cannot be a schema name"),
    ({"schema_name": "pg_acme"}, "&#x27;pg_acme&#x27; cannot be a schema name"),
    ({"timezone": "Dubai"}, "Unknown time zone &#x27;Dubai&#x27;: use an IANA name"),
    ({"admin_email": "not-an-address"}, "Enter a valid email address."),
])
def test_a_refused_instance_is_a_form_error_and_nothing_is_provisioned(platform_client, overrides, field_error):
    instances, domains = Instance.objects.count(), Domain.objects.count()
    response = platform_client.post(ADD, _add_form(**overrides), HTTP_HOST="localhost")
    page = response.content.decode()
    assert response.status_code == 200
    assert field_error in page, re.findall(r'<ul class="errorlist[^"]*"[^>]*>.*?</ul>', page, re.S)
    assert "Instance with this Schema name already exists" not in page
    assert Instance.objects.count() == instances and Domain.objects.count() == domains
    assert not schema_exists("acme_admin") and not schema_exists("acme")
    assert _password_on(page) is None


def test_the_add_page_is_the_platform_admins_only(db, client):
    assert client.get(ADD, HTTP_HOST="localhost").status_code == 302  # to the platform sign-in
    with schema_context("tenant_a"):
        from spokestack.accounts.services import user_create

        client.force_login(user_create(email="boss@tenant-a.example", password=PASSWORD, role="instance_admin"))
    assert client.get(ADD, HTTP_HOST=HOST_A).status_code == 404
    assert client.post(ADD, _add_form(), HTTP_HOST=HOST_A).status_code == 404
    connection.set_schema_to_public()
    assert not Instance.objects.filter(name="Acme Agency").exists()
