"""Instance skills: tools an instance adds to core agents without a platform release (DESIGN §7)."""

from __future__ import annotations

from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from spokestack.secrets import EncryptedSecretField

MAX_DESCRIPTION_CHARS = 2000
NAME_PATTERN = r"^[a-z][a-z0-9_]{1,63}$"
# agents.models.ApprovalPriority's values (skills must not import the agents app's models)
APPROVAL_PRIORITIES = [(10, "Low"), (20, "Normal"), (30, "High"), (40, "Urgent")]


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
    approval_priority = models.PositiveSmallIntegerField(
        choices=APPROVAL_PRIORITIES, default=20,
        help_text="The priority of the approval requests this skill demands (the approval queue sorts by it).")
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


MCP_SERVER_NAME_PATTERN = r"^[a-z][a-z0-9_]{1,31}$"


class McpServer(models.Model):
    """An MCP server (streamable HTTP) whose tools this instance may offer to its agents (DESIGN §15).

    The URL is vetted like a webhook's on save and again on every request (the egress policy);
    the auth secret (sent in `auth_header`) is encrypted and bound to the instance, never shown
    back. `tools_refreshed_at` / `last_error` say how the last tool listing went. Written only by
    `skills.mcp`.
    """

    name = models.CharField(max_length=32, unique=True, validators=[RegexValidator(
        MCP_SERVER_NAME_PATTERN, "Use 2–32 lowercase letters, digits and underscores, starting with a letter.")])
    url = models.URLField(max_length=500, help_text="The server's streamable HTTP endpoint (e.g. https://…/mcp).")
    auth_header = models.CharField(max_length=64, blank=True, default="Authorization",
                                   help_text="Header that carries the secret (e.g. Authorization with "
                                             "'Bearer …', or X-Api-Key).")
    auth_secret = EncryptedSecretField(help_text="The header's value; write-only.")
    enabled = models.BooleanField(default=True)
    timeout_s = models.PositiveSmallIntegerField(default=20, validators=[MinValueValidator(1), MaxValueValidator(120)])
    max_result_chars = models.PositiveIntegerField(default=20_000, validators=[MinValueValidator(200),
                                                                               MaxValueValidator(200_000)])
    tools_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"

    def __str__(self) -> str:
        return self.name


class McpTool(models.Model):
    """One tool of an MCP server, as the instance offers it (or not) to its agents.

    `remote_name` is the server's name for it; `name` is the one agents see, unique in the
    instance and clashing neither with a skill nor with a core tool of `agent_types`. New tools
    arrive not exposed (`enabled` False): the admin chooses. A refresh keeps those choices and
    marks tools the server no longer lists (`vanished_at`), which are then not offered.
    It quacks like a `Skill` where the run loop needs it (`definition()`, `requires_approval`,
    `input_schema`, `execution_type`).
    """

    execution_type = "mcp"

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="tools")
    remote_name = models.CharField(max_length=128)
    name = models.CharField(max_length=64, unique=True, validators=[RegexValidator(
        NAME_PATTERN, "Use 2–64 lowercase letters, digits and underscores, starting with a letter.")])
    description = models.TextField(blank=True)
    input_schema = models.JSONField(default=dict)
    read_only = models.BooleanField(default=False, help_text="The server says the tool changes nothing "
                                                            "(readOnlyHint).")
    agent_types = models.JSONField(default=list, blank=True, help_text="Agent types this tool is offered to.")
    enabled = models.BooleanField(default=False, help_text="Exposed to the agents of its agent types.")
    requires_approval = models.BooleanField(default=False)
    vanished_at = models.DateTimeField(null=True, blank=True, help_text="When a refresh no longer found it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["server__name", "name"]
        verbose_name = "MCP tool"
        constraints = [models.UniqueConstraint(fields=["server", "remote_name"], name="skills_mcptool_remote_unique")]

    def __str__(self) -> str:
        return self.name

    def definition(self) -> dict:
        """The tool as the Messages API takes it."""
        description = (self.description or f"{self.remote_name} (MCP server {self.server.name})")[:MAX_DESCRIPTION_CHARS]
        return {"name": self.name, "description": description, "input_schema": dict(self.input_schema or {})}


class McpToolCall(models.Model):
    """One call of an MCP tool: the source of its metrics, as `SkillCall` is for skills (a row of
    its own rather than a nullable FK on SkillCall, whose `skill` every skill metric relies on)."""

    tool = models.ForeignKey(McpTool, on_delete=models.CASCADE, related_name="calls")
    run_id = models.UUIDField(null=True, blank=True, db_index=True)
    ok = models.BooleanField()
    simulated = models.BooleanField(default=False)
    test = models.BooleanField(default=False)
    duration_ms = models.FloatField()
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Call of {self.tool} ({'ok' if self.ok else 'error'})"
