"""Applying a feedback suggestion is one audit group (the rule, the learned preferences, the summary,
the suggestion's status): rolling back any entry of it — over the API or in the admin — gives the
next run exactly the request the model received before the apply, and the suggestion is pending
again. A rule the apply added appears once in the prompt."""

import json

import pytest
from django.test import Client as HttpClient

from agents.loop import execute_run
from agents.models import RunStatus
from agents.services import run_create
from feedback.models import Suggestion, SuggestionStatus
from feedback.services import analysis_run, suggestion_apply
from tuning.models import Action, ContentRule, Entity, RuleSource, TuningChange
from tuning.selectors import client_tuning_get
from tuning.services import client_rule_add, client_rule_update, client_tuning_update, tuning_rollback

from ..conftest import HOST_A
from ..skills.conftest import scripted, text_turn  # noqa: F401  (the scripted model fixture)

pytestmark = pytest.mark.django_db
THEME = "never:theme:discount_urgency"


@pytest.fixture
def world(in_a, make_client, assigned, discount_corrections):
    client = make_client("Desert Bloom Cosmetics", vertical="beauty")
    manager = assigned("account_manager", client)
    discount_corrections(client, manager, n=12)
    analysis_run(client=client, use_model=False)
    suggestion = Suggestion.objects.get(client=client, signature=THEME, status=SuggestionStatus.PENDING)
    return {"instance": in_a, "client": client, "manager": manager, "suggestion": suggestion}


@pytest.fixture
def sent(world, scripted):  # noqa: F811
    """sent(marker) -> what the model received for the next run of the client's copy agent:
    system + tools + messages, as canonical JSON bytes."""
    def run(marker: str) -> bytes:
        scripted.script(marker, [text_turn("A caption.")])
        started = run_create(actor=world["manager"], agent_type="copy", task=f"{marker}: write a caption.",
                             client_id=world["client"].pk).run
        assert execute_run(run_id=str(started.pk), worker="w1") == RunStatus.SUCCEEDED
        body = scripted.requests(marker)[-1]
        return json.dumps({key: body[key] for key in ("system", "tools", "messages")}, sort_keys=True,
                          ensure_ascii=False).encode()

    return run


def _system_text(request: bytes) -> str:
    return "\n".join(block["text"] for block in json.loads(request)["system"])


def _apply(world) -> list[TuningChange]:
    suggestion_apply(actor=world["manager"], suggestion=world["suggestion"])
    status = TuningChange.objects.get(entity=Entity.SUGGESTION, entity_id=str(world["suggestion"].pk))
    return list(TuningChange.objects.filter(group=status.group).order_by("id"))


def test_apply_is_one_group_and_the_rule_appears_once(world, sent):
    group = _apply(world)
    assert [(e.entity, e.field) for e in group] == [
        (Entity.CONTENT_RULE, ""), (Entity.CLIENT_TUNING, "learned_preferences"),
        (Entity.CLIENT_TUNING, "feedback_summary"), (Entity.SUGGESTION, "status")]
    assert (group[-1].old_value, group[-1].new_value) == ("pending", "applied")
    rule_text = world["suggestion"].text
    system = _system_text(sent("once"))
    assert system.count(rule_text) == 1
    assert "- Patterns to avoid: discount or urgency language" in system
    tuning = client_tuning_get(client=world["client"], agent_type="")
    assert tuning.learned_preferences == {"rejected_patterns": "discount or urgency language",
                                          "confidence_score": f"{world['suggestion'].confidence:.2f}"}
    assert tuning.feedback_summary.startswith("12 output(s) judged: 0 approved")
    assert rule_text not in tuning.feedback_summary and "discount" not in tuning.feedback_summary


@pytest.mark.parametrize("which", [Entity.CONTENT_RULE, Entity.CLIENT_TUNING, Entity.SUGGESTION])
def test_rolling_back_any_entry_over_the_api_restores_the_request_byte_for_byte(world, sent, api, which):
    marker = f"api-{which}"
    before = sent(marker)
    group = _apply(world)
    assert sent(marker) != before
    entry = next(e for e in group if e.entity == which)
    response = api(world["instance"], world["manager"]).post(f"/api/v1/tuning/rollback/{entry.pk}")
    assert response.status_code == 201, response.content
    assert response.json()["rollback_of_id"] == entry.pk
    assert sent(marker) == before
    suggestion = Suggestion.objects.get(pk=world["suggestion"].pk)
    assert (suggestion.status, suggestion.rule_id, suggestion.decided_by_id) == (SuggestionStatus.PENDING, None, None)
    rollbacks = TuningChange.objects.filter(rollback_of__in=group)
    assert rollbacks.count() == 4 and len({e.group for e in rollbacks}) == 1
    # the suggestion can be decided again
    assert suggestion_apply(actor=world["manager"], suggestion=suggestion).status == SuggestionStatus.APPLIED


def test_another_clients_account_manager_cannot_roll_the_group_back(world, api, assigned, make_client):
    group = _apply(world)
    outsider = assigned("account_manager", make_client("Other Bank"))
    count = TuningChange.objects.count()
    response = api(world["instance"], outsider).post(f"/api/v1/tuning/rollback/{group[-1].pk}")
    assert response.status_code in (403, 404)
    assert TuningChange.objects.count() == count
    assert Suggestion.objects.get(pk=world["suggestion"].pk).status == SuggestionStatus.APPLIED


def test_rolling_back_a_group_entry_in_the_admin_restores_the_request(world, sent, make_user):
    before = sent("admin-rollback")
    group = _apply(world)
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(make_user("instance_admin"))
    response = http.post(f"/admin/tuning/tuningchange/{group[1].pk}/rollback/", {"reason": "not yet"}, follow=True)
    assert response.status_code == 200
    assert f"Rolled back #{group[1].pk}" in response.content.decode()
    assert sent("admin-rollback") == before
    assert Suggestion.objects.get(pk=world["suggestion"].pk).status == SuggestionStatus.PENDING


def test_a_group_whose_rule_was_edited_since_is_409_and_nothing_rolls_back(world, api):
    group = _apply(world)
    rule = ContentRule.objects.get(pk=int(group[0].entity_id))
    client_rule_update(actor=world["manager"], rule=rule, changes={"text": "Never use discount language"})
    tuning = client_tuning_get(client=world["client"], agent_type="")
    state = (TuningChange.objects.count(), tuning.learned_preferences, tuning.feedback_summary)
    response = api(world["instance"], world["manager"]).post(f"/api/v1/tuning/rollback/{group[-1].pk}")
    assert response.status_code == 409
    assert response.json()["error"]["details"]["current"]["text"] == "Never use discount language"
    tuning.refresh_from_db()
    assert (TuningChange.objects.count(), tuning.learned_preferences, tuning.feedback_summary) == state
    assert Suggestion.objects.get(pk=world["suggestion"].pk).status == SuggestionStatus.APPLIED
    assert ContentRule.objects.filter(pk=rule.pk).exists()


def test_a_suggestion_applied_before_groups_rolls_back_whole(world, sent):
    """What applying wrote before this change (three ungrouped entries, the rule's text copied into
    the learned preferences and the summary) still rolls back as one."""
    before = sent("legacy")
    suggestion, client, manager = world["suggestion"], world["client"], world["manager"]
    reason = f"Feedback suggestion #{suggestion.pk} applied: 12 item(s) of evidence, confidence 1.00"
    Suggestion.objects.filter(pk=suggestion.pk).update(status=SuggestionStatus.APPLIED)
    rule = client_rule_add(actor=manager, client=client, kind="never", text=suggestion.text, reason=reason,
                           source=RuleSource.FEEDBACK_SUGGESTION, source_reference=str(suggestion.pk))
    client_tuning_update(actor=manager, client=client, reason=reason, changes={
        "learned_preferences": {f"never (feedback #{suggestion.pk})": suggestion.text},
        "feedback_summary": f"{client.name}'s feedback taught 1 rule(s): never: {suggestion.text}"})
    legacy = list(TuningChange.objects.filter(reason=reason).order_by("id"))
    assert len(legacy) == 3 and {e.group for e in legacy} == {None}
    assert _system_text(sent("legacy")).count(suggestion.text) == 2  # the rule and the legacy summary
    rule_entry = next(e for e in legacy if e.entity == Entity.CONTENT_RULE and e.action == Action.CREATE)
    tuning_rollback(actor=manager, change=rule_entry)
    assert not ContentRule.objects.filter(pk=rule.pk).exists()
    assert sent("legacy") == before


def test_dismissing_is_audited_and_rolls_back_to_pending(world):
    from feedback.services import suggestion_dismiss

    suggestion_dismiss(actor=world["manager"], suggestion=world["suggestion"], reason="not for this client")
    entry = TuningChange.objects.get(entity=Entity.SUGGESTION, entity_id=str(world["suggestion"].pk))
    assert (entry.field, entry.old_value, entry.new_value, entry.reason) == (
        "status", "pending", "dismissed", "not for this client")
    rolled = tuning_rollback(actor=world["manager"], change=entry)
    assert rolled.rollback_of_id == entry.pk and rolled.new_value == "pending"
    assert Suggestion.objects.get(pk=world["suggestion"].pk).status == SuggestionStatus.PENDING


def test_learned_preferences_take_the_guides_structure():
    from feedback.analysis import feedback_summary, learned_preferences

    applied = [("never:theme:superlatives", "Never use exaggerated superlatives such as \"best\"", 0.9),
               ('never:phrase:act now', 'Never use "act now"', 0.8),
               ("prefer:length", "Prefer outputs of about 40 words", 0.7),
               ("prefer:word:crafted", 'Prefer wording like the approved outputs: "crafted"', 0.8),
               ("never:model:no puns", "Never use puns", 0.9)]
    current = {"never (feedback #3)": "Never use puns", "emoji": "one at most", "rejected_patterns": "stale"}
    assert learned_preferences(current, applied) == {
        "emoji": "one at most", "rejected_patterns": 'exaggerated superlatives; "act now"',
        "successful_approaches": 'wording like "crafted"', "preferred_length": "about 40 words",
        "confidence_score": "0.82"}
    assert learned_preferences({"emoji": "x"}, []) == {"emoji": "x"}
    summary = feedback_summary({"total": 20, "counts": {"approved": 10, "partially_approved": 2, "corrected": 5,
                                                        "rejected": 3}, "approval_rate": 0.55,
                                "top_categories": [{"category": "brand_voice", "count": 6}]})
    assert summary == ("20 output(s) judged: 10 approved, 2 partially approved, 5 corrected, 3 rejected "
                       "(approval rate 55%). Most corrections concern: brand voice (6).")
