from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import AuthenticationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.db import transaction
from django.http import HttpResponseRedirect

from spokestack.admin_site import InstanceModelAdmin, instance_admin, platform_admin
from spokestack.errors import DomainError
from tuning import audit
from tuning.models import Client
from tuning.services import client_assign

from . import policy, services
from .models import ApiToken
from .roles import Role
from .selectors import assignments_by_user
from .services import api_token_create, api_token_revoke

User = get_user_model()


class TeamLoginForm(AdminAuthenticationForm):
    """The instance admin's sign-in. Django's says "enter the correct password for a staff account"
    to a person whose password was right but who may not open the admin; here that person is told
    why (every role is staff, see `services.user_create`, so it is a person without a role). The
    message only appears after the right password, so it tells a stranger nothing."""

    def confirm_login_allowed(self, user) -> None:
        AuthenticationForm.confirm_login_allowed(self, user)  # inactive people: Django's own refusal
        if not user.is_staff:
            why = ("has no role in this instance" if services.role_of(user) is None
                   else "may not open the admin (its role was given outside the admin)")
            raise forms.ValidationError(
                f"Your password is right, but {user.get_username()} {why}. Ask an instance admin to give you a "
                "role on your user page.", code="no_role")


class TeamMemberAddForm(forms.ModelForm):
    """A new person: e-mail (the login name), name, one role and, for the roles that work on assigned
    clients only, those clients. No password and no staff box: every role opens the admin, and the
    person chooses their password from the invitation e-mail."""

    role = forms.ChoiceField(choices=Role.choices, help_text=(
        "Instance admins and instance managers work on every client; account managers and client contacts only "
        "on the clients chosen below."))
    clients = forms.ModelMultipleChoiceField(
        queryset=Client.objects.none(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="For an account manager or a client contact: the clients they work on (more can be assigned "
                  "later).")

    class Meta:
        model = User
        fields = ["email", "first_name", "last_name"]

    def __init__(self, *args, actor=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True
        self.fields["email"].help_text = "Their login name; the invitation to choose a password is sent here."
        self.fields["clients"].queryset = policy.clients_for(actor, "client.assign").order_by("name")

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"]).strip().lower()
        if User.objects.filter(username=email).exists():
            raise forms.ValidationError(f"A user with the e-mail address {email} already exists in this instance.")
        return email

    def clean(self):
        cleaned = super().clean()
        role, clients = cleaned.get("role"), cleaned.get("clients")
        if role and clients and role not in policy.SCOPED_ROLES:
            self.add_error("clients", f"{Role(role).label}s work on every client: leave Clients empty, or choose "
                                      "the account manager or client contact role.")
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
        ("Access", {"fields": ("is_active", "role", "assigned_clients")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"fields": ("email", "first_name", "last_name")}),
        ("Access", {"fields": ("role", "clients"),
                    "description": "An invitation with a link to choose a password is e-mailed when you save."}),
    )
    readonly_fields = ["username", "assigned_clients", "last_login", "date_joined"]

    actions = ["send_invitation"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    @admin.display(description="Clients")
    def assigned_clients(self, obj) -> str:
        role = services.role_of(obj)
        if role is not None and role not in policy.SCOPED_ROLES:
            return "Every client (the role works on all of them)"
        ids = [a["client_id"] for a in assignments_by_user([obj.pk]).get(obj.pk, [])]
        names = Client.objects.filter(pk__in=ids).order_by("name").values_list("name", flat=True)
        return ", ".join(names) or "None yet: assign clients on each client's page"

    def add_view(self, request, form_url="", extra_context=None):
        return super().add_view(request, form_url, {"title": "Add team member", **(extra_context or {})})

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None:
            return form
        actor = request.user

        class AddFormForActor(form):  # the clients offered are the ones this person may assign
            def __init__(self, *args, **kw) -> None:
                super().__init__(*args, actor=actor, **kw)

        return AddFormForActor

    def save_model(self, request, obj, form, change) -> None:
        data, actor = form.cleaned_data, request.user
        if not change:
            # One audit group: rolling the creation back unassigns the clients, then deactivates the person.
            with transaction.atomic(), audit.group():
                created = services.user_create(actor=actor, email=data["email"], role=data["role"],
                                               first_name=data.get("first_name", ""),
                                               last_name=data.get("last_name", ""),
                                               invite_from=request.build_absolute_uri("/"))
                for client in data.get("clients") or []:
                    client_assign(actor=actor, user=created, client=client, role=data["role"])
            obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})
            clients = ", ".join(c.name for c in data.get("clients") or [])
            messages.info(request, f"An invitation to choose a password is e-mailed to {created.email}"
                                   f"{' (clients: ' + clients + ')' if clients else ''}.")
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
            request._team_member_unchanged = True  # no "changed successfully" after it (response_change)
            person = User.objects.get(pk=obj.pk)
        obj.__dict__.update({k: v for k, v in person.__dict__.items() if not k.startswith("_")})

    def save_related(self, request, form, formsets, change) -> None:
        """The role is not the groups field: the services above set it."""

    def response_change(self, request, obj):
        if getattr(request, "_team_member_unchanged", False):  # the error message says why; stay on the form
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def has_send_invitation_permission(self, request) -> bool:
        return self.allows(request, "user.manage")

    @admin.action(description="Send a set-password link", permissions=["send_invitation"])
    def send_invitation(self, request, queryset):
        sent, refused = [], []
        for person in queryset.order_by("username"):
            try:
                services.user_invitation_send(actor=request.user, user=person,
                                              base_url=request.build_absolute_uri("/"))
            except DomainError as exc:
                refused.append(exc.message)
            else:
                sent.append(person.email)
        if sent:
            messages.success(request, f"Set-password link e-mailed to {', '.join(sent)}.")
        for message in refused:
            messages.warning(request, f"Not sent: {message}")


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
instance_admin.login_form = TeamLoginForm
instance_admin.register(Group, RoleAdmin)
platform_admin.register(User, UserAdmin)
