"""Impact analysis, release flow, reviews, rollback and sandbox decisions (services, one instance
schema, rolled back). The worker-driven scenario is in test_scenario_live.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from agents.catalog import current_version_for
from spokestack.errors import Conflict, InvalidInput, NotAllowed, NotFound
from versions import services
from versions.analysis import analyse_impact, overlap
from versions.catalog.models import CatalogVersion, CoreSubmission
from versions.models import AgentVersionConfig, SandboxSession, UpdateNotification, VersionChange

from .helpers import catalog_before_release, release, skill

ROAS = "Optimises the bid strategy toward a target ROAS from conversion value data."


@pytest.fixture
def before(in_a):
    catalog_before_release()
    return in_a


def configure(**changes):
    return services.version_config_update(actor=None, agent_type="media_buying", changes=changes)


def test_sync_is_idempotent_and_the_first_mirror_is_not_a_release(before):
    with schema_context("public"):
        assert set(CatalogVersion.objects.filter(agent_type="media_buying").values_list("version", flat=True)) == {"2.3.1"}
    again = services.catalog_sync(hidden=[("media_buying", "2.4.0"), ("rfp", "2.4.0")])
    assert again.created == [] and again.updated == 0 and again.fanouts == []
    assert current_version_for("media_buying") == "2.3.1"
    result = services.catalog_sync()
    assert sorted(result.created) == ["media_buying 2.4.0", "rfp 2.4.0"] and len(result.fanouts) == 2
    assert services.catalog_sync().created == []


def test_guide_scenario_caution_with_optimization_mismatch_and_affected_skill(before):
    configure(optimization_preferences=["performance", "roas"], notify_contacts=["owner@shop.example"])
    skill("roas_optimizer", ROAS)
    skill("slack_notify", "Post a message to a Slack channel.")
    release(["tenant_a"])
    note = UpdateNotification.objects.get(agent_type="media_buying")
    assert (note.from_version, note.version, note.recommendation, note.status) == ("2.3.1", "2.4.0", "caution", "pending")
    assert "Optimization mismatch" in note.reason
    assert note.analysis["affected_skills"] == ["roas_optimizer"]
    assert {"instance": "roas", "version": "reach"} in note.analysis["optimization"]["mismatches"]
    for part in ("What's new", "audience_expansion", "Affected skills", "roas_optimizer", "Next steps"):
        assert part in note.content
    assert current_version_for("media_buying") == "2.3.1", "staged: nothing changes until reviewed"
    assert [m.to for m in mail.outbox if "media_buying" in m.subject] == [["owner@shop.example"]]


def test_skill_named_like_a_new_core_tool_is_a_critical_collision(before):
    skill("audience_expansion", "Our own audience sizing.")
    release(["tenant_a"])
    note = UpdateNotification.objects.get(agent_type="media_buying")
    assert note.recommendation == "caution"
    assert [c for c in note.analysis["conflicts"] if c["severity"] == "critical"][0]["kind"] == "name_collision"


def test_removed_tool_a_skill_relies_on_is_critical():
    result = analyse_impact(agent_type="media_buying", from_version="2.4.0", to_version="2.3.1",
                            skills=[services.SkillFacts("reach_report", "Reports", ("audience_expansion",))],
                            preferences=[])
    assert result["recommendation"] == "caution" and result["conflicts"][0]["kind"] == "removed_tool"


def test_text_overlap_is_what_flags_a_modified_tool():
    assert overlap(ROAS, "recommend bid strategy target ROAS conversions") > 0.3
    assert overlap("Post a message to a Slack channel.", "recommend bid strategy target ROAS") == 0


def test_auto_policy_without_conflicts_updates_at_once(before):
    configure(policy="auto")
    release(["tenant_a"])
    note = UpdateNotification.objects.get(agent_type="media_buying")
    assert (note.recommendation, note.status) == ("safe", "auto_applied")
    assert current_version_for("media_buying") == "2.4.0"
    assert VersionChange.objects.filter(agent_type="media_buying", action="auto_update", version="2.4.0").exists()


def test_auto_policy_but_pinned_waits(before):
    configure(policy="auto", pinned_version="2.3.1")
    release(["tenant_a"])
    assert UpdateNotification.objects.get(agent_type="media_buying").status == "pending"
    assert current_version_for("media_buying") == "2.3.1"


def test_fanout_is_idempotent(before):
    fanouts = release(["tenant_a"])
    from versions.catalog.models import ReleaseFanout

    with schema_context("public"):
        ReleaseFanout.objects.filter(pk__in=fanouts).update(status="queued")
    for fanout_id in fanouts:
        services.release_fanout_run(fanout_id=fanout_id, inline=True)
    connection.set_tenant(before)
    assert UpdateNotification.objects.filter(agent_type="media_buying").count() == 1


def test_review_approve_then_twice_conflicts(before, make_user):
    admin = make_user("instance_admin")
    configure(policy="manual")  # staged would ask for a sandbox test first
    release(["tenant_a"])
    note = UpdateNotification.objects.get(agent_type="media_buying")
    services.notification_review(actor=admin, notification_id=note.pk, action="approve")
    assert current_version_for("media_buying") == "2.4.0"
    with pytest.raises(Conflict, match="already reviewed"):
        services.notification_review(actor=admin, notification_id=note.pk, action="approve")
    with pytest.raises(NotFound):
        services.notification_review(actor=admin, notification_id=999999, action="approve")
    with pytest.raises(InvalidInput):
        services.notification_review(actor=admin, notification_id=note.pk, action="maybe")


def test_reject_pins_the_current_version_and_defer_can_be_reviewed_later(before):
    release(["tenant_a"])
    note = UpdateNotification.objects.get(agent_type="media_buying")
    services.notification_review(actor=None, notification_id=note.pk, action="defer")
    services.notification_review(actor=None, notification_id=note.pk, action="reject")
    config = AgentVersionConfig.objects.get(agent_type="media_buying")
    assert (config.current_version, config.pinned_version) == ("2.3.1", "2.3.1")


def test_rollback_rules(before, make_user):
    admin = make_user("instance_admin")
    configure(pinned_version="2.4.0")
    with pytest.raises(NotFound, match="no version"):
        services.version_rollback(actor=admin, agent_type="media_buying", version="9.9.9", reason="x")
    with pytest.raises(InvalidInput, match="reason"):
        services.version_rollback(actor=admin, agent_type="media_buying", version="2.3.1", reason="")
    services.version_rollback(actor=admin, agent_type="media_buying", version="2.3.1", reason="ROAS dropped")
    assert current_version_for("media_buying") == "2.3.1"
    last = VersionChange.objects.filter(agent_type="media_buying").first()
    assert (last.action, last.version, last.from_version, last.reason, last.activated_by) == (
        "rollback", "2.3.1", "2.4.0", "ROAS dropped", admin)
    # rfp never ran 2.3.1 here (fresh config at 2.3.1 → try 2.4.0, never activated)
    with pytest.raises(Conflict, match="never ran"):
        services.version_rollback(actor=admin, agent_type="rfp", version="2.4.0", reason="try")
    services.version_rollback(actor=admin, agent_type="rfp", version="2.4.0", reason="try", force=True)
    assert current_version_for("rfp") == "2.4.0"


def test_sandbox_expiry_and_decisions(before, make_user):
    admin = make_user("instance_admin")
    session = services.sandbox_create(actor=admin, agent_type="media_buying", test_version="2.4.0")
    assert session.current_version == "2.3.1"
    assert session.expires_at - timezone.now() > timedelta(hours=23)
    SandboxSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(Conflict, match="expired"):
        services.sandbox_promote(actor=admin, session_id=session.pk)
    session = services.sandbox_create(actor=admin, agent_type="media_buying", test_version="2.4.0")
    services.sandbox_reject(actor=admin, session_id=session.pk)
    assert AgentVersionConfig.objects.get(agent_type="media_buying").pinned_version == "2.3.1"
    with pytest.raises(Conflict):
        services.sandbox_promote(actor=admin, session_id=session.pk)
    with pytest.raises(NotFound):
        services.sandbox_create(actor=admin, agent_type="media_buying", test_version="3.0.0")


def test_permissions_in_services(before, make_user):
    manager = make_user("instance_manager")
    with pytest.raises(NotAllowed):
        services.version_config_update(actor=manager, agent_type="media_buying", changes={"policy": "auto"})
    with pytest.raises(NotAllowed):
        services.version_rollback(actor=make_user("client_contact"), agent_type="media_buying", version="2.3.1",
                                  reason="x")


def test_skill_report_and_core_submission_in_the_public_schema(before, make_user, instance_a):
    admin = make_user("instance_admin")
    s = skill("roas_optimizer", ROAS)
    report = services.skill_core_report(skill=s)
    assert report["calls"] == 0 and report["similar_core_tool"]["tool"] == "recommend_bid_strategy"
    submission = services.skill_submit_core(actor=admin, skill=s, rationale="Every e-commerce client needs it")
    with schema_context("public"):
        assert CoreSubmission.objects.get(pk=submission.pk).instance_id == instance_a.pk
    with pytest.raises(Conflict):
        services.skill_submit_core(actor=admin, skill=s)


def test_instances_are_isolated(before, in_b):
    # in_b switched the connection to instance B after A's catalog was prepared
    from spokestack.tenancy.models import Instance

    connection.set_tenant(Instance.objects.get(schema_name="tenant_a"))
    configure(pinned_version="2.3.1", optimization_preferences=["roas"])
    release(["tenant_a", "tenant_b"])
    assert UpdateNotification.objects.get(agent_type="media_buying").recommendation == "caution"
    connection.set_tenant(Instance.objects.get(schema_name="tenant_b"))
    config = AgentVersionConfig.objects.get(agent_type="media_buying")
    assert config.optimization_preferences == [] and config.pinned_version == ""
    assert UpdateNotification.objects.get(agent_type="media_buying").recommendation == "safe"


def test_sync_command_mirrors_and_is_idempotent(before):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("sync_agent_versions", hide=["media_buying:2.4.0", "rfp:2.4.0"], stdout=out)
    assert "0 new, 0 updated, 0 release fan-out(s)" in out.getvalue()
    connection.set_tenant(before)


def test_core_submissions_are_listed_in_the_platform_admin(before, make_user):
    from spokestack.admin_site import platform_admin
    from versions.catalog.models import CoreSubmission as Model

    assert Model in platform_admin._registry
