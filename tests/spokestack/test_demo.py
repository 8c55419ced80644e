"""The demo `make run` seeds: three agencies with an admin, two clients and some tuning; idempotent."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context

from spokestack.demo import demo_credentials, seed_demo
from spokestack.demo_data import (
    DEMO_CATALOGUE_RUNS,
    DEMO_INSTANCES,
    DEMO_PASSWORD,
    DEMO_ROAS_SKILL_NAME,
    DEMO_SKILL_NAME,
    DEMO_STUDIO_AGENTS,
    DEMO_VERSIONS_SCHEMA,
)
from spokestack.sample_erp import DEMO_API_KEYS
from spokestack.tenancy.models import Instance


@pytest.fixture
def seeded(live_db):
    yield seed_demo(erp_url="https://erp.example.com")
    connection.set_schema_to_public()
    for instance in Instance.objects.filter(schema_name__in=[d.schema for d in DEMO_INSTANCES]):
        _drop(instance)


def _drop(instance, attempts: int = 10) -> None:
    """The seed queues runs and eval runs; the session's worker may be in a statement on the
    instance's tables as its schema is dropped, and PostgreSQL then breaks the deadlock by failing
    the DROP: it is tried again once that statement has ended."""
    import time

    import psycopg
    from django.db import OperationalError

    for attempt in range(attempts):
        try:
            instance.delete(force_drop=True)
            return
        except OperationalError as exc:
            if not isinstance(exc.__cause__, psycopg.errors.DeadlockDetected) or attempt == attempts - 1:
                raise
            time.sleep(0.2)


def assert_one_demo_skill(url):
    """Each instance has exactly one demo skill: an enabled copy webhook on the ERP, keyed with
    the agency's ERP key, secrets sealed."""
    from skills.models import Skill

    for demo in DEMO_INSTANCES:
        with schema_context(demo.schema):
            skill = Skill.objects.get(name=DEMO_SKILL_NAME)
            others = set(Skill.objects.exclude(pk=skill.pk).values_list("name", flat=True))
            # Gamma also has the upgrade scenario's skill (tests/versions/test_demo_versions.py)
            assert others == ({DEMO_ROAS_SKILL_NAME} if demo.schema == DEMO_VERSIONS_SCHEMA else set()), others
            assert skill.enabled and skill.agent_types == ["copy"]
            assert skill.execution_type == "webhook" and skill.webhook_url == url
            assert skill.auth_type == "api_key" and skill.auth_header == "X-Api-Key"
            assert skill.auth_secret.reveal() == DEMO_API_KEYS[demo.schema]
            assert skill.signing_secret.reveal().startswith("whsec_")
            with connection.cursor() as cursor:
                cursor.execute("SELECT auth_secret FROM skills_skill")
                (stored,) = cursor.fetchone()
            assert stored and DEMO_API_KEYS[demo.schema] not in stored, "the key is stored encrypted"


def test_seed_demo_creates_the_guides_agencies_once(seeded):
    from agents.catalog import platform_tier
    from agents.registry import get_spec
    from tuning.assembly import assemble_prompt
    from tuning.models import Client

    assert len([line for line in seeded if line.startswith("instance ")]) == 3
    assert len([line for line in seeded if line.startswith(f"skill {DEMO_SKILL_NAME} ")]) == 3
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
            slug, definition, _ = DEMO_STUDIO_AGENTS[demo.schema]  # the agency's own agent, published
            own = get_spec(slug)
            assert own is not None and own.version == "1.0.0" and own.title == definition["title"]
    assert seed_demo(erp_url="https://erp.example.com") == [], "a second seed creates nothing"
    assert_one_demo_skill("https://erp.example.com/hooks/competitor-check")
    assert seed_demo(erp_url="https://erp2.example.com/") == [], "a new ERP URL creates nothing either"
    assert_one_demo_skill("https://erp2.example.com/hooks/competitor-check")
    from spokestack.demo_data import DEMO_ERP_AGENCY
    from spokestack.webhooks.models import WebhookSubscription

    assert len([line for line in seeded if line.startswith("event webhook of ")]) == 3
    for demo in DEMO_INSTANCES:  # each agency's events go to the sample ERP's receiver, which follows it
        with schema_context(demo.schema):
            [hook] = WebhookSubscription.objects.all()
            assert hook.url == f"https://erp2.example.com/hooks/events/{DEMO_ERP_AGENCY[demo.schema]}" and hook.enabled
            assert "run.succeeded" in hook.event_types and hook.secret.reveal().startswith("whsec_")
    credentials = demo_credentials()
    expected = [(d.host, t) for d in DEMO_INSTANCES
                for t in (d.demo_agent, DEMO_STUDIO_AGENTS[d.schema][0],
                          *(agent_type for agent_type, _task in DEMO_CATALOGUE_RUNS[d.schema]))]
    assert [(c["host"], c["agent_type"]) for c in credentials] == expected
    # every agent of the catalogue runs once in `make run`, and one proposal with its children
    shown = {agent_type for _host, agent_type in expected}
    assert {"commercial", "content", "proposal", "publisher", "resource", "brief"} <= shown
    assert all(c["token"].startswith("ss_") and c["task"] for c in credentials)


def test_each_agency_has_an_eval_set_and_the_seeded_update_is_evaluated_on_both_versions(seeded):
    from spokestack.demo_data import DEMO_CATALOGUE_RUNS, DEMO_VERSIONS_SCHEMA
    from versions.models import EvalCase, EvalRun

    assert len([line for line in seeded if " eval cases of " in line]) == 3
    for demo in DEMO_INSTANCES:
        with schema_context(demo.schema):
            tasks = set(EvalCase.objects.values_list("task", flat=True))
            assert tasks == {demo.demo_task, *(task for _, task in DEMO_CATALOGUE_RUNS[demo.schema])}
            assert all(c.client.name == demo.clients[0][0] and c.expectations["brand_rules_pass"]
                       for c in EvalCase.objects.select_related("client"))
            runs = sorted(EvalRun.objects.values_list("agent_type", "version", "cases_total"))
            assert runs == ([("media_buying", "2.3.1", 1), ("media_buying", "2.4.0", 1)]
                            if demo.schema == DEMO_VERSIONS_SCHEMA else []), runs
