from django import forms
from django.contrib import admin, messages
from django.db import models

from spokestack.admin_site import platform_admin
from spokestack.egress import EgressError, vet_url
from spokestack.errors import DomainError

from .models import Domain, Instance
from .services import instance_provision, instance_set_erp, instance_set_status


class InstanceProvisionForm(forms.ModelForm):
    domain = forms.CharField(help_text="Host the instance answers on, e.g. acme.localhost")
    admin_email = forms.EmailField(help_text="The instance's first admin; a password is shown once.")

    class Meta:
        model = Instance
        fields = ["name", "schema_name", "tier", "region", "language", "timezone"]

    def clean(self):
        cleaned = super().clean()
        self._provisioned = None
        if not self.errors:
            try:
                self._provisioned = instance_provision(
                    name=cleaned["name"], domain=cleaned["domain"], admin_email=cleaned["admin_email"],
                    schema_name=cleaned.get("schema_name") or None, tier=cleaned["tier"],
                    region=cleaned.get("region", ""), language=cleaned["language"], timezone=cleaned["timezone"],
                )
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from exc
        return cleaned


class InstanceChangeForm(forms.ModelForm):
    """The ERP key is write-only: the form never renders it, an empty field keeps it."""

    erp_api_key_new = forms.CharField(
        label="ERP API key", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: leave empty to keep the stored key.")
    erp_api_key_clear = forms.BooleanField(label="Remove the stored ERP API key", required=False)

    class Meta:
        model = Instance
        fields = ["name", "tier", "status", "suspended_reason", "region", "language", "timezone", "erp_base_url",
                  "approval_sla_hours"]

        @staticmethod
        def formfield_callback(field, **kwargs):
            if isinstance(field, models.URLField):
                kwargs.setdefault("assume_scheme", "https")
            return field.formfield(**kwargs)

    def clean_erp_base_url(self):
        url = self.cleaned_data.get("erp_base_url", "").strip()
        if url:
            try:
                vet_url(url, resolver=None)
            except EgressError as exc:
                raise forms.ValidationError(exc.message) from exc
        return url


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
                "approval_sla_hours"]

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
        result = form._provisioned
        obj.pk = result.instance.pk
        obj.__dict__.update({k: v for k, v in result.instance.__dict__.items() if not k.startswith("_")})
        messages.warning(request, f"Admin {result.admin.email} created. Password (shown once): {result.admin_password}")

    @admin.action(description="Suspend the selected instances")
    def suspend(self, request, queryset):
        for instance in queryset.exclude(schema_name="public"):
            instance_set_status(instance=instance, status=Instance.Status.SUSPENDED, reason="suspended by platform staff")

    @admin.action(description="Re-activate the selected instances")
    def activate(self, request, queryset):
        for instance in queryset:
            instance_set_status(instance=instance, status=Instance.Status.ACTIVE)


@admin.register(Domain, site=platform_admin)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    list_select_related = ["tenant"]
    search_fields = ["domain"]
