"""Instance skills: tools an instance adds to core agents without a platform release (DESIGN §7)."""

from __future__ import annotations

from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from spokestack.secrets import EncryptedSecretField

MAX_DESCRIPTION_CHARS = 2000
NAME_PATTERN = r"^[a-z][a-z0-9_]{1,63}$"


class Skill(models.Model):
    """A webhook or internal tool of this instance, offered to the agent types it attaches to.

    `relies_on_tools` names the core tools the skill assumes (impact analysis warns when a new
    core-agent version removes or changes one of them). Secrets (`auth_secret`, the per-skill
    `signing_secret`) are encrypted and bound to the instance; they are never shown back.
    Written only by `skills.services`.
    """

    class ExecutionType(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        INTERNAL = "internal", "Internal handler"

    class AuthType(models.TextChoices):
        NONE = "none", "None"
        BEARER = "bearer", "Bearer token"
        API_KEY = "api_key", "API-key header"

    name = models.CharField(max_length=64, unique=True, validators=[RegexValidator(
        NAME_PATTERN, "Use 2–64 lowercase letters, digits and underscores, starting with a letter.")])
    description = models.TextField(validators=[MaxLengthValidator(MAX_DESCRIPTION_CHARS)])
    input_schema = models.JSONField(default=dict)
    execution_type = models.CharField(max_length=20, choices=ExecutionType.choices, default=ExecutionType.WEBHOOK)
    agent_types = models.JSONField(default=list, help_text="Agent types this skill is offered to.")
    relies_on_tools = models.JSONField(default=list, blank=True, help_text="Core tools this skill assumes exist.")
    enabled = models.BooleanField(default=True)
    requires_approval = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # webhook skills
    webhook_url = models.URLField(max_length=500, blank=True, help_text="Called with POST and a signed JSON body.")
    auth_type = models.CharField(max_length=20, choices=AuthType.choices, default=AuthType.NONE)
    auth_header = models.CharField(max_length=64, blank=True, default="X-Api-Key",
                                   help_text="Header that carries the API key (API-key auth only).")
    auth_secret = EncryptedSecretField(help_text="Bearer token or API key; write-only.")
    signing_secret = EncryptedSecretField(help_text="whsec_ secret the receiver verifies signatures with; "
                                                    "shown once at creation.")
    # internal skills
    handler = models.CharField(max_length=64, blank=True, help_text="Internal handler (skills.handlers).")
    timeout_s = models.PositiveSmallIntegerField(default=10, validators=[MinValueValidator(1), MaxValueValidator(60)])

    class Meta:
        ordering = ["name"]
        permissions = [("test_skill", "Can test skills")]

    def __str__(self) -> str:
        return self.name

    def definition(self) -> dict:
        """The skill as the Messages API takes it (a tool)."""
        return {"name": self.name, "description": self.description, "input_schema": dict(self.input_schema or {})}


class SkillCall(models.Model):
    """One call of a skill (by a run, or a test from the API/admin): the source of its metrics.
    Holds no input, output or secret: only what the metrics and the last-error column need."""

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="calls")
    run_id = models.UUIDField(null=True, blank=True, db_index=True)
    ok = models.BooleanField()
    simulated = models.BooleanField(default=False)
    test = models.BooleanField(default=False)
    duration_ms = models.FloatField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Call of {self.skill} ({'ok' if self.ok else 'error'})"
