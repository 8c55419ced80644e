"""Clients of an agency instance and, per tier, how agents are tuned for them (DESIGN §4).

Tier 1 (the platform) lives in code and reaches this app through `tuning.assembly`'s catalog.
Tier 2 is `InstanceTuning`, tier 3 is `ClientTuning` with its `ContentRule` and
`ApprovedExample` rows. Rows are written only by `tuning.services`, which check permissions,
validate against the platform's bounds and write a `TuningChange` for every change.
How rows combine is decided in one place: `tuning.precedence`.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models

MAX_TEXT = 20_000  # characters in any free-text tuning field (a brand voice, a prompt extension)
MAX_RULE_TEXT = 1_000
MAX_EXAMPLE_TEXT = 10_000


class Vertical(models.TextChoices):
    BEAUTY = "beauty", "Beauty"
    FASHION = "fashion", "Fashion"
    FOOD = "food", "Food & beverage"
    TECHNOLOGY = "technology", "Technology"
    FINANCE = "finance", "Finance"
    HEALTHCARE = "healthcare", "Healthcare"
    RETAIL = "retail", "Retail & e-commerce"
    OTHER = "other", "Other"


class Client(models.Model):
    """A brand the agency works for. Account managers and client contacts are given access
    to a client with guardian object permissions on this row (`tuning.services.client_assign`)."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    vertical = models.CharField(max_length=20, choices=Vertical.choices, default=Vertical.OTHER)
    region = models.CharField(max_length=20, blank=True, help_text="GCC, MENA, EU, US or APAC.")
    language = models.CharField(max_length=10, blank=True, help_text="Output language for this client (ISO 639-1).")
    created_at = models.DateTimeField(auto_now_add=True)
    archived_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the agency stopped working for this client: no new runs; its history stays readable.")

    class Meta:
        ordering = ["name"]
        permissions = [
            ("manage_client", "Is an account manager of this client (object permission)"),
            ("contact_client", "Is a client contact of this client (object permission)"),
        ]

    def __str__(self) -> str:
        return self.name


# Agent types' titles ("copy" -> "Copywriting"), filled by the agents app (agents/admin.py).
AGENT_TITLES: dict[str, str] = {}


def agent_label(agent_type: str) -> str:
    """An agent type as a person reads it: its title, else "media_buying" -> "Media buying"."""
    return AGENT_TITLES.get(agent_type) or agent_type.replace("_", " ").strip().capitalize()


def _text(help_text: str, **kwargs) -> models.TextField:
    return models.TextField(blank=True, validators=[MaxLengthValidator(MAX_TEXT)], help_text=help_text, **kwargs)


class InstanceTuning(models.Model):
    """Tier 2: how this agency wants its agents to behave.

    One instance-wide row (`agent_type == ""`) and optional per-agent-type rows that point at
    it. A per-agent row overrides the instance-wide row field by field: an empty text, a null
    number or an empty mapping means "inherit"; lists (disabled tools, approvals, filters,
    terminology) merge. Values may restrict the platform but never relax it.
    """

    agent_type = models.CharField(
        max_length=60, blank=True, unique=True,
        help_text="Empty for the instance-wide defaults; an agent type (e.g. 'copy') for its own overrides.",
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="per_agent",
        help_text="The instance-wide row this per-agent row overrides.",
    )
    enabled = models.BooleanField(
        null=True, blank=True,
        help_text="Whether this agent can be run in this instance. Empty: inherit (enabled by default).",
    )
    prompt_extension = _text("Extra instructions appended after the platform's base prompt.")
    instruction_overrides = models.JSONField(
        default=dict, blank=True,
        help_text='Named instructions that replace the platform\'s, e.g. {"sign_off": "End with the agency name."}.',
    )
    default_vertical = models.CharField(
        max_length=20, blank=True, choices=Vertical.choices,
        help_text="Vertical knowledge to use when neither the run nor the client names one.",
    )
    default_region = models.CharField(max_length=20, blank=True, help_text="Region used when the client names none.")
    default_language = models.CharField(max_length=10, blank=True, help_text="Language used when the client names none.")
    vertical_knowledge = models.JSONField(
        default=dict, blank=True,
        help_text='Agency know-how per vertical, added after the platform\'s: {"beauty": "…"}.',
    )
    disabled_tools = models.JSONField(
        default=list, blank=True, help_text="Core tools the agent may not use here. Merged with per-agent lists.",
    )
    tool_config_overrides = models.JSONField(
        default=dict, blank=True,
        help_text='Per-tool settings passed to the tool handlers: {"search_projects": {"limit": 5}}.',
    )
    behaviour_params = models.JSONField(
        default=dict, blank=True,
        help_text="0–100 dials turned into concrete instructions: verbosity, creativity, formality, detail, "
                  "risk_taking.",
    )
    traits = models.JSONField(
        default=dict, blank=True,
        help_text='Personality traits 0–100, e.g. {"warmth": 80, "humour": 20}.',
    )
    output_preferences = models.JSONField(
        default=dict, blank=True, help_text='How outputs are shaped: {"format": "markdown", "headings": "sentence case"}.',
    )
    brand_voice = _text("The agency's own voice, used when the client has none of its own.")
    terminology_use = models.JSONField(default=list, blank=True, help_text="Terms the agents should use.")
    terminology_avoid = models.JSONField(default=list, blank=True, help_text="Terms the agents must not use.")
    require_approval_for = models.JSONField(
        default=list, blank=True,
        help_text='Tool-name patterns that always wait for a person, added to the platform\'s: ["send_*"].',
    )
    effort = models.CharField(
        max_length=10, blank=True,
        choices=[("low", "Low"), ("medium", "Medium"), ("high", "High"), ("xhigh", "Extra high"), ("max", "Max")],
        help_text="How much effort the model puts into each answer (sent as the Messages API's effort), at most the "
                  "platform's maximum for the agent. Lower is faster and cheaper. Empty: platform default.",
    )
    max_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Output token limit, at most the platform's. Empty: platform default.",
    )
    content_filters = models.JSONField(
        default=list, blank=True,
        help_text="Extra content filters. They add to the platform's filters and can never remove one.",
    )
    audit_all_outputs = models.BooleanField(
        null=True, blank=True, help_text="Keep every output for review. Empty: inherit (off by default).",
    )
    on_rule_violation = models.CharField(
        max_length=10, blank=True, choices=[("flag", "Flag the run for review"), ("revise", "Have the agent revise once")],
        help_text="What happens when a final output breaks a content filter or a client rule. Empty: inherit "
                  "(flag by default).",
    )
    memory_auto_accept = models.BooleanField(
        default=False,
        help_text="Memories an agent proposes (the remember tool) are accepted at once instead of waiting for an "
                  "account manager. Read from the instance-wide row only; changed with tuning.services."
                  "memory_auto_accept_set (audited).",
    )
    require_eval_for_tuning = models.BooleanField(
        default=False,
        help_text="A rule or avoided term for an agent that has eval cases is saved only after a what-if eval of "
                  "that change finished (run from the tuning form, or POST /api/v1/evals/runs with tuning_overlay). "
                  "Read from the instance-wide row only; changed with tuning.services.require_eval_set (audited).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["agent_type"]
        verbose_name = "instance tuning"
        verbose_name_plural = "instance tuning"

    def __str__(self) -> str:
        return f"Tuning for {agent_label(self.agent_type)}" if self.agent_type else "Instance-wide tuning"


class ClientTuning(models.Model):
    """Tier 3: how agents work for one client; one client-wide row (`agent_type == ""`) and
    optional per-agent rows that override it field by field. Rules and examples are rows of
    their own (`ContentRule`, `ApprovedExample`), so each has a provenance and an audit trail."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="tunings")
    agent_type = models.CharField(max_length=60, blank=True, help_text="Empty for every agent; else one agent type.")
    brand_voice = _text("How the client sounds. Overrides the agency's brand voice.")
    tone_keywords = models.JSONField(default=list, blank=True, help_text='e.g. ["warm", "confident", "concise"].')
    competitor_rules = models.JSONField(
        default=list, blank=True,
        help_text='[{"competitor": "Acme", "instruction": "Never mention by name."}]',
    )
    format_preferences = models.JSONField(
        default=dict, blank=True, help_text='{"structure": "bullets first", "emoji": "never"}',
    )
    length_preferences = models.JSONField(
        default=dict, blank=True, help_text='{"headline": "under 8 words", "caption": "under 150 characters"}',
    )
    required_approvals = models.JSONField(
        default=list, blank=True, help_text="Extra tool-name patterns that need a person's approval for this client.",
    )
    learned_preferences = models.JSONField(
        default=dict, blank=True, help_text="Preferences the feedback loop learned (written when a suggestion is applied).",
    )
    feedback_summary = _text("A short summary of what this client's feedback says, kept by the feedback loop.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["client__name", "agent_type"]
        constraints = [models.UniqueConstraint(fields=["client", "agent_type"], name="client_tuning_unique_agent")]
        verbose_name = "client tuning"
        verbose_name_plural = "client tuning"

    def __str__(self) -> str:
        return f"{self.client} · {agent_label(self.agent_type) if self.agent_type else 'all agents'}"


class RuleKind(models.TextChoices):
    ALWAYS = "always", "Always"
    NEVER = "never", "Never"
    PREFER = "prefer", "Prefer"


class RuleSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    FEEDBACK_SUGGESTION = "feedback_suggestion", "Feedback suggestion"


class ContentRule(models.Model):
    """One always / never / prefer rule of a client, with where it came from: written by a
    person, or an applied feedback suggestion (whose id is kept in `source_reference`)."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="rules")
    agent_type = models.CharField(max_length=60, blank=True, help_text="Empty for every agent.")
    kind = models.CharField(max_length=10, choices=RuleKind.choices)
    text = models.CharField(max_length=MAX_RULE_TEXT)
    active = models.BooleanField(default=True)
    source = models.CharField(max_length=30, choices=RuleSource.choices, default=RuleSource.MANUAL)
    source_reference = models.CharField(max_length=64, null=True, blank=True,
                                        help_text="The feedback suggestion this rule came from.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["client_id", "kind", "id"]
        indexes = [models.Index(fields=["client", "active"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.text}"


class ApprovedExample(models.Model):
    """An output the client approved, shown to the agent as a model of what good looks like."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="examples")
    agent_type = models.CharField(max_length=60, blank=True, help_text="Empty for every agent.")
    kind = models.CharField(max_length=40, help_text="What it is: headline, caption, email, brief, …")
    text = models.TextField(validators=[MaxLengthValidator(MAX_EXAMPLE_TEXT)])
    context = models.TextField(blank=True, validators=[MaxLengthValidator(2_000)],
                               help_text="What it was written for.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["client_id", "id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.text[:60]}"


MAX_MEMORY_TEXT = 300


class MemoryStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


class Memory(models.Model):
    """Tier 3: one short fact about a client (or, with no client, about the agency) that agents
    are told on every run for it once a person has accepted it (DESIGN §11).

    An agent proposes one with the core `remember` tool (`source` "run:<id>"); a person may write
    one directly ("person:<username>"). Accepted, unexpired memories are assembled after the
    client's rules, by id, within `settings.MEMORY_PROMPT_MAX_CHARS` (`tuning.selectors.
    memories_for_prompt` says which are left out). Written only by `tuning.services.memory_*`.
    """

    client = models.ForeignKey(Client, null=True, blank=True, on_delete=models.CASCADE, related_name="memories",
                               help_text="Empty: a memory about the agency, told to runs for every client.")
    text = models.CharField(max_length=MAX_MEMORY_TEXT)
    source = models.CharField(max_length=80, blank=True,
                              help_text='Where it came from: "run:<id>", "thread:<id>" or "person:<username>".')
    status = models.CharField(max_length=10, choices=MemoryStatus.choices, default=MemoryStatus.PROPOSED)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="After this moment it is no longer told.")
    decision_reason = models.CharField(max_length=300, blank=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    use_count = models.PositiveIntegerField(default=0, help_text="Runs whose prompt included it.")
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "client"])]
        verbose_name = "memory"
        verbose_name_plural = "memories"

    def __str__(self) -> str:
        return self.text if len(self.text) <= 60 else self.text[:59] + "…"


class Tier(models.IntegerChoices):
    INSTANCE = 2, "Tier 2 · instance"
    CLIENT = 3, "Tier 3 · client"
    GOVERNANCE = 0, "Governance"


class Entity(models.TextChoices):
    INSTANCE_TUNING = "instance_tuning", "Instance tuning"
    CLIENT_TUNING = "client_tuning", "Client tuning"
    CONTENT_RULE = "content_rule", "Content rule"
    APPROVED_EXAMPLE = "approved_example", "Approved example"
    CLIENT_ASSIGNMENT = "client_assignment", "Client assignment"
    CLIENT = "client", "Client details"
    SKILL = "skill", "Skill"
    VERSION_SETTINGS = "version_settings", "Version settings"
    FEEDBACK_SETTINGS = "feedback_settings", "Feedback settings"
    SUGGESTION = "suggestion", "Feedback suggestion"
    USER = "user", "Team member"
    USER_ROLE = "user_role", "Role"
    MEMORY = "memory", "Memory"
    DOCUMENT = "document", "Knowledge document"
    AGENT_DEFINITION = "agent_definition", "Agency-built agent"
    BUDGET = "budget", "Budget"
    WEBHOOK_SUBSCRIPTION = "webhook_subscription", "Event webhook"
    MCP_SERVER = "mcp_server", "MCP server"
    MCP_TOOL = "mcp_tool", "MCP tool"
    APPROVAL_RULE = "approval_rule", "Approval rule"
    EVAL_CASE = "eval_case", "Eval case"


class Action(models.TextChoices):
    CREATE = "create", "Created"
    UPDATE = "update", "Updated"
    DELETE = "delete", "Deleted"


class TuningChange(models.Model):
    """One immutable audit entry: a field of a tuning row, or a whole rule / example /
    assignment, changed from `old_value` to `new_value` by `actor`.

    Rows are inserted by `tuning.audit` and never updated or deleted: `save()` refuses an
    existing row and a database trigger (migration 0003) refuses UPDATE and DELETE. The
    references to the client and the actor are kept without foreign-key constraints, so
    deleting a client or a user never has to touch the log.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
                              db_constraint=False, related_name="+")
    actor_label = models.CharField(max_length=200, help_text="Who, as they were named at the time.")
    tier = models.PositiveSmallIntegerField(choices=Tier.choices)
    entity = models.CharField(max_length=30, choices=Entity.choices)
    entity_id = models.CharField(max_length=64)
    agent_type = models.CharField(max_length=60, blank=True)
    client = models.ForeignKey(Client, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
                               related_name="+")
    client_label = models.CharField(max_length=120, blank=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    field = models.CharField(max_length=60, blank=True, help_text="Empty when the whole object was created or deleted.")
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    ticket = models.CharField(max_length=100, blank=True)
    affected_clients = models.JSONField(default=list, blank=True,
                                        help_text="Ids of the clients whose prompts this change alters.")
    rollback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
                                    related_name="+")
    group = models.UUIDField(null=True, blank=True, db_index=True,
                             help_text="Entries written by one change of several rows (applying a suggestion): "
                                       "they roll back together.")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["client", "-id"]), models.Index(fields=["entity", "entity_id"])]
        # Only "view": entries are written by the services and never edited. Rolling one back
        # needs the permission to make the original change, checked by the same services.
        default_permissions = ("view",)
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        what = self.get_entity_display().lower()
        if self.agent_type:
            what += f" for {agent_label(self.agent_type)}"
        if self.client_label:
            what += f" of {self.client_label}"
        if self.field:
            what += f" · {self.field.replace('_', ' ')}"
        return f"{self.get_action_display()} {what}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise RuntimeError("TuningChange entries are immutable.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("TuningChange entries are immutable.")
