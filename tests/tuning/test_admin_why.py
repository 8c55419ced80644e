"""Issue #15 (finding 5): every admin form that changes tuning carries a Reason and a Ticket into
the audit entries it writes; History links each entry to the rollback confirmation page (a GET
changes nothing) and, like the audit log, shows values as JSON rather than Python reprs."""

import pytest
from django.test import Client as HttpClient

from feedback import services as feedback_services
from skills.models import Skill
from tuning.models import ContentRule, TuningChange
from tuning.services import client_rule_add, client_tuning_update

from ..conftest import HOST_A

WHY = {"change_reason": "Client asked on the call", "change_ticket": "SUP-7"}


@pytest.fixture
def admin_http(in_a, make_user):
    user = make_user("instance_admin")
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(user)
    return user, http


def _management(**totals):
    data = {}
    for prefix in ("tunings", "rules", "examples"):
        data.update({f"{prefix}-TOTAL_FORMS": str(totals.get(prefix, 0)), f"{prefix}-INITIAL_FORMS": "0",
                     f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"})
    return data


def test_a_rule_added_on_the_client_page_carries_the_pages_reason_and_ticket(admin_http, make_client):
    admin, http = admin_http
    client = make_client("Mine Cosmetics", vertical="beauty")
    page = http.get(f"/admin/tuning/client/{client.pk}/change/")
    assert b'name="change_reason"' in page.content and b'name="change_ticket"' in page.content
    assert b"New tuning row" in page.content and b"#1</span>" not in page.content  # no "Tuning: #1"
    saved = http.post(f"/admin/tuning/client/{client.pk}/change/", {
        "name": client.name, "slug": client.slug, "vertical": "beauty", "region": "", "language": "",
        **_management(rules=1), "rules-0-kind": "never", "rules-0-text": "Promise miracles", "rules-0-agent_type": "",
        "rules-0-active": "on", **WHY})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    entry = TuningChange.objects.get(entity="content_rule")
    assert (entry.reason, entry.ticket, entry.actor) == ("Client asked on the call", "SUP-7", admin)
    assert ContentRule.objects.get().text == "Promise miracles"


def test_skill_forms_carry_reason_and_ticket_and_a_deletion_is_audited(admin_http):
    _, http = admin_http
    form = {"name": "crm_lookup", "description": "Look up a brand.", "input_schema": '{"type": "object"}',
            "execution_type": "webhook", "agent_types": ["copy"], "enabled": "on",
            "webhook_url": "https://hooks.example.com/crm", "auth_type": "bearer", "auth_header": "X-Api-Key",
            "auth_secret": "tok", "handler": "", "timeout_s": "10"}
    assert http.post("/admin/skills/skill/add/", {**form, **WHY}).status_code == 302
    skill = Skill.objects.get()
    assert set(TuningChange.objects.filter(entity="skill").values_list("reason", "ticket")) == {
        ("Client asked on the call", "SUP-7")}
    changed = http.post(f"/admin/skills/skill/{skill.pk}/change/", {**form, "auth_secret": "", "enabled": "",
                                                                     "change_reason": "Vendor outage"})
    assert changed.status_code == 302
    assert TuningChange.objects.latest("id").reason == "Vendor outage"
    assert http.post(f"/admin/skills/skill/{skill.pk}/delete/", {"post": "yes"}).status_code == 302
    gone = TuningChange.objects.latest("id")
    assert (gone.entity, gone.action, gone.old_value["name"]) == ("skill", "delete", "crm_lookup")


def test_feedback_settings_form_carries_reason_and_ticket(admin_http):
    admin, http = admin_http
    row = feedback_services.feedback_settings_update(actor=None)
    response = http.post(f"/admin/feedback/feedbacksettings/{row.pk}/change/",
                         {"auto_apply": "on", "auto_apply_min_confidence": "0.95", "window_days": "90", **WHY})
    assert response.status_code == 302, response.content.decode()[:2000]
    entries = TuningChange.objects.filter(entity="feedback_settings", actor=admin)
    assert set(entries.values_list("reason", "ticket")) == {("Client asked on the call", "SUP-7")}


def test_history_links_to_the_confirmation_and_shows_json(admin_http, make_client):
    admin, http = admin_http
    client = make_client("Mine Cosmetics", vertical="beauty")
    client_tuning_update(actor=admin, client=client, changes={"brand_voice": "One."})
    client_rule_add(actor=admin, client=client, kind="never", text="Promise miracles")
    history = http.get(f"/admin/tuning/client/{client.pk}/history/").content.decode()
    entry = TuningChange.objects.get(entity="client_tuning")
    assert f'/admin/tuning/tuningchange/{entry.pk}/rollback/?next=' in history
    assert 'method="post"' not in history.split('id="change-history"')[1]  # no one-click rollback
    assert "&quot;kind&quot;: &quot;never&quot;" in history and "{&#x27;" not in history
    assert "Mine Cosmetics&#x27;s tuning for all agents · brand voice" in history
    confirm = http.get(f"/admin/tuning/tuningchange/{entry.pk}/rollback/?next=/admin/")
    assert confirm.status_code == 200 and b'name="ticket"' in confirm.content
    assert client.tunings.get().brand_voice == "One."
    audit = http.get("/admin/tuning/tuningchange/").content.decode()
    assert "{&#x27;" not in audit and "&quot;text&quot;: &quot;Promise miracles&quot;" in audit
