"""The demo `make run` seeds: three agencies with an admin, two clients and some tuning; idempotent."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context

from spokestack.demo import demo_credentials, seed_demo
from spokestack.demo_data import DEMO_INSTANCES, DEMO_PASSWORD
from spokestack.tenancy.models import Instance


@pytest.fixture
def seeded(live_db):
    yield seed_demo(erp_url="https://erp.example.com")
    connection.set_schema_to_public()
    for instance in Instance.objects.filter(schema_name__in=[d.schema for d in DEMO_INSTANCES]):
        instance.delete(force_drop=True)


def test_seed_demo_creates_the_guides_agencies_once(seeded):
    from agents.catalog import platform_tier
    from agents.registry import get_spec
    from tuning.assembly import assemble_prompt
    from tuning.models import Client

    assert len([line for line in seeded if line.startswith("instance ")]) == 3
    for demo in DEMO_INSTANCES:
        instance = Instance.objects.get(schema_name=demo.schema)
        assert instance.domains.get().domain == demo.host and instance.erp_base_url == "https://erp.example.com"
        with schema_context(demo.schema):
            admin = get_user_model().objects.get(username=demo.admin_email)
            assert admin.check_password(DEMO_PASSWORD) and admin.groups.filter(name="instance_admin").exists()
            assert sorted(Client.objects.values_list("name", flat=True)) == sorted(c[0] for c in demo.clients)
            first = Client.objects.get(name=demo.clients[0][0])
            prompt = assemble_prompt(platform=platform_tier(get_spec("copy")), client=first)
            assert "Never" in prompt.tier_bytes(3).decode()
    assert seed_demo(erp_url="https://erp.example.com") == [], "a second seed creates nothing"
    credentials = demo_credentials()
    assert [c["host"] for c in credentials] == [d.host for d in DEMO_INSTANCES]
    assert all(c["token"].startswith("ss_") and c["task"] for c in credentials)
