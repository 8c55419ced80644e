"""The beat task that ends sandbox sessions past their 24 hours, and the services' refusal of an
expired session before it runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from spokestack.errors import Conflict
from versions import services
from versions.models import AgentVersionConfig, SandboxSession, UpdateNotification, VersionChange
from versions.tasks import expire_sandboxes

from .helpers import catalog_before_release, release

BASE = "/api/v1"


@pytest.fixture
def admin(in_a, make_user):
    catalog_before_release()
    return make_user("instance_admin")


def _age(session: SandboxSession, by: timedelta = timedelta(seconds=1)) -> None:
    """Move the session's end into the past (time passing; no service sets expires_at)."""
    SandboxSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - by)


def test_the_task_is_scheduled_and_public():
    entry = settings.CELERY_BEAT_SCHEDULE["expire-sandboxes"]
    assert entry["task"] == "versions.expire_sandboxes" and entry["schedule"] > 0
    assert expire_sandboxes.public


def test_an_expired_session_refuses_tests_and_promotion_before_the_task_runs(admin, make_user, api, in_a):
    session = services.sandbox_create(actor=admin, agent_type="media_buying", test_version="2.4.0")
    _age(session)
    with pytest.raises(Conflict, match="expired"):
        services.sandbox_test_add(actor=admin, session_id=session.pk, task="Plan a campaign")
    with pytest.raises(Conflict, match="expired"):
        services.sandbox_promote(actor=admin, session_id=session.pk)
    client = api(in_a, admin)
    for action, body in (("test", {"task": "Plan a campaign"}), ("promote", {}), ("reject", {}), ("defer", {})):
        response = client.post(f"{BASE}/sandbox/{session.pk}/{action}", body, format="json")
        assert response.status_code == 409 and "expired" in response.json()["error"]["message"], action
    assert SandboxSession.objects.get(pk=session.pk).status == "active", "only the task changes the row"
    assert AgentVersionConfig.objects.get(agent_type="media_buying").current_version == "2.3.1"


def test_the_task_ends_only_expired_active_sessions_and_records_it(admin, api, in_a):
    release([in_a.schema_name])
    note = UpdateNotification.objects.get(agent_type="media_buying")
    _, old = services.notification_review(actor=admin, notification_id=note.pk, action="sandbox")
    fresh = services.sandbox_create(actor=admin, agent_type="rfp", test_version="2.4.0")
    decided = services.sandbox_create(actor=admin, agent_type="media_buying", test_version="2.4.0")
    services.sandbox_defer(actor=admin, session_id=decided.pk)
    _age(old, timedelta(hours=1))
    _age(decided, timedelta(hours=1))
    history = VersionChange.objects.filter(agent_type="media_buying").count()

    assert expire_sandboxes() == 1
    old.refresh_from_db()
    assert (old.status, old.decided_at is not None) == ("expired", True)
    assert SandboxSession.objects.get(pk=fresh.pk).status == "active"
    assert SandboxSession.objects.get(pk=decided.pk).status == "deferred", "a decided session keeps its decision"
    config = AgentVersionConfig.objects.get(agent_type="media_buying")
    assert (config.current_version, config.pinned_version, config.sandbox_version) == ("2.3.1", "", "")
    assert AgentVersionConfig.objects.get(agent_type="rfp").sandbox_version == "2.4.0"
    last = VersionChange.objects.filter(agent_type="media_buying").first()
    assert VersionChange.objects.filter(agent_type="media_buying").count() == history + 1
    assert (last.action, last.version, last.from_version, last.activated_by) == ("expire", "2.3.1", "2.3.1", None)
    assert "2.4.0 expired" in last.reason
    assert UpdateNotification.objects.get(pk=note.pk).status == "deferred", "the update can be reviewed again"

    assert expire_sandboxes() == 0, "idempotent"
    response = api(in_a, admin).post(f"{BASE}/sandbox/{old.pk}/promote", {}, format="json")
    assert response.status_code == 409 and "expired" in response.json()["error"]["message"]
    detail = api(in_a, admin).get(f"{BASE}/sandbox/{old.pk}").json()
    assert (detail["status"], detail["expired"]) == ("expired", True)
    again = services.notification_review(actor=admin, notification_id=note.pk, action="sandbox")[1]
    assert again.status == "active" and again.test_version == "2.4.0"


def test_a_live_session_of_the_same_version_keeps_the_sandbox_version(admin):
    first = services.sandbox_create(actor=admin, agent_type="media_buying", test_version="2.4.0")
    second = services.sandbox_create(actor=admin, agent_type="media_buying", test_version="2.4.0")
    _age(first)
    assert services.sandboxes_expire() == 1
    assert SandboxSession.objects.get(pk=second.pk).status == "active"
    assert AgentVersionConfig.objects.get(agent_type="media_buying").sandbox_version == "2.4.0"
