"""Feedback on agent outputs, the analyses made of it and the rules it suggests (DESIGN §9).

All rows live in the instance's schema. They are written only by `feedback.services`.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from tuning.models import RuleKind


class Verdict(models.TextChoices):
    APPROVED = "approved", "Approved"
    PARTIALLY_APPROVED = "partially_approved", "Partially approved"
    CORRECTED = "corrected", "Corrected"
    REJECTED = "rejected", "Rejected"


class Category(models.TextChoices):
    TONE = "tone", "Tone"
    FACTUAL = "factual", "Factual"
    FORMAT = "format", "Format"
    BRAND_VOICE = "brand_voice", "Brand voice"
    MISSING_INFO = "missing_info", "Missing info"
    TOO_LONG = "too_long", "Too long"
    TOO_SHORT = "too_short", "Too short"
    COMPLIANCE = "compliance", "Compliance"
    OTHER = "other", "Other"


class Feedback(models.Model):
    """One person's judgement of one output (a run's output, or one of its artifacts).

    A person's newer feedback on the same output supersedes the older one: the older row stays
    (history) with `current=False`; exactly one current row per (person, output) is enforced by a
    partial unique constraint. `original_text` is the output as it was judged, so analysis never
    depends on the run or artifact still being there.
    """

    run = models.ForeignKey("agents.AgentRun", on_delete=models.CASCADE, related_name="feedback")
    artifact = models.ForeignKey("agents.Artifact", null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="feedback")
    client = models.ForeignKey("tuning.Client", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="feedback")
    agent_type = models.CharField(max_length=40, db_index=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    original_text = models.TextField(blank=True)
    corrected_text = models.TextField(blank=True)
    reason = models.CharField(max_length=500, blank=True)
    category = models.CharField(max_length=20, choices=Category.choices, blank=True)
    comment = models.TextField(blank=True)
    rating = models.PositiveSmallIntegerField(null=True, blank=True,
                                              validators=[MinValueValidator(1), MaxValueValidator(5)])
    current = models.BooleanField(default=True)
    superseded_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "feedback"
        constraints = [
            models.UniqueConstraint(fields=["author", "run", "artifact"], condition=models.Q(current=True),
                                    nulls_distinct=False, name="feedback_one_current_per_author_output"),
        ]
        indexes = [models.Index(fields=["client", "current", "created_at"], name="feedback_client_idx")]

    def __str__(self) -> str:
        return f"{self.get_verdict_display()} · {self.agent_type} · {self.created_at:%Y-%m-%d}"


class SuggestionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    DISMISSED = "dismissed", "Dismissed"


class Suggestion(models.Model):
    """A rule the analysis of a client's feedback proposes, with its evidence.

    `signature` names what the rule is about (e.g. "never:discount") so a re-analysis finds
    the same suggestion instead of adding another: a pending one is refreshed, a dismissed one
    comes back only when `evidence_count` has grown beyond `dismissed_evidence`.
    """

    client = models.ForeignKey("tuning.Client", on_delete=models.CASCADE, related_name="feedback_suggestions")
    agent_type = models.CharField(max_length=40, blank=True)
    kind = models.CharField(max_length=10, choices=RuleKind.choices)
    text = models.CharField(max_length=1000)
    signature = models.CharField(max_length=200)
    confidence = models.FloatField()
    evidence_count = models.PositiveIntegerField()
    examples = models.JSONField(default=list, blank=True, help_text='Up to three [{"before", "after"}].')
    origin = models.CharField(max_length=20, default="deterministic")  # deterministic | model
    status = models.CharField(max_length=10, choices=SuggestionStatus.choices, default=SuggestionStatus.PENDING,
                              db_index=True)
    dismissed_evidence = models.PositiveIntegerField(default=0)
    rule_id = models.IntegerField(null=True, blank=True)
    auto_applied = models.BooleanField(default=False)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-confidence", "-id"]
        constraints = [models.UniqueConstraint(fields=["client", "agent_type", "signature"],
                                               name="suggestion_one_per_signature")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.text}"


class Analysis(models.Model):
    """The latest result of analysing one client's feedback (metrics, patterns, what the model said)."""

    client = models.ForeignKey("tuning.Client", on_delete=models.CASCADE, related_name="feedback_analyses")
    agent_type = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=20)  # ok | insufficient_data
    result = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "analyses"

    def __str__(self) -> str:
        return f"{self.client} · {self.status} · {self.created_at:%Y-%m-%d %H:%M}"


class FeedbackSettings(models.Model):
    """The instance's choices for the feedback loop (one row). Auto-apply is off by default."""

    auto_apply = models.BooleanField(default=False)
    auto_apply_min_confidence = models.FloatField(default=0.9,
                                                  validators=[MinValueValidator(0.5), MaxValueValidator(1.0)])
    window_days = models.PositiveIntegerField(default=90)

    class Meta:
        verbose_name_plural = "feedback settings"

    def __str__(self) -> str:
        return "Feedback settings"


class AnalysisJobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class AnalysisJob(models.Model):
    """One "Analyze now" request and its progress (queued → running → done | failed), so the page
    that asked can show the job running and then its result. The beat's analyses have no job."""

    client = models.ForeignKey("tuning.Client", on_delete=models.CASCADE, related_name="feedback_analysis_jobs")
    agent_type = models.CharField(max_length=40, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    status = models.CharField(max_length=10, choices=AnalysisJobStatus.choices, default=AnalysisJobStatus.QUEUED)
    analysis = models.ForeignKey(Analysis, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_suggestions = models.PositiveIntegerField(default=0)
    refreshed_suggestions = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    queued_at = models.DateTimeField(default=timezone.now, help_text="When the job was last sent to the workers.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When a worker last claimed it.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Analysis of {self.client} · {self.get_status_display()}"

    @property
    def finished(self) -> bool:
        return self.status in (AnalysisJobStatus.DONE, AnalysisJobStatus.FAILED)
