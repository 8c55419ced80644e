"""The demo's upgrade scenario (issue #15, the guide's §9.12/§9.14): the seeded agency runs media
buying 2.3.1 with performance/ROAS preferences, a `roas_optimizer` webhook skill and policy staged,
and the 2.4.0 update waits for review marked caution by the real impact analysis. Re-seeding
changes nothing."""

from __future__ import annotations

from django.test import Client as HttpClient

from agents import offline_model
from agents.catalog import platform_tier
from agents.registry import get_spec
from skills.models import Skill
from spokestack.demo import seed_demo_versions
from spokestack.demo_data import DEMO_INSTANCES, DEMO_ROAS_SKILL_NAME, DEMO_VERSIONS_SCHEMA
from spokestack.sample_erp import DEMO_API_KEYS
from tuning.models import TuningChange
from versions import selectors
from versions.models import AgentVersionConfig, UpdateNotification, VersionChange
from versions.services import catalog_sync

from ..conftest import HOST_A
from .helpers import catalog_before_release

DEMO = next(d for d in DEMO_INSTANCES if d.schema == DEMO_VERSIONS_SCHEMA)
ERP = "http://127.0.0.1:8765"


def seed():
    return seed_demo_versions(DEMO, erp_url=ERP, api_key=DEMO_API_KEYS[DEMO.schema])


def test_the_seeded_agency_has_the_guides_pending_caution_update(in_a, egress_loopback, make_user):
    egress_loopback(8765)
    catalog_before_release()
    catalog_sync(fanout_schemas=[])  # what `make run` syncs before it seeds: 2.3.1 and 2.4.0
    assert seed() == [f"skill {DEMO_ROAS_SKILL_NAME} of {DEMO.name}",
                      f"media_buying 2.4.0 update (caution) waiting for review in {DEMO.name}"]
    config = AgentVersionConfig.objects.get(agent_type="media_buying")
    assert (config.current_version, config.pinned_version, config.policy, config.optimization_preferences) == (
        "2.3.1", "", "staged", ["performance", "roas"])
    skill = Skill.objects.get(name=DEMO_ROAS_SKILL_NAME)
    assert (skill.execution_type, skill.webhook_url, skill.enabled) == ("webhook", f"{ERP}/hooks/roas-optimizer", True)
    note = UpdateNotification.objects.get(agent_type="media_buying")
    assert (note.from_version, note.version, note.status, note.recommendation) == ("2.3.1", "2.4.0", "pending",
                                                                                    "caution")
    assert note.analysis["affected_skills"] == [DEMO_ROAS_SKILL_NAME]
    assert {"instance": "roas", "version": "reach"} in note.analysis["optimization"]["mismatches"]
    state = selectors.version_state(actor=None, agent_type="media_buying")
    assert state["update_available"] and state["pending_update"]["recommendation"] == "caution"

    counts = (UpdateNotification.objects.count(), VersionChange.objects.count(), TuningChange.objects.count())
    assert seed() == [], "idempotent"
    assert (UpdateNotification.objects.count(), VersionChange.objects.count(), TuningChange.objects.count()) == counts

    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(make_user("instance_admin"))
    page = http.get("/admin/versions/agentversionconfig/").content.decode()
    assert "Update available: 2.4.0" in page and "rec-caution" in page and "Optimization mismatch" in page


def test_the_offline_model_does_not_call_the_roas_skill_in_gammas_demo_run(in_a, egress_loopback):
    """Its webhook is not served by the sample ERP; the demo run must not depend on it."""
    egress_loopback(8765)
    catalog_before_release()
    catalog_sync(fanout_schemas=[])
    seed()
    tools = [*platform_tier(get_spec("media_buying", "2.3.1")).tools,
             Skill.objects.get(name=DEMO_ROAS_SKILL_NAME).definition()]
    reply = offline_model.respond({"model": "offline", "tools": tools,
                                   "messages": [{"role": "user", "content": DEMO.demo_task}]})
    assert DEMO_ROAS_SKILL_NAME not in [b["name"] for b in reply.content if b["type"] == "tool_use"]
