"""Issue #15 (finding 8): every admin page of an instance shows times in the instance's time zone
(`Instance.timezone`, activated per request), labelled in the header; the API's JSON keeps UTC; a
zone never carries over to the next request; platform staff set the zone, and an unknown one is a
form error."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client as HttpClient

from agents.approvals import approval_request_create
from agents.models import AgentRun, ApprovalRequest, ToolCall, ToolCallStatus
from spokestack.tenancy.models import Instance
from tuning.services import client_create

from ..conftest import HOST_A, PASSWORD

STARTED = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)  # 12:30 in Dubai (UTC+4)


def _set_zone(instance, name: str) -> None:
    Instance.objects.filter(pk=instance.pk).update(timezone=name)  # as platform staff's form saves it


def _gated_run(client) -> AgentRun:
    run = AgentRun.objects.create(agent_type="copy", agent_version="1.0.0", task="Publish the post.", client=client)
    call = ToolCall.objects.create(run=run, tool_use_id=f"toolu_{uuid.uuid4().hex[:12]}", name="publish_post",
                                   input={"text": "Glow gently."}, status=ToolCallStatus.AWAITING_APPROVAL,
                                   idempotency_key=uuid.uuid4().hex)
    approval = approval_request_create(run=run, tool_call=call, rule="platform confirmation pattern 'publish_*'")
    AgentRun.objects.filter(pk=run.pk).update(created_at=STARTED)
    ApprovalRequest.objects.filter(pk=approval.pk).update(expires_at=datetime(2030, 3, 2, 8, 30, tzinfo=UTC))
    return run


def test_a_runs_times_render_in_the_instance_time_zone_with_its_label(in_a, make_user):
    run = _gated_run(client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en"))
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(make_user("instance_admin"))

    _set_zone(in_a, "Asia/Dubai")
    runs = http.get("/admin/agents/agentrun/").content.decode()
    assert "March 1, 2026, 12:30 p.m." in runs and "8:30 a.m." not in runs
    assert re.search(r'id="header-timezone"[^>]*>Times in Asia/Dubai<', runs)
    page = http.get(f"/admin/agents/agentrun/{run.pk}/change/").content.decode()
    assert "March 2, 2030, 12:30 p.m. Asia/Dubai (in " in page  # the approval's deadline, labelled
    assert "Times in Asia/Dubai" in page
    landing = http.get("/admin/").content.decode()
    assert '<td id="instance-timezone">Asia/Dubai</td>' in landing

    # The API's JSON is a contract, not a display: it stays in UTC.
    api = http.get(f"/api/v1/agent/status/{run.pk}").json()
    assert api["created_at"].startswith("2026-03-01T08:30:00") and api["created_at"].endswith("Z"), api

    # Per request: another zone shows at once, and nothing is left of the previous one.
    _set_zone(in_a, "UTC")
    runs = http.get("/admin/agents/agentrun/").content.decode()
    assert "March 1, 2026, 8:30 a.m." in runs and "Times in UTC" in runs and "Asia/Dubai" not in runs


def test_a_stored_zone_that_is_not_one_shows_utc_rather_than_failing(in_a, make_user):
    _gated_run(None)
    _set_zone(in_a, "Mars/Olympus_Mons")
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(make_user("instance_admin"))
    response = http.get("/admin/agents/agentrun/")
    assert response.status_code == 200
    assert "March 1, 2026, 8:30 a.m." in response.content.decode() and "Times in UTC" in response.content.decode()


def test_platform_staff_change_an_instance_zone_and_an_unknown_one_is_a_form_error(db, client, instance_a):
    connection.set_schema_to_public()
    staff = get_user_model().objects.create_superuser("ops@platform.example", "ops@platform.example", PASSWORD)
    client.force_login(staff)
    url = f"/admin/tenancy/instance/{instance_a.pk}/change/"
    form = {"name": instance_a.name, "tier": instance_a.tier, "status": instance_a.status, "suspended_reason": "",
            "region": "", "language": "en", "erp_base_url": "", "erp_api_key_new": "",
            "approval_sla_hours": str(instance_a.approval_sla_hours),
            "domains-TOTAL_FORMS": "0", "domains-INITIAL_FORMS": "0"}

    refused = client.post(url, {**form, "timezone": "Dubai"}, HTTP_HOST="localhost")
    assert refused.status_code == 200
    assert "Unknown time zone &#x27;Dubai&#x27;: use an IANA name such as UTC, Asia/Dubai or Europe/Paris." \
        in refused.content.decode()
    assert Instance.objects.get(pk=instance_a.pk).timezone == "UTC"
    saved = client.post(url, {**form, "timezone": "Asia/Dubai"}, HTTP_HOST="localhost")
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert Instance.objects.get(pk=instance_a.pk).timezone == "Asia/Dubai"
    # The platform's own pages stay in UTC, labelled.
    assert "Times in UTC" in client.get("/admin/", HTTP_HOST="localhost").content.decode()
