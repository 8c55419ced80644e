from rest_framework import serializers

from ..models import ApiToken


class MeSerializer(serializers.Serializer):
    email = serializers.EmailField()
    name = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    instance = serializers.DictField()


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class IssuedTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


ROLE_CHOICES = ["instance_admin", "instance_manager", "account_manager", "client_contact"]


ASSIGNABLE_ROLES = ["account_manager", "client_contact"]  # RoleEnum / AssignableRoleEnum in the OpenAPI document


class UserAssignmentSerializer(serializers.Serializer):
    client_id = serializers.IntegerField()
    role = serializers.ChoiceField(choices=ASSIGNABLE_ROLES)


class UserSerializer(serializers.Serializer):
    """A person of the instance, with their role and the clients they are assigned to."""

    id = serializers.IntegerField()
    email = serializers.EmailField()
    first_name = serializers.CharField(allow_blank=True)
    last_name = serializers.CharField(allow_blank=True)
    role = serializers.ChoiceField(choices=ROLE_CHOICES, allow_null=True,
                                   help_text="null: the person holds no role (they can do nothing).")
    is_active = serializers.BooleanField(help_text="False: deactivated; cannot sign in, API tokens refused.")
    has_password = serializers.BooleanField(help_text="False until an instance admin sets one in the admin.")
    assignments = UserAssignmentSerializer(many=True)
    date_joined = serializers.DateTimeField()
    last_login = serializers.DateTimeField(allow_null=True)


class UserCreateSerializer(serializers.Serializer):
    """No password: the person cannot sign in until an instance admin sets one in the admin."""

    email = serializers.EmailField(help_text="The login name; unique in the instance.")
    role = serializers.ChoiceField(choices=ROLE_CHOICES)
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    reason = serializers.CharField(required=False, help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(required=False, help_text="A ticket reference for the audit log.")


class UserUpdateSerializer(serializers.Serializer):
    """Only the fields sent change. A new role drops the client assignments it cannot hold."""

    email = serializers.EmailField(required=False)
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    role = serializers.ChoiceField(choices=ROLE_CHOICES, required=False)
    is_active = serializers.BooleanField(required=False, help_text="false deactivates, true reactivates.")
    reason = serializers.CharField(required=False, help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(required=False, help_text="A ticket reference for the audit log.")
