import zoneinfo
from decimal import Decimal
from types import SimpleNamespace

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpResponseRedirect
from django.http.request import split_domain_port, validate_host
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join
from django_tenants.utils import schema_context, schema_exists

from spokestack.accounts.roles import Role
from spokestack.admin_site import platform_admin
from spokestack.egress import EgressError, vet_url
from spokestack.errors import DomainError
from spokestack.secrets import decrypt, encrypt

from .models import Domain, Instance
from .services import (
    HOST_NAME,
    RESERVED_SCHEMAS,
    SCHEMA_NAME,
    _schema_from_domain,
    instance_provision,
    instance_set_erp,
    instance_set_status,
)
from .tiers import LIMIT_KEYS, TIER_LIMITS, limits_for

# The session entry that carries a new instance's admin password from the add form to the one
# page that shows it: encrypted (bound to the instance), removed when that page is first shown.
NEW_ADMIN_PASSWORDS = "tenancy.new_admin_passwords"


class TimeZoneInput(forms.TextInput):
    """A text field that suggests the IANA zone names as one types (a datalist; no request leaves
    the page), so that a typo is caught before `_clean_timezone` refuses it."""

    LIST_ID = "iana-time-zones"

    def __init__(self, attrs=None):
        super().__init__({"list": self.LIST_ID, "autocomplete": "off", "class": "vTextField", **(attrs or {})})

    def render(self, name, value, attrs=None, renderer=None):
        zones = format_html_join("", '<option value="{}">', ((zone,) for zone in sorted(zoneinfo.available_timezones())))
        return format_html('{}<datalist id="{}">{}</datalist>', super().render(name, value, attrs, renderer),
                           self.LIST_ID, zones)


TIME_ZONE_HELP = ("The instance's admin pages show times in this zone. An IANA time zone name, e.g. UTC, Asia/Dubai, "
                  "Europe/Paris.")


def _clean_timezone(value: str) -> str:
    value = (value or "").strip()
    if value not in zoneinfo.available_timezones():
        raise forms.ValidationError(f"Unknown time zone '{value}': use an IANA name such as UTC, Asia/Dubai or "
                                    "Europe/Paris.")
    return value


class InstanceProvisionForm(forms.ModelForm):
    """Checks everything provisioning would refuse, so that a refusal is a form error and nothing
    is created; `InstanceAdmin.save_model` provisions once, after the form is valid (a host or
    schema taken in between is still refused by `instance_provision`, in its transaction)."""

    domain = forms.CharField(
        label="Host", max_length=253, widget=forms.TextInput(attrs={"class": "vTextField", "autocomplete": "off"}),
        help_text="The host name the instance answers on, without http:// or a port, e.g. acme.localhost.")
    admin_email = forms.EmailField(
        label="Admin e-mail", max_length=150, widget=forms.EmailInput(attrs={"class": "vTextField"}),
        help_text="The instance's first admin signs in with this address. Their password is generated and "
                  "shown once, right after the instance is created.")

    class Meta:
        model = Instance
        fields = ["name", "schema_name", "tier", "region", "language", "timezone"]
        labels = {"timezone": "Time zone"}
        help_texts = {"timezone": TIME_ZONE_HELP}
        widgets = {"timezone": TimeZoneInput()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        schema = self.fields["schema_name"]
        schema.required = False
        schema.help_text = ("The instance's PostgreSQL schema: 2-48 lower-case letters, digits or _, starting "
                            "with a letter. Leave empty to derive it from the host (acme.localhost → acme).")

    def clean_domain(self) -> str:
        domain = self.cleaned_data["domain"].strip().lower()
        if not HOST_NAME.match(domain):
            raise forms.ValidationError(f"'{domain}' is not a host name: enter lower-case letters, digits, hyphens "
                                        "and dots only, without http://, a port or a path (e.g. acme.example.com).")
        if not validate_host(domain, settings.ALLOWED_HOSTS):
            raise forms.ValidationError(f"This deployment does not answer on {domain}: add it (or a parent such as "
                                        f".{domain.partition('.')[2] or domain}) to DJANGO_ALLOWED_HOSTS first.")
        taken = Domain.objects.filter(domain=domain).select_related("tenant").first()
        if taken is not None:
            raise forms.ValidationError(f"The host {domain} already belongs to the instance {taken.tenant.name}: "
                                        "enter another host.")
        return domain

    def clean_admin_email(self) -> str:
        return self.cleaned_data["admin_email"].strip().lower()

    def clean_timezone(self) -> str:
        return _clean_timezone(self.cleaned_data.get("timezone"))

    def clean(self):
        cleaned = super().clean()
        if "schema_name" in self.errors:
            return cleaned
        schema = (cleaned.get("schema_name") or "").strip()
        derived = not schema
        if derived:
            if not cleaned.get("domain"):
                return cleaned  # the host's own error says what to fix
            schema = _schema_from_domain(cleaned["domain"])
        origin = f"'{schema}' (derived from the host)" if derived else f"'{schema}'"
        if not SCHEMA_NAME.match(schema) or schema in RESERVED_SCHEMAS or schema.startswith("pg_"):
            self.add_error("schema_name", f"{origin} cannot be a schema name: enter 2-48 lower-case letters, "
                                          "digits or _, starting with a letter.")
        elif Instance.objects.filter(schema_name=schema).exists() or schema_exists(schema):
            self.add_error("schema_name", f"The schema {origin} is taken: enter another schema name.")
        else:
            cleaned["schema_name"] = schema
        return cleaned


LIMIT_LABELS = {
    "runs_per_minute": ("Runs per minute", "runs a minute"),
    "concurrent_runs": ("Concurrent runs", "runs queued or running at once"),
    "monthly_budget_usd": ("Monthly budget (USD)", "USD a calendar month for all model calls"),
    "max_cost_per_run_usd": ("Maximum cost per run (USD)", "USD for one run"),
}
LIMIT_FIELD = "limit_{}"


def _limit_field(key: str, tier: str) -> forms.Field:
    label, unit = LIMIT_LABELS[key]
    default = getattr(TIER_LIMITS.get(tier, TIER_LIMITS["starter"]), key)
    others = ", ".join(f"{name} {getattr(limits, key)}" for name, limits in TIER_LIMITS.items())
    help_text = (f"Empty: the tier's default, {default} {unit} for {tier}. ({others}.) A value here overrides the "
                 "tier until it is emptied; it applies from the next run started.")
    if key.endswith("_usd"):
        return forms.DecimalField(label=label, required=False, min_value=Decimal("0.01"), max_digits=12,
                                  decimal_places=2, help_text=help_text)
    return forms.IntegerField(label=label, required=False, min_value=1, max_value=100_000, help_text=help_text)


class InstanceChangeForm(forms.ModelForm):
    """The ERP key is write-only: the form never renders it, an empty field keeps it.

    The tier's limits (tiers.LIMIT_KEYS) are one field each: empty keeps the tier's default, a value
    is kept in `Instance.limits_override`, which `limits_for` reads on every run (no cache)."""

    erp_api_key_new = forms.CharField(
        label="ERP API key", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: leave empty to keep the stored key.")
    erp_api_key_clear = forms.BooleanField(label="Remove the stored ERP API key", required=False)

    class Meta:
        model = Instance
        fields = ["name", "tier", "status", "suspended_reason", "region", "language", "timezone", "erp_base_url",
                  "approval_sla_hours"]
        labels = {"timezone": "Time zone"}
        help_texts = {"timezone": TIME_ZONE_HELP}
        widgets = {"timezone": TimeZoneInput()}

        @staticmethod
        def formfield_callback(field, **kwargs):
            if isinstance(field, models.URLField):
                kwargs.setdefault("assume_scheme", "https")
            return field.formfield(**kwargs)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        override = self.instance.limits_override or {}
        for key in LIMIT_KEYS:
            name = LIMIT_FIELD.format(key)
            self.fields[name] = _limit_field(key, self.instance.tier)
            self.initial.setdefault(name, override.get(key))

    def clean_timezone(self) -> str:
        return _clean_timezone(self.cleaned_data.get("timezone"))

    def clean(self):
        cleaned = super().clean()
        override = {key: cleaned.get(LIMIT_FIELD.format(key)) for key in LIMIT_KEYS}
        override = {key: (str(value) if isinstance(value, Decimal) else value) for key, value in override.items()
                    if value is not None}
        if any(LIMIT_FIELD.format(key) in self.errors for key in LIMIT_KEYS):
            return cleaned
        # The limits that will apply (the tier chosen in this form, these overrides) must make sense together.
        effective = limits_for(SimpleNamespace(tier=cleaned.get("tier") or self.instance.tier,
                                               limits_override=override))
        if effective.max_cost_per_run_usd > effective.monthly_budget_usd:
            self.add_error(LIMIT_FIELD.format("max_cost_per_run_usd"),
                           f"One run may not cost more than the monthly budget ({effective.monthly_budget_usd} USD): "
                           "enter a lower maximum per run, or raise the monthly budget.")
        self.instance.limits_override = override
        return cleaned

    def clean_erp_base_url(self):
        url = self.cleaned_data.get("erp_base_url", "").strip()
        if url:
            try:
                vet_url(url, resolver=None)
            except EgressError as exc:
                raise forms.ValidationError(exc.message) from exc
        return url


# Declared on the class (the admin builds its form from the declared fields); `__init__` words each
# field's help for the instance's own tier.
for _key in LIMIT_KEYS:
    InstanceChangeForm.base_fields[LIMIT_FIELD.format(_key)] = _limit_field(_key, "starter")
    InstanceChangeForm.declared_fields[LIMIT_FIELD.format(_key)] = InstanceChangeForm.base_fields[LIMIT_FIELD.format(_key)]


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Instance, site=platform_admin)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ["name", "schema_name", "tier", "status", "region", "language", "created_at"]
    list_filter = ["tier", "status", "region"]
    search_fields = ["name", "schema_name", "domains__domain"]
    actions = ["suspend", "activate"]
    readonly_fields = ["schema_name", "created_at"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = InstanceProvisionForm if obj is None else InstanceChangeForm
        return super().get_form(request, obj, **kwargs)

    def get_inlines(self, request, obj):
        return [DomainInline] if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "domain", "admin_email", "schema_name", "tier", "region", "language", "timezone"]
        return ["name", "schema_name", "tier", "status", "suspended_reason", "region", "language", "timezone",
                "created_at", "erp_base_url", "erp_api_key_status", "erp_api_key_new", "erp_api_key_clear",
                "approval_sla_hours", *(LIMIT_FIELD.format(key) for key in LIMIT_KEYS)]

    def get_fieldsets(self, request, obj=None):
        fields = self.get_fields(request, obj)
        if obj is None:
            return [(None, {"fields": fields})]
        limits = [LIMIT_FIELD.format(key) for key in LIMIT_KEYS]
        return [(None, {"fields": [f for f in fields if f not in limits]}),
                ("Limits (empty: the tier's default)", {"fields": limits})]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "erp_api_key_status"] if obj else []

    @admin.display(description="ERP API key")
    def erp_api_key_status(self, obj):
        return "set (hidden)" if obj and obj.erp_api_key else "not set"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            new_key, clear = form.cleaned_data.get("erp_api_key_new"), form.cleaned_data.get("erp_api_key_clear")
            if new_key or clear:
                instance_set_erp(instance=obj, base_url=obj.erp_base_url, api_key=new_key or "")
            return
        data = form.cleaned_data
        result = instance_provision(
            name=data["name"], domain=data["domain"], admin_email=data["admin_email"], schema_name=data["schema_name"],
            tier=data["tier"], region=data.get("region", ""), language=data["language"], timezone=data["timezone"])
        # The admin goes on with `obj` (history entry, redirect): make it the provisioned row.
        for field in Instance._meta.concrete_fields:
            setattr(obj, field.attname, getattr(result.instance, field.attname))
        obj._state.adding, obj._state.db = False, result.instance._state.db
        # Carried to `created_view` only, encrypted; never in a message, the history or a log.
        pending = request.session.get(NEW_ADMIN_PASSWORDS, {})
        pending[str(obj.pk)] = {"email": result.admin.email,
                                "password": encrypt(result.admin_password, schema=obj.schema_name)}
        request.session[NEW_ADMIN_PASSWORDS] = pending

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            if object_id is not None:
                raise
            # Another provisioning took the host or schema after this form was checked; the
            # transaction rolled everything back.
            self.message_user(request, f"Nothing was created: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def response_add(self, request, obj, post_url_continue=None):
        # Whatever button was pressed, the next page is the one that shows the admin password.
        return HttpResponseRedirect(reverse("platform_admin:tenancy_instance_created", args=[obj.pk],
                                            current_app=self.admin_site.name))

    def get_urls(self):
        created = path("<path:object_id>/created/", self.admin_site.admin_view(self.created_view),
                       name="tenancy_instance_created")
        return [created, *super().get_urls()]

    def created_view(self, request, object_id):
        """The new instance's admin password, shown on the first visit after creation and never again."""
        instance = self.get_object(request, unquote(object_id))
        if instance is None:
            raise Http404("No such instance.")
        if not self.has_view_permission(request, instance):
            raise PermissionDenied
        pending = request.session.get(NEW_ADMIN_PASSWORDS, {})
        entry = pending.pop(str(instance.pk), None)
        if entry is not None:
            request.session[NEW_ADMIN_PASSWORDS] = pending
        with schema_context(instance.schema_name):
            admins = list(get_user_model().objects.filter(groups__name=Role.INSTANCE_ADMIN)
                          .order_by("date_joined").values_list("email", flat=True))
        host = instance.domains.filter(is_primary=True).first() or instance.domains.first()
        _, port = split_domain_port(request.get_host())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Instance {instance.name} created" if entry else f"Instance {instance.name}",
            "instance": instance,
            "host": host,
            "instance_admin_url": f"{request.scheme}://{host.domain}{f':{port}' if port else ''}/admin/" if host else "",
            "admin_email": entry["email"] if entry else "",
            "admin_password": decrypt(entry["password"], schema=instance.schema_name) if entry else "",
            "admins": admins,
        }
        response = TemplateResponse(request, "admin/tenancy/instance/created.html", context)
        add_never_cache_headers(response)  # the Back button must not bring the password back
        return response

    @admin.action(description="Suspend the selected instances")
    def suspend(self, request, queryset):
        names = []
        for instance in queryset.exclude(schema_name="public"):
            instance_set_status(instance=instance, status=Instance.Status.SUSPENDED, reason="suspended by platform staff")
            names.append(instance.name)
        self.message_user(request, f"Suspended {len(names)} instance(s): {', '.join(names) or 'none'}. Their users "
                                   "and API clients are refused until re-activated.", messages.SUCCESS)

    @admin.action(description="Re-activate the selected instances")
    def activate(self, request, queryset):
        names = []
        for instance in queryset:
            instance_set_status(instance=instance, status=Instance.Status.ACTIVE)
            names.append(instance.name)
        self.message_user(request, f"Re-activated {len(names)} instance(s): {', '.join(names) or 'none'}.",
                          messages.SUCCESS)


@admin.register(Domain, site=platform_admin)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    list_select_related = ["tenant"]
    search_fields = ["domain"]
