"""Output shapes (and request documentation) of the tuning API. Input is validated by the
services, so the admin and the API refuse the same values with the same messages."""

from rest_framework import serializers

from ..models import ApprovedExample, Client, ClientTuning, ContentRule, InstanceTuning, TuningChange
from ..precedence import CLIENT_FIELDS, INSTANCE_FIELDS


class ClientSerializer(serializers.ModelSerializer):
    class Meta:
        model = Client
        fields = ["id", "name", "slug", "vertical", "region", "language", "created_at"]
        read_only_fields = fields


class ClientUpdateSerializer(serializers.Serializer):
    """The client fields a PATCH may change (only the ones sent change)."""

    name = serializers.CharField(required=False)
    slug = serializers.SlugField(required=False)
    vertical = serializers.CharField(required=False)
    region = serializers.CharField(required=False, allow_blank=True)
    language = serializers.CharField(required=False, allow_blank=True)
    reason = serializers.CharField(required=False, help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(required=False, help_text="A ticket reference for the audit log.")


UPDATED_AT = "Null while there is no row yet (every field inherits)."


class InstanceTuningSerializer(serializers.ModelSerializer):
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text=UPDATED_AT)
    reason = serializers.CharField(write_only=True, required=False, help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(write_only=True, required=False, help_text="A ticket reference for the audit log.")

    class Meta:
        model = InstanceTuning
        fields = ["agent_type", *INSTANCE_FIELDS, "updated_at", "reason", "ticket"]
        read_only_fields = ["agent_type", "updated_at"]
        extra_kwargs = {field: {"required": False} for field in INSTANCE_FIELDS}


class AgentTuningSerializer(InstanceTuningSerializer):
    """One agent type's tier-2 row, with what applies after precedence and the platform's bounds."""

    effective = serializers.DictField(read_only=True, help_text="The values a run gets (tiers 1-2 merged).")
    platform = serializers.DictField(read_only=True, help_text="The platform's bounds: max_temperature, "
                                     "max_tokens_limit, content_filters, confirmation_patterns.")

    class Meta(InstanceTuningSerializer.Meta):
        fields = [*InstanceTuningSerializer.Meta.fields, "effective", "platform"]


class ClientTuningSerializer(serializers.ModelSerializer):
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text=UPDATED_AT)
    reason = serializers.CharField(write_only=True, required=False)
    ticket = serializers.CharField(write_only=True, required=False)

    class Meta:
        model = ClientTuning
        fields = ["client", "agent_type", *CLIENT_FIELDS, "updated_at", "reason", "ticket"]
        read_only_fields = ["client", "agent_type", "updated_at"]
        extra_kwargs = {field: {"required": False} for field in CLIENT_FIELDS}


class ContentRuleSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = ContentRule
        fields = ["id", "kind", "text", "active", "agent_type", "source", "source_reference", "created_by",
                  "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]


class ContentRuleCreateSerializer(serializers.Serializer):
    """One rule, or `{"rules": [...]}` to add several at once (all or none)."""

    kind = serializers.ChoiceField(choices=["always", "never", "prefer"], required=False)
    text = serializers.CharField(required=False)
    agent_type = serializers.CharField(required=False)
    active = serializers.BooleanField(required=False)
    source = serializers.ChoiceField(choices=["manual", "feedback_suggestion"], required=False)
    source_reference = serializers.CharField(required=False)
    rules = serializers.ListField(child=serializers.DictField(), required=False)
    reason = serializers.CharField(required=False)
    ticket = serializers.CharField(required=False)


class ApprovedExampleSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = ApprovedExample
        fields = ["id", "kind", "text", "context", "agent_type", "created_by", "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]


class TuningChangeSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")
    client = serializers.CharField(source="client_label")

    class Meta:
        model = TuningChange
        fields = ["id", "created_at", "actor", "tier", "entity", "entity_id", "agent_type", "client_id", "client",
                  "action", "field", "old_value", "new_value", "reason", "ticket", "affected_clients",
                  "rollback_of_id"]
        read_only_fields = fields


class RollbackSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False)
    ticket = serializers.CharField(required=False)


class PromptSectionSerializer(serializers.Serializer):
    tier = serializers.IntegerField()
    field = serializers.CharField()
    text = serializers.CharField()


class PromptPreviewSerializer(serializers.Serializer):
    agent_type = serializers.CharField()
    version = serializers.CharField()
    client_id = serializers.IntegerField(allow_null=True)
    specialization = serializers.DictField()
    sections = PromptSectionSerializer(many=True)
    system = serializers.ListField(child=serializers.DictField())
    tools = serializers.ListField(child=serializers.DictField())
    temperature = serializers.FloatField()
    max_tokens = serializers.IntegerField()
    require_approval = serializers.ListField(child=serializers.CharField())
    disabled_tools = serializers.ListField(child=serializers.CharField())
    rules = serializers.ListField(child=serializers.DictField())
    token_estimate = serializers.IntegerField()
