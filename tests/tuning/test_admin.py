"""The admin: scoped changelists and search, edits through the services, preview, history, rollback."""

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from spokestack.accounts import policy
from tuning.models import ContentRule, InstanceTuning, TuningChange
from tuning.services import client_rule_add, client_tuning_update, instance_tuning_update

from ..conftest import HOST_A


@pytest.fixture
def browser_for():
    def make(user):
        http = HttpClient(HTTP_HOST=HOST_A)
        http.force_login(user)
        return http

    return make


@pytest.fixture
def clients(in_a, make_client):
    return make_client("Mine Cosmetics", vertical="beauty"), make_client("Other Bank", vertical="finance")


def _inline_management(**totals):
    data = {}
    for prefix in ("tunings", "rules", "examples"):
        data.update({f"{prefix}-TOTAL_FORMS": str(totals.get(prefix, 0)), f"{prefix}-INITIAL_FORMS": "0",
                     f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"})
    return data


def test_account_manager_sees_only_assigned_clients_in_lists_search_and_detail(clients, assigned, browser_for):
    mine, other = clients
    http = browser_for(assigned("account_manager", mine))
    listing = http.get("/admin/tuning/client/")
    assert listing.status_code == 200
    assert b"Mine Cosmetics" in listing.content and b"Other Bank" not in listing.content
    assert b"/admin/tuning/client/preview/" in listing.content
    assert b"Other Bank" not in http.get("/admin/tuning/client/?q=Other").content
    assert http.get(f"/admin/tuning/client/{other.pk}/change/").status_code == 404
    assert http.get(f"/admin/tuning/client/{other.pk}/history/").status_code == 404
    client_rule_add(actor=None, client=other, kind="never", text="Secret of Other")
    assert b"Secret of Other" not in http.get("/admin/tuning/tuningchange/").content
    assert http.get("/admin/tuning/instancetuning/").status_code == 403


def test_account_manager_adds_a_rule_through_the_admin_and_it_is_audited(clients, assigned, browser_for):
    mine, other = clients
    manager = assigned("account_manager", mine)
    http = browser_for(manager)
    page = http.get(f"/admin/tuning/client/{mine.pk}/change/")
    assert page.status_code == 200 and b"Rules in force" in page.content and b"Prompt preview" in page.content
    data = {**_inline_management(rules=1), "rules-0-kind": "never", "rules-0-text": "Promise overnight results",
            "rules-0-agent_type": "", "rules-0-active": "on"}
    saved = http.post(f"/admin/tuning/client/{mine.pk}/change/", data)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    rule = ContentRule.objects.get(client=mine)
    assert (rule.kind, rule.text, rule.created_by) == ("never", "Promise overnight results", manager)
    entry = TuningChange.objects.get(entity="content_rule")
    assert entry.actor == manager and entry.action == "create"
    # The same POST against a client that is not theirs: 404, nothing changes.
    before = TuningChange.objects.count()
    assert http.post(f"/admin/tuning/client/{other.pk}/change/", data).status_code == 404
    assert TuningChange.objects.count() == before and not ContentRule.objects.filter(client=other).exists()


def test_bad_rule_in_the_admin_shows_next_to_its_field(clients, make_user, browser_for):
    mine, _ = clients
    http = browser_for(make_user("instance_admin"))
    data = {"name": mine.name, "slug": mine.slug, "vertical": mine.vertical, "region": "", "language": "",
            **_inline_management(rules=1), "rules-0-kind": "never", "rules-0-text": "x" * 1001,
            "rules-0-agent_type": "", "rules-0-active": "on"}
    response = http.post(f"/admin/tuning/client/{mine.pk}/change/", data)
    assert response.status_code == 200 and b"errorlist" in response.content
    assert not ContentRule.objects.exists()


def test_client_contact_adds_examples_but_not_rules(clients, assigned, browser_for):
    mine, _ = clients
    http = browser_for(assigned("client_contact", mine))
    page = http.get(f"/admin/tuning/client/{mine.pk}/change/")
    assert page.status_code == 200
    # The rules are shown to the contact read-only (policy client.view, as the API's GET), never added.
    assert b'id="rules-group"' in page.content and b'id="examples-group"' in page.content
    assert b'name="rules-0-text"' not in page.content
    data = {**_inline_management(examples=1, rules=1), "examples-0-kind": "caption", "examples-0-text": "Glow.",
            "examples-0-context": "", "examples-0-agent_type": "", "rules-0-kind": "never", "rules-0-text": "sneaky",
            "rules-0-agent_type": "", "rules-0-active": "on"}
    response = http.post(f"/admin/tuning/client/{mine.pk}/change/", data)
    assert response.status_code == 302, [f.formset.errors for f in response.context["inline_admin_formsets"]] + [
        response.context["errors"]]
    assert mine.examples.count() == 1 and not ContentRule.objects.exists()


def test_instance_tuning_admin_roles_and_bounds(in_a, make_user, browser_for):
    admin_http = browser_for(make_user("instance_admin"))
    landing = admin_http.get("/admin/tuning/instancetuning/")
    assert landing.status_code == 302
    wide = InstanceTuning.objects.get(agent_type="")
    form = admin_http.get(landing["Location"])
    assert form.status_code == 200 and b"Per-agent overrides" in form.content
    fields = {"prompt_extension": "", "instruction_overrides": "{}", "default_vertical": "", "default_region": "",
              "default_language": "", "vertical_knowledge": "{}", "disabled_tools": "",
              "tool_config_overrides": "{}", "behaviour_params": "{}", "traits": "{}", "output_preferences": "{}",
              "brand_voice": "", "terminology_use": "", "terminology_avoid": "", "require_approval_for": "",
              "effort": "", "max_tokens": "", "content_filters": "", "enabled": "unknown",
              "audit_all_outputs": "unknown", "per_agent-TOTAL_FORMS": "1", "per_agent-INITIAL_FORMS": "0",
              "per_agent-MIN_NUM_FORMS": "0", "per_agent-MAX_NUM_FORMS": "1000"}
    per_agent = {f"per_agent-0-{k}": v for k, v in fields.items() if not k.startswith("per_agent")}
    relaxing = {**fields, **per_agent, "per_agent-0-agent_type": "copy", "per_agent-0-effort": "max"}
    refused = admin_http.post(landing["Location"], relaxing)
    assert refused.status_code == 200 and b"max_effort high" in refused.content
    assert InstanceTuning.objects.count() == 1 and not TuningChange.objects.filter(tier=2).exists()
    accepted = {**relaxing, "per_agent-0-effort": "low", "prompt_extension": "Cite sources.",
                "terminology_avoid": "cheap, guarantee\nmiracle"}
    assert admin_http.post(landing["Location"], accepted).status_code == 302
    assert InstanceTuning.objects.get(agent_type="copy").effort == "low"
    assert InstanceTuning.objects.get(pk=wide.pk).prompt_extension == "Cite sources."
    assert set(TuningChange.objects.filter(tier=2).values_list("field", flat=True)) == {
        "effort", "prompt_extension", "terminology_avoid"}
    assert InstanceTuning.objects.get(pk=wide.pk).terminology_avoid == ["cheap", "guarantee", "miracle"]
    manager_http = browser_for(make_user("instance_manager"))
    assert manager_http.get(landing["Location"]).status_code == 200  # reads tier 2
    assert manager_http.post(landing["Location"], {**fields, "brand_voice": "Hijack"}).status_code == 403
    assert InstanceTuning.objects.get(pk=wide.pk).brand_voice == ""


def test_preview_page_labels_sections_and_diffs_the_last_change(clients, assigned, browser_for):
    mine, _ = clients
    http = browser_for(assigned("account_manager", mine))
    client_tuning_update(actor=None, client=mine, changes={"brand_voice": "Radiant."})
    client_rule_add(actor=None, client=mine, kind="never", text="Promise miracles")
    page = http.get(f"/admin/tuning/client/preview/?agent_type=copy&client={mine.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Tier 1 · platform" in html and "Tier 3 · client" in html and "tier 3 · rules.never" in html
    assert 'id="token-estimate"' in html
    assert '<span class="add">+- Promise miracles</span>' in html
    assert ContentRule.objects.filter(client=mine).count() == 1  # the diff's undo was rolled back


def test_history_and_rollback_in_the_admin(clients, make_user, browser_for):
    mine, _ = clients
    admin = make_user("instance_admin")
    http = browser_for(admin)
    client_tuning_update(actor=admin, client=mine, changes={"brand_voice": "One."})
    client_tuning_update(actor=admin, client=mine, changes={"brand_voice": "Two."})
    history = http.get(f"/admin/tuning/client/{mine.pk}/history/")
    assert history.status_code == 200 and b"Roll back" in history.content
    first, second = TuningChange.objects.filter(entity="client_tuning").order_by("id")
    conflict = http.post(f"/admin/tuning/tuningchange/{first.pk}/rollback/", follow=True)
    assert b"changed again" in conflict.content
    assert http.get(f"/admin/tuning/tuningchange/{second.pk}/rollback/").status_code == 200
    http.post(f"/admin/tuning/tuningchange/{second.pk}/rollback/", {"reason": "too terse"})
    assert mine.tunings.get().brand_voice == "One."
    assert TuningChange.objects.latest("id").rollback_of_id == second.pk


def test_changelist_queries_stay_constant_as_clients_grow(in_a, make_client, assigned, browser_for):
    first = [make_client(f"Client {i:03}") for i in range(3)]
    manager = assigned("account_manager", *first)
    http = browser_for(manager)
    http.get("/admin/tuning/client/")
    with CaptureQueriesContext(connection) as few:
        assert http.get("/admin/tuning/client/").status_code == 200
    from tuning.services import client_assign

    for i in range(3, 30):
        client = make_client(f"Client {i:03}")
        client_rule_add(actor=None, client=client, kind="never", text="x")
        client_assign(user=manager, client=client, role="account_manager")
    with CaptureQueriesContext(connection) as many:
        response = http.get("/admin/tuning/client/")
    assert b"Client 029" in response.content
    assert len(many) == len(few)
    for url in ("/admin/tuning/tuningchange/",):
        http.get(url)
        with CaptureQueriesContext(connection) as audit_queries:
            assert http.get(url).status_code == 200
        instance_tuning_update(actor=None, changes={"brand_voice": "More rows."})
        with CaptureQueriesContext(connection) as more:
            http.get(url)
        assert len(more) == len(audit_queries)


ADMIN_MATRIX = [
    # (path template, {role: status}); anonymous is sent to the login page.
    ("/admin/tuning/client/", {"instance_admin": 200, "instance_manager": 200, "account_manager": 200,
                               "client_contact": 200}),
    ("/admin/tuning/client/{mine}/change/", {"instance_admin": 200, "instance_manager": 200,
                                             "account_manager": 200, "client_contact": 200}),
    ("/admin/tuning/client/{other}/change/", {"instance_admin": 200, "instance_manager": 200,
                                              "account_manager": 404, "client_contact": 404}),
    ("/admin/tuning/client/add/", {"instance_admin": 200, "instance_manager": 403, "account_manager": 403,
                                   "client_contact": 403}),
    ("/admin/tuning/instancetuning/", {"instance_admin": 302, "instance_manager": 200, "account_manager": 403,
                                       "client_contact": 403}),
    ("/admin/tuning/tuningchange/", {"instance_admin": 200, "instance_manager": 200, "account_manager": 200,
                                     "client_contact": 403}),
    ("/admin/tuning/client/preview/?agent_type=copy&client={mine}",
     {"instance_admin": 200, "instance_manager": 200, "account_manager": 200, "client_contact": 403}),
]


@pytest.mark.parametrize("role", ["anonymous", "instance_admin", "instance_manager", "account_manager",
                                  "client_contact"])
def test_admin_permission_matrix(clients, assigned, role):
    mine, other = clients
    http = HttpClient(HTTP_HOST=HOST_A)
    if role != "anonymous":
        http.force_login(assigned(role, mine) if role in ("account_manager", "client_contact") else
                         assigned(role))
    for template, expected in ADMIN_MATRIX:
        url = template.format(mine=mine.pk, other=other.pk)
        response = http.get(url)
        if role == "anonymous":
            assert response.status_code == 302 and "/admin/login/" in response["Location"], url
        else:
            assert response.status_code == expected[role], (url, role, response.status_code)


def test_admin_assigns_and_unassigns_people_to_a_client(clients, make_user, browser_for):
    from tuning.selectors import clients_visible_to

    mine, _ = clients
    admin = make_user("instance_admin")
    manager, contact = make_user("account_manager"), make_user("client_contact")
    http = browser_for(admin)
    page = http.get(f"/admin/tuning/client/{mine.pk}/change/")
    assert b"id_account_managers" in page.content and b"id_client_contacts" in page.content
    details = {"name": mine.name, "slug": mine.slug, "vertical": mine.vertical, "region": "", "language": "",
               **_inline_management()}
    saved = http.post(f"/admin/tuning/client/{mine.pk}/change/",
                      {**details, "account_managers": [manager.pk], "client_contacts": [contact.pk]})
    assert saved.status_code == 302
    assert list(clients_visible_to(actor=manager)) == [mine] and list(clients_visible_to(actor=contact)) == [mine]
    entries = TuningChange.objects.filter(entity="client_assignment").order_by("id")
    assert [(e.action, e.new_value["role"], e.actor) for e in entries] == [
        ("create", "account_manager", admin), ("create", "client_contact", admin)]
    http.post(f"/admin/tuning/client/{mine.pk}/change/", {**details, "client_contacts": [contact.pk]})
    policy.forget(manager)  # its assignments were read before the change
    assert list(clients_visible_to(actor=manager)) == []
    assert TuningChange.objects.filter(entity="client_assignment", action="delete").count() == 1
    # An account manager cannot assign: the fields are not even on their page.
    am_http = browser_for(make_user("account_manager"))
    assert am_http.get(f"/admin/tuning/client/{mine.pk}/change/").status_code == 404
