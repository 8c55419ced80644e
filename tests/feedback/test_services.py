"""Feedback, analysis and decisions through the services, in instance A (rolled back)."""

import pytest

from feedback import selectors
from feedback.models import Feedback, Suggestion, SuggestionStatus
from feedback.services import (
    analysis_run,
    feedback_give,
    feedback_settings_update,
    suggestion_apply,
    suggestion_dismiss,
)
from spokestack.errors import InvalidInput, NotAllowed, NotFound
from tuning.models import ContentRule, RuleSource, TuningChange
from tuning.selectors import client_tuning_get
from tuning.services import tuning_rollback

pytestmark = pytest.mark.django_db

THEME = "never:theme:discount_urgency"


def test_a_second_judgement_replaces_the_first_and_history_is_kept(in_a, make_client, assigned, finished_run):
    client = make_client()
    am = assigned("account_manager", client)
    run = finished_run(client, "Get 20% off today!")
    first = feedback_give(actor=am, run_id=run.pk, verdict="approved", rating=4)
    second = feedback_give(actor=am, run_id=run.pk, verdict="corrected", corrected_text="Glow gently.",
                           reason="urgency", category="tone")
    first.refresh_from_db()
    assert not first.current and first.superseded_by_id == second.pk and second.current
    assert Feedback.objects.filter(run=run).count() == 2
    assert [i.verdict for i in selectors.feedback_items(client=client)] == ["corrected"]
    assert second.original_text == "Get 20% off today!"
    feedback_give(actor=None, run_id=run.pk, verdict="approved")
    feedback_give(actor=None, run_id=run.pk, verdict="rejected", reason="too pushy")
    assert Feedback.objects.filter(run=run, author=None, current=True).get().verdict == "rejected"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"verdict": "corrected"}, "corrected_text: a correction needs the corrected text."),
    ({"verdict": "approved", "rating": 7}, "rating: must be a whole number from 1 to 5, not 7."),
    ({"verdict": "approved", "category": "vibes"}, "category: must be one of"),
    ({"verdict": "great"}, "verdict: must be one of"),
])
def test_bad_feedback_is_refused_with_a_message(in_a, make_client, finished_run, kwargs, message):
    run = finished_run(make_client(), "Some copy")
    with pytest.raises(InvalidInput) as exc:
        feedback_give(actor=None, run_id=run.pk, **kwargs)
    assert exc.value.message.startswith(message)


def test_unknown_output_and_unknown_run_are_not_found(in_a, make_client, finished_run):
    run = finished_run(make_client(), "Some copy")
    with pytest.raises(NotFound, match="No such output"):
        feedback_give(actor=None, run_id=run.pk, verdict="approved", artifact_id=987654)
    with pytest.raises(NotFound, match="No such run"):
        feedback_give(actor=None, run_id="00000000-0000-0000-0000-000000000000", verdict="approved")


def test_client_contacts_judge_only_their_clients_runs(in_a, make_client, assigned, finished_run):
    mine, other = make_client(), make_client()
    contact = assigned("client_contact", mine)
    assert feedback_give(actor=contact, run_id=finished_run(mine, "Mine").pk, verdict="approved").current
    with pytest.raises(NotFound):
        feedback_give(actor=contact, run_id=finished_run(other, "Not mine").pk, verdict="approved")
    own_run_no_client = finished_run(other, "x")
    with pytest.raises(NotFound):
        feedback_give(actor=contact, run_id=own_run_no_client.pk, verdict="approved")


def test_analysis_is_idempotent_and_a_dismissed_suggestion_returns_only_with_new_evidence(
        in_a, make_client, assigned, discount_corrections):
    client = make_client()
    am = assigned("account_manager", client)
    discount_corrections(client, am, n=12)
    first = analysis_run(client=client, use_model=False)
    analysis_run(client=client, use_model=False)
    pending = Suggestion.objects.filter(client=client, signature=THEME, status=SuggestionStatus.PENDING)
    assert pending.count() == 1 and first.status == "ok"
    suggestion = pending.get()
    assert suggestion.evidence_count == 12 and len(suggestion.examples) == 3

    suggestion_dismiss(actor=am, suggestion=suggestion)
    analysis_run(client=client, use_model=False)
    assert Suggestion.objects.get(pk=suggestion.pk).status == SuggestionStatus.DISMISSED

    discount_corrections(client, am, n=3, start=12)
    analysis_run(client=client, use_model=False)
    revived = Suggestion.objects.get(pk=suggestion.pk)
    assert revived.status == SuggestionStatus.PENDING and revived.evidence_count == 15
    assert Suggestion.objects.filter(client=client, signature=THEME).count() == 1


def test_insufficient_data_is_stored_and_suggests_nothing(in_a, make_client, discount_corrections):
    client = make_client()
    discount_corrections(client, None, n=5)
    result = analysis_run(client=client)
    assert result.status == "insufficient_data" and result.result["model"]["requests"] == 0
    assert not Suggestion.objects.filter(client=client).exists()


def test_the_offline_model_degrades_to_the_deterministic_result_and_says_so(in_a, make_client, discount_corrections):
    client = make_client()
    discount_corrections(client, None, n=10)
    result = analysis_run(client=client).result
    assert result["model"]["requests"] == 1 and result["model"]["status"] == "simulated"
    assert "degraded to the deterministic result" in result["model"]["note"]
    assert any(s["signature"] == THEME for s in result["suggestions"])


def test_applying_creates_the_rule_with_provenance_learns_and_rolls_back(in_a, make_client, assigned,
                                                                         discount_corrections):
    from tuning.assembly import assemble_prompt, platform_tier_for

    client = make_client()
    am = assigned("account_manager", client)
    discount_corrections(client, am)
    analysis_run(client=client, use_model=False)
    suggestion = Suggestion.objects.get(client=client, signature=THEME)
    applied = suggestion_apply(actor=am, suggestion=suggestion)
    rule = ContentRule.objects.get(pk=applied.rule_id)
    assert (rule.source, rule.source_reference, rule.kind) == (RuleSource.FEEDBACK_SUGGESTION, str(suggestion.pk),
                                                                "never")
    tuning = client_tuning_get(client=client)
    assert tuning.learned_preferences["rejected_patterns"] == "discount or urgency language"
    assert "output(s) judged" in tuning.feedback_summary and suggestion.text not in tuning.feedback_summary
    entry = TuningChange.objects.get(entity="content_rule", entity_id=str(rule.pk), action="create")
    assert f"Feedback suggestion #{suggestion.pk} applied" in entry.reason and entry.actor == am
    prompt = assemble_prompt(platform=platform_tier_for("copy"), client=client).system_text()
    assert "discount or urgency language" in prompt

    with pytest.raises(InvalidInput, match="already applied"):
        suggestion_apply(actor=am, suggestion=suggestion)
    tuning_rollback(actor=am, change=entry)
    assert not ContentRule.objects.filter(pk=rule.pk).exists()


def test_others_cannot_decide(in_a, make_client, assigned, discount_corrections):
    client, other = make_client(), make_client()
    discount_corrections(client, None)
    analysis_run(client=client, use_model=False)
    suggestion = Suggestion.objects.get(client=client, signature=THEME)
    stranger = assigned("account_manager", other)
    contact = assigned("client_contact", client)
    with pytest.raises(NotFound):
        suggestion_apply(actor=stranger, suggestion=suggestion)
    with pytest.raises(NotAllowed):
        suggestion_dismiss(actor=contact, suggestion=suggestion)
    assert not selectors.suggestions_visible_to(actor=stranger).exists()


def test_auto_apply_above_the_chosen_confidence_is_marked(in_a, make_client, make_user, discount_corrections):
    client = make_client()
    with pytest.raises(NotAllowed):
        feedback_settings_update(actor=make_user("account_manager"), auto_apply=True)
    feedback_settings_update(actor=make_user("instance_admin"), auto_apply=True, min_confidence=0.95)
    discount_corrections(client, None)
    analysis_run(client=client, use_model=False)
    suggestion = Suggestion.objects.get(client=client, signature=THEME)
    assert suggestion.status == SuggestionStatus.APPLIED and suggestion.auto_applied
    entry = TuningChange.objects.get(entity="content_rule", entity_id=str(suggestion.rule_id))
    assert "auto-applied" in entry.reason and entry.actor_label == "system"


def test_another_instance_sees_nothing(in_a, make_client, discount_corrections, instance_b):
    from django.db import connection

    client = make_client()
    discount_corrections(client, None)
    analysis_run(client=client, use_model=False)
    connection.set_tenant(instance_b)
    assert not Suggestion.objects.exists() and not Feedback.objects.exists()
