"""Per-instance version control of core agents (DESIGN §8). All in the instance's schema.

The catalog of releases lives in the public schema (versions.catalog); what this instance runs,
what it was told about a release and what it tested lives here.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from tuning.models import agent_label


class UpdatePolicy(models.TextChoices):
    AUTO = "auto", "Auto (apply safe updates)"
    STAGED = "staged", "Staged (review every update)"
    MANUAL = "manual", "Manual"


class AgentVersionConfig(models.Model):
    """Which version of one agent type this instance runs and how it takes new ones.

    `current_version` is what runs use. A pinned instance never moves on a release; an unpinned
    one moves when its policy applies the update (auto + safe) or the owner approves it.
    """

    agent_type = models.CharField(max_length=40, unique=True)
    current_version = models.CharField(max_length=20)
    pinned_version = models.CharField(max_length=20, blank=True, help_text="Empty: follow releases per the policy.")
    policy = models.CharField(max_length=10, choices=UpdatePolicy.choices, default=UpdatePolicy.STAGED)
    sandbox_version = models.CharField(max_length=20, blank=True)
    optimization_preferences = models.JSONField(default=list, blank=True,
                                                help_text='What this instance optimises for, e.g. ["performance", "roas"].')
    notify = models.BooleanField(default=True)
    notify_contacts = models.JSONField(default=list, blank=True, help_text="E-mail addresses told about releases.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["agent_type"]
        verbose_name = verbose_name_plural = "version settings"

    def __str__(self) -> str:
        return f"{agent_label(self.agent_type)} {self.current_version}"


class VersionChange(models.Model):
    """The immutable history of versions an agent type ran in this instance (never updated)."""

    class Action(models.TextChoices):
        INITIAL = "initial", "Initial version"
        AUTO_UPDATE = "auto_update", "Automatic update"
        APPROVE = "approve", "Update approved"
        PROMOTE = "promote", "Promoted from sandbox"
        PIN = "pin", "Pinned"
        ROLLBACK = "rollback", "Rollback"
        SANDBOX_EXPIRED = "expire", "Sandbox expired undecided"

    agent_type = models.CharField(max_length=40, db_index=True)
    from_version = models.CharField(max_length=20, blank=True)
    version = models.CharField(max_length=20)
    action = models.CharField(max_length=12, choices=Action.choices)
    activated_at = models.DateTimeField(auto_now_add=True)
    activated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-activated_at", "-id"]

    def __str__(self) -> str:
        return f"{agent_label(self.agent_type)} → {self.version} ({self.get_action_display().lower()})"


class Recommendation(models.TextChoices):
    SAFE = "safe", "Safe"
    REVIEW = "review", "Review"
    CAUTION = "caution", "Caution"


class UpdateNotification(models.Model):
    """A release as this instance was told about it: the impact analysis and what was decided."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for review"
        APPLIED = "applied", "Applied"
        AUTO_APPLIED = "auto_applied", "Applied automatically"
        REJECTED = "rejected", "Rejected (pinned)"
        SANDBOX = "sandbox", "Testing in sandbox"
        DEFERRED = "deferred", "Deferred"

    agent_type = models.CharField(max_length=40)
    from_version = models.CharField(max_length=20)
    version = models.CharField(max_length=20)
    recommendation = models.CharField(max_length=10, choices=Recommendation.choices)
    reason = models.TextField()
    analysis = models.JSONField(default=dict)
    content = models.TextField(help_text="The notification (markdown): what's new, changes, impact, next steps.")
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.PENDING, db_index=True)
    emailed_to = models.JSONField(default=list, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["agent_type", "version"], name="updatenotification_once")]

    def __str__(self) -> str:
        return (f"{agent_label(self.agent_type)} {self.from_version} → {self.version} "
                f"({self.get_recommendation_display().lower()})")


class SandboxSession(models.Model):
    """Current vs test version of one agent type, for 24 hours; every test run is kept.

    Active until the owner promotes, rejects or defers it, or until `expires_at` passes: then the
    services refuse it at once and the beat task `versions.expire_sandboxes` marks it expired.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PROMOTED = "promoted", "Promoted"
        REJECTED = "rejected", "Rejected"
        DEFERRED = "deferred", "Deferred"
        EXPIRED = "expired", "Expired undecided"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent_type = models.CharField(max_length=40)
    current_version = models.CharField(max_length=20)
    test_version = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decision_reason = models.TextField(blank=True, help_text="Why the session was promoted, rejected or deferred.")
    notes = models.TextField(blank=True, help_text="Review notes kept with the session.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{agent_label(self.agent_type)} {self.current_version} vs {self.test_version}"


class SandboxTest(models.Model):
    """One task run on both versions (two sandbox runs, executed concurrently by the workers)."""

    session = models.ForeignKey(SandboxSession, on_delete=models.CASCADE, related_name="tests")
    task = models.TextField()
    client = models.ForeignKey("tuning.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               help_text="The client both runs work for (its tuning and client-bound tools).")
    specialization = models.JSONField(default=dict, blank=True,
                                      help_text='Normalised {"vertical", "region", "language"} of both runs.')
    current_run = models.ForeignKey("agents.AgentRun", on_delete=models.PROTECT, related_name="+")
    test_run = models.ForeignKey("agents.AgentRun", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        task = self.task if len(self.task) <= 60 else self.task[:59] + "…"
        return f"Sandbox test “{task}”"


# --- evals (DESIGN §16) --------------------------------------------------------------------------


class EvalCase(models.Model):
    """One task of an agent type's eval set in this instance, with what a good answer must do.

    `expectations` holds the checks `versions.evals.checks.case_verdict` applies to a finished run:
    tools_required / tools_forbidden (tool names), brand_rules_pass (the client's rules pass the
    deterministic brand check), phrases_required / phrases_forbidden (case-insensitive),
    min_chars / max_chars, artifact_schema (JSON Schema 2020-12) and rubric (graded by the model
    when one is configured). `reference` is an approved output the case was made from, if any.
    Written only by `versions.evals.services`.
    """

    agent_type = models.CharField(max_length=40, db_index=True)
    title = models.CharField(max_length=200, blank=True)
    task = models.TextField()
    client = models.ForeignKey("tuning.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               help_text="The client the case runs for (its tuning, its rules).")
    specialization = models.JSONField(default=dict, blank=True,
                                      help_text='Normalised {"vertical", "region", "language"}.')
    expectations = models.JSONField(default=dict, blank=True)
    reference = models.TextField(blank=True, help_text="An approved output this case was made from.")
    source_run = models.ForeignKey("agents.AgentRun", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    enabled = models.BooleanField(default=True, help_text="Disabled cases are left out of eval runs.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["agent_type", "id"]

    def __str__(self) -> str:
        text = self.title or self.task
        return text if len(text) <= 60 else text[:59] + "…"


class EvalRun(models.Model):
    """Every enabled case of one agent type's eval set against one configuration (a version, and
    optionally a tuning overlay that is not saved), as sandbox runs. A job row with a state machine:
    the task `versions.eval_run_advance` starts the cases' runs, records each finished one once
    (EvalResult is unique per case) and writes the summary when the last is recorded."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Finished"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent_type = models.CharField(max_length=40, db_index=True)
    version = models.CharField(max_length=20)
    tuning_overlay = models.JSONField(default=dict, blank=True,
                                      help_text="A proposed tuning change applied to these runs only.")
    case_ids = models.JSONField(default=list, blank=True, editable=False, help_text="The cases when it started.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    cases_total = models.PositiveIntegerField(default=0)
    cases_done = models.PositiveIntegerField(default=0)
    cases_passed = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, default=0)
    summary = models.JSONField(default=dict, blank=True, editable=False)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    sandbox_session = models.ForeignKey(SandboxSession, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="eval_runs", editable=False,
                                        help_text="The sandbox session that started it (one per version).")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    advanced_at = models.DateTimeField(null=True, blank=True, editable=False,
                                       help_text="The last pass of its task; the sweep re-queues a run left behind.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Eval of {agent_label(self.agent_type)} {self.version} ({self.cases_done}/{self.cases_total})"

    @property
    def pass_rate(self) -> float | None:
        return round(self.cases_passed / self.cases_done, 3) if self.cases_done else None


class EvalResult(models.Model):
    """One case of an eval run: its sandbox run and the verdict. Unique per (eval run, case), so a
    duplicate task or a redelivered one never starts or counts a case twice."""

    class Status(models.TextChoices):
        PENDING = "pending", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"

    eval_run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    case = models.ForeignKey(EvalCase, null=True, blank=True, on_delete=models.SET_NULL, related_name="results")
    case_title = models.CharField(max_length=200, blank=True)
    client = models.ForeignKey("tuning.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    run = models.ForeignKey("agents.AgentRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    failures = models.JSONField(default=list, blank=True, help_text="[{expectation, message}] of what failed.")
    skipped = models.JSONField(default=list, blank=True, help_text="[{expectation, message}] not judged.")
    output_excerpt = models.TextField(blank=True)
    tools_used = models.JSONField(default=list, blank=True)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, default=0)
    duration_s = models.FloatField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["eval_run", "id"]
        constraints = [models.UniqueConstraint(fields=["eval_run", "case"], name="evalresult_once_per_case")]

    def __str__(self) -> str:
        return f"{self.case_title or 'case'}: {self.get_status_display().lower()}"
