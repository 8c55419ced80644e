"""The tuning API: the permission matrix of the five roles, isolation, bad input, rollback."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tuning.assembly import assemble_prompt, set_platform_catalog
from tuning.models import ClientTuning, ContentRule, InstanceTuning, TuningChange
from tuning.services import client_rule_add, client_tuning_update, instance_tuning_update

from .catalog import COPY


@pytest.fixture
def world(in_a, make_user, make_client, assigned):
    """Two clients; one person per role; the account manager and the contact have client `mine` only."""
    mine, other = make_client("Mine Cosmetics", vertical="beauty"), make_client("Other Bank", vertical="finance")
    users = {
        "instance_admin": make_user("instance_admin"),
        "instance_manager": make_user("instance_manager"),
        "account_manager": assigned("account_manager", mine),
        "client_contact": assigned("client_contact", mine),
    }
    return {"mine": mine, "other": other, "users": users, "instance": in_a}


def _state():
    return (TuningChange.objects.count(), list(ContentRule.objects.values_list("id", "text")),
            list(InstanceTuning.objects.values()), list(ClientTuning.objects.values()))


ROLES = ["anonymous", "instance_admin", "instance_manager", "account_manager", "client_contact"]
# (method, path template, body, {role: expected status}). A role the access policy never lets take
# an action gets 403 whatever the client; one that may, on a client it cannot see, 404.
# (tests/spokestack/test_policy.py generates the full matrix from the policy table.)
MATRIX = [
    ("get", "/api/v1/tuning", None,
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 403, "client_contact": 403}),
    ("put", "/api/v1/tuning", {"prompt_extension": "Cite sources."},
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 403, "account_manager": 403, "client_contact": 403}),
    ("put", "/api/v1/agents/copy/tuning", {"effort": "low"},
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 403, "account_manager": 403, "client_contact": 403}),
    ("put", "/api/v1/clients/{mine}/tuning", {"brand_voice": "Playful."},
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 200, "client_contact": 403}),
    ("put", "/api/v1/clients/{mine}/tuning", {"length_preferences": {"caption": "short"}},
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 200, "client_contact": 200}),
    ("put", "/api/v1/clients/{other}/tuning", {"brand_voice": "Serious."},
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 404, "client_contact": 403}),
    ("post", "/api/v1/clients/{mine}/rules", {"kind": "never", "text": "Mention prices"},
     {"anonymous": 401, "instance_admin": 201, "instance_manager": 201, "account_manager": 201, "client_contact": 403}),
    ("post", "/api/v1/clients/{other}/rules", {"kind": "never", "text": "Mention prices"},
     {"anonymous": 401, "instance_admin": 201, "instance_manager": 201, "account_manager": 404, "client_contact": 403}),
    ("post", "/api/v1/clients/{mine}/examples", {"kind": "caption", "text": "Glow, naturally."},
     {"anonymous": 401, "instance_admin": 201, "instance_manager": 201, "account_manager": 201, "client_contact": 201}),
    ("post", "/api/v1/clients/{other}/examples", {"kind": "caption", "text": "Glow, naturally."},
     {"anonymous": 401, "instance_admin": 201, "instance_manager": 201, "account_manager": 404, "client_contact": 404}),
    ("get", "/api/v1/agents/copy/tuning", None,
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 403, "client_contact": 403}),
    ("get", "/api/v1/clients/{mine}/tuning", None,
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 200, "client_contact": 200}),
    ("get", "/api/v1/clients/{other}/tuning", None,
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 404, "client_contact": 404}),
    ("get", "/api/v1/clients/{other}/rules", None,
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 404, "client_contact": 404}),
    ("get", "/api/v1/clients/{mine}/examples", None,
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 200, "client_contact": 200}),
    ("get", "/api/v1/tuning/audit", None,
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 200, "client_contact": 403}),
    ("get", "/api/v1/clients/{other}/tuning/audit", None,
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 404, "client_contact": 403}),
    ("post", "/api/v1/tuning/rollback/999999", {},
     {"anonymous": 401, "instance_admin": 404, "instance_manager": 404, "account_manager": 404, "client_contact": 403}),
    ("get", "/api/v1/clients/{other}", None,
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 404, "client_contact": 404}),
    ("get", "/api/v1/agents/copy/prompt-preview?client_id={mine}", None,
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 200, "client_contact": 403}),
    ("get", "/api/v1/agents/copy/prompt-preview?client_id={other}", None,
     {"anonymous": 401, "instance_admin": 200, "instance_manager": 200, "account_manager": 404, "client_contact": 403}),
]


def test_deletes_follow_the_roles(world, api):
    from tuning.services import client_example_add

    mine, other = world["mine"], world["other"]
    rules = {c: client_rule_add(actor=None, client=c, kind="never", text=f"Rule of {c.name}") for c in (mine, other)}
    examples = {c: client_example_add(actor=None, client=c, kind="caption", text="Ok") for c in (mine, other)}
    expected = {  # role: (delete mine, delete other's)
        "client_contact": (403, 403), "account_manager": (204, 404),
        "instance_manager": (204, 204), "instance_admin": (204, 204),
    }
    for role, (on_mine, on_other) in expected.items():
        http = api(world["instance"], world["users"][role])
        for client, status in ((other, on_other), (mine, on_mine)):
            rule, example = rules[client], examples[client]
            before = _state()
            assert http.delete(f"/api/v1/clients/{client.pk}/rules/{rule.pk}").status_code == status, role
            assert http.delete(f"/api/v1/clients/{client.pk}/examples/{example.pk}").status_code == status, role
            if status == 204:  # put them back for the next role, through the audited rollback
                for entry in TuningChange.objects.filter(action="delete").order_by("-id")[:2]:
                    api(world["instance"], world["users"]["instance_admin"]).post(f"/api/v1/tuning/rollback/{entry.pk}")
            else:
                assert _state() == before
    assert api(world["instance"]).delete(f"/api/v1/clients/{mine.pk}/rules/{rules[mine].pk}").status_code == 401


@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(world, api, role):
    client = api(world["instance"], None if role == "anonymous" else world["users"][role])
    for method, template, body, expected in MATRIX:
        path = template.format(mine=world["mine"].pk, other=world["other"].pk)
        before = _state()
        response = getattr(client, method)(path, body, format="json") if body is not None else client.get(path)
        assert response.status_code == expected[role], (method, path, role, response.content)
        if response.status_code >= 400:
            assert _state() == before, f"{method} {path} as {role} changed something"
            assert "error" in response.json()


def test_lists_are_scoped_and_their_query_count_is_constant(world, api, make_client):
    manager = world["users"]["account_manager"]
    client = api(world["instance"], manager)
    listed = client.get("/api/v1/clients").json()["results"]
    assert [c["name"] for c in listed] == ["Mine Cosmetics"]
    client_rule_add(actor=None, client=world["other"], kind="never", text="Secret rule of Other")
    client_rule_add(actor=None, client=world["mine"], kind="always", text="Rule of Mine")
    audit = client.get("/api/v1/tuning/audit").json()["results"]
    assert {entry["client"] for entry in audit} == {"Mine Cosmetics"}
    assert "Secret rule of Other" not in str(audit)
    admin_client = api(world["instance"], world["users"]["instance_admin"])
    admin_client.get("/api/v1/tuning/audit")  # the token's first use writes last_used_at
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get("/api/v1/tuning/audit").status_code == 200
    for i in range(15):
        client_rule_add(actor=None, client=make_client(f"Client {i}"), kind="prefer", text=f"Rule {i}")
    with CaptureQueriesContext(connection) as many:
        assert len(admin_client.get("/api/v1/tuning/audit").json()["results"]) > 15
    assert len(many) == len(few)


def test_instance_b_never_sees_instance_a(world, api, instance_b, make_user):
    mine = world["mine"]
    instance_tuning_update(actor=None, changes={"brand_voice": "Voice of agency A"})
    client_tuning_update(actor=None, client=mine, changes={"brand_voice": "Voice of client A"})
    connection.set_tenant(instance_b)
    admin_b = make_user("instance_admin")
    b = api(instance_b, admin_b)
    assert b.get("/api/v1/tuning").json()["brand_voice"] == ""
    assert b.get(f"/api/v1/clients/{mine.pk}/tuning").status_code == 404
    assert b.get("/api/v1/clients").json()["results"] == []
    assert "agency A" not in str(b.get("/api/v1/tuning/audit").json())
    assert b"agency A" not in assemble_prompt(platform=COPY, client=None).prefix_bytes()
    # A's token is not valid on B's host, and B's admin cannot roll back A's entries.
    a_entry = TuningChange.objects.count()
    assert b.post(f"/api/v1/tuning/rollback/{a_entry + 1000}").status_code == 404


def test_bad_input_is_400_naming_the_field_and_saves_nothing(world, api):
    admin = api(world["instance"], world["users"]["instance_admin"])
    mine = world["mine"].pk
    cases = [
        ("put", "/api/v1/agents/nosuchagent/tuning", {"effort": "low"}, "agent_type"),
        ("put", "/api/v1/agents/copy/tuning", {"effort": "extreme"}, "effort"),
        ("put", "/api/v1/tuning", {"effort": "xhigh"}, "effort"),  # every agent's bound is high
        ("put", "/api/v1/agents/rfp/tuning", {"max_tokens": 100_000}, "max_tokens"),
        ("put", "/api/v1/tuning", {"content_filters": ["-hate"]}, "content_filters"),
        ("put", "/api/v1/tuning", {"disabled_tools": ["no_such_tool"]}, "disabled_tools"),
        ("put", "/api/v1/tuning", {"behaviour_params": {"verbosity": 140}}, "behaviour_params.verbosity"),
        ("put", "/api/v1/tuning", {"colour": "blue"}, "colour"),
        ("put", f"/api/v1/clients/{mine}/tuning", {"brand_voice": "x" * 200_000}, "brand_voice"),
        ("put", f"/api/v1/clients/{mine}/tuning", {"tone_keywords": "warm"}, "tone_keywords"),
        ("put", f"/api/v1/clients/{mine}/tuning", {"competitor_rules": [{"competitor": "Acme"}]},
         "competitor_rules[0]"),
        ("put", f"/api/v1/clients/{mine}/tuning?agent_type=nosuchagent", {"brand_voice": "x"}, "agent_type"),
        ("post", f"/api/v1/clients/{mine}/rules",
         {"rules": [{"kind": "never", "text": "ok"}, {"kind": "sometimes", "text": "bad"}]}, "rules[1].kind"),
        ("post", f"/api/v1/clients/{mine}/rules", {"rules": [{"kind": "never", "text": ""}]}, "rules[0].text"),
        ("post", f"/api/v1/clients/{mine}/rules", {"rules": "never say cheap"}, "rules"),
        ("post", f"/api/v1/clients/{mine}/rules", {"kind": "never", "text": "x", "agent_type": "nosuchagent"},
         "agent_type"),
    ]
    for method, path, body, field in cases:
        before = _state()
        response = getattr(admin, method)(path, body, format="json")
        # an unknown agent type is the catalog's one answer everywhere: 404 unknown_agent_type
        unknown = "nosuchagent" in f"{path}{body}"
        assert response.status_code == (404 if unknown else 400), (path, body, response.content)
        assert response.json()["error"]["message"].startswith(f"{field}:"), response.json()
        assert _state() == before
    relaxing = admin.put("/api/v1/agents/copy/tuning", {"effort": "max"}, format="json").json()["error"]
    assert "max_effort high" in relaxing["message"]


def test_rollback_restores_exactly_and_is_audited(world, api):
    admin = api(world["instance"], world["users"]["instance_admin"])
    mine = world["mine"].pk
    path = f"/api/v1/clients/{mine}/tuning"
    admin.put(path, {"brand_voice": "First voice.", "tone_keywords": ["warm"]}, format="json")
    before = admin.get(path).json()
    admin.put(path, {"brand_voice": "Second voice.", "reason": "rebrand", "ticket": "OPS-7"}, format="json")
    audit = admin.get(f"{path}/audit").json()["results"]
    entry = audit[0]
    assert (entry["field"], entry["old_value"], entry["new_value"]) == ("brand_voice", "First voice.", "Second voice.")
    assert (entry["reason"], entry["ticket"], entry["affected_clients"]) == ("rebrand", "OPS-7", [mine])
    rolled = admin.post(f"/api/v1/tuning/rollback/{entry['id']}", {"reason": "client preferred it"}, format="json")
    assert rolled.status_code == 201
    assert rolled.json()["rollback_of_id"] == entry["id"] and rolled.json()["new_value"] == "First voice."
    after = admin.get(path).json()
    assert {k: v for k, v in after.items() if k != "updated_at"} == {k: v for k, v in before.items()
                                                                      if k != "updated_at"}
    # Rolling back the rollback is allowed and restores the second voice.
    again = admin.post(f"/api/v1/tuning/rollback/{rolled.json()['id']}", format="json")
    assert again.status_code == 201 and admin.get(path).json()["brand_voice"] == "Second voice."


def test_rollback_conflict_is_409_with_both_values(world, api):
    admin = api(world["instance"], world["users"]["instance_admin"])
    admin.put("/api/v1/agents/copy/tuning", {"effort": "low"}, format="json")
    entry = admin.get("/api/v1/tuning/audit").json()["results"][0]
    admin.put("/api/v1/agents/copy/tuning", {"effort": "medium"}, format="json")
    before = _state()
    response = admin.post(f"/api/v1/tuning/rollback/{entry['id']}", format="json")
    assert response.status_code == 409
    details = response.json()["error"]["details"]
    assert (details["current"], details["expected"], details["restore"]) == ("medium", "low", "")
    assert "'medium'" in response.json()["error"]["message"] and "'low'" in response.json()["error"]["message"]
    assert _state() == before


def test_rule_create_and_delete_roll_back(world, api):
    manager = api(world["instance"], world["users"]["account_manager"])
    mine = world["mine"].pk
    created = manager.post(f"/api/v1/clients/{mine}/rules", {"kind": "never", "text": "Say cheap"}, format="json")
    rule_id = created.json()["id"]
    assert manager.delete(f"/api/v1/clients/{mine}/rules/{rule_id}").status_code == 204
    deletion = manager.get(f"/api/v1/clients/{mine}/tuning/audit").json()["results"][0]
    assert deletion["action"] == "delete" and deletion["old_value"]["text"] == "Say cheap"
    assert manager.post(f"/api/v1/tuning/rollback/{deletion['id']}").status_code == 201
    restored = manager.get(f"/api/v1/clients/{mine}/rules").json()
    assert [(r["id"], r["text"], r["kind"], r["created_by"]) for r in restored] == [
        (rule_id, "Say cheap", "never", world["users"]["account_manager"].username)]
    # The account manager cannot roll back an entry of a client that is not theirs.
    client_rule_add(actor=None, client=world["other"], kind="always", text="Other's rule")
    others = TuningChange.objects.filter(client=world["other"]).latest("id")
    assert manager.post(f"/api/v1/tuning/rollback/{others.pk}").status_code == 404
    assert ContentRule.objects.filter(client=world["other"]).count() == 1


def test_prompt_preview_follows_changes_and_answers_503_without_a_catalog(world, api, settings):
    manager = api(world["instance"], world["users"]["account_manager"])
    mine = world["mine"].pk
    preview = f"/api/v1/agents/copy/prompt-preview?client_id={mine}"
    assert "Use the word affordable" not in str(manager.get(preview).json()["sections"])
    manager.post(f"/api/v1/clients/{mine}/rules", {"kind": "never", "text": "Use the word affordable"}, format="json")
    body = manager.get(preview).json()
    assert {"tier": 3, "field": "rules.never", "text": "## Never\n- Use the word affordable"} in body["sections"]
    assert {"kind": "never", "text": "Use the word affordable", "tier": 3, "source": "manual",
            "competitor": ""} in body["rules"]
    assert body["specialization"] == {"vertical": "beauty", "language": "en"}  # "en": the instance's own language
    assert body["token_estimate"] > 0
    assert manager.get("/api/v1/agents/nosuchagent/prompt-preview").status_code == 404
    set_platform_catalog(None)
    settings.TUNING_PLATFORM_CATALOG = ""
    unavailable = manager.get(preview)
    assert unavailable.status_code == 503
    assert "No agent catalog is registered" in unavailable.json()["error"]["message"]
