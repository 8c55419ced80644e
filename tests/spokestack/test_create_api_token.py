"""`manage.py create_api_token`: a first API token without the admin (issue #13, build 9)."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from ..conftest import HOST_A, HOST_B


def issue(*args, **options) -> str:
    out, err = StringIO(), StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err, **options)
    assert "shown once" in err.getvalue()
    return out.getvalue().strip()


def test_the_printed_token_works_on_its_instance_only(in_a, client):
    token = issue("tenant_a", email=f"Admin@{HOST_A}")
    assert token.startswith("ss_") and "\n" not in token
    me = client.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.status_code == 200 and me.json()["email"] == f"admin@{HOST_A}"
    assert client.get("/api/v1/me", HTTP_HOST=HOST_B, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_the_instance_may_be_named_by_its_host_and_the_token_may_expire(in_a, client):
    from spokestack.accounts.models import ApiToken

    token = issue(f"{HOST_A}:8000", email=f"admin@{HOST_A}", name="ERP sync", expires_in_days=30)
    connection.set_tenant(in_a)
    row = ApiToken.objects.get(prefix=token[:10])
    assert row.name == "ERP sync" and row.expires_at is not None
    assert client.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


@pytest.mark.parametrize(("instance", "email", "message"), [
    ("no_such_instance", f"admin@{HOST_A}", "No instance"),
    ("public", f"admin@{HOST_A}", "No instance"),
    ("tenant_a", "nobody@example.com", "No active user"),
    ("tenant_b", f"admin@{HOST_A}", "No active user"),  # a user of another instance
])
def test_unknown_instances_and_users_are_refused(in_a, instance, email, message):
    with pytest.raises(CommandError, match=message):
        issue(instance, email=email)
