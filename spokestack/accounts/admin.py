from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group
from django.db import transaction

from spokestack.admin_site import InstanceModelAdmin, instance_admin, platform_admin
from spokestack.errors import DomainError

from . import policy, services
from .models import ApiToken
from .roles import Role
from .services import api_token_create, api_token_revoke

User = get_user_model()


class TeamMemberAddForm(forms.ModelForm):
    """A new person: e-mail (the login name), name, one role, and optionally a password."""

    role = forms.ChoiceField(choices=Role.choices)
    password1 = forms.CharField(label="Password", required=False, strip=False, widget=forms.PasswordInput,
                                help_text="Optional: without one the person cannot sign in until it is set here.")
    password2 = forms.CharField(label="Password again", required=False, strip=False, widget=forms.PasswordInput)

    class Meta:
        model = User
        fields = ["email", "first_name", "last_name"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"]).strip().lower()
        if User.objects.filter(username=email).exists():
            raise forms.ValidationError(f"A user with the e-mail address {email} already exists in this instance.")
        return email

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first != second:
            self.add_error("password2", "The two passwords differ.")
        elif first:
            try:
                password_validation.validate_password(first)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


class TeamMemberChangeForm(UserChangeForm):
    role = forms.ChoiceField(choices=Role.choices, help_text="Changing it drops the client assignments the new "
                             "role cannot hold (audited).")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["role"] = services.role_of(self.instance)


class InstanceUserAdmin(InstanceModelAdmin, UserAdmin):
    """People are changed through the same audited services as the API (`spokestack.accounts.services`):
    the form's role, active flag and details become user_create / user_update_role / user_deactivate /
    user_reactivate / user_update calls."""

    view_action = "user.view"
    add_action = change_action = "user.manage"  # no delete: deactivate a person, their history stays
    list_display = ["username", "email", "first_name", "last_name", "is_active", "last_login"]
    list_filter = ["is_active", "groups"]
    form = TeamMemberChangeForm
    add_form = TeamMemberAddForm
    add_form_template = None
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "role")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"fields": ("email", "first_name", "last_name", "role", "password1", "password2")}),)
    readonly_fields = ["username", "last_login", "date_joined"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def save_model(self, request, obj, form, change) -> None:
        data, actor = form.cleaned_data, request.user
        if not change:
            created = services.user_create(actor=actor, email=data["email"], password=data.get("password1") or None,
                                           role=data["role"], first_name=data.get("first_name", ""),
                                           last_name=data.get("last_name", ""))
            obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})
            return
        person = User.objects.get(pk=obj.pk)
        try:
            with transaction.atomic():
                details = {f: data[f] for f in services.USER_DETAIL_FIELDS if f in form.changed_data}
                if details:
                    person = services.user_update(actor=actor, user=person, changes=details)
                if "role" in form.changed_data:
                    person = services.user_update_role(actor=actor, user=person, role=data["role"])
                if "is_active" in form.changed_data:
                    change_active = services.user_reactivate if data["is_active"] else services.user_deactivate
                    person = change_active(actor=actor, user=person)
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            messages.error(request, f"Nothing was changed: {exc.message}")
            person = User.objects.get(pk=obj.pk)
        obj.__dict__.update({k: v for k, v in person.__dict__.items() if not k.startswith("_")})

    def save_related(self, request, form, formsets, change) -> None:
        """The role is not the groups field: the services above set it."""


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
