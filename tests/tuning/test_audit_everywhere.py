"""One audit log for every configuration change (issue #14, found 7 / build 7; DESIGN §10).

* A walker generated from the service modules: every public function of tuning, skills,
  versions, feedback and accounts services is either called here with valid input and must
  write an audit entry, or sits in NOT_CONFIGURATION with the reason it changes no
  configuration. A new service function in neither list fails the suite.
* Skills, version settings and feedback settings: before/after per field (secrets never by
  value), API and admin alike, rollback through the app's own service, 409 on drift, 400 for
  what cannot be undone.
* The log filtered (entity, actor, client, from/to) and exported (CSV, JSON) over the API and in
  the admin, scoped like the list: another client's account manager sees none of it.
"""

from __future__ import annotations

import csv
import datetime as dt
import inspect
import io
import json
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from feedback import services as feedback_services
from feedback.models import FeedbackSettings, Suggestion
from skills import services as skill_services
from skills.models import Skill
from spokestack.accounts import services as account_services
from spokestack.errors import Conflict, InvalidInput
from tuning import services as tuning_services
from tuning.models import TuningChange
from versions import services as version_services
from versions.models import AgentVersionConfig, UpdateNotification

from ..conftest import HOST_A
from ..feedback.conftest import discount_corrections, finished_run  # noqa: F401 - fixtures
from ..versions.helpers import catalog_before_release, release

MODULES = [tuning_services, skill_services, version_services, feedback_services, account_services]
TOKEN = "tok-9d1c-audit-must-never-hold-this"
INTERNAL_SKILL = {"name": "list_our_clients", "description": "The clients of this agency.",
                  "execution_type": "internal", "handler": "list_clients", "agent_types": ["copy"],
                  "input_schema": {"type": "object", "properties": {}}}
WEBHOOK_SKILL = {"name": "brand_lookup", "description": "Look up a brand in the agency CRM.",
                 "execution_type": "webhook", "webhook_url": "https://hooks.example.com/brand", "auth_type": "bearer",
                 "auth_secret": TOKEN, "agent_types": ["copy"], "input_schema": {"type": "object", "properties": {}}}

# Public functions of those modules that change no configuration, and why. Everything else is walked.
NOT_CONFIGURATION = {
    # reads and validators: they write nothing
    "tuning.services.instance_tuning_validate": "validates, writes nothing",
    "tuning.services.client_tuning_validate": "validates, writes nothing",
    "tuning.services.client_tuning_action": "names the policy action of a change",
    "tuning.services.content_rule_validate": "validates, writes nothing",
    "tuning.services.content_rules_from_guide": "maps the guide's shape to rules; the add is walked",
    "tuning.services.approved_example_validate": "validates, writes nothing",
    "tuning.services.rule_snapshot": "what an entry keeps of a rule",
    "tuning.services.example_snapshot": "what an entry keeps of an example",
    "tuning.services.client_snapshot": "what an entry keeps of a client",
    "tuning.services.memory_snapshot": "what an entry keeps of a memory",
    "tuning.services.memory_auto_accept_enabled": "reads the instance's auto-accept flag",
    "skills.services.core_tool_names": "reads the agents' core tools",
    "skills.services.skill_validate": "validates a form's data, writes nothing",
    "skills.services.skill_snapshot": "what an entry keeps of a skill",
    "versions.services.known_agent_type": "validates, writes nothing",
    "versions.services.known_version": "validates, writes nothing",
    "versions.services.latest_released": "reads the catalog",
    "versions.services.impact_for": "computes an impact analysis",
    "versions.services.skill_core_report": "reads a skill's usage",
    "spokestack.accounts.services.role_of": "reads a person's role",
    "spokestack.accounts.services.user_snapshot": "what an entry keeps of a person",
    "versions.services.release_recipients": "reads who receives release e-mails",
    "spokestack.accounts.services.user_invitation_send": "an e-mail with a set-password link; changes nothing",
    # not an instance's configuration
    "tuning.services.instance_tuning_wide_row": "creates the empty instance-wide row: every field inherits, "
                                                "nothing changes until a field is saved (walked)",
    "versions.services.catalog_sync": "mirrors the platform's code into the public catalog on deploy",
    "versions.services.config_get_or_create": "the first read of an agent type records the version it already "
                                              "runs (version history 'initial'); no setting changes",
    "versions.services.release_fanout_run": "the fan-out over instances; each instance's change is "
                                            "release_notify_instance's (walked)",
    "versions.services.release_fanout_batch_run": "as release_fanout_run",
    "versions.services.sandbox_test_add": "creates sandbox runs (run creation)",
    "versions.services.sandbox_evals_run": "starts eval runs of sandbox runs (run creation)",
    "versions.services.skill_submit_core": "a proposal to the platform team, in the public schema",
    "feedback.services.feedback_give": "feedback creation",
    "feedback.services.analysis_run": "an analysis: suggestions are proposals until applied (walked)",
    "spokestack.accounts.services.api_token_create": "a credential, not configuration: it carries only its "
                                                     "owner's rights",
    "spokestack.accounts.services.api_token_authenticate": "authentication",
    "spokestack.accounts.services.api_token_revoke": "a credential, as api_token_create",
    # rollback handlers: called by tuning.services.tuning_rollback, which is walked
    "feedback.services.suggestion_status_rollback": "a rollback handler, reached through tuning_rollback",
}


def service_functions() -> list[str]:
    """Every public function defined in the service modules, as module.name (generated, not listed)."""
    found = []
    for module in MODULES:
        for name, value in vars(module).items():
            if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_"):
                found.append(f"{module.__name__}.{name}")
    return sorted(found)


WALKED = [name for name in service_functions() if name not in NOT_CONFIGURATION]


@pytest.fixture
def world(in_a, make_user, make_client, assigned):
    mine = make_client("Mine Cosmetics", vertical="beauty", region="GCC", language="en")
    other = make_client("Other Bank", vertical="finance")
    return {"instance": in_a, "mine": mine, "other": other, "admin": make_user("instance_admin"),
            "manager": make_user("instance_manager"), "am_mine": assigned("account_manager", mine),
            "am_other": assigned("account_manager", other), "contact": assigned("client_contact", mine)}


def _suggestion(w, discount_corrections):  # noqa: F811
    discount_corrections(w["mine"], n=15)
    feedback_services.analysis_run(client=w["mine"], use_model=False)
    return Suggestion.objects.filter(client=w["mine"], status="pending").first()


def _before_release(w):
    catalog_before_release()
    return version_services.config_get_or_create(agent_type="media_buying")


def _pending_update(w):
    _before_release(w)
    release([w["instance"].schema_name])
    w["instance"].refresh_from_db()
    return UpdateNotification.objects.get(agent_type="media_buying")


def _sandbox(w):
    _before_release(w)
    return version_services.sandbox_create(actor=w["admin"], agent_type="media_buying", test_version="2.4.0")


def _entry(w):
    tuning_services.instance_tuning_update(actor=w["admin"], changes={"effort": "low"})
    return TuningChange.objects.order_by("-id").first()


# module.name -> recipe(world, fixtures) that prepares and returns the one call to check.
Recipe = Callable[..., Callable[[], object]]
RECIPES: dict[str, Recipe] = {
    "tuning.services.client_create": lambda w, f: lambda: tuning_services.client_create(
        actor=w["admin"], name="New Client"),
    "tuning.services.client_update": lambda w, f: lambda: tuning_services.client_update(
        actor=w["admin"], client=w["mine"], changes={"name": "Mine Beauty"}),
    "tuning.services.client_archive": lambda w, f: lambda: tuning_services.client_archive(
        actor=w["admin"], client=w["mine"]),
    "tuning.services.client_unarchive": lambda w, f: (
        tuning_services.client_archive(actor=w["admin"], client=w["mine"]),
        lambda: tuning_services.client_unarchive(actor=w["admin"], client=w["mine"]))[1],
    "tuning.services.client_assign": lambda w, f: lambda: tuning_services.client_assign(
        actor=w["admin"], user=w["am_other"], client=w["mine"], role="account_manager"),
    "tuning.services.client_unassign": lambda w, f: lambda: tuning_services.client_unassign(
        actor=w["admin"], user=w["am_mine"], client=w["mine"], role="account_manager"),
    "tuning.services.instance_tuning_update": lambda w, f: lambda: tuning_services.instance_tuning_update(
        actor=w["admin"], changes={"effort": "medium"}),
    "tuning.services.client_tuning_update": lambda w, f: lambda: tuning_services.client_tuning_update(
        actor=w["admin"], client=w["mine"], changes={"brand_voice": "Warm."}),
    "tuning.services.client_rules_add": lambda w, f: lambda: tuning_services.client_rules_add(
        actor=w["admin"], client=w["mine"], rules=[{"kind": "never", "text": "No urgency."}]),
    "tuning.services.client_rule_add": lambda w, f: lambda: tuning_services.client_rule_add(
        actor=w["admin"], client=w["mine"], kind="never", text="No urgency."),
    "tuning.services.client_rule_update": lambda w, f: (lambda rule: lambda: tuning_services.client_rule_update(
        actor=w["admin"], rule=rule, changes={"text": "No urgency at all."}))(tuning_services.client_rule_add(
            actor=w["admin"], client=w["mine"], kind="never", text="No urgency.")),
    "tuning.services.client_rule_remove": lambda w, f: (lambda rule: lambda: tuning_services.client_rule_remove(
        actor=w["admin"], rule=rule))(tuning_services.client_rule_add(
            actor=w["admin"], client=w["mine"], kind="never", text="No urgency.")),
    "tuning.services.client_example_add": lambda w, f: lambda: tuning_services.client_example_add(
        actor=w["admin"], client=w["mine"], kind="caption", text="Glow gently."),
    "tuning.services.client_example_remove": lambda w, f: (lambda ex: lambda: tuning_services.client_example_remove(
        actor=w["admin"], example=ex))(tuning_services.client_example_add(
            actor=w["admin"], client=w["mine"], kind="caption", text="Glow gently.")),
    "tuning.services.memory_propose": lambda w, f: lambda: tuning_services.memory_propose(
        actor=None, client=w["mine"], text="Always use British spelling.", source="run:test"),
    "tuning.services.memory_create": lambda w, f: lambda: tuning_services.memory_create(
        actor=w["am_mine"], client=w["mine"], text="The brand is never called 'cheap'."),
    "tuning.services.memory_accept": lambda w, f: (lambda m: lambda: tuning_services.memory_accept(
        actor=w["am_mine"], memory=m))(tuning_services.memory_propose(actor=None, client=w["mine"], text="Oxford comma.")),
    "tuning.services.memory_reject": lambda w, f: (lambda m: lambda: tuning_services.memory_reject(
        actor=w["am_mine"], memory=m))(tuning_services.memory_propose(actor=None, client=w["mine"], text="Oxford comma.")),
    "tuning.services.memory_edit": lambda w, f: (lambda m: lambda: tuning_services.memory_edit(
        actor=w["am_mine"], memory=m, changes={"text": "No Oxford comma."}))(tuning_services.memory_propose(
            actor=None, client=w["mine"], text="Oxford comma.")),
    "tuning.services.memory_delete": lambda w, f: (lambda m: lambda: tuning_services.memory_delete(
        actor=w["am_mine"], memory=m))(tuning_services.memory_propose(actor=None, client=w["mine"], text="Oxford comma.")),
    "tuning.services.memory_auto_accept_set": lambda w, f: lambda: tuning_services.memory_auto_accept_set(
        actor=w["admin"], enabled=True),
    "tuning.services.memories_expire": lambda w, f: (lambda m: lambda: tuning_services.memories_expire(
        now=m.expires_at + dt.timedelta(seconds=1)))(tuning_services.memory_create(
            actor=None, client=w["mine"], text="Spring sale ends soon.", expires_at=timezone.now() + dt.timedelta(days=1))),
    "tuning.services.tuning_rollback": lambda w, f: (lambda entry: lambda: tuning_services.tuning_rollback(
        actor=w["admin"], change=entry))(_entry(w)),
    "skills.services.skill_create": lambda w, f: lambda: skill_services.skill_create(
        actor=w["admin"], **INTERNAL_SKILL),
    "skills.services.skill_update": lambda w, f: (lambda s: lambda: skill_services.skill_update(
        actor=w["admin"], skill=s, changes={"enabled": False}))(
            skill_services.skill_create(actor=w["admin"], **INTERNAL_SKILL).skill),
    "skills.services.skill_delete": lambda w, f: (lambda s: lambda: skill_services.skill_delete(
        actor=w["admin"], skill=s))(skill_services.skill_create(actor=w["admin"], **INTERNAL_SKILL).skill),
    "versions.services.version_config_update": lambda w, f: lambda: version_services.version_config_update(
        actor=w["admin"], agent_type="media_buying", changes={"policy": "manual"}),
    "versions.services.version_rollback": lambda w, f: (
        _before_release(w),
        version_services.version_config_update(actor=w["admin"], agent_type="media_buying",
                                               changes={"pinned_version": "2.4.0"}),
        lambda: version_services.version_rollback(actor=w["admin"], agent_type="media_buying", version="2.3.1",
                                                  reason="ROAS dropped"))[2],
    "versions.services.release_notify_instance": lambda w, f: (
        _before_release(w),
        version_services.version_config_update(actor=w["admin"], agent_type="media_buying",
                                               changes={"policy": "auto"}),
        lambda: version_services.release_notify_instance(agent_type="media_buying", version="2.4.0",
                                                         previous_version="2.3.1"))[2],
    "versions.services.notification_review": lambda w, f: (lambda note: lambda: version_services.notification_review(
        actor=w["admin"], notification_id=note.pk, action="defer"))(_pending_update(w)),
    "versions.services.sandbox_create": lambda w, f: (
        _before_release(w),
        lambda: version_services.sandbox_create(actor=w["admin"], agent_type="media_buying",
                                                test_version="2.4.0"))[1],
    "versions.services.sandbox_promote": lambda w, f: (lambda s: lambda: version_services.sandbox_promote(
        actor=w["admin"], session_id=s.pk))(_sandbox(w)),
    "versions.services.sandbox_reject": lambda w, f: (lambda s: lambda: version_services.sandbox_reject(
        actor=w["admin"], session_id=s.pk))(_sandbox(w)),
    "versions.services.sandbox_defer": lambda w, f: (lambda s: lambda: version_services.sandbox_defer(
        actor=w["admin"], session_id=s.pk))(_sandbox(w)),
    "versions.services.sandboxes_expire": lambda w, f: (lambda s: lambda: version_services.sandboxes_expire(
        now=s.expires_at + dt.timedelta(seconds=1)))(_sandbox(w)),
    "feedback.services.feedback_settings_update": lambda w, f: lambda: feedback_services.feedback_settings_update(
        actor=w["admin"], auto_apply=True),
    "feedback.services.suggestion_apply": lambda w, f: (lambda s: lambda: feedback_services.suggestion_apply(
        actor=w["admin"], suggestion=s))(_suggestion(w, f["discount_corrections"])),
    "feedback.services.suggestion_dismiss": lambda w, f: (lambda s: lambda: feedback_services.suggestion_dismiss(
        actor=w["admin"], suggestion=s))(_suggestion(w, f["discount_corrections"])),
    "spokestack.accounts.services.user_create": lambda w, f: lambda: account_services.user_create(
        actor=w["admin"], email="new.person@example.com", role="account_manager"),
    "spokestack.accounts.services.user_update": lambda w, f: lambda: account_services.user_update(
        actor=w["admin"], user=w["am_mine"], changes={"first_name": "Layla"}),
    "spokestack.accounts.services.user_update_role": lambda w, f: lambda: account_services.user_update_role(
        actor=w["admin"], user=w["am_mine"], role="instance_manager"),
    "spokestack.accounts.services.user_deactivate": lambda w, f: lambda: account_services.user_deactivate(
        actor=w["admin"], user=w["am_mine"]),
    "spokestack.accounts.services.user_reactivate": lambda w, f: (
        account_services.user_deactivate(actor=w["admin"], user=w["am_mine"]),
        lambda: account_services.user_reactivate(actor=w["admin"], user=w["am_mine"]))[1],
}


def test_the_walker_sees_the_services_and_its_lists_are_current():
    names = service_functions()
    assert "skills.services.skill_update" in names and "versions.services.version_config_update" in names
    stale = sorted((set(NOT_CONFIGURATION) | set(RECIPES)) - set(names))
    assert not stale, f"listed here but no longer a public service function: {stale}"


@pytest.mark.parametrize("name", WALKED)
def test_every_configuration_service_writes_an_audit_entry(world, discount_corrections, name):  # noqa: F811
    recipe = RECIPES.get(name)
    assert recipe is not None, (
        f"{name} is a service this test does not know: if it changes configuration, make it write an audit entry "
        "(tuning.audit.record) and add a call to RECIPES; if it does not, add it to NOT_CONFIGURATION with why.")
    call = recipe(world, {"discount_corrections": discount_corrections})
    mark = TuningChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
    call()
    assert TuningChange.objects.filter(id__gt=mark).exists(), f"{name} changed configuration without an audit entry"


# --- skills ---------------------------------------------------------------------------------------


def _skill_entries(skill_id):
    return list(TuningChange.objects.filter(entity="skill", entity_id=str(skill_id)).order_by("id"))


def test_skill_changes_over_the_api_record_before_and_after_and_never_a_secret(world, api):
    admin = world["admin"]
    http = api(world["instance"], admin)
    created = http.post("/api/v1/agents/copy/skills", WEBHOOK_SKILL, format="json")
    assert created.status_code == 201, created.content
    skill_id = created.json()["id"]
    assert http.patch(f"/api/v1/skills/{skill_id}", {"enabled": False, "timeout_s": 20}, format="json").status_code == 200
    assert http.patch(f"/api/v1/skills/{skill_id}", {"auth_secret": TOKEN + "-new"}, format="json").status_code == 200
    assert http.delete(f"/api/v1/skills/{skill_id}").status_code == 204
    entries = _skill_entries(skill_id)
    assert [(e.action, e.field) for e in entries] == [
        ("create", ""), ("update", "enabled"), ("update", "timeout_s"), ("update", "auth_secret"), ("delete", "")]
    create, enabled, timeout, secret, delete = entries
    assert create.new_value["name"] == "brand_lookup" and create.new_value["auth_secret"] == "(set, not shown)"
    assert (enabled.old_value, enabled.new_value, timeout.old_value, timeout.new_value) == (True, False, 10, 20)
    assert (secret.old_value, secret.new_value) == ("(set, not shown)", "(replaced, not shown)")
    assert delete.old_value["enabled"] is False and delete.old_value["timeout_s"] == 20
    assert all(e.actor == admin and e.tier == 2 and e.agent_type == "copy" for e in entries)
    log = http.get("/api/v1/tuning/audit?entity=skill").content.decode()
    assert TOKEN not in log and TOKEN not in json.dumps([(e.old_value, e.new_value) for e in entries])


def test_skill_changes_in_the_admin_are_audited_too(world):
    admin = world["admin"]
    skill = skill_services.skill_create(actor=admin, **INTERNAL_SKILL).skill
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(admin)
    form = {"name": skill.name, "description": "All the clients of this agency.",
            "input_schema": json.dumps(INTERNAL_SKILL["input_schema"]),
            "execution_type": "internal", "agent_types": ["copy"], "enabled": "on", "timeout_s": "10",
            "handler": "list_clients", "auth_type": "none", "auth_header": "X-Api-Key", "webhook_url": ""}
    response = http.post(f"/admin/skills/skill/{skill.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    [change] = [e for e in _skill_entries(skill.pk) if e.action == "update"]
    assert (change.field, change.old_value, change.new_value, change.actor) == (
        "description", "The clients of this agency.", "All the clients of this agency.", admin)


def test_skill_rollbacks_restore_through_the_service_with_409_on_drift(world, api):
    admin = world["admin"]
    http = api(world["instance"], admin)
    skill = skill_services.skill_create(actor=admin, **INTERNAL_SKILL).skill
    skill_services.skill_update(actor=admin, skill=skill, changes={"enabled": False})
    disabled = _skill_entries(skill.pk)[-1]
    rolled = http.post(f"/api/v1/tuning/rollback/{disabled.pk}", {"reason": "needed it"}, format="json")
    assert rolled.status_code == 201, rolled.content
    assert (rolled.json()["rollback_of_id"], rolled.json()["new_value"]) == (disabled.pk, True)
    assert Skill.objects.get(pk=skill.pk).enabled is True
    # drift: the description changed twice; the first change cannot be undone blindly
    skill_services.skill_update(actor=admin, skill=skill, changes={"description": "First."})
    first = _skill_entries(skill.pk)[-1]
    skill_services.skill_update(actor=admin, skill=skill, changes={"description": "Second."})
    conflict = http.post(f"/api/v1/tuning/rollback/{first.pk}", format="json")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["details"]["current"] == "Second."
    assert Skill.objects.get(pk=skill.pk).description == "Second."
    # a deleted internal skill comes back with its settings; its delete entry is then spent (409)
    skill_services.skill_delete(actor=admin, skill=skill)
    deleted = _skill_entries(skill.pk)[-1]
    assert http.post(f"/api/v1/tuning/rollback/{deleted.pk}", format="json").status_code == 201
    restored = Skill.objects.get(pk=skill.pk)
    assert (restored.name, restored.description, restored.enabled) == ("list_our_clients", "Second.", True)
    assert http.post(f"/api/v1/tuning/rollback/{deleted.pk}", format="json").status_code == 409


def test_what_a_skill_entry_cannot_restore_is_400_saying_why(world, api):
    admin = world["admin"]
    http = api(world["instance"], admin)
    skill = skill_services.skill_create(actor=admin, **WEBHOOK_SKILL).skill
    skill_services.skill_update(actor=admin, skill=skill, changes={"auth_secret": "another-token"})
    secret = _skill_entries(skill.pk)[-1]
    refused = http.post(f"/api/v1/tuning/rollback/{secret.pk}", format="json")
    assert refused.status_code == 400 and "never kept in the log" in refused.json()["error"]["message"]
    skill_services.skill_delete(actor=admin, skill=skill)
    deleted = _skill_entries(skill.pk)[-1]
    refused = http.post(f"/api/v1/tuning/rollback/{deleted.pk}", format="json")
    assert refused.status_code == 400 and "signing secret" in refused.json()["error"]["message"]
    assert not Skill.objects.filter(pk=skill.pk).exists()


def test_skill_rollback_needs_the_right_to_edit_skills(world, api):
    skill = skill_services.skill_create(actor=world["admin"], **INTERNAL_SKILL).skill
    skill_services.skill_update(actor=world["admin"], skill=skill, changes={"enabled": False})
    entry = _skill_entries(skill.pk)[-1]
    response = api(world["instance"], world["manager"]).post(f"/api/v1/tuning/rollback/{entry.pk}", format="json")
    assert response.status_code == 403 and Skill.objects.get(pk=skill.pk).enabled is False


# --- version settings -----------------------------------------------------------------------------


def _version_entries(**filters):
    return list(TuningChange.objects.filter(entity="version_settings", **filters).order_by("id"))


def test_version_settings_over_the_api_are_audited_and_reversible(world, api):
    admin = world["admin"]
    http = api(world["instance"], admin)
    _before_release(world)
    response = http.put("/api/v1/agents/media_buying/version",
                        {"policy": "auto", "notify_contacts": ["owner@shop.example"], "reason": "fewer clicks"},
                        format="json")
    assert response.status_code == 200, response.content
    policy_entry, contacts = _version_entries()
    assert (policy_entry.field, policy_entry.old_value, policy_entry.new_value) == ("policy", "staged", "auto")
    assert (contacts.field, contacts.old_value, contacts.new_value) == ("notify_contacts", [], ["owner@shop.example"])
    assert (policy_entry.agent_type, policy_entry.reason, policy_entry.actor) == ("media_buying", "fewer clicks", admin)
    assert http.post(f"/api/v1/tuning/rollback/{policy_entry.pk}", format="json").status_code == 201
    assert AgentVersionConfig.objects.get(agent_type="media_buying").policy == "staged"
    # drift: contacts changed again since the entry
    version_services.version_config_update(actor=admin, agent_type="media_buying", changes={"notify_contacts": []})
    conflict = http.post(f"/api/v1/tuning/rollback/{contacts.pk}", format="json")
    assert conflict.status_code == 409 and conflict.json()["error"]["details"]["current"] == []


def test_an_applied_update_is_audited_as_a_decision_and_cannot_be_undone_from_the_log(world, api):
    admin = world["admin"]
    note = _pending_update(world)
    # Policy manual (written without an entry): under the default staged policy an approval first needs a
    # finished sandbox test (tests/versions/test_staged_and_sandbox.py).
    AgentVersionConfig.objects.filter(agent_type="media_buying").update(policy="manual")
    version_services.notification_review(actor=admin, notification_id=note.pk, action="approve", reason="looks fine")
    entries = _version_entries()
    assert [(e.field, e.old_value, e.new_value) for e in entries] == [
        ("update_decision", {"notification_id": note.pk, "version": "2.4.0", "status": "pending"},
         {"notification_id": note.pk, "version": "2.4.0", "status": "applied"}),
        ("current_version", "2.3.1", "2.4.0")]
    assert len({e.group for e in entries}) == 1 and entries[0].group is not None
    current = next(e for e in entries if e.field == "current_version")
    refused = api(world["instance"], admin).post(f"/api/v1/tuning/rollback/{current.pk}", format="json")
    assert refused.status_code == 400 and "version/rollback" in refused.json()["error"]["message"]
    assert AgentVersionConfig.objects.get(agent_type="media_buying").current_version == "2.4.0"


def test_pinning_the_running_version_is_reversible_and_repinning_after_an_update_is_409(world):
    admin = world["admin"]
    _before_release(world)
    version_services.version_config_update(actor=admin, agent_type="media_buying", changes={"pinned_version": "2.3.1"})
    [pin] = _version_entries(field="pinned_version")
    tuning_services.tuning_rollback(actor=admin, change=pin)
    assert AgentVersionConfig.objects.get(agent_type="media_buying").pinned_version == ""
    unpin = _version_entries(field="pinned_version")[-1]
    assert (unpin.rollback_of_id, unpin.old_value, unpin.new_value) == (pin.pk, "2.3.1", "")
    # unpinned and auto: the release applies itself (audited, by the system), so pinning 2.3.1 again
    # would switch the running version: not a blind rollback
    version_services.version_config_update(actor=admin, agent_type="media_buying", changes={"policy": "auto"})
    release([world["instance"].schema_name])
    world["instance"].refresh_from_db()
    applied = _version_entries(field="current_version")[-1]
    assert (applied.actor, applied.old_value, applied.new_value) == (None, "2.3.1", "2.4.0")
    with pytest.raises(Conflict, match="would switch the running version"):
        tuning_services.tuning_rollback(actor=admin, change=unpin)
    assert AgentVersionConfig.objects.get(agent_type="media_buying").current_version == "2.4.0"


# --- feedback settings ----------------------------------------------------------------------------


def test_feedback_settings_are_audited_and_reversible_with_409_on_drift(world, api):
    admin = world["admin"]
    feedback_services.feedback_settings_update(actor=admin, auto_apply=True, min_confidence=0.8, reason="trust it")
    entries = list(TuningChange.objects.filter(entity="feedback_settings").order_by("id"))
    assert [(e.field, e.old_value, e.new_value, e.reason) for e in entries] == [
        ("auto_apply", False, True, "trust it"), ("auto_apply_min_confidence", 0.9, 0.8, "trust it")]
    http = api(world["instance"], admin)
    assert http.post(f"/api/v1/tuning/rollback/{entries[0].pk}", format="json").status_code == 201
    row = FeedbackSettings.objects.get()
    assert (row.auto_apply, row.auto_apply_min_confidence) == (False, 0.8)
    feedback_services.feedback_settings_update(actor=admin, min_confidence=0.7)
    assert http.post(f"/api/v1/tuning/rollback/{entries[1].pk}", format="json").status_code == 409
    assert FeedbackSettings.objects.get().auto_apply_min_confidence == 0.7
    before = TuningChange.objects.count()
    feedback_services.feedback_settings_update(actor=admin, min_confidence=0.7)
    assert TuningChange.objects.count() == before, "an unchanged setting records nothing"


def test_feedback_settings_in_the_admin_are_audited(world):
    admin = world["admin"]
    row = feedback_services.feedback_settings_update(actor=None)  # the instance's row, with its defaults
    assert not TuningChange.objects.filter(entity="feedback_settings").exists()
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(admin)
    response = http.post(f"/admin/feedback/feedbacksettings/{row.pk}/change/",
                         {"auto_apply": "on", "auto_apply_min_confidence": "0.95", "window_days": "90"})
    assert response.status_code == 302, response.content.decode()[:2000]
    fields = set(TuningChange.objects.filter(entity="feedback_settings", actor=admin).values_list("field", "new_value"))
    assert fields == {("auto_apply", True), ("auto_apply_min_confidence", 0.95)}


# --- the log: filters, export, scoping ------------------------------------------------------------


@pytest.fixture
def log(world):
    """Entries of several kinds, people and clients."""
    admin, manager = world["admin"], world["manager"]
    tuning_services.client_tuning_update(actor=world["am_mine"], client=world["mine"], changes={"brand_voice": "Warm."},
                                         reason="=HYPERLINK(\"http://evil.example\")")
    tuning_services.client_rule_add(actor=admin, client=world["other"], kind="never", text="No crypto.")
    skill_services.skill_create(actor=admin, **INTERNAL_SKILL)
    feedback_services.feedback_settings_update(actor=None, auto_apply=True)
    tuning_services.instance_tuning_update(actor=admin, changes={"effort": "low"}, ticket="OPS-7")
    return {"admin": admin, "manager": manager}


def _all_pages(http, url):
    results, page = [], http.get(url)
    while True:
        assert page.status_code == 200, page.content
        results += page.json()["results"]
        if not page.json()["next"]:
            return results
        page = http.get(page.json()["next"])


def test_the_log_filters_by_entity_actor_client_and_date(world, log, api):
    http = api(world["instance"], world["manager"])
    everything = _all_pages(http, "/api/v1/tuning/audit")
    assert {e["entity"] for e in everything} >= {"client_tuning", "content_rule", "skill", "feedback_settings",
                                                 "instance_tuning"}
    skills = _all_pages(http, "/api/v1/tuning/audit?entity=skill")
    assert skills and {e["entity"] for e in skills} == {"skill"}
    am = world["am_mine"]
    for actor in (str(am.pk), am.email, am.email.upper()):
        by_am = _all_pages(http, f"/api/v1/tuning/audit?actor={actor}")
        assert [(e["entity"], e["field"]) for e in by_am] == [("client_tuning", "brand_voice")]
    system = _all_pages(http, "/api/v1/tuning/audit?actor=system")
    assert system and {e["actor"] for e in system} == {"system"}
    other = _all_pages(http, f"/api/v1/tuning/audit?client_id={world['other'].pk}")
    assert other and {e["client_id"] for e in other} == {world["other"].pk}
    today = timezone.now().astimezone(dt.UTC).date()
    assert len(_all_pages(http, f"/api/v1/tuning/audit?from={today}&to={today}")) == len(everything)
    assert _all_pages(http, f"/api/v1/tuning/audit?to={today - dt.timedelta(days=1)}") == []
    assert _all_pages(http, f"/api/v1/tuning/audit?from={today + dt.timedelta(days=1)}") == []
    moment = (timezone.now() + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(_all_pages(http, f"/api/v1/tuning/audit?to={moment}")) == len(everything)


@pytest.mark.parametrize("query", ["from=2026-02-30", "to=yesterday", "from=2026-12-01&to=2026-11-30",
                                   "entity=astrology", "actor=someone", "client_id=abc", "format=csv",
                                   "from=2026-11-21T25:00:00Z"])
def test_bad_filters_are_400_naming_the_parameter(world, api, query):
    http = api(world["instance"], world["admin"])
    for path in ("/api/v1/tuning/audit", "/api/v1/tuning/audit/export"):
        if path.endswith("export") and query == "format=csv":
            continue
        response = http.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query, response.content)
        assert response.json()["error"]["message"].startswith(f"{query.split('=')[0]}:"), response.json()
    assert http.get("/api/v1/tuning/audit/export?format=xml").status_code == 400


def test_the_json_export_equals_the_api_list_and_the_csv_parses(world, log, api):
    http = api(world["instance"], world["admin"])
    listed = _all_pages(http, "/api/v1/tuning/audit")
    exported = http.get("/api/v1/tuning/audit/export?format=json")
    assert exported.status_code == 200 and exported.streaming
    assert exported["Content-Disposition"].startswith("attachment; filename=\"audit-")
    assert json.loads(b"".join(exported.streaming_content)) == listed
    response = http.get("/api/v1/tuning/audit/export?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["id"]) for r in rows] == [e["id"] for e in listed]
    by_id = {e["id"]: e for e in listed}
    for row in rows:
        entry = by_id[int(row["id"])]
        assert (row["entity"], row["field"], row["actor"], row["ticket"]) == (
            entry["entity"], entry["field"], entry["actor"], entry["ticket"])
        assert json.loads(row["new_value"] or "null") == entry["new_value"]
    injected = next(r for r in rows if r["entity"] == "client_tuning")
    assert injected["reason"].startswith("'=HYPERLINK"), "a formula in free text is defused"
    filtered = http.get(f"/api/v1/tuning/audit/export?format=json&entity=skill&client_id={world['mine'].pk}")
    assert json.loads(b"".join(filtered.streaming_content)) == []
    skills = http.get("/api/v1/tuning/audit/export?format=json&entity=skill")
    assert json.loads(b"".join(skills.streaming_content)) == _all_pages(http, "/api/v1/tuning/audit?entity=skill")


def test_an_account_manager_reads_and_exports_only_their_clients_entries(world, log, api):
    mine, other = world["mine"], world["other"]
    for user, client in ((world["am_mine"], mine), (world["am_other"], other)):
        http = api(world["instance"], user)
        listed = _all_pages(http, "/api/v1/tuning/audit")
        assert listed and {e["client_id"] for e in listed} == {client.pk}
        exported = json.loads(b"".join(http.get("/api/v1/tuning/audit/export?format=json").streaming_content))
        assert exported == listed
        rows = list(csv.DictReader(io.StringIO(b"".join(
            http.get("/api/v1/tuning/audit/export?format=csv").streaming_content).decode())))
        assert {int(r["client_id"]) for r in rows} == {client.pk}
        foreign = other if client == mine else mine
        assert _all_pages(http, f"/api/v1/tuning/audit?client_id={foreign.pk}") == []
        none = http.get(f"/api/v1/tuning/audit/export?format=json&client_id={foreign.pk}")
        assert json.loads(b"".join(none.streaming_content)) == []
        assert _all_pages(http, "/api/v1/tuning/audit?entity=skill") == []


def test_the_export_refuses_anonymous_and_client_contacts(world, log, api):
    assert api(world["instance"]).get("/api/v1/tuning/audit/export?format=csv").status_code == 401
    assert api(world["instance"], world["contact"]).get("/api/v1/tuning/audit/export?format=csv").status_code == 403


def _admin(user):
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(user)
    return http


def test_the_admin_log_filters_and_exports_what_it_shows(world, log):
    admin = world["admin"]
    http = _admin(admin)
    page = http.get("/admin/tuning/tuningchange/?entity__exact=skill")
    assert page.status_code == 200
    body = page.content.decode()
    for needle in ("By entity", "By who", "By client", "By created at", "Export CSV", "Export JSON"):
        assert needle in body, needle
    exported = http.get("/admin/tuning/tuningchange/export/?entity__exact=skill&format=json")
    assert exported.status_code == 200
    entries = json.loads(b"".join(exported.streaming_content))
    assert entries and {e["entity"] for e in entries} == {"skill"}
    by_actor = http.get(f"/admin/tuning/tuningchange/export/?actor={world['am_mine'].pk}&format=csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(by_actor.streaming_content).decode())))
    assert [(r["entity"], r["field"]) for r in rows] == [("client_tuning", "brand_voice")]
    by_client = http.get(f"/admin/tuning/tuningchange/export/?client__id__exact={world['other'].pk}&format=json")
    assert {e["client_id"] for e in json.loads(b"".join(by_client.streaming_content))} == {world["other"].pk}
    today = timezone.now().astimezone(dt.UTC).date()
    tomorrow = urlencode({"created_at__gte": f"{today + dt.timedelta(days=1)} 00:00:00+00:00", "format": "json"})
    later = http.get(f"/admin/tuning/tuningchange/export/?{tomorrow}")
    assert json.loads(b"".join(later.streaming_content)) == []
    ids = list(TuningChange.objects.filter(entity="feedback_settings").values_list("pk", flat=True))
    selected = http.post("/admin/tuning/tuningchange/", {"action": "export_selected_csv", "_selected_action": ids})
    rows = list(csv.DictReader(io.StringIO(b"".join(selected.streaming_content).decode())))
    assert sorted(int(r["id"]) for r in rows) == sorted(ids)


def test_another_clients_account_manager_exports_none_of_it_in_the_admin(world, log):
    http = _admin(world["am_other"])
    exported = json.loads(b"".join(http.get("/admin/tuning/tuningchange/export/?format=json").streaming_content))
    assert exported and {e["client_id"] for e in exported} == {world["other"].pk}
    page = http.get("/admin/tuning/tuningchange/").content.decode()
    assert "Mine Cosmetics" not in page and world["am_mine"].email not in page
    assert _admin(world["contact"]).get("/admin/tuning/tuningchange/export/?format=csv").status_code == 403


def test_an_invalid_service_call_leaves_no_entry(world):
    before = TuningChange.objects.count()
    with pytest.raises(InvalidInput):
        skill_services.skill_create(actor=world["admin"], **{**INTERNAL_SKILL, "handler": "rm_rf"})
    with pytest.raises(InvalidInput):
        version_services.version_config_update(actor=world["admin"], agent_type="media_buying",
                                               changes={"policy": "sometimes"})
    with pytest.raises(InvalidInput):
        feedback_services.feedback_settings_update(actor=world["admin"], min_confidence=0.1)
    assert TuningChange.objects.count() == before


def test_the_list_and_the_export_read_in_chunks_not_per_entry(world, log, api):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    http = api(world["instance"], world["manager"])

    def queries(path):
        with CaptureQueriesContext(connection) as captured:
            response = http.get(path)
            if response.streaming:
                b"".join(response.streaming_content)
        return len(captured)

    http.get("/api/v1/tuning/audit")  # the token's last use is written once a minute: not in what is counted
    paths = ("/api/v1/tuning/audit/export?format=csv", "/api/v1/tuning/audit/export?format=json",
             "/api/v1/tuning/audit?entity=content_rule")
    before = [queries(path) for path in paths]
    for i in range(20):
        tuning_services.client_rule_add(actor=world["admin"], client=world["other"], kind="never", text=f"Rule {i}.")
    assert [queries(path) for path in paths] == before
