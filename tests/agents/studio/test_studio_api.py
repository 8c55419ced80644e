"""`/api/v1/studio/agents` and `/api/v1/tools` (issue #18): build, publish, run, export and import
through the API; who may build or see; instance B never sees instance A's agents."""

from __future__ import annotations

from django.db import connection

from agents.models import AgentRun

from .test_studio import CAPTION

AGENTS = "/api/v1/studio/agents"


def test_the_tool_library_lists_every_core_agents_tools_and_the_core_ones(in_a, api, make_user):
    manager = make_user("account_manager")
    tools = api(in_a, manager).get("/api/v1/tools")
    assert tools.status_code == 200, tools.content
    by_ref = {t["ref"]: t for t in tools.json()}
    assert {"copy.check_brand_rules", "brief.get_client_info", "core.search_knowledge", "core.remember"} <= set(by_ref)
    assert by_ref["copy.save_draft"]["side_effect"] is True and by_ref["copy.save_draft"]["read_only"] is False
    assert by_ref["copy.check_brand_rules"]["input_schema"]["type"] == "object"
    assert api(in_a, make_user("client_contact")).get("/api/v1/tools").status_code == 403


def test_build_publish_execute_export_and_import_elsewhere(in_a, api, make_user, instance_b):
    admin = api(in_a, make_user("instance_admin"))
    created = admin.post(AGENTS, {"slug": "social_caption", "definition": CAPTION, "reason": "new"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "draft" and created.json()["has_unpublished_changes"] is True
    not_yet = admin.post("/api/v1/agent/execute", {"agent_type": "social_caption", "task": "x"}, format="json")
    assert not_yet.status_code == 404 and not_yet.json()["error"]["code"] == "unknown_agent_type"
    test = admin.post(f"{AGENTS}/social_caption/test", {"task": "Try it", "thread": True}, format="json")
    assert test.status_code == 202, test.content
    assert test.json()["agent_version"].endswith("-test") and test.json()["thread_id"]
    tried = AgentRun.objects.get(pk=test.json()["run_id"])
    assert tried.sandbox and tried.thread.sandbox and tried.agent_type == "social_caption"
    published = admin.post(f"{AGENTS}/social_caption/publish", {"change_note": "First version"}, format="json")
    assert published.status_code == 201 and published.json()["version"] == "1.0.0"
    run = admin.post("/api/v1/agent/execute", {"agent_type": "social_caption", "task": "Captions"}, format="json")
    assert run.status_code == 202, run.content
    assert AgentRun.objects.get(pk=run.json()["run_id"]).agent_version == "1.0.0"
    listed = admin.get("/api/v1/agents").json()
    listed = listed["results"] if isinstance(listed, dict) else listed
    assert "social_caption" in {a["agent_type"] for a in listed}
    schema = admin.get("/api/schema/")
    assert schema.status_code == 200 and b"social_caption" in schema.content  # the execute enum, on this host
    contract = admin.get(f"{AGENTS}/social_caption/export").json()
    assert contract["contract"] == "spokestack.agent/v1" and contract["slug"] == "social_caption"

    connection.set_tenant(instance_b)
    admin_b = api(instance_b, make_user("instance_admin"))
    assert admin_b.get(f"{AGENTS}/social_caption").status_code == 404
    assert admin_b.post("/api/v1/agent/execute", {"agent_type": "social_caption", "task": "x"},
                        format="json").status_code == 404
    bad = admin_b.post(f"{AGENTS}/import", {**contract, "tools": ["copy.nope"]}, format="json")
    assert bad.status_code == 400 and "tools[0]" in bad.json()["error"]["details"]
    imported = admin_b.post(f"{AGENTS}/import", contract, format="json")
    assert imported.status_code == 201, imported.content
    assert imported.json()["current_version"] == 1
    assert admin_b.get(f"{AGENTS}/social_caption/export").json() == contract
    connection.set_schema_to_public()


def test_who_may_build_and_see(in_a, api, make_user):
    body = {"slug": "pitch", "definition": CAPTION}
    assert api(in_a, make_user("instance_manager")).post(AGENTS, body, format="json").status_code == 403
    assert api(in_a, make_user("account_manager")).get(AGENTS).status_code == 403
    admin = api(in_a, make_user("instance_admin"))
    assert admin.post(AGENTS, body, format="json").status_code == 201
    assert api(in_a, make_user("instance_manager")).get(f"{AGENTS}/pitch").status_code == 200
    shadow = admin.post(AGENTS, {"slug": "copy", "definition": CAPTION}, format="json")
    assert shadow.status_code == 400 and "core agent" in shadow.json()["error"]["message"]
    assert admin.post(AGENTS, body, format="json").status_code == 409
    assert admin.post(f"{AGENTS}/pitch/publish", {}, format="json").status_code == 400
    assert admin.post(f"{AGENTS}/nobody/publish", {"change_note": "x"}, format="json").status_code == 404


def test_feedback_and_its_analysis_take_an_agency_agent_like_any_other(in_a, api, make_user):
    from agents.loop import execute_run
    from tuning.services import client_create

    admin_user = make_user("instance_admin")
    admin = api(in_a, admin_user)
    client = client_create(name="Desert Bloom Cosmetics", vertical="beauty")
    admin.post(AGENTS, {"slug": "social_caption", "definition": CAPTION}, format="json")
    admin.post(f"{AGENTS}/social_caption/publish", {"change_note": "v1"}, format="json")
    run_id = admin.post("/api/v1/agent/execute", {"agent_type": "social_caption", "task": "Captions",
                                                  "client_id": client.pk}, format="json").json()["run_id"]
    execute_run(run_id=run_id, worker="test")
    given = admin.post("/api/v1/feedback", {"run_id": run_id, "verdict": "approved", "comment": "Lovely."},
                       format="json")
    assert given.status_code == 201, given.content
    analysis = admin.post(f"/api/v1/clients/{client.pk}/feedback/analysis", {"agent_type": "social_caption"},
                          format="json")
    assert analysis.status_code == 201, analysis.content
    assert admin.get(f"/api/v1/clients/{client.pk}/feedback/analysis?agent_type=social_caption").status_code == 200


def test_the_core_agents_pages_still_open_with_agency_agents_in_the_instance(in_a, api, make_user):
    from django.test import Client as HttpClient

    from ...conftest import HOST_A

    admin_user = make_user("instance_admin")
    admin = api(in_a, admin_user)
    admin.post(AGENTS, {"slug": "social_caption", "definition": CAPTION}, format="json")
    admin.post(f"{AGENTS}/social_caption/publish", {"change_note": "v1"}, format="json")
    browser = HttpClient(HTTP_HOST=HOST_A)
    browser.force_login(admin_user)
    versions_page = browser.get("/admin/versions/agentversionconfig/")
    assert versions_page.status_code == 200 and b"social_caption" not in versions_page.content
    landing = browser.get("/admin/")
    assert landing.status_code == 200 and b"Social caption agent" in landing.content
    assert admin.get("/api/v1/agents/social_caption/version").status_code == 409  # versioned in the studio
    assert admin.get("/api/v1/agents/social_caption/tuning").status_code == 200


def test_the_agent_list_reads_every_agents_versions_at_once_and_the_library_is_the_instances_own(
        in_a, api, make_user, instance_b):
    from django.test.utils import CaptureQueriesContext

    from skills.services import skill_create

    admin = api(in_a, make_user("instance_admin"))
    for slug in ("one", "two", "three"):
        admin.post(AGENTS, {"slug": slug, "definition": CAPTION}, format="json")
        admin.post(f"{AGENTS}/{slug}/publish", {"change_note": "v1"}, format="json")
    with CaptureQueriesContext(connection) as three:
        listed = admin.get(AGENTS)
    assert listed.status_code == 200 and [a["versions"][0]["number"] for a in listed.json()] == [1, 1, 1]
    admin.post(AGENTS, {"slug": "four", "definition": CAPTION}, format="json")
    admin.post(f"{AGENTS}/four/publish", {"change_note": "v1"}, format="json")
    with CaptureQueriesContext(connection) as four:
        admin.get(AGENTS)
    assert len(four) == len(three), "no query per agent"
    skill_create(actor=None, name="brand_lookup", description="Look up a brand.", agent_types=["copy"],
                 input_schema={"type": "object", "properties": {}}, execution_type="webhook",
                 webhook_url="https://hooks.example.com/brand")
    assert "skill.brand_lookup" in {t["ref"] for t in admin.get("/api/v1/tools").json()}
    connection.set_tenant(instance_b)
    other = api(instance_b, make_user("instance_admin"))
    assert "skill.brand_lookup" not in {t["ref"] for t in other.get("/api/v1/tools").json()}
    assert other.get(AGENTS).json() == []
    connection.set_schema_to_public()
