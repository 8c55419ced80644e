from rest_framework import serializers

from ..models import McpServer, McpTool
from ..selectors import mcp_metrics_of


class McpToolSerializer(serializers.ModelSerializer):
    server_id = serializers.IntegerField(read_only=True)
    metrics = serializers.SerializerMethodField()

    class Meta:
        model = McpTool
        fields = ["id", "server_id", "remote_name", "name", "description", "input_schema", "read_only", "agent_types",
                  "enabled", "requires_approval", "vanished_at", "metrics", "created_at", "updated_at"]

    def get_metrics(self, tool) -> dict:
        return mcp_metrics_of(tool).as_dict()


class McpServerSerializer(serializers.ModelSerializer):
    """The secret is never serialized: only whether one is set."""

    has_auth_secret = serializers.SerializerMethodField()
    tools = serializers.SerializerMethodField(help_text="Tools the server lists now, and how many are exposed.")

    class Meta:
        model = McpServer
        fields = ["id", "name", "url", "auth_header", "has_auth_secret", "enabled", "timeout_s", "max_result_chars",
                  "tools", "tools_refreshed_at", "last_error", "created_at", "updated_at"]

    def get_has_auth_secret(self, server) -> bool:
        return bool(server.auth_secret)

    def get_tools(self, server) -> dict:
        if hasattr(server, "m_tools"):
            return {"listed": server.m_tools, "exposed": server.m_exposed}
        listed = server.tools.filter(vanished_at__isnull=True)
        return {"listed": listed.count(), "exposed": listed.filter(enabled=True).count()}


class _Why(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, write_only=True,
                                   help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(required=False, allow_blank=True, max_length=100, write_only=True,
                                   help_text="A ticket reference for the audit log.")


class McpServerWriteSerializer(_Why):
    """Shapes only; every rule is the service's (so the admin and the API refuse the same input)."""

    name = serializers.CharField(required=False, max_length=200)
    url = serializers.CharField(required=False, max_length=2000)
    auth_header = serializers.CharField(required=False, allow_blank=True, max_length=200)
    auth_secret = serializers.CharField(required=False, allow_blank=True, write_only=True, trim_whitespace=False,
                                        help_text="The header's value (e.g. 'Bearer …'); write-only.")
    enabled = serializers.BooleanField(required=False)
    timeout_s = serializers.IntegerField(required=False)
    max_result_chars = serializers.IntegerField(required=False)


class McpToolWriteSerializer(_Why):
    name = serializers.CharField(required=False, max_length=200, help_text="The name agents see.")
    agent_types = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    enabled = serializers.BooleanField(required=False, help_text="Exposed to the agents of its agent types.")
    requires_approval = serializers.BooleanField(required=False)


class McpRefreshSerializer(serializers.Serializer):
    server = McpServerSerializer()
    tools = McpToolSerializer(many=True)
