"""Agency-built agents (DESIGN §13, issue #18): an agent an instance defines by configuration.

`AgencyAgent` is the agent and its draft (the definition being edited, `draft`); publishing freezes
the draft as an immutable `AgentVersion` (1, 2, 3 …) and makes it current. Runs and threads keep the
version they started on (`AgentRun.agent_version` is "<n>.0.0"); a rollback makes an earlier version
current again; an archived agent takes no new runs. The definition's format is
`definition.DEFINITION_SCHEMA` (the export/import contract)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AgentStatus(models.TextChoices):
    DRAFT = "draft", "Draft (never published)"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"


class AgencyAgent(models.Model):
    slug = models.SlugField(max_length=40, unique=True, help_text="Its agent_type: lower case, never a core agent's.")
    title = models.CharField(max_length=120)
    status = models.CharField(max_length=12, choices=AgentStatus.choices, default=AgentStatus.DRAFT)
    draft = models.JSONField(default=dict, help_text="The definition being edited (what Publish freezes).")
    current_version = models.ForeignKey("AgentVersion", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+", help_text="The version new runs use.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = "agency-built agent"

    def __str__(self) -> str:
        return self.title


class AgentVersion(models.Model):
    agent = models.ForeignKey(AgencyAgent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(null=True, blank=True,
                                         help_text="1, 2, 3 … as published; empty: a draft frozen for a test run.")
    definition = models.JSONField(help_text="Frozen when published: never changed afterwards.")
    change_note = models.TextField()
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agent", "-number"]
        constraints = [models.UniqueConstraint(fields=["agent", "number"], name="studio_version_number",
                                               condition=models.Q(number__isnull=False))]
        verbose_name = "agent version"

    def __str__(self) -> str:
        return f"{self.agent.slug} v{self.number}" if self.number else f"{self.agent.slug} draft test #{self.pk}"

    @property
    def semver(self) -> str:
        """As runs record it: "2.0.0"; a draft's test: "0.0.<id>-test"."""
        return version_string(self.number) if self.number else f"0.0.{self.pk}-test"


def version_string(number: int) -> str:
    """A published version as runs record it: 1 → "1.0.0" (semver, like the core agents')."""
    return f"{number}.0.0"
