# ruff: noqa: F811 - the stream fixtures are imported by name
"""Issue #15: the admin header's live counts. `ws/events/` carries a second topic, `updates`
(update notifications of new core-agent versions, as they are made and reviewed), to the viewers
with policy `version.view` and to no other instance; and the admin's counts endpoint
(`/admin/live/counts/`, read by the header's script on every (re)connect) and the landing page
count what the viewer may see: another client's account manager does not count its approvals."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client as HttpClient
from django_tenants.utils import schema_context

from agents.approvals import approval_request_create
from agents.models import AgentRun, ToolCall, ToolCallStatus
from spokestack.accounts.services import api_token_create, user_create
from spokestack.asgi import application
from spokestack.realtime import publish_update_event
from tuning.services import client_create
from versions.models import UpdateNotification
from versions.services import notification_review, release_notify_instance

from ..agents.test_stream_access import Agency, agency, nothing_within, streams, subscribed  # noqa: F401
from ..conftest import HOST_A, HOST_B, run_async


def _release(schema: str) -> UpdateNotification:
    """media_buying 2.4.0 released to an instance on 2.3.1: its update notification, made by the service."""
    with schema_context(schema):
        note = release_notify_instance(agent_type="media_buying", version="2.4.0", previous_version="2.3.1")
        assert note is not None and note.status == "pending", note
        publish_update_event(note)  # versions.services publishes it itself once the call site is added
        return note


def _review(schema: str, note: UpdateNotification, action: str) -> None:
    with schema_context(schema):
        notification_review(actor=None, notification_id=note.pk, action=action, reason="live test")
        publish_update_event(note)


async def _update_with_status(ws: WebsocketCommunicator, status: str) -> dict:
    """The first `updates` message with that status (a publish from the service and the test's
    own may both arrive)."""
    while True:
        message = await ws.receive_json_from(timeout=10)
        assert message["topic"] == "updates", message
        if message["data"]["status"] == status:
            return message["data"]


@pytest.fixture
def admin_of_b(live_db, instance_b):
    """An instance admin of instance B with an API token (committed; removed afterwards)."""
    with schema_context(instance_b.schema_name):
        user = user_create(email=f"ws-{uuid.uuid4().hex[:8]}@b.example", password=None, role="instance_admin")
        raw = api_token_create(user=user, name="ws").raw
    yield raw
    with schema_context(instance_b.schema_name):
        get_user_model().objects.filter(pk=user.pk).delete()


def test_updates_reach_version_viewers_of_their_instance_only(agency, admin_of_b):
    with schema_context(agency.schema):
        manager_of_instance = user_create(email="im@agency.example", password=None, role="instance_manager")
        agency.tokens["instance_manager"] = api_token_create(user=manager_of_instance, name="live").raw

    async def scenario():
        sockets = {who: await subscribed(agency, who, "updates")
                   for who in ("admin", "instance_manager", "manager", "contact")}
        assert sockets["admin"][1] == sockets["instance_manager"][1] == {"subscribed": "updates"}
        for who in ("manager", "contact"):  # account managers and client contacts: policy version.view refuses
            assert sockets[who][1] == {"error": "Your role does not allow you to see updates."}
        other = WebsocketCommunicator(application, "/ws/events/", headers=[
            (b"host", HOST_B.encode()), (b"authorization", f"Bearer {admin_of_b}".encode())])
        assert (await other.connect(timeout=10))[0]
        await other.send_json_to({"subscribe": "updates"})
        assert await other.receive_json_from(timeout=10) == {"subscribed": "updates"}

        note = await asyncio.to_thread(_release, agency.schema)
        for who in ("admin", "instance_manager"):
            data = await _update_with_status(sockets[who][0], "pending")
            assert data == {**data, "notification_id": note.pk, "agent_type": "media_buying", "version": "2.4.0",
                            "from_version": "2.3.1", "to_review": 1, "client_id": None}
        await asyncio.to_thread(_review, agency.schema, note, "reject")
        reviewed = await _update_with_status(sockets["admin"][0], "rejected")
        assert reviewed["to_review"] == 0

        assert await nothing_within(other, 1.0), "instance B never hears instance A's updates"
        for who in ("manager", "contact"):
            assert await nothing_within(sockets[who][0], 0.2)
        for ws, _ in sockets.values():
            await ws.disconnect()
        await other.disconnect()

    run_async(scenario())


def test_a_role_without_version_view_is_refused_updates_but_keeps_approvals(agency):
    async def scenario():
        ws, ack = await subscribed(agency, "manager", "updates")
        assert ack == {"error": "Your role does not allow you to see updates."}
        await ws.send_json_to({"subscribe": "approvals"})
        assert await ws.receive_json_from(timeout=10) == {"subscribed": "approvals"}
        await ws.send_json_to({"subscribe": "notifications"})
        moved = await ws.receive_json_from(timeout=10)
        assert "subscribe to 'updates'" in moved["error"] and "GET /api/v1/updates" in moved["error"]
        await ws.disconnect()

    run_async(scenario())


# --- the counts behind the header and the landing page -------------------------------------


def _approval(client) -> None:
    """A gated call of a new run of `client` held by the approvals service."""
    run = AgentRun.objects.create(agent_type="copy", agent_version="1.0.0", task="Publish the post.", client=client)
    call = ToolCall.objects.create(run=run, tool_use_id=f"toolu_{uuid.uuid4().hex[:12]}", name="publish_post",
                                   input={"text": "Glow gently."}, status=ToolCallStatus.AWAITING_APPROVAL,
                                   idempotency_key=uuid.uuid4().hex)
    approval_request_create(run=run, tool_call=call, rule="platform confirmation pattern 'publish_*'")


def _as(user) -> HttpClient:
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(user)
    return http


def test_the_live_counts_are_what_the_viewer_may_see(in_a, make_user, assigned):
    bloom = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
    dune = client_create(name="Dune Coffee", vertical="food", region="GCC", language="en")
    _approval(bloom)
    _approval(bloom)
    _approval(dune)
    assert release_notify_instance(agent_type="media_buying", version="2.4.0", previous_version="2.3.1")
    url = "/admin/live/counts/"
    approvals = "/admin/agents/approvalrequest/"
    updates = "/admin/versions/agentversionconfig/"

    admin_http = _as(make_user("instance_admin"))
    admin = admin_http.get(url)
    assert admin.status_code == 200 and admin["Content-Type"] == "application/json"
    assert admin.json() == {"approvals": {"count": 3, "label": "3 approvals waiting", "url": approvals},
                            "updates": {"count": 1, "label": "1 update to review", "url": updates}}
    assert _as(make_user("instance_manager")).get(url).json()["updates"]["count"] == 1
    # An account manager counts their clients' approvals only, and sees no updates (version.view).
    assert _as(assigned("account_manager", bloom)).get(url).json() == {
        "approvals": {"count": 2, "label": "2 approvals waiting", "url": approvals}, "updates": None}
    stranger = _as(assigned("account_manager", client_create(name="Another Brand")))
    assert stranger.get(url).json() == {
        "approvals": {"count": 0, "label": "0 approvals waiting", "url": approvals}, "updates": None}
    assert _as(assigned("client_contact", bloom)).get(url).json() == {"approvals": None, "updates": None}
    assert _as(make_user("instance_admin")).post(url).status_code == 405

    anonymous = HttpClient(HTTP_HOST=HOST_A).get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]

    # The landing page: the same counts, marked for the header's script to keep current.
    landing = admin_http.get("/admin/").content.decode()
    assert '<span data-live-count="approvals" id="landing-approvals">3</span>' in landing
    assert '<span data-live-count="updates" id="landing-updates">1</span>' in landing
    assert 'data-counts-url="/admin/live/counts/"' in landing
    theirs = stranger.get("/admin/").content.decode()
    assert '<span data-live-count="approvals" id="landing-approvals">0</span>' in theirs
    assert "Updates to review" not in theirs and 'id="landing-updates"' not in theirs

    # A session of instance A is nothing on instance B's host.
    assert admin_http.get(url, HTTP_HOST=HOST_B).status_code == 302
