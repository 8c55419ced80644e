"""The public catalog of core-agent releases and the skill-to-core submissions. Public schema.

The catalog mirrors the code registry (agents.registry): a version exists in the catalog once it
is released to instances. `sync_agent_versions` writes it; nothing else does.
"""

from __future__ import annotations

from django.db import models


class CatalogVersion(models.Model):
    """One released version of one agent type, as instances see it. Immutable apart from re-syncs
    of its descriptive fields (the code is the source of truth)."""

    agent_type = models.CharField(max_length=40)
    version = models.CharField(max_length=20)
    sort_key = models.JSONField(default=list, help_text="Semver as a list of ints, for ordering.")
    title = models.CharField(max_length=120, blank=True)
    release_date = models.CharField(max_length=10, blank=True)
    notes = models.TextField(blank=True)
    breaking = models.BooleanField(default=False)
    optimization_tags = models.JSONField(default=list, blank=True)
    tool_changes = models.JSONField(default=list, blank=True)
    prompt_changes = models.JSONField(default=list, blank=True)
    behaviour_changes = models.JSONField(default=list, blank=True)
    deprecations = models.JSONField(default=list, blank=True)
    tools = models.JSONField(default=list, blank=True, help_text="[{name, description}] of the version's core tools.")
    min_platform_version = models.CharField(max_length=20, default="1.0.0")
    sunset_date = models.CharField(max_length=10, blank=True)
    synced_at = models.DateTimeField(auto_now=True)
    released_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agent_type", "released_at", "id"]
        constraints = [models.UniqueConstraint(fields=["agent_type", "version"], name="catalogversion_unique")]

    def __str__(self) -> str:
        return f"{self.agent_type} {self.version}"


class ReleaseFanout(models.Model):
    """The job that analyses and notifies every instance about one release (a row with a state
    machine, so the Celery task can be redelivered and stop where it is)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    release = models.ForeignKey(CatalogVersion, on_delete=models.CASCADE, related_name="fanouts")
    previous_version = models.CharField(max_length=20, blank=True)
    schemas = models.JSONField(null=True, blank=True, help_text="Only these instance schemas; null = every instance.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    instances_total = models.PositiveIntegerField(default=0)
    instances_done = models.PositiveIntegerField(default=0)
    applied = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"fan-out of {self.release} ({self.status})"


class CoreSubmission(models.Model):
    """An instance's skill proposed for the core platform, with its performance report, for
    platform staff to review in the platform admin."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"

    instance = models.ForeignKey("tenancy.Instance", on_delete=models.CASCADE, related_name="core_submissions")
    skill_name = models.CharField(max_length=64)
    description = models.TextField()
    input_schema = models.JSONField(default=dict)
    agent_types = models.JSONField(default=list)
    report = models.JSONField(default=dict)
    rationale = models.TextField(blank=True)
    submitted_by = models.CharField(max_length=254, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["instance", "skill_name"], condition=models.Q(status="submitted"),
                                               name="coresubmission_one_open_per_skill")]

    def __str__(self) -> str:
        return f"{self.skill_name} ({self.get_status_display().lower()})"
