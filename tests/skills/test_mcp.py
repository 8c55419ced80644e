"""MCP servers as skills (issue #21): a real MCP server (the `mcp` SDK, streamable HTTP, uvicorn on
loopback) listed, exposed and called through the run loop; every request under the egress policy
(the SSRF corpus at save and at call, a redirect to a private address, a name that resolves to
one); input validated first, a slow tool timed out, a huge answer capped; the API and the admin
refusing other instances and roles that may not manage servers."""

import json

import pytest
from django.db import connection
from django.test import Client as HttpClient

from agents.loop import execute_run
from agents.models import RunStatus, ToolCall
from agents.services import run_create
from skills.mcp import mcp_server_create, mcp_server_update, mcp_tool_call, mcp_tool_update, mcp_tools_refresh
from skills.models import McpServer, McpTool, McpToolCall
from skills.selectors import mcp_metrics_of
from skills.services import skill_create
from spokestack.egress import EgressClient
from spokestack.errors import InvalidInput
from tuning.models import TuningChange

from ..conftest import HOST_A, HOST_B
from ..loopback_server import Reply
from ..spokestack import test_egress
from ..spokestack.test_egress import corpus, resolver_from
from .conftest import text_turn, tool_turn
from .mcp_server import McpTestServer

TOKEN = "Bearer mcp-tok-4d1e-never-shown"
connects = test_egress.connects  # the egress tests' fixture: every socket connect attempted


@pytest.fixture
def mcp_server():
    server = McpTestServer().start()
    yield server
    server.stop()


@pytest.fixture
def added(in_a, mcp_server, egress_loopback):
    """Server `crm` of instance A, refreshed, with brand_tier exposed to the copy agent."""
    egress_loopback(mcp_server.port)
    server = mcp_server_create(actor=None, name="crm", url=mcp_server.url, auth_header="Authorization",
                               auth_secret=TOKEN, timeout_s=5, max_result_chars=2000)
    mcp_tools_refresh(actor=None, server=server)
    tier = McpTool.objects.get(remote_name="brand_tier")
    mcp_tool_update(actor=None, tool=tier, changes={"enabled": True, "agent_types": ["copy"]})
    notes = McpTool.objects.get(remote_name="campaign_notes")
    mcp_tool_update(actor=None, tool=notes, changes={"enabled": True, "agent_types": ["copy"]})
    return McpServer.objects.get(pk=server.pk)


def start(admin, client, marker, sandbox=False):
    return run_create(actor=admin, agent_type="copy", task=f"{marker}: look up the brand.", client_id=client.pk,
                      sandbox=sandbox).run


def last_result(scripted, marker):
    return scripted.requests(marker)[-1]["messages"][-1]["content"][0]


# --- refresh --------------------------------------------------------------------------------


def test_refresh_lists_both_tools_not_exposed_under_default_names(in_a, mcp_server, egress_loopback):
    egress_loopback(mcp_server.port)
    server = mcp_server_create(actor=None, name="crm", url=mcp_server.url, auth_secret=TOKEN)
    mcp_tools_refresh(actor=None, server=server)
    tools = {t.remote_name: t for t in McpTool.objects.all()}
    assert set(tools) == {"brand_tier", "campaign_notes"}
    assert tools["brand_tier"].name == "mcp_crm_brand_tier" and tools["brand_tier"].enabled is False
    assert tools["brand_tier"].input_schema["required"] == ["brand"]
    assert "loyalty tier" in tools["brand_tier"].description
    server.refresh_from_db()
    assert server.tools_refreshed_at is not None and server.last_error == ""
    assert mcp_server.auth_headers and set(mcp_server.auth_headers) == {TOKEN}  # the secret went in its header
    assert TOKEN not in json.dumps(list(TuningChange.objects.values("old_value", "new_value")), default=str)


def test_a_refresh_keeps_the_admins_choices_and_marks_vanished_tools(added, mcp_server, egress_loopback):
    tier = McpTool.objects.get(remote_name="brand_tier")
    mcp_tool_update(actor=None, tool=tier, changes={"name": "crm_tier", "requires_approval": True})
    smaller = McpTestServer(stateless=True, json_response=True)
    smaller.app = _only_brand_tier(smaller)
    smaller.start()
    try:
        egress_loopback(smaller.port)
        mcp_server_update(actor=None, server=added, changes={"url": smaller.url})
        mcp_tools_refresh(actor=None, server=added)
    finally:
        smaller.stop()
    tier.refresh_from_db()
    assert (tier.name, tier.enabled, tier.requires_approval, tier.vanished_at) == ("crm_tier", True, True, None)
    notes = McpTool.objects.get(remote_name="campaign_notes")
    assert notes.vanished_at is not None
    with pytest.raises(Exception, match="no longer lists"):
        mcp_tool_update(actor=None, tool=notes, changes={"enabled": True})


def test_a_tool_the_server_stops_listing_is_not_offered_to_the_next_run(added, egress_loopback, admin_a, client_a,
                                                                         scripted):
    """What runs are offered is kept per process under a key (skills.selectors.skills_offered): a
    refresh that drops a tool changes the key, and the next run is not offered the tool."""
    scripted.script("mcp-before", [text_turn()])
    execute_run(run_id=str(start(admin_a, client_a, "mcp-before").pk), worker="w1")
    before = {t["name"] for t in scripted.requests("mcp-before")[0]["tools"]}
    assert {"mcp_crm_brand_tier", "mcp_crm_campaign_notes"} <= before
    smaller = McpTestServer(stateless=True, json_response=True)
    smaller.app = _only_brand_tier(smaller)
    smaller.start()
    try:
        egress_loopback(smaller.port)
        McpServer.objects.filter(pk=added.pk).update(url=smaller.url)  # no audit entry, no updated_at
        mcp_tools_refresh(actor=None, server=McpServer.objects.get(pk=added.pk))
    finally:
        smaller.stop()
    scripted.script("mcp-after", [text_turn()])
    execute_run(run_id=str(start(admin_a, client_a, "mcp-after").pk), worker="w1")
    after = {t["name"] for t in scripted.requests("mcp-after")[0]["tools"]}
    assert "mcp_crm_brand_tier" in after and "mcp_crm_campaign_notes" not in after


def _only_brand_tier(server):
    from mcp.server.mcpserver import MCPServer

    mcp = MCPServer("smaller")

    @mcp.tool(description="The loyalty tier of a brand.")
    def brand_tier(brand: str) -> dict:
        return {"brand": brand, "tier": "silver"}

    return server._recording(mcp.streamable_http_app(json_response=True, stateless_http=True))


# --- names ----------------------------------------------------------------------------------


def test_exposed_names_collide_neither_with_core_tools_nor_with_skills(added):
    tier = McpTool.objects.get(remote_name="brand_tier")
    with pytest.raises(InvalidInput, match="core tool of the copy agent"):
        mcp_tool_update(actor=None, tool=tier, changes={"name": "save_draft"})
    skill_create(actor=None, name="crm_lookup", description="CRM.", input_schema={"type": "object"},
                 agent_types=["copy"], execution_type="internal", handler="list_clients")
    with pytest.raises(InvalidInput, match="has a skill named"):
        mcp_tool_update(actor=None, tool=tier, changes={"name": "crm_lookup"})
    with pytest.raises(InvalidInput, match="another MCP tool"):
        mcp_tool_update(actor=None, tool=tier, changes={"name": "mcp_crm_campaign_notes"})
    with pytest.raises(InvalidInput, match="MCP tool of this instance is exposed as"):
        skill_create(actor=None, name="mcp_crm_brand_tier", description="x", input_schema={"type": "object"},
                     agent_types=["copy"], execution_type="internal", handler="list_clients")
    with pytest.raises(InvalidInput, match="agent_types"):
        mcp_tool_update(actor=None, tool=tier, changes={"agent_types": []})


# --- runs -----------------------------------------------------------------------------------


def test_an_exposed_tool_is_offered_called_and_its_answer_reaches_the_model(added, mcp_server, admin_a, client_a,
                                                                           scripted):
    scripted.script("mcp-run", [tool_turn(("toolu_m1", "mcp_crm_brand_tier", {"brand": "Desert Bloom"})),
                                text_turn("Gold.")])
    run = start(admin_a, client_a, "mcp-run")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    offered = {t["name"]: t for t in scripted.requests("mcp-run")[0]["tools"]}
    assert "mcp_crm_brand_tier" in offered and offered["mcp_crm_brand_tier"]["input_schema"]["required"] == ["brand"]
    assert mcp_server.calls == [("brand_tier", {"brand": "Desert Bloom"})]
    result = last_result(scripted, "mcp-run")
    assert result["is_error"] is False
    assert json.loads(result["content"]) == {"brand": "Desert Bloom", "tier": "gold", "owner": "Layla"}
    call = ToolCall.objects.get()
    assert call.side_effect is True and call.result["tier"] == "gold"
    metrics = mcp_metrics_of(McpTool.objects.get(remote_name="brand_tier"))
    assert metrics.calls == 1 and metrics.success_rate == 1.0


def test_tools_not_exposed_or_of_a_disabled_server_are_not_offered(added, admin_a, client_a, scripted):
    notes = McpTool.objects.get(remote_name="campaign_notes")
    mcp_tool_update(actor=None, tool=notes, changes={"enabled": False})
    scripted.script("mcp-offer", [text_turn(), text_turn()])
    execute_run(run_id=str(start(admin_a, client_a, "mcp-offer").pk), worker="w1")
    tools = [t["name"] for t in scripted.requests("mcp-offer")[0]["tools"]]
    assert "mcp_crm_brand_tier" in tools and "mcp_crm_campaign_notes" not in tools
    mcp_server_update(actor=None, server=added, changes={"enabled": False})
    scripted.script("mcp-offer-2", [text_turn()])
    execute_run(run_id=str(start(admin_a, client_a, "mcp-offer-2").pk), worker="w1")
    assert not any(t["name"].startswith("mcp_") for t in scripted.requests("mcp-offer-2")[0]["tools"])


def test_input_that_does_not_fit_the_schema_reaches_the_model_as_an_error_and_nothing_is_sent(
        added, mcp_server, admin_a, client_a, scripted):
    scripted.script("mcp-bad", [tool_turn(("toolu_m2", "mcp_crm_brand_tier", {"brand": 7})), text_turn()])
    run = start(admin_a, client_a, "mcp-bad")
    requests_before = len(mcp_server.auth_headers)
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    result = last_result(scripted, "mcp-bad")
    assert result["is_error"] is True and "Invalid input for mcp_crm_brand_tier" in result["content"]
    assert "brand" in result["content"] and mcp_server.calls == []
    assert len(mcp_server.auth_headers) == requests_before  # no request at all


def test_a_tool_requiring_approval_waits_for_a_person(added, mcp_server, admin_a, client_a, scripted):
    tier = McpTool.objects.get(remote_name="brand_tier")
    mcp_tool_update(actor=None, tool=tier, changes={"requires_approval": True})
    scripted.script("mcp-approve", [tool_turn(("toolu_m3", "mcp_crm_brand_tier", {"brand": "X"})), text_turn()])
    run = start(admin_a, client_a, "mcp-approve")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    assert mcp_server.calls == []


def test_a_slow_tool_times_out(added, mcp_server, admin_a, client_a, scripted):
    mcp_server_update(actor=None, server=added, changes={"timeout_s": 1})
    scripted.script("mcp-slow", [tool_turn(("toolu_m4", "mcp_crm_campaign_notes", {"brand": "X", "delay_s": 4})),
                                 text_turn()])
    run = start(admin_a, client_a, "mcp-slow")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    result = last_result(scripted, "mcp-slow")
    assert result["is_error"] is True and "did not finish in 1 s" in result["content"]
    assert "may still have acted" in result["content"]
    assert "did not finish" in McpToolCall.objects.get().error


def test_a_huge_answer_is_capped(added, admin_a, client_a, scripted):
    mcp_server_update(actor=None, server=added, changes={"max_result_chars": 500})
    scripted.script("mcp-huge", [tool_turn(("toolu_m5", "mcp_crm_campaign_notes", {"brand": "X", "count": 400})),
                                 text_turn()])
    run = start(admin_a, client_a, "mcp-huge")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    result = last_result(scripted, "mcp-huge")
    assert result["is_error"] is False and "Result capped" in result["content"]
    assert len(result["content"]) <= 500


def test_a_sandbox_run_simulates_the_call(added, mcp_server, admin_a, client_a, scripted):
    scripted.script("mcp-sandbox", [tool_turn(("toolu_m6", "mcp_crm_brand_tier", {"brand": "X"})), text_turn()])
    run = start(admin_a, client_a, "mcp-sandbox", sandbox=True)
    requests_before = len(mcp_server.auth_headers)
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    assert json.loads(last_result(scripted, "mcp-sandbox")["content"])["simulated"] is True
    assert mcp_server.calls == [] and len(mcp_server.auth_headers) == requests_before
    assert McpToolCall.objects.get().simulated is True


# --- egress ---------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(corpus(1))))
def test_the_ssrf_corpus_is_refused_at_save_or_before_any_connection(index, in_a, loopback_server, connects):
    url = corpus(loopback_server.port)[index]
    try:
        server = mcp_server_create(actor=None, name="evil", url=url)
    except InvalidInput as refused:
        assert refused.details["field"] == "url"
    else:  # a name only DNS can judge (localhost): refused when the platform connects
        with pytest.raises(InvalidInput, match="Refused"):
            mcp_tools_refresh(actor=None, server=server)
        assert "Refused" in McpServer.objects.get(pk=server.pk).last_error
    assert loopback_server.connections == 0 and connects == []


def test_a_name_that_resolves_to_a_private_address_is_refused_at_refresh_and_at_call(added, mcp_server, connects):
    resolve = resolver_from({"tools.agency-partner.com": ["10.20.30.40"]})
    egress = EgressClient(resolver=resolve)
    mcp_server_update(actor=None, server=added, changes={"url": "https://tools.agency-partner.com/mcp"})
    with pytest.raises(InvalidInput, match="resolves to 10.20.30.40"):
        mcp_tools_refresh(actor=None, server=added, egress=egress)
    from skills.executor import SkillContext

    tool = McpTool.objects.select_related("server").get(remote_name="brand_tier")
    outcome = mcp_tool_call(tool=tool, arguments={"brand": "X"}, context=SkillContext(instance="tenant_a"),
                            egress=egress)
    assert outcome.is_error and "resolves to 10.20.30.40" in outcome.result and "private" in outcome.result
    assert connects == [] and resolve.calls


def test_a_call_is_vetted_again_when_the_allowance_is_gone(added, mcp_server, settings):
    from skills.executor import SkillContext

    settings.EGRESS_LOOPBACK_PORTS = []
    tool = McpTool.objects.select_related("server").get(remote_name="brand_tier")
    requests_before = len(mcp_server.auth_headers)
    outcome = mcp_tool_call(tool=tool, arguments={"brand": "X"}, context=SkillContext(instance="tenant_a"))
    assert outcome.is_error and "loopback" in outcome.result and "only calls public addresses" in outcome.result
    assert len(mcp_server.auth_headers) == requests_before


@pytest.mark.parametrize("location", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/mcp",
                                      "http://[::ffff:127.0.0.1]:6379/", "http://127.0.0.1:6379/mcp",
                                      "/elsewhere-on-the-same-origin"])
def test_a_redirect_to_a_private_address_is_refused_as_a_webhook_would_be(in_a, loopback_server, egress_loopback,
                                                                          location, connects):
    egress_loopback(loopback_server.port)
    loopback_server.route("/mcp", Reply(307, b"", {"Location": location}))
    loopback_server.route("/elsewhere-on-the-same-origin", Reply(307, b"", {"Location": "http://192.168.0.10/mcp"}))
    server = mcp_server_create(actor=None, name="hop", url=f"{loopback_server.url}/mcp")
    with pytest.raises(InvalidInput) as refused:
        mcp_tools_refresh(actor=None, server=server)
    assert "redirected to a refused address" in refused.value.message
    assert "only calls public addresses" in refused.value.message
    assert all(address[1] == loopback_server.port for address in connects)  # only the vetted server was dialled


# --- API ------------------------------------------------------------------------------------

ENDPOINTS = [
    ("get", "/api/v1/mcp-servers", None),
    ("post", "/api/v1/mcp-servers", {"name": "other", "url": "https://tools.example.com/mcp"}),
    ("get", "/api/v1/mcp-servers/{id}", None),
    ("patch", "/api/v1/mcp-servers/{id}", {"timeout_s": 9}),
    ("get", "/api/v1/mcp-servers/{id}/tools", None),
    ("get", "/api/v1/mcp-servers/{id}/tools/{tool}", None),
    ("patch", "/api/v1/mcp-servers/{id}/tools/{tool}", {"requires_approval": True}),
    ("post", "/api/v1/mcp-servers/{id}/refresh", None),
    ("delete", "/api/v1/mcp-servers/{id}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize(("role", "reads", "writes"), [
    (None, False, False), ("client_contact", False, False), ("account_manager", False, False),
    ("instance_manager", True, False), ("instance_admin", True, True)])
def test_permissions_on_every_endpoint(added, api, make_user, method, path, body, role, reads, writes):
    tool = McpTool.objects.get(remote_name="brand_tier")
    user = make_user(role) if role else None
    response = getattr(api(connection.tenant, user), method)(path.format(id=added.pk, tool=tool.pk), body,
                                                             format="json")
    allowed = reads if method == "get" else writes
    if role is None:
        assert response.status_code in (401, 403)
    elif allowed:
        assert response.status_code < 300, response.content
    else:
        assert response.status_code == 403, response.content
    if not allowed:
        assert McpServer.objects.get(pk=added.pk).timeout_s == 5
        assert McpTool.objects.get(pk=tool.pk).requires_approval is False


def test_the_api_creates_exposes_and_never_shows_the_secret(in_a, admin_a, api, mcp_server, egress_loopback,
                                                           django_assert_max_num_queries):
    egress_loopback(mcp_server.port)
    http = api(in_a, admin_a)
    created = http.post("/api/v1/mcp-servers", {"name": "crm", "url": mcp_server.url, "auth_secret": TOKEN,
                                                "reason": "CRM tools"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["has_auth_secret"] is True and TOKEN not in created.content.decode()
    refreshed = http.post(f"/api/v1/mcp-servers/{body['id']}/refresh", format="json")
    assert refreshed.status_code == 200, refreshed.content
    tools = {t["remote_name"]: t for t in refreshed.json()["tools"]}
    assert set(tools) == {"brand_tier", "campaign_notes"} and refreshed.json()["server"]["tools"]["listed"] == 2
    patched = http.patch(f"/api/v1/mcp-servers/{body['id']}/tools/{tools['brand_tier']['id']}",
                         {"name": "crm_tier", "agent_types": ["copy"], "enabled": True}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "crm_tier"
    clash = http.patch(f"/api/v1/mcp-servers/{body['id']}/tools/{tools['campaign_notes']['id']}",
                       {"name": "save_draft", "agent_types": ["copy"]}, format="json")
    assert clash.status_code == 400 and "core tool" in clash.json()["error"]["message"]
    unknown = http.patch(f"/api/v1/mcp-servers/{body['id']}", {"secret": "x"}, format="json")
    assert unknown.status_code == 400 and "secret" in unknown.json()["error"]["message"]
    private = http.patch(f"/api/v1/mcp-servers/{body['id']}", {"url": "http://169.254.169.254/mcp"}, format="json")
    assert private.status_code == 400 and "metadata" in private.json()["error"]["message"]
    for n in range(3):
        mcp_server_create(actor=None, name=f"extra{n}", url=f"https://tools{n}.example.com/mcp")
    with django_assert_max_num_queries(8):
        listed = http.get("/api/v1/mcp-servers")
    assert listed.status_code == 200 and len(listed.json()) == 4
    for path in ("/api/v1/mcp-servers", f"/api/v1/mcp-servers/{body['id']}", f"/api/v1/mcp-servers/{body['id']}/tools"):
        assert TOKEN not in http.get(path).content.decode()
    assert http.get("/api/v1/mcp-servers/abc").status_code == 404
    assert http.get(f"/api/v1/mcp-servers/{body['id']}/tools/99999").status_code == 404
    assert http.delete(f"/api/v1/mcp-servers/{body['id']}").status_code == 204
    assert not McpTool.objects.filter(server_id=body["id"]).exists()


def test_a_refresh_that_fails_is_a_400_naming_the_reason(in_a, admin_a, api):
    http = api(in_a, admin_a)
    created = http.post("/api/v1/mcp-servers", {"name": "gone", "url": "http://localhost:9/mcp"}, format="json")
    assert created.status_code == 201
    refreshed = http.post(f"/api/v1/mcp-servers/{created.json()['id']}/refresh", format="json")
    assert refreshed.status_code == 400 and "loopback" in refreshed.json()["error"]["message"]
    assert "loopback" in http.get(f"/api/v1/mcp-servers/{created.json()['id']}").json()["last_error"]


def test_instance_b_cannot_list_read_or_change_a_servers(added, api, make_user, instance_a, instance_b):
    tool = McpTool.objects.get(remote_name="brand_tier")
    connection.set_tenant(instance_b)
    other = api(instance_b, make_user("instance_admin"))
    assert other.get("/api/v1/mcp-servers").json() == []
    for method, path in (("get", "/api/v1/mcp-servers/{id}"), ("patch", "/api/v1/mcp-servers/{id}"),
                         ("delete", "/api/v1/mcp-servers/{id}"), ("post", "/api/v1/mcp-servers/{id}/refresh"),
                         ("get", "/api/v1/mcp-servers/{id}/tools"), ("get", "/api/v1/mcp-servers/{id}/tools/{tool}"),
                         ("patch", "/api/v1/mcp-servers/{id}/tools/{tool}")):
        response = getattr(other, method)(path.format(id=added.pk, tool=tool.pk), {"enabled": False}, format="json")
        assert response.status_code == 404, (method, path, response.content)
    browser = HttpClient(HTTP_HOST=HOST_B)
    browser.force_login(make_user("instance_admin"))
    assert browser.get(f"/admin/skills/mcpserver/{added.pk}/change/").status_code == 404
    assert browser.get(f"/admin/skills/mcptool/{tool.pk}/change/").status_code == 404
    assert browser.post(f"/admin/skills/mcpserver/{added.pk}/refresh/").status_code == 404
    connection.set_tenant(instance_a)
    assert McpServer.objects.get(pk=added.pk).enabled is True and McpTool.objects.get(pk=tool.pk).enabled is True


# --- admin ----------------------------------------------------------------------------------


def test_the_admin_adds_refreshes_and_exposes(in_a, admin_a, mcp_server, egress_loopback):
    egress_loopback(mcp_server.port)
    browser = HttpClient(HTTP_HOST=HOST_A)
    browser.force_login(admin_a)
    page = browser.post("/admin/skills/mcpserver/add/", {
        "name": "crm", "url": mcp_server.url, "auth_header": "Authorization", "auth_secret": TOKEN, "enabled": "on",
        "timeout_s": "10", "max_result_chars": "5000", "tools-TOTAL_FORMS": "0", "tools-INITIAL_FORMS": "0"})
    assert page.status_code == 302, page.content.decode()[:3000]
    server = McpServer.objects.get(name="crm")
    assert server.auth_secret.reveal() == TOKEN
    refreshed = browser.post(f"/admin/skills/mcpserver/{server.pk}/refresh/", follow=True)
    text = refreshed.content.decode()
    assert refreshed.status_code == 200 and "lists 2 tool(s)" in text and "brand_tier" in text
    assert TOKEN not in text and 'id="refresh-tools"' in text
    tool = McpTool.objects.get(remote_name="brand_tier")
    assert browser.get(f"/admin/skills/mcptool/{tool.pk}/change/").status_code == 200
    saved = browser.post(f"/admin/skills/mcptool/{tool.pk}/change/", {
        "name": "save_draft", "agent_types": ["copy"], "enabled": "on"})
    assert saved.status_code == 200 and "core tool of the copy agent" in saved.content.decode()
    saved = browser.post(f"/admin/skills/mcptool/{tool.pk}/change/", {
        "name": "crm_tier", "agent_types": ["copy"], "enabled": "on", "requires_approval": "on"})
    assert saved.status_code == 302
    tool.refresh_from_db()
    assert (tool.name, tool.agent_types, tool.enabled, tool.requires_approval) == ("crm_tier", ["copy"], True, True)
    assert browser.get("/admin/skills/mcpserver/").status_code == 200
    assert browser.get("/admin/skills/mcptool/").status_code == 200


def test_an_admin_refresh_error_is_shown_readably(in_a, admin_a):
    server = mcp_server_create(actor=None, name="down", url="http://localhost:9/mcp")
    browser = HttpClient(HTTP_HOST=HOST_A)
    browser.force_login(admin_a)
    page = browser.post(f"/admin/skills/mcpserver/{server.pk}/refresh/", follow=True)
    assert page.status_code == 200 and "Could not list the tools of down" in page.content.decode()


@pytest.mark.parametrize("role", ["account_manager", "client_contact"])
def test_roles_that_may_not_manage_servers_get_403_in_the_admin(added, make_user, role):
    tool = McpTool.objects.get(remote_name="brand_tier")
    browser = HttpClient(HTTP_HOST=HOST_A)
    browser.force_login(make_user(role))
    for path in ("/admin/skills/mcpserver/", f"/admin/skills/mcpserver/{added.pk}/change/",
                 "/admin/skills/mcpserver/add/", f"/admin/skills/mcptool/{tool.pk}/change/"):
        assert browser.get(path).status_code == 403, path
    assert browser.post(f"/admin/skills/mcpserver/{added.pk}/refresh/").status_code == 403


def test_an_instance_manager_sees_servers_but_cannot_refresh_or_change(added, make_user):
    tool = McpTool.objects.get(remote_name="brand_tier")
    browser = HttpClient(HTTP_HOST=HOST_A)
    browser.force_login(make_user("instance_manager"))
    assert browser.get(f"/admin/skills/mcpserver/{added.pk}/change/").status_code == 200
    assert browser.post(f"/admin/skills/mcpserver/{added.pk}/refresh/").status_code == 403
    assert browser.post(f"/admin/skills/mcptool/{tool.pk}/change/", {"name": "x_y", "enabled": "on",
                                                                   "agent_types": ["copy"]}).status_code == 403


# --- audit ----------------------------------------------------------------------------------


def test_changes_are_audited_and_a_tool_exposure_rolls_back(added, admin_a, api):
    tool = McpTool.objects.get(remote_name="brand_tier")
    mcp_tool_update(actor=admin_a, tool=tool, changes={"requires_approval": True}, reason="risky")
    entries = TuningChange.objects.filter(entity__in=["mcp_server", "mcp_tool"])
    assert entries.filter(entity="mcp_server", action="create").exists()
    assert entries.filter(entity="mcp_server", field="tools").exists()
    entry = entries.get(entity="mcp_tool", field="requires_approval")
    assert (entry.old_value, entry.new_value, entry.reason) == (False, True, "risky")
    assert TOKEN not in json.dumps(list(entries.values("old_value", "new_value")), default=str)
    http = api(connection.tenant, admin_a)
    listed = http.get("/api/v1/tuning/audit")
    assert listed.status_code == 200, listed.content
    rolled = http.post(f"/api/v1/tuning/rollback/{entry.pk}", {"reason": "not needed"}, format="json")
    assert rolled.status_code < 300, rolled.content
    tool.refresh_from_db()
    assert tool.requires_approval is False
    server_entry = entries.get(entity="mcp_server", action="create")
    refused = http.post(f"/api/v1/tuning/rollback/{server_entry.pk}", {}, format="json")
    assert refused.status_code == 400 and "not rolled back from the log" in refused.json()["error"]["message"]
    browser = HttpClient(HTTP_HOST=HOST_A)
    browser.force_login(admin_a)
    assert browser.get("/admin/tuning/tuningchange/").status_code == 200
