"""Instance skills: tools an instance adds to core agents without a platform release (DESIGN §7)."""

from __future__ import annotations

from django.db import models


class Skill(models.Model):
    """A webhook or internal tool of this instance, offered to the agent types it attaches to.

    `relies_on_tools` names the core tools the skill assumes (impact analysis warns when a new
    core-agent version removes or changes one of them).
    """

    class ExecutionType(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        INTERNAL = "internal", "Internal handler"

    name = models.CharField(max_length=64, unique=True)
    description = models.TextField()
    input_schema = models.JSONField(default=dict)
    execution_type = models.CharField(max_length=20, choices=ExecutionType.choices, default=ExecutionType.WEBHOOK)
    agent_types = models.JSONField(default=list, help_text="Agent types this skill is offered to.")
    relies_on_tools = models.JSONField(default=list, blank=True, help_text="Core tools this skill assumes exist.")
    enabled = models.BooleanField(default=True)
    requires_approval = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
