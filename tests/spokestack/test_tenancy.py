"""Provisioning, suspension, unknown hosts, and the up-to-date-skipping migration executor."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context, schema_exists

from spokestack.errors import Conflict, InvalidInput
from spokestack.tenancy.migration_executor import stale_schemas
from spokestack.tenancy.models import Domain, Instance
from spokestack.tenancy.services import instance_provision, instance_set_status

from ..conftest import HOST_A, PASSWORD


def test_provision_creates_schema_host_roles_and_admin(live_instance):
    instance = live_instance.instance
    assert schema_exists(instance.schema_name)
    assert Domain.objects.get(tenant=instance).is_primary
    with schema_context(instance.schema_name):
        admin = get_user_model().objects.get(email="admin@live.localhost")
        assert admin.check_password(PASSWORD)
        assert admin.is_staff and not admin.is_superuser
        assert set(Group.objects.values_list("name", flat=True)) == {
            "instance_admin", "instance_manager", "account_manager", "client_contact"}
        assert admin.has_perm("accounts.add_apitoken")
        assert admin.has_perm("tuning.change_client")
    assert not stale_schemas([instance.schema_name]), "a new instance is born fully migrated"


def test_provision_refuses_a_taken_host_and_leaves_nothing(db, instance_a):
    with pytest.raises(Conflict, match=HOST_A):
        instance_provision(name="Copycat", domain=HOST_A, admin_email="x@example.com", schema_name="copycat")
    assert not Instance.objects.filter(schema_name="copycat").exists()
    assert not schema_exists("copycat")


@pytest.mark.parametrize("schema", ["public", "Bad-Name", "pg_catalog", "instance_template", "x"])
def test_provision_refuses_unusable_schema_names(db, schema):
    with pytest.raises(InvalidInput, match="schema name"):
        instance_provision(name="N", domain="n.localhost", admin_email="n@example.com", schema_name=schema)


def test_provision_failure_rolls_back_the_schema(live_db):
    with pytest.raises(InvalidInput, match="e-mail"):
        instance_provision(name="Broken", domain="broken.localhost", admin_email="not-an-email", schema_name="broken")
    connection.set_schema_to_public()
    assert not Instance.objects.filter(schema_name="broken").exists()
    assert not schema_exists("broken")


def test_create_instance_command_prints_credentials(live_db):
    out = io.StringIO()
    call_command("create_instance", "--name", "Cmd Agency", "--domain", "cmd.localhost",
                 "--admin-email", "boss@cmd.example", stdout=out)
    connection.set_schema_to_public()
    instance = Instance.objects.get(schema_name="cmd")
    try:
        assert "password:" in out.getvalue() and "boss@cmd.example" in out.getvalue()
    finally:
        instance.delete(force_drop=True)


def test_suspended_instance_answers_403_on_every_path(live_instance, client):
    instance = live_instance.instance
    host = instance.domains.get().domain
    instance_set_status(instance=instance, status=Instance.Status.SUSPENDED, reason="unpaid invoice")
    api = client.get("/api/v1/health", HTTP_HOST=host)
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "instance_suspended"
    assert "unpaid invoice" in api.json()["error"]["message"]
    page = client.get("/admin/login/", HTTP_HOST=host)
    assert page.status_code == 403 and b"suspended" in page.content
    instance_set_status(instance=instance, status=Instance.Status.ACTIVE)
    assert client.get("/api/v1/health", HTTP_HOST=host).status_code == 200


def test_unknown_host_is_a_404_page_not_a_500(db, client):
    page = client.get("/admin/", HTTP_HOST="nobody.localhost")
    assert page.status_code == 404
    assert b"No SpokeStack instance answers on nobody.localhost" in page.content
    api = client.get("/api/v1/health", HTTP_HOST="nobody.localhost")
    assert api.status_code == 404 and api.json()["error"]["code"] == "unknown_instance"


def test_migrate_skips_up_to_date_schemas_and_migrates_stale_ones(live_instance, capsys):
    schema = live_instance.instance.schema_name
    with connection.cursor() as cursor:
        cursor.execute(f'DELETE FROM "{schema}".django_migrations WHERE app = %s', ["sessions"])
    assert stale_schemas([schema, "tenant_a"]) == [schema]
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{schema}".django_session')
    call_command("migrate_schemas", "--tenant", stdout=io.StringIO())
    connection.set_schema_to_public()
    printed = capsys.readouterr().out
    assert "already up to date, skipped" in printed
    assert f"standard:{schema}] === Starting migration" in printed
    assert "standard:tenant_a]" not in printed
    assert stale_schemas([schema]) == []
    with schema_context(schema):
        from django.contrib.sessions.models import Session

        assert Session.objects.count() == 0  # the table is back


def test_beat_work_runs_in_every_instance_and_one_failing_instance_does_not_stop_the_others(db, caplog):
    from django.db import connection

    from spokestack.tenancy.selectors import in_each_instance

    seen = []

    def work(schema):
        seen.append((schema, connection.schema_name))
        if schema == "tenant_a":
            raise RuntimeError("broken instance")
        return 1

    total = in_each_instance(work, what="test work")
    schemas = [schema for schema, _ in seen]
    assert {"tenant_a", "tenant_b"} <= set(schemas)
    assert "public" not in schemas and "instance_template" not in schemas
    assert all(schema == current for schema, current in seen)  # run inside the instance's schema
    assert total == len(schemas) - 1
    assert "test work failed in instance tenant_a" in caplog.text
