"""Writes for the feedback loop: giving feedback, analysing it, deciding on suggestions.

Decisions go through `tuning.services`, so an applied suggestion is a client rule with its
provenance (source `feedback_suggestion`, the suggestion's id), audited in `TuningChange` and
undone by `tuning_rollback` like any other change.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agents.checks import run_review_close
from agents.models import Artifact
from agents.selectors import run_get
from spokestack.accounts import policy
from spokestack.errors import Conflict, InvalidInput, NotFound
from tuning import audit
from tuning import services as tuning_services
from tuning.models import Action, Client, Entity, RuleSource, Tier, TuningChange
from tuning.selectors import client_tuning_get

from . import analysis as patterns
from .models import (
    Analysis,
    Category,
    Feedback,
    FeedbackSettings,
    Suggestion,
    SuggestionStatus,
    Verdict,
)
from .selectors import analysis_agent_type, feedback_items, feedback_settings

log = logging.getLogger(__name__)
MAX_TEXT = 50_000


@transaction.atomic
def feedback_give(*, actor: AbstractUser | None, run_id: Any, verdict: str, artifact_id: Any = None,
                  corrected_text: str = "", reason: str = "", category: str = "", comment: str = "",
                  rating: Any = None) -> Feedback:
    """Record one person's judgement of a run's output (or one artifact). A second judgement by the
    same person on the same output replaces the first, which is kept as history. A run waiting for
    review (a broken content filter or rule, or an audited agent) leaves the review queue."""
    policy.require(actor, "feedback.add")
    run = run_get(actor=actor, run_id=run_id)
    policy.require(actor, "feedback.add", run.client_id)
    artifact = None
    if artifact_id not in (None, ""):
        try:
            artifact = Artifact.objects.get(pk=int(artifact_id), run=run)
        except (Artifact.DoesNotExist, ValueError, TypeError):
            raise NotFound("No such output: the run has no artifact with that id.",
                           details={"artifact_id": artifact_id}) from None
    original = artifact.content if artifact is not None else run.output
    if not original.strip():
        raise NotFound("No such output: the run has not produced an output yet.", details={"run_id": str(run.pk)})
    if verdict not in Verdict.values:
        raise InvalidInput(f"verdict: must be one of {', '.join(Verdict.values)}, not {verdict!r}.",
                           details={"verdict": [str(verdict)]})
    corrected_text = corrected_text or ""
    if not isinstance(corrected_text, str) or len(corrected_text) > MAX_TEXT:
        raise InvalidInput(f"corrected_text: a text of at most {MAX_TEXT:,} characters.")
    if corrected_text.strip() == original.strip():
        corrected_text = ""  # the form offers the output to edit: unchanged, it corrects nothing
    if verdict == Verdict.CORRECTED and not corrected_text.strip():
        raise InvalidInput("corrected_text: a correction needs the corrected text. Change the output's text, "
                           "or choose another verdict.",
                           details={"corrected_text": ["required when verdict is corrected"]})
    if verdict in (Verdict.APPROVED, Verdict.REJECTED):
        corrected_text = ""  # only a correction or a partial approval carries a corrected text
    if category and category not in Category.values:
        raise InvalidInput(f"category: must be one of {', '.join(Category.values)}.", details={"category": [category]})
    if rating not in (None, ""):
        if isinstance(rating, bool) or not isinstance(rating, int | str) or not str(rating).isdigit() \
                or not 1 <= int(rating) <= 5:
            raise InvalidInput(f"rating: must be a whole number from 1 to 5, not {rating!r}.",
                               details={"rating": [str(rating)]})
        rating = int(rating)
    else:
        rating = None
    # the system (actor None) is one author too: its second judgement also replaces its first
    previous = list(Feedback.objects.select_for_update().filter(author=actor, run=run, artifact=artifact,
                                                                current=True))
    Feedback.objects.filter(pk__in=[p.pk for p in previous]).update(current=False)
    feedback = Feedback(run=run, artifact=artifact, client=run.client, agent_type=run.agent_type, author=actor,
                        verdict=verdict, original_text=original, corrected_text=corrected_text.strip(),
                        reason=(reason or "").strip()[:500], category=category or "", comment=(comment or "").strip(),
                        rating=rating)
    try:
        feedback.full_clean(exclude=["run", "artifact", "client", "author", "superseded_by"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(f"{field}: {' '.join(messages)}", details=exc.message_dict) from exc
    feedback.save()
    Feedback.objects.filter(pk__in=[p.pk for p in previous]).update(superseded_by=feedback)
    # A person's judgement of the output is its review: the run leaves the review queue.
    run_review_close(run=run)
    return feedback


# --- analysis -----------------------------------------------------------------------------------


def _model_patterns(items: list[patterns.FeedbackItem], client: Client,
                    agent_type: str) -> tuple[list[patterns.SuggestedRule], dict[str, Any]]:
    """One model request for the client; never inside a transaction. The offline model (no API key)
    degrades to the deterministic result, and says so."""
    from agents.model import ModelRequest, ModelUnavailable, call_model
    from agents.registry import DEFAULT_MODEL, FALLBACK_MODEL

    request = ModelRequest(
        model=DEFAULT_MODEL, fallback_model=FALLBACK_MODEL,
        system=[{"type": "text", "text": "You analyse feedback on marketing copy and report recurring patterns "
                                         "as rules, only through the report_patterns tool."}],
        tools=[patterns.REPORT_TOOL], messages=[{"role": "user", "content": patterns.model_prompt(items, client.name)}],
        max_tokens=2000, metadata={"purpose": "feedback_analysis", "client_id": str(client.pk)})
    try:
        turn = call_model(request)
    except ModelUnavailable as exc:
        return [], {"requests": 1, "status": "unavailable",
                    "note": f"The model was unavailable ({exc.message}); only the deterministic result is used."}
    if turn.simulated:
        return [], {"requests": 1, "status": "simulated",
                    "note": "No ANTHROPIC_API_KEY: the offline model answered, so model-based pattern finding "
                            "degraded to the deterministic result."}
    rules, note = patterns.parse_model_patterns(turn.content, agent_type)
    model = {"requests": 1, "status": "ok", "note": note, "patterns": len(rules)}
    if turn.removed:  # what PostgreSQL cannot store was taken out of the answer (agents.model)
        model["removed_characters"] = turn.removed
    return rules, model


def analysis_run(*, client: Client, agent_type: str = "", actor: AbstractUser | None = None,
                 use_model: bool = True) -> Analysis:
    """Analyse the client's feedback, store the result and refresh the suggestions (idempotent).
    Makes one model request when there is enough feedback: only POSTs, the beat and "Analyze now" call it."""
    policy.require(actor, "analysis.run", client)
    agent_type = analysis_agent_type(agent_type)
    items = feedback_items(client=client, agent_type=agent_type)
    result = patterns.deterministic_analysis(items, agent_type)
    model_rules: list[patterns.SuggestedRule] = []
    if result["status"] == "ok" and use_model:
        model_rules, result["model"] = _model_patterns(items, client, agent_type)
    else:
        result["model"] = {"requests": 0, "status": "skipped"}
    known = {s["signature"] for s in result["suggestions"]}
    result["suggestions"] += [r.as_dict() for r in model_rules if r.signature not in known]
    with transaction.atomic():
        stored, created = _suggestions_refresh(client=client, rules=result["suggestions"])
        result["suggestion_ids"] = [s.pk for s in stored]
        result["created_suggestion_ids"] = created
        row = Analysis.objects.create(client=client, agent_type=agent_type, status=result["status"], result=result)
    _auto_apply(stored)
    return row


def _suggestions_refresh(*, client: Client, rules: list[dict[str, Any]]) -> tuple[list[Suggestion], list[int]]:
    """Create new suggestions, refresh pending ones, revive a dismissed one only when its evidence grew.
    Returns the suggestions stored and the ids of those created now."""
    stored, created = [], []
    for rule in rules:
        row = Suggestion.objects.select_for_update().filter(
            client=client, agent_type=rule["agent_type"], signature=rule["signature"][:200]).first()
        fields = {k: rule[k] for k in ("kind", "text", "confidence", "evidence_count", "examples", "origin")}
        if row is None:
            row = Suggestion.objects.create(client=client, agent_type=rule["agent_type"],
                                            signature=rule["signature"][:200], **fields)
            created.append(row.pk)
            from spokestack.webhooks.services import webhook_emit

            webhook_emit("suggestion.created", {"suggestion_id": row.pk, "agent_type": row.agent_type,
                                                "client_id": row.client_id, "kind": row.kind, "summary": row.text})
        elif row.status == SuggestionStatus.APPLIED:
            continue
        elif row.status == SuggestionStatus.DISMISSED and rule["evidence_count"] <= row.dismissed_evidence:
            continue
        else:
            for name, value in fields.items():
                setattr(row, name, value)
            row.status = SuggestionStatus.PENDING
            row.save(update_fields=[*fields, "status", "updated_at"])
        stored.append(row)
    return stored, created


def _auto_apply(suggestions: list[Suggestion]) -> None:
    config = feedback_settings()
    if not config.auto_apply:
        return
    for suggestion in suggestions:
        if suggestion.status == SuggestionStatus.PENDING and suggestion.confidence >= config.auto_apply_min_confidence:
            suggestion_apply(actor=None, suggestion=suggestion, auto=True)


# --- decisions ----------------------------------------------------------------------------------


@transaction.atomic
def suggestion_apply(*, actor: AbstractUser | None, suggestion: Suggestion, auto: bool = False,
                     reason: str = "") -> Suggestion:
    """Turn a pending suggestion into a client rule (with provenance), and record what was learned.

    Everything it changes is one audit group (the rule, the learned preferences, the feedback
    summary, the suggestion's status), so rolling back any entry of it undoes the whole apply.
    The race between two deciders is decided by the database: only one pending -> applied update wins."""
    client = suggestion.client
    policy.require(actor, "suggestion.decide", client)
    with audit.group():
        if Suggestion.objects.filter(pk=suggestion.pk, status=SuggestionStatus.PENDING).update(
                status=SuggestionStatus.APPLIED, decided_by=actor, decided_at=timezone.now(),
                auto_applied=auto) != 1:
            suggestion.refresh_from_db()
            raise InvalidInput(f"Suggestion #{suggestion.pk} is already {suggestion.status}.",
                               details={"suggestion_id": suggestion.pk, "status": suggestion.status})
        how = "auto-applied (instance auto-apply)" if auto else "applied"
        provenance = (f"Feedback suggestion #{suggestion.pk} {how}: {suggestion.evidence_count} item(s) of evidence, "
                      f"confidence {suggestion.confidence:.2f}")
        # the person's why first; the provenance stays in every entry of the group
        reason = f"{why} ({provenance})" if (why := (reason or "").strip()) else provenance
        rule = tuning_services.client_rule_add(
            actor=actor, client=client, kind=suggestion.kind, text=suggestion.text, agent_type=suggestion.agent_type,
            source=RuleSource.FEEDBACK_SUGGESTION, source_reference=str(suggestion.pk), reason=reason)
        Suggestion.objects.filter(pk=suggestion.pk).update(rule_id=rule.pk)
        row = client_tuning_get(client=client, agent_type="")
        applied = list(Suggestion.objects.filter(client=client, status=SuggestionStatus.APPLIED)
                       .order_by("decided_at", "pk").values_list("signature", "text", "confidence"))
        changes: dict[str, Any] = {"learned_preferences": patterns.learned_preferences(
            dict(row.learned_preferences) if row is not None else {}, applied)}
        latest = (Analysis.objects.filter(client=client, agent_type__in={suggestion.agent_type, ""})
                  .order_by("-created_at", "-pk").first())
        summary = patterns.feedback_summary(latest.result.get("metrics") or {}) if latest is not None else ""
        if summary:
            changes["feedback_summary"] = summary
        tuning_services.client_tuning_update(actor=actor, client=client, reason=reason, changes=changes)
        _status_recorded(actor=actor, suggestion=suggestion, old=SuggestionStatus.PENDING,
                         new=SuggestionStatus.APPLIED, reason=reason)
    suggestion.refresh_from_db()
    return suggestion


def _status_recorded(*, actor: AbstractUser | None, suggestion: Suggestion, old: str, new: str, reason: str = "",
                     ticket: str = "", rollback_of: TuningChange | None = None) -> TuningChange:
    return audit.record(actor=actor, tier=Tier.CLIENT, entity=Entity.SUGGESTION, entity_id=suggestion.pk,
                        action=Action.UPDATE, field="status", old=str(old), new=str(new), client=suggestion.client,
                        agent_type=suggestion.agent_type, reason=reason, ticket=ticket, rollback_of=rollback_of)


@transaction.atomic
def suggestion_dismiss(*, actor: AbstractUser | None, suggestion: Suggestion, reason: str = "") -> Suggestion:
    """Dismiss a pending suggestion; it comes back only when later evidence outgrows today's."""
    policy.require(actor, "suggestion.decide", suggestion.client)
    if Suggestion.objects.filter(pk=suggestion.pk, status=SuggestionStatus.PENDING).update(
            status=SuggestionStatus.DISMISSED, decided_by=actor, decided_at=timezone.now(),
            dismissed_evidence=suggestion.evidence_count) != 1:
        suggestion.refresh_from_db()
        raise InvalidInput(f"Suggestion #{suggestion.pk} is already {suggestion.status}.",
                           details={"suggestion_id": suggestion.pk, "status": suggestion.status})
    _status_recorded(actor=actor, suggestion=suggestion, old=SuggestionStatus.PENDING, new=SuggestionStatus.DISMISSED,
                     reason=(reason or "").strip() or f"Feedback suggestion #{suggestion.pk} dismissed")
    suggestion.refresh_from_db()
    return suggestion


@audit.rollback_handler(Entity.SUGGESTION)
@transaction.atomic
def suggestion_status_rollback(*, actor: AbstractUser | None, change: TuningChange, reason: str = "",
                               ticket: str = "") -> Suggestion:
    """Undo a decision's status entry: the suggestion is pending again (and can be decided anew).
    Its rule, learned preferences and summary are entries of the same group, undone beside it by
    `tuning_rollback`. Conflict (409) when the suggestion is gone or its status changed since."""
    suggestion = (Suggestion.objects.select_for_update().select_related("client")
                  .filter(pk=int(change.entity_id)).first())
    current = suggestion.status if suggestion is not None else None
    if current != change.new_value:
        raise Conflict(
            f"Feedback suggestion #{change.entity_id} is now {current or 'deleted'}, not {change.new_value} as entry "
            f"#{change.pk} left it, so it cannot be rolled back blindly. Decide on it directly instead.",
            details={"audit_id": change.pk, "field": "status", "current": current, "expected": change.new_value,
                     "restore": change.old_value})
    policy.require(actor, "suggestion.decide", suggestion.client)
    Suggestion.objects.filter(pk=suggestion.pk).update(status=change.old_value, decided_by=None, decided_at=None,
                                                       auto_applied=False, rule_id=None)
    _status_recorded(actor=actor, suggestion=suggestion, old=change.new_value, new=change.old_value, reason=reason,
                     ticket=ticket, rollback_of=change)
    suggestion.refresh_from_db()
    return suggestion


FEEDBACK_SETTINGS_FIELDS = ("auto_apply", "auto_apply_min_confidence", "window_days")


@transaction.atomic
def feedback_settings_update(*, actor: AbstractUser | None, auto_apply: bool | None = None,
                             min_confidence: float | None = None, window_days: int | None = None,
                             reason: str = "", ticket: str = "",
                             _rollback_of: TuningChange | None = None) -> FeedbackSettings:
    """Auto-apply is the instance's choice: instance admins (or the system) only. A None leaves the
    setting as it is; every changed setting is one audit entry (entity `feedback_settings`)."""
    policy.require(actor, "feedback_settings.edit")
    row = FeedbackSettings.objects.select_for_update().order_by("pk").first() or FeedbackSettings()
    before = {f: getattr(row, f) for f in FEEDBACK_SETTINGS_FIELDS}
    if auto_apply is not None:
        row.auto_apply = bool(auto_apply)
    if min_confidence is not None:
        if isinstance(min_confidence, bool) or not isinstance(min_confidence, int | float):
            raise InvalidInput("min_confidence: give a number from 0.5 to 1.0.",
                               details={"auto_apply_min_confidence": [str(min_confidence)]})
        row.auto_apply_min_confidence = float(min_confidence)
    if window_days is not None:
        row.window_days = window_days
    try:
        row.full_clean()
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(f"{field}: {' '.join(messages)}", details=exc.message_dict) from exc
    changed = [f for f in FEEDBACK_SETTINGS_FIELDS if getattr(row, f) != before[f]]
    if row.pk is not None and not changed:
        return row
    row.save()
    # Auto-apply decides whether suggestions reach every client's prompts: tier-2 configuration.
    affected = list(Client.objects.order_by("pk").values_list("pk", flat=True))
    for field in changed:
        audit.record(actor=actor, tier=Tier.INSTANCE, entity=Entity.FEEDBACK_SETTINGS, entity_id=row.pk,
                     action=Action.UPDATE, field=field, old=before[field], new=getattr(row, field), reason=reason,
                     ticket=ticket, affected_clients=affected, rollback_of=_rollback_of)
    return row


@audit.rollback_handler(Entity.FEEDBACK_SETTINGS)
def _feedback_settings_rollback(*, change: TuningChange, actor: AbstractUser | None, reason: str,
                                ticket: str) -> None:
    """Restore one setting through `feedback_settings_update` (409 when it changed since)."""
    tuning_services._unchanged_since(change, FeedbackSettings.objects.select_for_update().filter(
        pk=int(change.entity_id)).first())
    argument = {"auto_apply": "auto_apply", "auto_apply_min_confidence": "min_confidence",
                "window_days": "window_days"}[change.field]
    feedback_settings_update(actor=actor, reason=reason, ticket=ticket, _rollback_of=change,
                             **{argument: change.old_value})
