"""The version-control API: anonymous / without permission / permitted, bad input, isolation."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from versions.models import AgentVersionConfig, SandboxSession, UpdateNotification, VersionChange

from .helpers import catalog_before_release, release, skill

BASE = "/api/v1"


@pytest.fixture
def setup(in_a, make_user, api):
    catalog_before_release()
    admin = make_user("instance_admin")
    return {"admin": api(in_a, admin), "manager": api(in_a, make_user("instance_manager")),
            "contact": api(in_a, make_user("client_contact")), "anon": api(in_a), "instance": in_a}


def test_anonymous_is_refused_everywhere(setup):
    anon = setup["anon"]
    for method, path in (("get", "/agents/media_buying/versions"), ("get", "/agents/media_buying/version"),
                         ("put", "/agents/media_buying/version"), ("post", "/agents/media_buying/version/rollback"),
                         ("get", "/updates"), ("post", "/updates/1/review"), ("post", "/sandbox"),
                         ("post", "/sandbox/00000000-0000-0000-0000-000000000000/test"),
                         ("post", "/sandbox/00000000-0000-0000-0000-000000000000/promote"),
                         ("post", "/sandbox/00000000-0000-0000-0000-000000000000/reject"),
                         ("post", "/sandbox/00000000-0000-0000-0000-000000000000/defer")):
        assert getattr(anon, method)(BASE + path, {}, format="json").status_code in (401, 403), path


def test_reads_need_view_permission_and_writes_change_permission(setup):
    assert setup["contact"].get(f"{BASE}/agents/media_buying/version").status_code == 403
    assert setup["contact"].get(f"{BASE}/updates").status_code == 403
    manager = setup["manager"]
    assert manager.get(f"{BASE}/agents/media_buying/version").status_code == 200
    response = manager.put(f"{BASE}/agents/media_buying/version", {"policy": "auto"}, format="json")
    assert response.status_code == 403 and "role" in response.json()["error"]["message"]
    assert manager.post(f"{BASE}/sandbox", {"agent_type": "media_buying", "test_version": "2.4.0"},
                        format="json").status_code == 403


def test_versions_and_config_round_trip(setup):
    admin = setup["admin"]
    body = admin.get(f"{BASE}/agents/media_buying/versions").json()
    assert [v["version"] for v in body["versions"]] == ["2.3.1"], "2.4.0 is not released yet"
    response = admin.put(f"{BASE}/agents/media_buying/version",
                         {"policy": "manual", "optimization_preferences": ["performance", "roas"],
                          "notify_contacts": ["ops@agency.example"]}, format="json")
    assert response.status_code == 200, response.json()
    state = response.json()
    assert (state["policy"], state["current_version"], state["optimization_preferences"]) == (
        "manual", "2.3.1", ["performance", "roas"])
    release([setup["instance"].schema_name])
    state = admin.get(f"{BASE}/agents/media_buying/version").json()
    assert state["update_available"] and state["pending_update"]["recommendation"] == "caution"
    assert [v["version"] for v in admin.get(f"{BASE}/agents/media_buying/versions").json()["versions"]] == [
        "2.3.1", "2.4.0"]


def test_bad_input_gets_400_404_409_with_a_message(setup):
    admin = setup["admin"]
    cases = [
        (admin.put(f"{BASE}/agents/media_buying/version", {"pinned_version": "9.0.0"}, format="json"), 404),
        (admin.put(f"{BASE}/agents/media_buying/version", {"policy": "sometimes"}, format="json"), 400),
        (admin.put(f"{BASE}/agents/media_buying/version", {"colour": "red"}, format="json"), 400),
        (admin.get(f"{BASE}/agents/nope/version"), 404),
        (admin.post(f"{BASE}/agents/media_buying/version/rollback", {"version": "7.7.7", "reason": "x"},
                    format="json"), 404),
        (admin.post(f"{BASE}/agents/media_buying/version/rollback", {"version": "2.4.0", "reason": "x"},
                    format="json"), 409),
        (admin.post(f"{BASE}/updates/424242/review", {"action": "approve"}, format="json"), 404),
        (admin.post(f"{BASE}/sandbox", {"agent_type": "media_buying", "test_version": "2.3.1"}, format="json"), 400),
        (admin.post(f"{BASE}/sandbox/not-a-uuid/promote", {}, format="json"), 404),
        (admin.post(f"{BASE}/sandbox/not-a-uuid/reject", {}, format="json"), 404),
        (admin.post(f"{BASE}/sandbox/00000000-0000-0000-0000-000000000000/defer", {}, format="json"), 404),
    ]
    for response, expected in cases:
        assert response.status_code == expected, response.json()
        assert response.json()["error"]["message"]


def test_review_twice_is_409_and_sandbox_promote_flow(setup):
    admin = setup["admin"]
    release([setup["instance"].schema_name])
    with CaptureQueriesContext(connection) as queries:
        updates = admin.get(f"{BASE}/updates?status=pending").json()["results"]
    assert len(queries) < 15
    media = next(u for u in updates if u["agent_type"] == "media_buying")
    first = admin.post(f"{BASE}/updates/{media['id']}/review", {"action": "sandbox"}, format="json")
    assert first.status_code == 200 and first.json()["sandbox"]["test_version"] == "2.4.0"
    again = admin.post(f"{BASE}/updates/{media['id']}/review", {"action": "approve"}, format="json")
    assert again.status_code == 409 and "already reviewed" in again.json()["error"]["message"]
    session_id = first.json()["sandbox"]["id"]
    promoted = admin.post(f"{BASE}/sandbox/{session_id}/promote", {}, format="json")
    assert promoted.status_code == 200
    state = promoted.json()
    assert state["current_version"] == "2.4.0" and state["history"][0]["action"] == "promote"
    assert UpdateNotification.objects.get(pk=media["id"]).status == "applied"
    assert admin.post(f"{BASE}/sandbox/{session_id}/promote", {}, format="json").status_code == 409


def test_other_instance_sees_nothing_of_this_one(setup, in_b, make_user, api):
    from spokestack.tenancy.models import Instance

    connection.set_tenant(Instance.objects.get(schema_name="tenant_a"))
    skill("audience_expansion", "Our audience sizing.")
    release(["tenant_a"])
    note = UpdateNotification.objects.get(agent_type="media_buying")
    connection.set_tenant(in_b)
    other = api(in_b, make_user("instance_admin", email="admin-b@example.com"))
    assert other.get(f"{BASE}/updates").json()["results"] == []
    assert other.post(f"{BASE}/updates/{note.pk}/review", {"action": "approve"}, format="json").status_code == 404


def _sandbox_from_review(admin) -> tuple[str, int]:
    """Release 2.4.0, review it into a sandbox: (session id, media_buying notification id)."""
    updates = admin.get(f"{BASE}/updates?status=pending").json()["results"]
    media = next(u for u in updates if u["agent_type"] == "media_buying")
    response = admin.post(f"{BASE}/updates/{media['id']}/review", {"action": "sandbox"}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()["sandbox"]["id"], media["id"]


def test_sandbox_reject_pins_the_current_version_and_a_second_decision_is_409(setup):
    admin = setup["admin"]
    release([setup["instance"].schema_name])
    session_id, notification_id = _sandbox_from_review(admin)
    assert AgentVersionConfig.objects.get(agent_type="media_buying").sandbox_version == "2.4.0"
    bad = admin.post(f"{BASE}/sandbox/{session_id}/reject", {"reason": ["not", "text"]}, format="json")
    assert bad.status_code == 400 and "reason" in bad.json()["error"]["message"]
    rejected = admin.post(f"{BASE}/sandbox/{session_id}/reject", {"reason": "reach-first bidding hurt ROAS"},
                          format="json")
    assert rejected.status_code == 200, rejected.json()
    state = rejected.json()
    assert (state["current_version"], state["pinned_version"], state["sandbox_version"]) == ("2.3.1", "2.3.1", "")
    assert (state["history"][0]["action"], state["history"][0]["reason"]) == ("pin", "reach-first bidding hurt ROAS")
    assert SandboxSession.objects.get(pk=session_id).status == "rejected"
    assert UpdateNotification.objects.get(pk=notification_id).status == "rejected"
    for action in ("reject", "defer", "promote"):
        again = admin.post(f"{BASE}/sandbox/{session_id}/{action}", {}, format="json")
        assert again.status_code == 409 and "rejected" in again.json()["error"]["message"], action
    assert AgentVersionConfig.objects.get(agent_type="media_buying").current_version == "2.3.1"


def test_sandbox_defer_ends_the_session_and_leaves_the_update_open(setup):
    admin = setup["admin"]
    release([setup["instance"].schema_name])
    session_id, notification_id = _sandbox_from_review(admin)
    history = VersionChange.objects.count()
    deferred = admin.post(f"{BASE}/sandbox/{session_id}/defer", format="json")
    assert deferred.status_code == 200, deferred.json()
    body = deferred.json()
    assert (body["id"], body["status"], body["test_version"], body["tests"]) == (session_id, "deferred", "2.4.0", [])
    assert UpdateNotification.objects.get(pk=notification_id).status == "deferred"
    config = AgentVersionConfig.objects.get(agent_type="media_buying")
    assert (config.current_version, config.pinned_version) == ("2.3.1", "")
    assert VersionChange.objects.count() == history, "deferring changes no version"
    again = admin.post(f"{BASE}/sandbox/{session_id}/defer", {}, format="json")
    assert again.status_code == 409 and again.json()["error"]["message"]
    # the deferred update can still be reviewed later (policy manual: staged asks for a finished sandbox test)
    assert admin.put(f"{BASE}/agents/media_buying/version", {"policy": "manual"}, format="json").status_code == 200
    approve = admin.post(f"{BASE}/updates/{notification_id}/review", {"action": "approve"}, format="json")
    assert approve.status_code == 200 and approve.json()["status"] == "applied"


def test_sandbox_decisions_need_the_change_permission(setup):
    session = setup["admin"].post(f"{BASE}/sandbox", {"agent_type": "media_buying", "test_version": "2.4.0"},
                                  format="json").json()
    for role in ("manager", "contact"):
        for action in ("reject", "defer"):
            response = setup[role].post(f"{BASE}/sandbox/{session['id']}/{action}", {}, format="json")
            assert response.status_code == 403 and "role" in response.json()["error"]["message"], (role, action)
    assert SandboxSession.objects.get(pk=session["id"]).status == "active"


def test_other_instance_cannot_decide_this_ones_sandbox(setup, in_b, make_user, api):
    from spokestack.tenancy.models import Instance

    connection.set_tenant(Instance.objects.get(schema_name="tenant_a"))
    session = setup["admin"].post(f"{BASE}/sandbox", {"agent_type": "media_buying", "test_version": "2.4.0"},
                                  format="json").json()
    connection.set_tenant(in_b)
    other = api(in_b, make_user("instance_admin", email="admin-b@example.com"))
    for action in ("reject", "defer", "promote"):
        response = other.post(f"{BASE}/sandbox/{session['id']}/{action}", {}, format="json")
        assert response.status_code == 404 and response.json()["error"]["message"], action
    connection.set_tenant(Instance.objects.get(schema_name="tenant_a"))
    assert SandboxSession.objects.get(pk=session["id"]).status == "active"
    assert AgentVersionConfig.objects.get(agent_type="media_buying").pinned_version == ""
