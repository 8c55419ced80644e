"""The skill API: create / read / change / delete / test, the rules on save, secrets, permissions,
isolation."""

import pytest
from django.db import connection

from skills.models import Skill, SkillCall
from skills.signing import verify
from tuning.services import client_create

from ..loopback_server import Reply

SCHEMA = {"type": "object", "properties": {"brand": {"type": "string"}}, "required": ["brand"],
          "additionalProperties": False}
TOKEN = "tok-3c9f1e-very-secret"


def webhook_body(**extra):
    return {"name": "brand_lookup", "description": "Look up a brand in the agency CRM.", "input_schema": SCHEMA,
            "execution_type": "webhook", "webhook_url": "https://hooks.example.com/brand", **extra}


@pytest.fixture
def admin_api(in_a, admin_a, api):
    return api(in_a, admin_a)


def test_create_returns_the_signing_secret_once_and_never_the_auth_secret(admin_api):
    response = admin_api.post("/api/v1/agents/copy/skills",
                              webhook_body(auth_type="bearer", auth_secret=TOKEN), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["signing_secret"].startswith("whsec_")
    assert body["agent_types"] == ["copy"] and body["has_auth_secret"] is True
    assert TOKEN not in response.content.decode()
    skill = Skill.objects.get(name="brand_lookup")
    assert skill.signing_secret.reveal() == body["signing_secret"]
    assert TOKEN not in repr(skill.auth_secret) and skill.auth_secret.reveal() == TOKEN
    detail = admin_api.get(f"/api/v1/skills/{skill.pk}")
    assert detail.status_code == 200
    assert "signing_secret" not in detail.json() and TOKEN not in detail.content.decode()
    assert body["signing_secret"] not in detail.content.decode()
    listing = admin_api.get("/api/v1/agents/copy/skills")
    assert [s["name"] for s in listing.json()] == ["brand_lookup"]
    assert admin_api.get("/api/v1/agents/brief/skills").json() == []


@pytest.mark.parametrize(("change", "problem"), [
    ({"input_schema": {"type": "object", "properties": {"brand": {"type": "nonsense"}}}}, "input_schema: not a valid"),
    ({"input_schema": {"type": "object", "required": "brand"}}, "input_schema: not a valid"),
    ({"input_schema": {"type": "string"}}, "input_schema: a tool input must be an object"),
    ({"name": "save_draft"}, "name: 'save_draft' is a core tool of the copy agent"),
    ({"name": "Bad Name!"}, "name: use 2–64 lowercase"),
    ({"webhook_url": "http://169.254.169.254/latest/meta-data/"}, "webhook_url:"),
    ({"webhook_url": "http://127.0.0.1:8080/hook"}, "webhook_url:"),
    ({"webhook_url": "http://[::ffff:127.0.0.1]/hook"}, "webhook_url:"),
    ({"webhook_url": "http://2130706433/hook"}, "webhook_url:"),
    ({"webhook_url": "http://10.0.0.1/hook"}, "webhook_url:"),
    ({"webhook_url": "file:///etc/passwd"}, "webhook_url:"),
    ({"webhook_url": "gopher://hooks.example.com/"}, "webhook_url:"),
    ({"description": "x" * 2001}, "description: at most 2000 characters"),
    ({"description": ""}, "description:"),
    ({"auth_type": "bearer"}, "auth_secret: bearer and API-key auth need the secret"),
    ({"execution_type": "internal", "handler": "rm_rf"}, "handler: choose one of"),
    ({"timeout_s": 600}, "timeout_s:"),
    ({"agent_types": ["copy", "poetry"]}, "agent_types: unknown core agent type(s) poetry"),
])
def test_bad_skills_are_400_naming_the_problem_and_nothing_is_saved(admin_api, change, problem):
    response = admin_api.post("/api/v1/agents/copy/skills", webhook_body(**change), format="json")
    # an unknown agent type is the catalog's one answer everywhere: 404 unknown_agent_type
    assert response.status_code == (404 if "unknown core agent type" in problem else 400), response.content
    assert problem in response.json()["error"]["message"]
    assert Skill.objects.count() == 0


def test_a_name_of_a_core_tool_in_any_version_is_refused(admin_api):
    # audience_expansion exists in media_buying 2.4.0 only
    response = admin_api.post("/api/v1/agents/media_buying/skills", webhook_body(name="audience_expansion"),
                              format="json")
    assert response.status_code == 400
    assert "core tool of the media_buying agent" in response.json()["error"]["message"]
    # the same name is fine for an agent type without that tool
    assert admin_api.post("/api/v1/agents/copy/skills", webhook_body(name="audience_expansion"),
                          format="json").status_code == 201


def test_names_are_unique_per_instance(admin_api, instance_b, make_user, api):
    assert admin_api.post("/api/v1/agents/copy/skills", webhook_body(), format="json").status_code == 201
    again = admin_api.post("/api/v1/agents/brief/skills", webhook_body(), format="json")
    assert again.status_code == 400 and "already has a skill named" in again.json()["error"]["message"]
    connection.set_tenant(instance_b)
    other = make_user("instance_admin")
    assert api(instance_b, other).post("/api/v1/agents/copy/skills", webhook_body(), format="json").status_code == 201


def test_patch_keeps_the_secret_unless_a_new_one_is_given_and_delete_removes(admin_api):
    created = admin_api.post("/api/v1/agents/copy/skills", webhook_body(auth_type="api_key", auth_header="X-Key",
                                                                        auth_secret=TOKEN), format="json").json()
    url = f"/api/v1/skills/{created['id']}"
    changed = admin_api.patch(url, {"description": "Look up brands.", "requires_approval": True}, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["requires_approval"] is True and changed.json()["has_auth_secret"] is True
    assert Skill.objects.get().auth_secret.reveal() == TOKEN
    admin_api.patch(url, {"auth_secret": "tok-new"}, format="json")
    assert Skill.objects.get().auth_secret.reveal() == "tok-new"
    bad = admin_api.patch(url, {"webhook_url": "http://192.168.1.1/x"}, format="json")
    assert bad.status_code == 400 and Skill.objects.get().webhook_url == "https://hooks.example.com/brand"
    assert admin_api.delete(url).status_code == 204
    assert not Skill.objects.exists()
    assert admin_api.get(url).status_code == 404


def test_test_endpoint_runs_an_internal_skill(admin_api, client_a):
    client_create(name="Glow Rival", vertical="beauty", region="GCC")
    client_create(name="Bank Co", vertical="finance")
    skill = admin_api.post("/api/v1/agents/copy/skills", {
        "name": "conflict_check", "description": "Does this client conflict with another client?",
        "input_schema": {"type": "object", "properties": {"client": {"type": "string"}}},
        "execution_type": "internal", "handler": "check_conflicts"}, format="json").json()
    response = admin_api.post(f"/api/v1/skills/{skill['id']}/test", {"input": {"client": client_a.slug}},
                              format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ok"] is True
    assert body["response"]["data"]["conflict"] is True
    assert [c["name"] for c in body["response"]["data"]["conflicting_clients"]] == ["Glow Rival"]
    invalid = admin_api.post(f"/api/v1/skills/{skill['id']}/test", {"input": {"client": 5}}, format="json").json()
    assert invalid["ok"] is False and "Invalid input for conflict_check" in invalid["error"]
    assert SkillCall.objects.filter(test=True).count() == 2


def test_test_endpoint_calls_the_webhook_signed_and_shows_the_request_without_secrets(
        admin_api, loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    seen = []

    def handle(request):
        seen.append(request)
        return Reply.json({"brand": "Desert Bloom", "tier": "gold"})

    loopback_server.route("/brand", handle)
    created = admin_api.post("/api/v1/agents/copy/skills", webhook_body(
        webhook_url=f"http://127.0.0.1:{loopback_server.port}/brand", auth_type="bearer", auth_secret=TOKEN),
        format="json").json()
    response = admin_api.post(f"/api/v1/skills/{created['id']}/test", {"input": {"brand": "Desert Bloom"}},
                              format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ok"] is True and body["response"]["data"] == {"brand": "Desert Bloom", "tier": "gold"}
    assert body["request"]["body"]["input"] == {"brand": "Desert Bloom"}
    assert body["request"]["body"]["context"]["instance"] == connection.schema_name
    assert TOKEN not in response.content.decode() and created["signing_secret"] not in response.content.decode()
    (request,) = seen
    assert {k.lower(): v for k, v in request.headers.items()}["authorization"] == f"Bearer {TOKEN}"
    verify(created["signing_secret"], request.headers, request.body)


def test_webhook_4xx_is_a_readable_error(admin_api, loopback_server, egress_loopback):
    egress_loopback(loopback_server.port)
    loopback_server.route("/brand", Reply.json({"error": "unknown brand"}, status=404))
    created = admin_api.post("/api/v1/agents/copy/skills", webhook_body(
        webhook_url=f"http://127.0.0.1:{loopback_server.port}/brand"), format="json").json()
    body = admin_api.post(f"/api/v1/skills/{created['id']}/test", {"input": {"brand": "X"}}, format="json").json()
    assert body["ok"] is False and "HTTP 404: unknown brand" in body["error"]
    metrics = admin_api.get(f"/api/v1/skills/{created['id']}").json()["metrics"]
    assert metrics["calls"] == 0  # tests do not count


ENDPOINTS = [
    ("get", "/api/v1/agents/copy/skills", None),
    ("post", "/api/v1/agents/copy/skills", "create"),
    ("get", "/api/v1/skills/{id}", None),
    ("patch", "/api/v1/skills/{id}", {"description": "Changed."}),
    ("post", "/api/v1/skills/{id}/test", {"input": {"brand": "x"}}),
    ("delete", "/api/v1/skills/{id}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize(("role", "reads", "writes"), [
    (None, False, False), ("client_contact", False, False), ("account_manager", False, False),
    ("instance_manager", True, False), ("instance_admin", True, True)])
def test_permissions_on_every_endpoint(in_a, api, make_user, method, path, body, role, reads, writes):
    from skills.services import skill_create

    skill = skill_create(actor=None, agent_types=["copy"], **{k: v for k, v in webhook_body().items()
                                                             if k != "agent_types"}).skill
    if body == "create":
        body = webhook_body(name="other_skill")
    user = make_user(role) if role else None
    response = getattr(api(in_a, user), method)(path.format(id=skill.pk), body, format="json")
    is_read = method == "get"
    allowed = reads if is_read else writes
    if role is None:
        assert response.status_code in (401, 403)
    elif allowed:
        assert response.status_code < 300, response.content
    else:
        assert response.status_code == 403, response.content
    if not allowed:
        assert Skill.objects.get(pk=skill.pk).description == "Look up a brand in the agency CRM."


def test_instance_b_cannot_see_or_change_a_skills(in_a, admin_api, instance_b, make_user, api):
    created = admin_api.post("/api/v1/agents/copy/skills", webhook_body(), format="json").json()
    connection.set_tenant(instance_b)
    other = api(instance_b, make_user("instance_admin"))
    assert other.get("/api/v1/agents/copy/skills").json() == []
    for method in ("get", "patch", "delete"):
        assert getattr(other, method)(f"/api/v1/skills/{created['id']}", {}, format="json").status_code == 404
    assert other.post(f"/api/v1/skills/{created['id']}/test", {}, format="json").status_code == 404
    connection.set_tenant(in_a)
    assert Skill.objects.filter(pk=created["id"]).exists()


def test_skill_list_query_count_does_not_grow_with_skills_or_calls(admin_api):
    from django.test.utils import CaptureQueriesContext

    from skills.services import skill_create

    def add(name):
        skill = skill_create(actor=None, name=name, description="x", input_schema={"type": "object"},
                             execution_type="internal", handler="list_clients", agent_types=["copy"]).skill
        for ok in (True, False):
            SkillCall.objects.create(skill=skill, ok=ok, duration_ms=12.5, error="" if ok else "boom")

    add("first_skill")
    admin_api.get("/api/v1/agents/copy/skills")
    with CaptureQueriesContext(connection) as one:
        admin_api.get("/api/v1/agents/copy/skills")
    for n in range(4):
        add(f"skill_{n}")
    with CaptureQueriesContext(connection) as five:
        body = admin_api.get("/api/v1/agents/copy/skills").json()
    assert len(body) == 5 and len(five) == len(one)
    assert body[0]["metrics"] == {"calls": 2, "success_rate": 0.5, "p50_ms": 12.5, "p95_ms": 12.5,
                                  "last_error": "boom"}
