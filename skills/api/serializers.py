from rest_framework import serializers

from ..models import Skill
from ..selectors import metrics_of


class SkillSerializer(serializers.ModelSerializer):
    """Secrets are never serialized: only whether one is set."""

    has_auth_secret = serializers.SerializerMethodField()
    approval_priority = serializers.SerializerMethodField(help_text="low | normal | high | urgent")
    metrics = serializers.SerializerMethodField()

    class Meta:
        model = Skill
        fields = ["id", "name", "description", "input_schema", "execution_type", "agent_types", "relies_on_tools",
                  "enabled", "requires_approval", "approval_priority", "webhook_url", "auth_type", "auth_header",
                  "has_auth_secret",
                  "handler", "timeout_s", "metrics", "created_at", "updated_at"]

    def get_has_auth_secret(self, skill) -> bool:
        return bool(skill.auth_secret)

    def get_approval_priority(self, skill) -> str:
        return skill.get_approval_priority_display().lower()

    def get_metrics(self, skill) -> dict:
        return metrics_of(skill).as_dict()


class SkillWriteSerializer(serializers.Serializer):
    """Shapes only; every rule is the service's (so the admin and the API refuse the same input)."""

    name = serializers.CharField(required=False, max_length=200)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, write_only=True,
                                   help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(required=False, allow_blank=True, max_length=100, write_only=True,
                                   help_text="A ticket reference for the audit log.")
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    input_schema = serializers.JSONField(required=False)
    execution_type = serializers.CharField(required=False)
    agent_types = serializers.JSONField(required=False)
    relies_on_tools = serializers.JSONField(required=False)
    enabled = serializers.BooleanField(required=False)
    requires_approval = serializers.BooleanField(required=False)
    approval_priority = serializers.ChoiceField(choices=["low", "normal", "high", "urgent"], required=False,
                                                help_text="The priority of the approval requests it demands.")
    webhook_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    auth_type = serializers.CharField(required=False)
    auth_header = serializers.CharField(required=False, allow_blank=True)
    auth_secret = serializers.CharField(required=False, allow_blank=True, write_only=True, trim_whitespace=False)
    handler = serializers.CharField(required=False, allow_blank=True)
    timeout_s = serializers.IntegerField(required=False)


class SkillTestSerializer(serializers.Serializer):
    input = serializers.JSONField(required=False, default=dict)
    client_id = serializers.IntegerField(required=False, allow_null=True)


class SkillCreatedSerializer(SkillSerializer):
    signing_secret = serializers.CharField(read_only=True, help_text="The whsec_ secret that signs this skill's "
                                           "webhooks (Standard Webhooks): shown once, store it now.")

    class Meta(SkillSerializer.Meta):
        fields = [*SkillSerializer.Meta.fields, "signing_secret"]


class SkillTestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    error = serializers.JSONField(allow_null=True, help_text="The error the model would get; null when ok.")
    duration_ms = serializers.FloatField()
    request = serializers.DictField(help_text="What was (or would have been) sent, secrets masked.")
    response = serializers.DictField(allow_null=True)
