from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from spokestack.admin_site import instance_admin, platform_admin

from .models import ApiToken
from .services import api_token_create, api_token_revoke

User = get_user_model()


class InstanceUserAdmin(UserAdmin):
    list_display = ["username", "email", "first_name", "last_name", "is_active", "last_login"]
    list_filter = ["is_active", "groups"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "is_staff", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ["last_login", "date_joined"]


@admin.register(ApiToken, site=instance_admin)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_select_related = ["user"]
    fields = ["user", "name", "expires_at"]
    actions = ["revoke"]

    def has_change_permission(self, request, obj=None):
        return False  # a token is created or revoked, never edited

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.groups.filter(name="instance_admin").exists():
            return queryset
        return queryset.filter(user=request.user)

    def save_model(self, request, obj, form, change):
        issued = api_token_create(user=obj.user, name=obj.name, expires_at=obj.expires_at)
        obj.pk = issued.token.pk
        obj.__dict__.update({k: v for k, v in issued.token.__dict__.items() if not k.startswith("_")})
        messages.warning(request, f"Copy the token now, it is not shown again: {issued.raw}")

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)
        messages.success(request, f"Revoked {queryset.count()} token(s).")


instance_admin.register(User, InstanceUserAdmin)
instance_admin.register(Group, GroupAdmin)
platform_admin.register(User, UserAdmin)
