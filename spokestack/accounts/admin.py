from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from spokestack.admin_site import InstanceModelAdmin, instance_admin, platform_admin

from . import policy
from .models import ApiToken
from .services import api_token_create, api_token_revoke

User = get_user_model()


class InstanceUserAdmin(InstanceModelAdmin, UserAdmin):
    view_action = "user.view"
    add_action = change_action = "user.manage"  # no delete: deactivate a person, their history stays
    list_display = ["username", "email", "first_name", "last_name", "is_active", "last_login"]
    list_filter = ["is_active", "groups"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "is_staff", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ["last_login", "date_joined"]


class RoleAdmin(InstanceModelAdmin, GroupAdmin):
    """The role groups, read-only: their model permissions are generated from the policy table
    (`roles_sync`), so an edit here would change nothing the policy decides."""

    view_action = "user.view"


@admin.register(ApiToken, site=instance_admin)
class ApiTokenAdmin(InstanceModelAdmin):
    """Your own tokens (policy `token.create`); everyone's for those who manage people."""

    view_action = add_action = "token.create"
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_select_related = ["user"]
    fields = ["user", "name", "expires_at"]
    actions = ["revoke"]

    # No change_action: a token is created or revoked, never edited.

    def has_revoke_permission(self, request) -> bool:
        return self.allows(request, "token.create")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if policy.allows(request.user, "user.manage"):
            return queryset
        return queryset.filter(user=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not policy.allows(request.user, "user.manage"):
            kwargs["queryset"] = User.objects.filter(pk=request.user.pk)  # a token for yourself only
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        issued = api_token_create(user=obj.user, name=obj.name, expires_at=obj.expires_at, actor=request.user)
        obj.pk = issued.token.pk
        obj.__dict__.update({k: v for k, v in issued.token.__dict__.items() if not k.startswith("_")})
        messages.warning(request, f"Copy the token now, it is not shown again: {issued.raw}")

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token, actor=request.user)
        messages.success(request, f"Revoked {queryset.count()} token(s).")


instance_admin.register(User, InstanceUserAdmin)
instance_admin.register(Group, RoleAdmin)
platform_admin.register(User, UserAdmin)
