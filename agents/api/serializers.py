from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import AgentRun, Artifact, ToolCall


class AgentTypeField(serializers.CharField):
    """An agent type of the catalog. The service validates it (naming the ones that exist); the
    contract lists them, as of the code that serves it."""


class AgentTypeFieldExtension(OpenApiSerializerFieldExtension):
    target_class = AgentTypeField

    def map_serializer_field(self, auto_schema, direction):
        from ..registry import agent_types

        return {"type": "string", "enum": agent_types(),
                "description": "GET /api/v1/agents lists those enabled for this instance."}


SHORT_TEXT = {"type": "string", "maxLength": 40, "nullable": True}


@extend_schema_field({"type": "object", "additionalProperties": True})
class MetadataField(serializers.JSONField):
    """Validated by the service (an object of at most a few kB)."""


@extend_schema_field({"type": "object", "additionalProperties": False, "nullable": True,
                      "properties": {"vertical": SHORT_TEXT, "region": SHORT_TEXT, "language": SHORT_TEXT}})
class SpecializationField(serializers.JSONField):
    """Validated by the service (agents.services._check_specialization)."""


class ExecuteSerializer(serializers.Serializer):
    """With an Idempotency-Key, a repeat with the same agent_type, task, client_id, metadata and
    specialization returns the first run (`replayed: true`); any other value of those is 409."""

    agent_type = AgentTypeField(max_length=40)
    task = serializers.CharField(trim_whitespace=False, allow_blank=True, help_text="What the agent should do.")
    client_id = serializers.IntegerField(required=False, allow_null=True,
                                         help_text="The client the run is for (its tuning applies).")
    metadata = MetadataField(required=False, default=dict, help_text="Your own references, kept on the run.")
    stream = serializers.BooleanField(required=False, default=False,
                                      help_text="Answer with the run's event stream instead of 202.")
    specialization = SpecializationField(required=False, default=dict,
                                         help_text="Overrides the client's vertical, region or language.")
    thread = serializers.BooleanField(required=False, default=False,
                                      help_text="Start a thread with this run as its first turn; continue it with "
                                                "POST /api/v1/threads/{thread_id}/messages.")


class ToolCallSerializer(serializers.ModelSerializer):
    class Meta:
        model = ToolCall
        fields = ["tool_use_id", "name", "input", "status", "is_error", "side_effect", "duration_ms", "attempts",
                  "started_at"]


class ArtifactSerializer(serializers.ModelSerializer):
    class Meta:
        model = Artifact
        fields = ["id", "kind", "title", "content", "data", "created_at"]


class RunSerializer(serializers.ModelSerializer):
    run_id = serializers.UUIDField(source="pk")
    client_id = serializers.IntegerField(allow_null=True)
    usage = serializers.SerializerMethodField()
    cost_usd = serializers.FloatField()
    duration_s = serializers.FloatField(allow_null=True)
    thread_id = serializers.UUIDField(allow_null=True, help_text="The thread this run is a turn of.")
    thread_turn = serializers.IntegerField(allow_null=True)
    parent_run_id = serializers.UUIDField(source="parent_id", allow_null=True,
                                          help_text="The run that delegated this one (null for a run started by a "
                                                    "person or a client).")
    depth = serializers.IntegerField(help_text="0 for a top-level run, 1 for its delegated runs, 2 for theirs.")
    children_cost_usd = serializers.FloatField(help_text="What its delegated runs cost, theirs included.")
    total_cost_usd = serializers.FloatField(help_text="cost_usd plus children_cost_usd.")

    class Meta:
        model = AgentRun
        fields = ["run_id", "agent_type", "agent_version", "status", "client_id", "task", "metadata",
                  "specialization", "sandbox", "output", "error", "simulated", "model", "used_fallback", "usage",
                  "cost_usd", "iterations", "tool_calls_count", "created_at", "started_at", "finished_at",
                  "duration_s", "review_status", "review_reason", "reviewed_at", "thread_id", "thread_turn",
                  "parent_run_id", "depth", "children_cost_usd", "total_cost_usd"]

    def get_usage(self, run) -> dict:
        return {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens,
                "cache_creation_input_tokens": run.cache_creation_input_tokens,
                "cache_read_input_tokens": run.cache_read_input_tokens}


@extend_schema_field({
    "type": "object", "description": "The deterministic check of the final output ({} until the run has one).",
    "properties": {
        "passed": {"type": "boolean"},
        "violations": {"type": "array", "items": {"type": "object", "properties": {
            "source": {"type": "string", "enum": ["platform_filter", "instance_filter", "terminology_avoid",
                                                  "never_rule", "competitor_rule"]},
            "kind": {"type": "string"}, "rule": {"type": "string"}, "phrase": {"type": "string"},
            "match": {"type": "string"},
            "span": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}}}},
        "checked": {"type": "object", "additionalProperties": {"type": "integer"},
                    "description": "How many rules of each source were checked."},
        "on_rule_violation": {"type": "string", "enum": ["flag", "revise"]},
        "revised": {"type": "boolean", "description": "The agent revised its answer once after a failed check."},
        "violations_before_revision": {"type": "array", "items": {"type": "object"}}}})
class ChecksField(serializers.JSONField):
    """Written by the loop (agents/checks.py)."""


class ChildRunSerializer(serializers.ModelSerializer):
    """A delegated run, as its parent lists it (GET /api/v1/runs/{id} for the whole of it)."""

    run_id = serializers.UUIDField(source="pk")
    tool_use_id = serializers.CharField(source="parent_call.tool_use_id", allow_null=True)
    total_cost_usd = serializers.FloatField()

    class Meta:
        model = AgentRun
        fields = ["run_id", "agent_type", "agent_version", "status", "tool_use_id", "total_cost_usd", "created_at",
                  "finished_at"]


class RunDetailSerializer(RunSerializer):
    tool_calls = ToolCallSerializer(many=True, read_only=True)
    artifacts = ArtifactSerializer(many=True, read_only=True)
    checks = ChecksField(read_only=True)
    children = serializers.SerializerMethodField(help_text="The runs it delegated to, in the order they started.")

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "checks", "tool_calls", "artifacts", "children"]

    @extend_schema_field(ChildRunSerializer(many=True))
    def get_children(self, run) -> list[dict]:
        children = run.children.select_related("parent_call").order_by("created_at", "pk")
        return ChildRunSerializer(children, many=True).data


class AgentToolSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    input_schema = serializers.DictField()
    side_effect = serializers.BooleanField()


class AgentSerializer(serializers.Serializer):
    agent_type = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    version = serializers.CharField()
    model = serializers.CharField()
    tools = AgentToolSerializer(many=True)


class ApprovalSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    run_id = serializers.UUIDField()
    agent_type = serializers.CharField(source="run.agent_type")
    client_id = serializers.IntegerField(allow_null=True)
    client = serializers.CharField(source="client.name", default=None, allow_null=True)
    tool = serializers.CharField(source="tool_name")
    input = serializers.JSONField(source="tool_input")
    rendered_input = serializers.CharField()
    tool_use_id = serializers.CharField(source="tool_call.tool_use_id")
    rule = serializers.CharField()
    note = serializers.CharField()
    decided_by = serializers.EmailField(source="decided_by.email", default=None, allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    priority = serializers.SerializerMethodField(help_text="low | normal | high | urgent")
    assigned_to = serializers.EmailField(source="assigned_to.email", default=None, allow_null=True,
                                         help_text="Asked first; anyone else who may decide still can.")
    sla_due_at = serializers.DateTimeField(allow_null=True, help_text="The SLA's end: escalated to the admins then.")
    warn_at = serializers.DateTimeField(allow_null=True, help_text="75 % of the SLA: the approvers are warned then.")
    warned_at = serializers.DateTimeField(allow_null=True)
    escalated_at = serializers.DateTimeField(allow_null=True)
    sla_state = serializers.SerializerMethodField(help_text="on_time | warned | escalated, else the status.")
    approved_by_rule = serializers.IntegerField(source="approved_by_rule_id", allow_null=True,
                                                help_text="The auto rule that approved it (decided_by is null).")
    iteration = serializers.IntegerField(source="tool_call.iteration", help_text="The run's turn it belongs to.")

    @extend_schema_field({"type": "string", "enum": ["low", "normal", "high", "urgent"]})
    def get_priority(self, approval) -> str:
        from ..models import ApprovalPriority

        return ApprovalPriority(approval.priority).name.lower()

    def get_sla_state(self, approval) -> str:
        from ..approvals import sla_state

        return sla_state(approval)


class DecidedSerializer(ApprovalSerializer):
    turn_decided = serializers.ListField(child=serializers.UUIDField(), required=False,
                                         help_text="The requests this decision took (several with whole_turn).")


class DecisionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    whole_turn = serializers.BooleanField(required=False, default=False,
                                          help_text="Decide every call of the same turn still pending, together "
                                                    "(one transaction, the run resumed once).")


class ApprovalRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    tool_name = serializers.CharField(max_length=100)
    field_path = serializers.CharField(max_length=200, required=False, allow_blank=True)
    op = serializers.ChoiceField(choices=["==", "!=", "<", "<=", ">", ">=", "in", "contains"], required=False,
                                 allow_blank=True)
    value = serializers.JSONField(required=False, allow_null=True)
    action = serializers.ChoiceField(choices=["approve", "route"], required=False)
    priority = serializers.ChoiceField(choices=["low", "normal", "high", "urgent"], required=False, allow_null=True,
                                       allow_blank=True)
    assignee_role = serializers.ChoiceField(choices=["", "account_manager", "instance_manager", "instance_admin"],
                                            required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)
    note = serializers.CharField(max_length=200, required=False, allow_blank=True)
    preview = serializers.CharField(read_only=True)
    created_by = serializers.EmailField(source="created_by.email", default=None, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, rule):
        from ..models import ApprovalPriority

        data = super().to_representation(rule)
        data["priority"] = ApprovalPriority(rule.priority).name.lower() if rule.priority else None
        return data


class ThreadCreateSerializer(serializers.Serializer):
    agent_type = AgentTypeField(max_length=40)
    client_id = serializers.IntegerField(required=False, allow_null=True,
                                         help_text="The client the thread is for (its tuning applies to every turn).")
    title = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    message = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False,
                                    help_text="The first message: its turn starts at once (202 names the run).")
    specialization = SpecializationField(required=False, default=dict,
                                         help_text="Overrides the client's vertical, region or language.")


class ThreadMessageSerializer(serializers.Serializer):
    message = serializers.CharField(trim_whitespace=False, allow_blank=True, help_text="The next user message.")
    metadata = MetadataField(required=False, default=dict, help_text="Your own references, kept on the turn's run.")
    stream = serializers.BooleanField(required=False, default=False,
                                      help_text="Answer with the turn's event stream instead of 202.")


class ThreadSerializer(serializers.Serializer):
    thread_id = serializers.UUIDField(source="pk")
    agent_type = serializers.CharField()
    agent_version = serializers.CharField(help_text="Pinned when the thread was created, kept until it is closed.")
    client_id = serializers.IntegerField(allow_null=True)
    title = serializers.CharField()
    status = serializers.CharField(help_text="open, or closed (it takes no more messages).")
    turns = serializers.IntegerField(source="turns_count")
    created_by = serializers.EmailField(source="created_by.email", default=None, allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class ThreadMessageOutSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant"])
    turn = serializers.IntegerField()
    text = serializers.CharField(allow_blank=True)
    run_id = serializers.UUIDField()
    status = serializers.CharField(required=False, help_text="The turn's run status (assistant messages).")
    error = serializers.CharField(required=False, allow_blank=True)
    cost_usd = serializers.FloatField(required=False)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(required=False, allow_null=True)


class ThreadDetailSerializer(ThreadSerializer):
    cost_usd = serializers.FloatField(help_text="The sum over the thread's turns.")
    messages = ThreadMessageOutSerializer(many=True,
                                          help_text="Each turn's user message and final answer, oldest first.")
