"""The admin for clients and tuning: the main UI of agency admins and account managers.

Every write goes through `tuning.services` (forms validate with the services' own validators,
so a refused value shows next to its field), and every list is scoped by `tuning.selectors`,
so an account manager sees only their clients in changelists, search and history.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models, transaction
from django.db.models import Case, Count, IntegerField, Q, Value, When
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.template.response import TemplateResponse
from django.urls import path, reverse, reverse_lazy
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import format_lazy
from django.utils.timezone import localtime
from guardian.shortcuts import get_users_with_perms

from spokestack.accounts import policy
from spokestack.accounts.roles import Role
from spokestack.admin_site import InstanceInline, InstanceModelAdmin, ReadOnlyAdmin, decide_each, instance_admin
from spokestack.errors import DomainError, NotAllowed, NotFound

from . import selectors, services
from .api import auditlog
from .assembly import CatalogUnavailable, assemble_prompt, known_agent_types, platform_tier_for
from .forms import DIAL_FIELDS, behaviour_field, dials_text, traits_field
from .governance import ROLE_OBJECT_PERMISSION
from .models import (
    ApprovedExample,
    Client,
    ClientTuning,
    ContentRule,
    Entity,
    InstanceTuning,
    Memory,
    MemoryStatus,
    RuleKind,
    TuningChange,
    Vertical,
    agent_label,
)
from .precedence import CLIENT_FIELDS, INSTANCE_FIELDS


@dataclass(frozen=True)
class ClientPanel:
    """A box on the client tuning page filled by another app (feedback: suggestions, metrics)."""

    title: str
    render: Callable[[HttpRequest, Client], str]  # returns safe HTML
    order: int = 100


CLIENT_PANELS: list[ClientPanel] = []


def register_client_panel(panel: ClientPanel) -> None:
    CLIENT_PANELS.append(panel)
    CLIENT_PANELS.sort(key=lambda p: (p.order, p.title))


# JSON lists and mappings are short: keep their boxes small so a page shows the whole client.
COMPACT_JSON = {models.JSONField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 70})}}


class TextListField(forms.Field):
    """A list of short texts typed one per line (or comma-separated) instead of as JSON."""

    widget = forms.Textarea(attrs={"rows": 2, "cols": 70})

    def __init__(self, *args, **kwargs) -> None:
        kwargs.pop("encoder", None), kwargs.pop("decoder", None), kwargs.pop("max_length", None)
        kwargs["required"] = False
        super().__init__(*args, **kwargs)
        self.help_text = (self.help_text + " " if self.help_text else "") + "One per line or comma-separated."

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        items = [item.strip() for line in (value or "").splitlines() for item in line.split(",")]
        return [item for item in items if item]


def _list_fields(form: forms.ModelForm, names: dict[str, str]) -> None:
    for name, kind in names.items():
        if kind == "list" and name in form.fields:
            old = form.fields[name]
            form.fields[name] = TextListField(label=old.label, help_text=old.help_text)


def _agent_type_choices(blank: str) -> list[tuple[str, str]]:
    try:
        return [("", blank), *[(t, agent_label(t)) for t in known_agent_types()]]
    except CatalogUnavailable:
        return [("", blank)]


def _add_domain_error(form: forms.BaseForm, exc: DomainError, prefix: str = "") -> None:
    """Show a service's refusal next to the field it names (details keys are field paths)."""
    for key in exc.details or {"__all__": None}:
        field = str(key).removeprefix(prefix).split("[")[0].split(".")[0]
        if field in form.fields:
            message = exc.message.split(": ", 1)[1] if exc.message.startswith(f"{key}:") else exc.message
            form.add_error(field, message)
            return
    form.add_error(None, exc.message)


# --- why: the reason and ticket every admin change carries into the audit log ------------------

WHY_FIELDS = ("change_reason", "change_ticket")
WHY_TITLE = "Why (kept in the audit log with every change saved from this page)"


def _with_why(form_class: type[forms.BaseForm]) -> type[forms.BaseForm]:
    return type(form_class.__name__, (form_class,), {
        "change_reason": forms.CharField(
            label="Reason", required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 70}),
            help_text="Why you make this change: shown in History and the audit log, and kept with any rollback."),
        "change_ticket": forms.CharField(
            label="Ticket", required=False, max_length=100, widget=forms.TextInput(attrs={"size": 30}),
            help_text="A ticket or request reference, e.g. SUP-1234 (optional)."),
    })


class AuditedChangeAdmin:
    """A change form whose saves reach audited services: it adds a Reason and a Ticket field
    (one pair for the whole page, inlines included) that `why(form)` hands to those services."""

    def _why_editable(self, request, obj) -> bool:
        return self.has_change_permission(request, obj) if obj is not None else self.has_add_permission(request)

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(title, {**options, "fields": [f for f in options["fields"] if f not in WHY_FIELDS]})
                     for title, options in super().get_fieldsets(request, obj)]
        if self._why_editable(request, obj):
            fieldsets.append((WHY_TITLE, {"fields": list(WHY_FIELDS), "classes": ["audit-why"]}))
        return fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        if "fields" not in kwargs:
            kwargs["fields"] = flatten_fieldsets(self.get_fieldsets(request, obj))
        if kwargs["fields"] is not None:
            kwargs["fields"] = [f for f in kwargs["fields"] if f not in WHY_FIELDS]
        return _with_why(super().get_form(request, obj, change, **kwargs))

    @staticmethod
    def why(form) -> dict[str, str]:
        data = getattr(form, "cleaned_data", None) or {}
        return {"reason": data.get("change_reason") or "", "ticket": data.get("change_ticket") or ""}


# --- tier 2 -----------------------------------------------------------------------------


DIAL_LABELS = {"behaviour_params": "Behaviour dials", "traits": "Personality traits"}
DIAL_HELP = {
    "behaviour_params": "Tick a dial to use it and move its slider (0–100); each used dial becomes a concrete "
                        "instruction. An unticked dial sends none (a per-agent override inherits the instance-wide "
                        "value).",
    "traits": "Personality traits, 0–100 each: tick a trait to use it; name a new one in an empty row.",
}


REQUIRE_EVAL = "require_eval_for_tuning"  # versions.evals.gating.REQUIRE_EVAL; saved by require_eval_set


class InstanceTuningForm(forms.ModelForm):
    class Meta:
        model = InstanceTuning
        fields = ["agent_type", *INSTANCE_FIELDS]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _list_fields(self, INSTANCE_FIELDS)
        for name, make in (("behaviour_params", behaviour_field), ("traits", traits_field)):
            if name in self.fields:
                self.fields[name] = make(label=DIAL_LABELS[name], help_text=DIAL_HELP[name])
        for name in ("enabled", "audit_all_outputs"):
            if name in self.fields:  # null means "inherit", not "unknown"
                self.fields[name].widget.choices = [("unknown", "Inherit"), ("true", "Yes"), ("false", "No")]
        if "agent_type" in self.fields:
            self.fields["agent_type"] = forms.ChoiceField(
                choices=_agent_type_choices("—"), required=True,
                disabled=bool(self.instance.pk), help_text="The agent these overrides apply to.")
        if services.AUTO_ACCEPT in self.fields:  # the instance-wide page only
            field = self.fields[services.AUTO_ACCEPT]
            field.label = "Accept agents' memories automatically"
            field.help_text = ("Facts an agent proposes with the remember tool are accepted at once and told to the "
                               "client's next runs, instead of waiting in the memory queue for an account manager. "
                               "People can still edit, reject or delete them there. Audited; undo it from History.")

        if REQUIRE_EVAL in self.fields:
            field = self.fields[REQUIRE_EVAL]
            field.label = "Require a what-if eval before a rule or avoided term is saved"
            field.help_text = ("A client rule or an avoided term for an agent that has eval cases is saved only after "
                               "a what-if eval of that change has finished (in the last day). Other tuning fields "
                               "are not affected. Audited; undo it from History.")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        changed = {f: cleaned.get(f) for f in self.changed_data if f in INSTANCE_FIELDS}
        agent_type = self.instance.agent_type or cleaned.get("agent_type", "")
        if changed and not self.errors:
            try:
                services.instance_tuning_validate(agent_type=agent_type, changes=changed)
            except DomainError as exc:
                _add_domain_error(self, exc)
        return cleaned


FIELDSETS_TIER2 = [
    ("Availability and review", {"fields": ["enabled", "audit_all_outputs", "on_rule_violation"]}),
    ("Instructions", {"fields": ["prompt_extension", "instruction_overrides", "brand_voice",
                                 "terminology_use", "terminology_avoid", "output_preferences"]}),
    ("Behaviour (0–100 dials become concrete instructions)", {"fields": ["behaviour_params", "traits"]}),
    ("Specialization", {"fields": ["default_vertical", "default_region", "default_language", "vertical_knowledge"]}),
    ("Tools and guardrails (may restrict the platform, never relax it)",
     {"fields": ["disabled_tools", "tool_config_overrides", "require_approval_for", "content_filters",
                 "effort", "max_tokens"]}),
]


class DialsReadOnly:
    """For a person who may only read tier 2 (instance managers), the dials read "Creativity 40 · Formality 70"
    instead of their JSON."""

    READ_ONLY_DIALS = {"behaviour_params": "behaviour_dials", "traits": "trait_dials"}

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj):
            return fieldsets
        return [(title, {**options, "fields": [self.READ_ONLY_DIALS.get(f, f) for f in options["fields"]]})
                for title, options in fieldsets]

    def _form_fields(self, request, obj) -> list[str]:  # the texts above are not form fields
        return [f for f in flatten_fieldsets(self.get_fieldsets(request, obj))
                if f not in self.READ_ONLY_DIALS.values()]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs.setdefault("fields", self._form_fields(request, obj))
        return super().get_form(request, obj, change, **kwargs)

    def get_formset(self, request, obj=None, **kwargs):
        kwargs.setdefault("fields", self._form_fields(request, obj))
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="Behaviour dials")
    def behaviour_dials(self, obj) -> str:
        return dials_text(obj.behaviour_params) if obj is not None else "—"

    @admin.display(description="Personality traits")
    def trait_dials(self, obj) -> str:
        return dials_text(obj.traits) if obj is not None else "—"


class PerAgentTuningInline(DialsReadOnly, InstanceInline, admin.StackedInline):
    view_action = "instance_tuning.view"
    add_action = change_action = "instance_tuning.edit"
    formfield_overrides = COMPACT_JSON
    model = InstanceTuning
    fk_name = "parent"
    form = InstanceTuningForm
    extra = 0
    can_delete = False
    template = "admin/tuning/edit_inline/stacked.html"
    verbose_name = "per-agent override"
    verbose_name_plural = "Per-agent overrides (empty fields inherit the instance-wide value; lists add to it)"
    fieldsets = [(None, {"fields": ["agent_type"]}), *[(t, {**o, "classes": ["collapse"]}) for t, o in FIELDSETS_TIER2]]


@admin.register(InstanceTuning, site=instance_admin)
class InstanceTuningAdmin(DialsReadOnly, AuditedChangeAdmin, InstanceModelAdmin):
    view_action = "instance_tuning.view"
    change_action = "instance_tuning.edit"
    formfield_overrides = COMPACT_JSON
    form = InstanceTuningForm
    fieldsets = [*FIELDSETS_TIER2, ("Memory (tier 3)", {"fields": [services.AUTO_ACCEPT]}),
                 ("Evals", {"fields": [REQUIRE_EVAL],
                            "description": format_lazy(
                                'A what-if eval runs the agent\'s eval cases with a proposed rule or avoided term '
                                'applied, without saving it: <a href="{}" id="what-if-link">try a change first</a>.',
                                reverse_lazy("instance_admin:versions_evalrun_what_if"))})]
    inlines = [PerAgentTuningInline]
    list_select_related = ["parent"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(agent_type="")

    def changelist_view(self, request, extra_context=None):
        """There is one instance-wide row: go straight to it."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        row = InstanceTuning.objects.filter(agent_type="").first()
        if row is None:
            if not self.has_change_permission(request):
                return TemplateResponse(request, "admin/tuning/empty.html", {
                    **self.admin_site.each_context(request), "title": "Instance tuning",
                    "message": "No instance tuning has been saved yet."})
            row = services.instance_tuning_wide_row(actor=request.user)
        return HttpResponseRedirect(reverse("instance_admin:tuning_instancetuning_change", args=[row.pk]))

    def save_model(self, request, obj, form, change) -> None:
        changes = {f: form.cleaned_data[f] for f in form.changed_data if f in INSTANCE_FIELDS}
        self._run(request, lambda: services.instance_tuning_update(actor=request.user, changes=changes,
                                                                   **self.why(form)))
        if services.AUTO_ACCEPT in form.changed_data:
            self._run(request, lambda: services.memory_auto_accept_set(
                actor=request.user, enabled=bool(form.cleaned_data[services.AUTO_ACCEPT]), **self.why(form)))
        if REQUIRE_EVAL in form.changed_data:
            from versions.evals.services import require_eval_set

            self._run(request, lambda: require_eval_set(
                actor=request.user, enabled=bool(form.cleaned_data[REQUIRE_EVAL]), **self.why(form)))

    def save_formset(self, request, form, formset, change) -> None:
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            if not inline_form.has_changed():
                continue
            agent_type = inline_form.instance.agent_type or inline_form.cleaned_data["agent_type"]
            changes = {f: inline_form.cleaned_data[f] for f in inline_form.changed_data if f in INSTANCE_FIELDS}
            row = self._run(request, lambda a=agent_type, c=changes: services.instance_tuning_update(
                actor=request.user, agent_type=a, changes=c, **self.why(form)))
            (formset.changed_objects.append((row, list(changes))) if inline_form.instance.pk
             else formset.new_objects.append(row))

    @staticmethod
    def _run(request, call):
        try:
            return call()
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc

    def history_view(self, request, object_id, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        changes = selectors.tuning_changes_visible_to(actor=request.user).filter(
            Q(entity=Entity.INSTANCE_TUNING) | Q(entity=Entity.MEMORY, field=services.AUTO_ACCEPT))
        return _history(request, self.admin_site, title="History of the instance tuning", changes=changes[:300])


# --- clients and tier 3 -------------------------------------------------------------------


class ClientTuningForm(forms.ModelForm):
    class Meta:
        model = ClientTuning
        fields = ["agent_type", *CLIENT_FIELDS]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _list_fields(self, CLIENT_FIELDS)
        self.fields["agent_type"] = forms.ChoiceField(
            choices=_agent_type_choices("All agents"), required=False, disabled=bool(self.instance.pk),
            help_text="Empty: these settings apply to every agent; else one agent type's overrides.")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        changed = {f: cleaned.get(f) for f in self.changed_data if f in CLIENT_FIELDS}
        if changed and not self.errors:
            try:
                services.client_tuning_validate(agent_type=cleaned.get("agent_type") or "", changes=changed)
            except DomainError as exc:
                _add_domain_error(self, exc)
        return cleaned


class ContentRuleForm(forms.ModelForm):
    class Meta:
        model = ContentRule
        fields = ["kind", "text", "agent_type", "active"]
        widgets = {"text": forms.TextInput(attrs={"size": 70})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent_type"] = forms.ChoiceField(choices=_agent_type_choices("All agents"), required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors and self.has_changed():
            try:
                services.content_rule_validate({f: cleaned.get(f) for f in ("kind", "text", "agent_type", "active")})
            except DomainError as exc:
                _add_domain_error(self, exc)
        return cleaned


class ApprovedExampleForm(forms.ModelForm):
    class Meta:
        model = ApprovedExample
        fields = ["kind", "text", "context", "agent_type"]
        widgets = {"text": forms.Textarea(attrs={"rows": 2, "cols": 60}),
                   "context": forms.TextInput(attrs={"size": 30})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent_type"] = forms.ChoiceField(choices=_agent_type_choices("All agents"), required=False)
        if self.instance.pk:  # an approved example is kept as approved: remove it, or add another
            for field in self.fields.values():
                field.disabled = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors and self.has_changed() and not self.instance.pk:
            try:
                services.approved_example_validate(
                    {f: cleaned.get(f) or "" for f in ("kind", "text", "context", "agent_type")})
            except DomainError as exc:
                _add_domain_error(self, exc)
        return cleaned


class ClientScopedInline(InstanceInline, admin.TabularInline):
    """An inline of the client page: asked about the client (the parent object)."""

    extra = 0
    view_action = "client.view"

    @admin.display(description="Created by")
    def author(self, obj) -> str:
        # A name, not a link to the person's page (which only those who manage people may open).
        person = getattr(obj, "created_by", None)
        return (person.get_full_name() or person.email or person.get_username()) if person else "—"


class ClientTuningInline(ClientScopedInline, admin.StackedInline):
    # The whole tuning row: a client contact, who may change only preferences, sees it read-only
    # (the API takes their preference changes).
    add_action = change_action = "client_tuning.edit"
    formfield_overrides = COMPACT_JSON
    model = ClientTuning
    form = ClientTuningForm
    can_delete = False
    template = "admin/tuning/edit_inline/stacked.html"
    verbose_name = "tuning row"
    verbose_name_plural = "Brand voice, tone and preferences (a per-agent row overrides the all-agents row)"
    fieldsets = [
        (None, {"fields": ["agent_type", "brand_voice", "tone_keywords"]}),
        ("Competitors, format and length", {"fields": ["competitor_rules", "format_preferences",
                                                       "length_preferences", "required_approvals"]}),
        ("Learned from feedback", {"classes": ["collapse"], "fields": ["learned_preferences", "feedback_summary"]}),
    ]

    def get_extra(self, request, obj=None, **kwargs) -> int:
        return 1 if obj is not None and not obj.tunings.exists() else 0


class ContentRuleInline(ClientScopedInline):
    add_action, change_action, delete_action = "client_rule.add", "client_rule.change", "client_rule.remove"
    model = ContentRule
    form = ContentRuleForm
    readonly_fields = ["source", "author"]
    verbose_name = "rule"
    verbose_name_plural = "Rules: always / never / prefer"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").order_by("kind", "id")


class ApprovedExampleInline(ClientScopedInline):
    # Existing examples are shown read-only (the form disables them); the formset is open to
    # whoever may add one, and removing is its own action.
    add_action = change_action = "example.add"
    delete_action = "example.remove"
    model = ApprovedExample
    form = ApprovedExampleForm
    readonly_fields = ["author"]
    verbose_name_plural = "Approved examples"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")


class PreviewForm(forms.Form):
    agent_type = forms.ChoiceField(choices=())
    client = forms.ModelChoiceField(queryset=Client.objects.none(), required=False, empty_label="No client (tiers 1–2)")
    vertical = forms.ChoiceField(choices=[("", "Client's / instance default"), *Vertical.choices], required=False)
    region = forms.CharField(required=False, max_length=20)
    language = forms.CharField(required=False, max_length=10)

    def __init__(self, *args, actor, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent_type"].choices = _agent_type_choices("—")[1:]
        self.fields["client"].queryset = selectors.clients_visible_to(actor=actor)


CLIENT_DETAILS = ["name", "slug", "vertical", "region", "language"]
ASSIGNMENT_FIELDS = {"account_managers": Role.ACCOUNT_MANAGER, "client_contacts": Role.CLIENT_CONTACT}


class ClientForm(forms.ModelForm):
    """Client details, plus who is assigned to the client (guardian object permissions)."""

    account_managers = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.none(), required=False,
        help_text="Account managers who tune this client and see it in their lists.")
    client_contacts = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.none(), required=False,
        help_text="People on the client's side who add approved examples and preferences.")

    class Meta:
        model = Client
        fields = CLIENT_DETAILS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        users = get_user_model().objects.filter(is_active=True).order_by("username")
        for name, role in ASSIGNMENT_FIELDS.items():
            if name in self.fields:
                self.fields[name].queryset = users.filter(groups__name=role)
                if self.instance.pk:
                    self.initial[name] = list(assigned_users(self.instance, role))


def assigned_users(client: Client, role: str):
    return get_users_with_perms(client, only_with_perms_in=[ROLE_OBJECT_PERMISSION[role]], with_group_users=False)


@admin.register(Client, site=instance_admin)
class ClientAdmin(AuditedChangeAdmin, InstanceModelAdmin):
    view_action = "client.view"
    add_action = "client.create"
    # The page's form is open to whoever sees the client: its tuning, rules and examples are
    # inlines that ask their own actions, details and assignments are fields that do.
    change_action = "client.view"
    list_display = ["name", "vertical", "region", "language", "rules_count", "examples_count", "created_at"]
    list_filter = ["vertical", "region"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    form = ClientForm
    inlines = [ClientTuningInline, ContentRuleInline, ApprovedExampleInline]
    change_form_template = "admin/tuning/client/change_form.html"
    list_select_related = True

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"may_preview": self.allows(request, "prompt.preview"),
                                                 **(extra_context or {})})

    def get_queryset(self, request):
        visible = selectors.clients_visible_to(actor=request.user)
        return visible.annotate(
            rules_total=Count("rules", filter=Q(rules__active=True), distinct=True),
            examples_total=Count("examples", distinct=True),
        )

    @admin.display(description="Active rules", ordering="rules_total")
    def rules_count(self, obj) -> int:
        return obj.rules_total

    @admin.display(description="Examples", ordering="examples_total")
    def examples_count(self, obj) -> int:
        return obj.examples_total

    def get_prepopulated_fields(self, request, obj=None):
        return self.prepopulated_fields if self._may_edit_details(request) else {}

    def get_fields(self, request, obj=None):
        return CLIENT_DETAILS + (list(ASSIGNMENT_FIELDS) if self._may_assign(request) else [])

    def get_readonly_fields(self, request, obj=None):
        # Listing the assignment fields here also removes them from the form of those who may not assign.
        readonly = [] if self._may_edit_details(request) else list(CLIENT_DETAILS)
        return readonly if self._may_assign(request) else readonly + list(ASSIGNMENT_FIELDS)

    # No delete_action: clients are archived by the platform team; their audit trail stays whole.

    def _may_assign(self, request) -> bool:
        return self.allows(request, "client.assign")

    def _may_edit_details(self, request) -> bool:
        return self.allows(request, "client.edit")

    def get_object(self, request, object_id, from_field=None):
        # Scoped like the changelist: a client you may not see does not exist for you.
        self.require(request, self.view_action)
        try:
            return selectors.clients_visible_to(actor=request.user).get(pk=int(object_id))
        except (Client.DoesNotExist, ValueError):
            return None

    def save_model(self, request, obj, form, change) -> None:
        details = [f for f in form.changed_data if f in CLIENT_DETAILS]
        try:
            if not change:
                created = services.client_create(actor=request.user, **self.why(form),
                                                 **{f: form.cleaned_data[f] for f in CLIENT_DETAILS})
                obj.pk, obj.created_at = created.pk, created.created_at
            elif details:
                services.client_update(actor=request.user, client=Client.objects.get(pk=obj.pk),
                                       changes={f: form.cleaned_data[f] for f in details}, **self.why(form))
            client = Client.objects.get(pk=obj.pk)
            for name, role in ASSIGNMENT_FIELDS.items():
                if name not in form.changed_data:
                    continue
                wanted, current = set(form.cleaned_data[name]), set(assigned_users(client, role))
                for user in sorted(wanted - current, key=lambda u: u.pk):
                    services.client_assign(actor=request.user, user=user, client=client, role=role, **self.why(form))
                for user in sorted(current - wanted, key=lambda u: u.pk):
                    services.client_unassign(actor=request.user, user=user, client=client, role=role,
                                             **self.why(form))
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc

    def save_formset(self, request, form, formset, change) -> None:
        client = Client.objects.get(pk=form.instance.pk)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        try:
            for inline_form in formset.forms:
                instance = inline_form.instance
                if instance.pk and inline_form in formset.deleted_forms:
                    self._remove(request, instance, self.why(form))
                    formset.deleted_objects.append(instance)
                elif inline_form.has_changed() and inline_form not in formset.deleted_forms:
                    saved = self._save_inline(request, client, inline_form, self.why(form))
                    if instance.pk:
                        formset.changed_objects.append((saved, inline_form.changed_data))
                    else:
                        formset.new_objects.append(saved)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc

    @staticmethod
    def _remove(request, instance, why: dict[str, str]) -> None:
        if isinstance(instance, ContentRule):
            services.client_rule_remove(actor=request.user, rule=instance, **why)
        elif isinstance(instance, ApprovedExample):
            services.client_example_remove(actor=request.user, example=instance, **why)

    @staticmethod
    def _save_inline(request, client: Client, inline_form, why: dict[str, str]):
        data, instance = inline_form.cleaned_data, inline_form.instance
        if isinstance(instance, ClientTuning):
            changes = {f: data[f] for f in inline_form.changed_data if f in CLIENT_FIELDS}
            return services.client_tuning_update(actor=request.user, client=client, changes=changes, **why,
                                                 agent_type=instance.agent_type or data.get("agent_type") or "")
        if isinstance(instance, ContentRule):
            fields = {f: data.get(f) for f in ("kind", "text", "agent_type", "active")}
            fields["agent_type"] = fields["agent_type"] or ""
            if instance.pk:
                return services.client_rule_update(actor=request.user, rule=instance, **why,
                                                   changes={f: fields[f] for f in inline_form.changed_data})
            return services.client_rule_add(actor=request.user, client=client, **fields, **why)
        return services.client_example_add(actor=request.user, client=client, kind=data["kind"], text=data["text"],
                                           context=data.get("context") or "", agent_type=data.get("agent_type") or "",
                                           **why)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        client = self.get_object(request, object_id)
        if client is None:
            raise Http404("No such client.")
        context = dict(extra_context or {})
        if client is not None:
            rules = list(ContentRule.objects.filter(client=client, active=True).order_by("id"))
            for rule in rules:
                rule.agent_title = agent_label(rule.agent_type) if rule.agent_type else ""
            context["rule_columns"] = [(label, [r for r in rules if r.kind == kind]) for kind, label in RuleKind.choices]
            context["client_panels"] = [{"title": p.title, "html": p.render(request, client)} for p in CLIENT_PANELS]
            if self.allows(request, "prompt.preview", client):
                context["preview_url"] = reverse("instance_admin:tuning_client_preview") + f"?client={client.pk}"
            if self.allows(request, "audit.view", client):
                context["history_url"] = reverse("instance_admin:tuning_client_history", args=[client.pk])
            if self.allows(request, "eval.run", client):
                context["what_if_url"] = reverse("instance_admin:versions_evalrun_what_if") + f"?client={client.pk}"
        return super().change_view(request, object_id, form_url, context)

    def history_view(self, request, object_id, extra_context=None):
        self.require(request, "audit.view")
        client = self.get_object(request, object_id)
        if client is None:
            raise Http404("No such client.")
        changes = selectors.tuning_changes_visible_to(actor=request.user, client=client)[:300]
        return _history(request, self.admin_site, title=f"History of {client.name}", changes=changes, client=client)

    def get_urls(self):
        custom = [path("preview/", self.policy_view(self.preview_view, "prompt.preview"), name="tuning_client_preview")]
        return custom + super().get_urls()

    def preview_view(self, request):
        """Agent type × client (× specialization) -> the assembled prompt, labelled by tier and field."""
        from .knowledge.pins import with_sources as with_pin_sources

        context: dict[str, Any] = {**self.admin_site.each_context(request), "title": "Prompt preview",
                                   "opts": self.model._meta}
        status = 200
        try:
            bound = "agent_type" in request.GET
            form = PreviewForm(request.GET if bound else None, initial=request.GET.dict(), actor=request.user)
            context["form"] = form
            if form.is_bound and form.is_valid():
                client = form.cleaned_data["client"]
                # Without a client the preview is tiers 1-2: instance_tuning.view.
                self.require(request, "prompt.preview" if client else "instance_tuning.view", client)
                platform = platform_tier_for(form.cleaned_data["agent_type"])
                spec = {k: form.cleaned_data[k] for k in ("vertical", "region", "language") if form.cleaned_data[k]}
                prompt = assemble_prompt(platform=platform, client=client, specialization=spec or None)
                tiers = _tiers(prompt)
                for tier in tiers:  # pinned document excerpts name their source (tuning.knowledge.pins)
                    tier["sections"] = with_pin_sources(tier["sections"])
                context.update(prompt=prompt, tiers=tiers, diff=_diff_since_last_change(
                    platform=platform, client=client, spec=spec, current=prompt))
        except CatalogUnavailable as exc:
            context["unavailable"], status = exc.message, 503
        return TemplateResponse(request, "admin/tuning/prompt_preview.html", context, status=status)


TIER_LABELS = {1: "Tier 1 · platform", 2: "Tier 2 · instance", 3: "Tier 3 · client"}


def _tiers(prompt) -> list[dict[str, Any]]:
    return [{"label": TIER_LABELS[tier], "tier": tier, "sections": [s for s in prompt.sections if s.tier == tier]}
            for tier in (1, 2, 3) if any(s.tier == tier for s in prompt.sections)]


def _diff_since_last_change(*, platform, client, spec, current) -> dict[str, Any] | None:
    """The prompt before the last change that reaches it: undo that change in a savepoint, assemble,
    and roll the savepoint back, so the answer comes from the same code as the real rollback."""
    reaches = Q(tier=2, agent_type__in=["", platform.agent_type])
    if client is not None:
        reaches |= Q(tier=3, client=client, agent_type__in=["", platform.agent_type])
    last = TuningChange.objects.filter(reaches).order_by("-id").first()
    if last is None:
        return None
    try:
        with transaction.atomic():
            services.tuning_rollback(actor=None, change=last)
            before = assemble_prompt(platform=platform, client=client, specialization=spec or None)
            transaction.set_rollback(True)
    except DomainError:
        return None
    lines = list(difflib.unified_diff(before.system_text().splitlines(), current.system_text().splitlines(),
                                      fromfile="before", tofile="now", lineterm="", n=1))
    return {"change": last, "lines": lines[2:]}


def _history(request, site, *, title: str, changes, client: Client | None = None) -> TemplateResponse:
    rows = [{"change": change, "what": change_label(change), "old": value_text(change, change.old_value),
             "new": value_text(change, change.new_value)} for change in changes]
    return TemplateResponse(request, "admin/tuning/history.html", {
        **site.each_context(request), "title": title, "rows": rows, "client": client,
        "opts": TuningChange._meta, "next": request.get_full_path(),
        "may_roll_back": policy.allows(request.user, "audit.rollback", client),
    })


# --- how audit entries read to a person ------------------------------------------------------

TUNING_MODELS = {Entity.INSTANCE_TUNING: InstanceTuning, Entity.CLIENT_TUNING: ClientTuning}


def json_text(value: Any) -> str:
    """A stored value as compact JSON (never a Python repr); "—" for none."""
    if value is None:
        return "—"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def value_text(change: TuningChange, value: Any) -> str:
    """A stored value of an entry as the admin shows it: 0–100 dials as "Formality 70 · Creativity 40",
    anything else as compact JSON."""
    if value is not None and change.entity == Entity.INSTANCE_TUNING and change.field in DIAL_FIELDS:
        return dials_text(value)
    return json_text(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _human(name: str) -> str:
    return name.replace("_", " ")


def field_label(change: TuningChange) -> str:
    model = TUNING_MODELS.get(change.entity)
    if model is InstanceTuning and change.field in DIAL_LABELS:
        return DIAL_LABELS[change.field].lower()
    if model is not None:
        try:
            return str(model._meta.get_field(change.field).verbose_name)
        except FieldDoesNotExist:  # a field renamed since the entry keeps its stored name
            pass
    return _human(change.field)


def object_label(change: TuningChange) -> str:
    """What the entry changed, as the admin names it: "instance-wide tuning", "Desert Bloom's tuning
    for copy", "rule “Never promise…”" — not a model name and a row id."""
    agent = f" for {_human(change.agent_type)}" if change.agent_type else ""
    if change.entity == Entity.INSTANCE_TUNING:
        return f"tuning{agent}" if change.agent_type else "instance-wide tuning"
    if change.entity == Entity.CLIENT_TUNING:
        return f"{change.client_label}'s tuning{agent or ' for all agents'}"
    if change.entity == Entity.MEMORY and change.field == services.AUTO_ACCEPT:
        return "instance-wide tuning"
    if change.entity == Entity.MEMORY and change.field:  # an entry of one field keeps no text
        return f"memory #{change.entity_id}"
    snapshot = change.old_value if isinstance(change.old_value, dict) else change.new_value
    entity = change.get_entity_display().lower()
    if isinstance(snapshot, dict):
        named = snapshot.get("text") or snapshot.get("name") or snapshot.get("user") or snapshot.get("email")
        if named:
            return f"{entity} “{_clip(str(named), 60)}”"
    if change.entity == Entity.CLIENT and change.client_label:
        return f"{entity} of {change.client_label}"
    return entity


def change_label(change: TuningChange) -> str:
    what = f"{change.get_action_display()} {object_label(change)}"
    if change.field:
        what += f" · {field_label(change)}"
    return what


# --- the audit log ----------------------------------------------------------------------------


class ActorFilter(admin.SimpleListFilter):
    """Who made the change: the people (and the system) that appear in the entries this person may
    read, so the choices name nobody from another client's entries."""

    title = "who"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        seen = model_admin.get_queryset(request).order_by().values_list("actor_id", "actor_label").distinct()
        people = sorted({(str(pk), label) for pk, label in seen if pk is not None}, key=lambda p: p[1].lower())
        return [*people, ("system", "system")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "system":
            return queryset.filter(actor__isnull=True)
        if value and value.isascii() and value.isdigit():
            return queryset.filter(actor_id=int(value))
        return queryset


@admin.register(TuningChange, site=instance_admin)
class TuningChangeAdmin(ReadOnlyAdmin):
    """Every configuration change of the instance, filterable by entity, who, client and date, and
    exportable as CSV or JSON (the buttons export every entry the filters match; the actions the
    selected ones), in the same format as the API's export."""

    view_action = "audit.view"
    list_display = ["id", "when_and_who", "what", "client_name", "values", "why", "rollback_button"]
    list_display_links = ["id"]
    list_filter = ["entity", ActorFilter, "client", ("created_at", admin.DateFieldListFilter), "tier", "action"]
    search_fields = ["field", "client_label", "actor_label", "reason", "ticket"]
    list_select_related = ["actor", "client"]
    # The entry's page: every field, the values as the list shows them (dials read "Formality 70 · …"),
    # the people as named at the time (no link to a user page most roles may not open), clients by name.
    fields = readonly_fields = [{"old_value": "before", "new_value": "after", "affected_clients": "affected"}
                                .get(f.name, f.name) for f in TuningChange._meta.fields if f.name != "actor"]
    actions = ["export_selected_csv", "export_selected_json"]

    def get_queryset(self, request):
        return selectors.tuning_changes_visible_to(actor=request.user)

    def changelist_view(self, request, extra_context=None):
        query = request.GET.copy()
        for name in ("p", "e", "format"):
            query.pop(name, None)
        base = reverse("instance_admin:tuning_tuningchange_export")
        exports = [(fmt.upper(), f"{base}?{query.urlencode()}{'&' if query else ''}format={fmt}")
                   for fmt in auditlog.EXPORT_FORMATS]
        return super().changelist_view(request, {"title": "Audit log", **(extra_context or {}),
                                                 "audit_exports": exports})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        change = self.get_object(request, object_id)
        if change is not None:
            context.update(title=f"Audit entry #{change.pk}", subtitle=change_label(change))
        return super().change_view(request, object_id, form_url, context)

    def export_view(self, request) -> HttpResponse:
        """Every entry the changelist's filters (and search) match, as a CSV or JSON file."""
        fmt = request.GET.get("format")
        if fmt not in auditlog.EXPORT_FORMATS:
            messages.error(request, f"Export as {' or '.join(auditlog.EXPORT_FORMATS)}.")
            return HttpResponseRedirect(reverse("instance_admin:tuning_tuningchange_changelist"))
        query = request.GET.copy()
        query.pop("format")
        request.GET = query
        try:
            changelist = self.get_changelist_instance(request)
        except admin.options.IncorrectLookupParameters:
            messages.error(request, "Those filters are not valid; choose them again from the list.")
            return HttpResponseRedirect(reverse("instance_admin:tuning_tuningchange_changelist"))
        return auditlog.export_response(changelist.get_queryset(request), fmt)

    @admin.action(description="Export the selected entries as CSV")
    def export_selected_csv(self, request, queryset):
        return auditlog.export_response(queryset, "csv")

    @admin.action(description="Export the selected entries as JSON")
    def export_selected_json(self, request, queryset):
        return auditlog.export_response(queryset, "json")

    @admin.display(description="When · who", ordering="created_at")
    def when_and_who(self, obj) -> str:
        return format_html('{}<br><span class="audit-who">{}</span>', date_format(localtime(obj.created_at),
                                                                                    "SHORT_DATETIME_FORMAT"),
                           obj.actor_label)

    @admin.display(description="Client", ordering="client_label")
    def client_name(self, obj) -> str:
        return obj.client_label or "—"

    @admin.display(description="What")
    def what(self, obj) -> str:
        rollback = format_html(" <small>rollback of #{}</small>", obj.rollback_of_id) if obj.rollback_of_id else ""
        return format_html('<small class="quiet">{}</small><br>{}{}', obj.get_tier_display(), change_label(obj),
                           rollback)

    @admin.display(description="Before → after")
    def values(self, obj) -> str:
        return format_html('<div class="audit-values">{} <span class="arrow">→</span> {}</div>',
                           _value_html(obj, obj.old_value), _value_html(obj, obj.new_value))

    @admin.display(description="Affected clients")
    def affected(self, obj) -> str:
        ids = [i for i in obj.affected_clients or [] if isinstance(i, int)]
        names = dict(Client.objects.filter(pk__in=ids).values_list("pk", "name"))
        return ", ".join(names.get(i, f"a deleted client ({i})") for i in ids) or "—"

    @admin.display(description="Old value")
    def before(self, obj) -> str:
        return value_text(obj, obj.old_value)

    @admin.display(description="New value")
    def after(self, obj) -> str:
        return value_text(obj, obj.new_value)

    @admin.display(description="Why", ordering="reason")
    def why(self, obj) -> str:
        if not (obj.reason or obj.ticket):
            return "—"
        return format_html('<span class="audit-why" title="{}">{}</span>{}', obj.reason, _clip(obj.reason, 80),
                           format_html(' <span class="audit-ticket">[{}]</span>', obj.ticket) if obj.ticket else "")

    @admin.display(description="Roll back")
    def rollback_button(self, obj) -> str:
        return format_html('<a class="button audit-rollback" href="{}">Roll back…</a>',
                           reverse("instance_admin:tuning_tuningchange_rollback", args=[obj.pk]))

    def get_urls(self):
        custom = [path("<int:change_id>/rollback/", self.policy_view(self.rollback_view, "audit.rollback"),
                       name="tuning_tuningchange_rollback"),
                  path("export/", self.policy_view(self.export_view, "audit.view"), name="tuning_tuningchange_export")]
        return custom + super().get_urls()

    def rollback_view(self, request, change_id: int) -> HttpResponse:
        """GET: what would be restored; POST: restore it through the services (409-style message on conflict)."""
        back = request.POST.get("next") or request.GET.get("next") or ""
        if not back or not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("instance_admin:tuning_tuningchange_changelist")
        try:
            change = selectors.tuning_change_get(actor=request.user, change_id=change_id)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        if request.method != "POST":
            group = list(TuningChange.objects.filter(group=change.group).order_by("-id")) if change.group else []
            others = len(group) - 1
            title = (f"Roll back entry #{change.pk} and the {'other entry' if others == 1 else f'{others} other entries'}"
                     " of its change?" if group else f"Roll back entry #{change.pk}?")
            return TemplateResponse(request, "admin/tuning/rollback_confirm.html", {
                **self.admin_site.each_context(request), "title": title, "change": change,
                "what": change_label(change), "old": value_text(change, change.old_value),
                "new": value_text(change, change.new_value),
                "group": [{"entry": entry, "what": change_label(entry)} for entry in group],
                "next": back, "opts": self.model._meta})
        try:
            entry = services.tuning_rollback(actor=request.user, change=change, reason=request.POST.get("reason", ""),
                                             ticket=request.POST.get("ticket", ""))
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc
        except DomainError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(back)
        messages.success(request, f"Rolled back #{change_id} (entry #{entry.pk}).")
        return HttpResponseRedirect(back)


def _value_html(change: TuningChange, value: Any) -> str:
    """Compact JSON (dials as "Formality 70 · Creativity 40"), clipped in the list; the whole value on hover
    and on the entry's page."""
    text = value_text(change, value)
    return format_html('<code class="audit-value" title="{}">{}</code>', text, _clip(text, 120))


# --- memory (tier 3) ---------------------------------------------------------------------------


class MemoryActionForm(admin.helpers.ActionForm):
    decision_reason = forms.CharField(required=False, max_length=300, label="Reason",
                                      widget=forms.TextInput(attrs={"placeholder": "Why (kept in the audit log)"}))


class MemoryForm(forms.ModelForm):
    class Meta:
        model = Memory
        fields = ["client", "text", "expires_at"]
        widgets = {"text": forms.Textarea(attrs={"rows": 2, "cols": 70})}

    def __init__(self, *args, actor=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "client" in self.fields:
            self.fields["client"].queryset = selectors.clients_visible_to(actor=actor)
            self.fields["client"].help_text = "Empty: about the agency, told to runs for every client."


def _told(cache: dict, memory: Memory) -> str:
    """Whether runs are told this accepted memory now, or the size bound leaves it out (per client,
    computed once per page)."""
    if memory.status == MemoryStatus.EXPIRED or (memory.status == MemoryStatus.ACCEPTED and memory.expires_at
                                                  is not None and memory.expires_at <= timezone.now()):
        when = f" {date_format(localtime(memory.expires_at), 'DATETIME_FORMAT')}" if memory.expires_at else ""
        return f"expired{when}: accept it again with a new expiry"
    if memory.status != MemoryStatus.ACCEPTED:
        return ""
    if memory.client_id not in cache:
        cache[memory.client_id] = selectors.memories_for_prompt(client=memory.client_id)
    selection = cache[memory.client_id]
    if any(m.pk == memory.pk for m in selection.included):
        return "told to runs"
    return f"left out: over the {selection.limit}-character bound (least recently used)"


class MemoryClientFilter(admin.RelatedOnlyFieldListFilter):
    """The clients of the memories this person may see (never every client's name), and the
    agency-wide ones."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.empty_value_display = "Agency-wide"


class MemoryExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [("never", "Never expires"), ("later", "Expires later"), ("passed", "Expiry passed")]

    def queryset(self, request, queryset):
        now = timezone.now()
        return {"never": lambda: queryset.filter(expires_at__isnull=True),
                "later": lambda: queryset.filter(expires_at__gt=now),
                "passed": lambda: queryset.filter(expires_at__lte=now)}.get(self.value(), lambda: queryset)()


@admin.register(Memory, site=instance_admin)
class MemoryAdmin(InstanceModelAdmin):
    """The memory queue: proposals first; Accept / Reject one or many (with a reason), each through
    `tuning.services` (audited, reversible). Accepted memories say whether the size bound leaves
    them out of the prompt."""

    view_action = "memory.view"
    add_action = "memory.write"
    change_action = "memory.decide"
    delete_action = "memory.write"
    form = MemoryForm
    action_form = MemoryActionForm
    list_display = ["text", "client_shown", "status", "in_prompt", "source", "use_count", "last_used_at"]
    list_filter = ["status", ("client", MemoryClientFilter), MemoryExpiryFilter, "created_at"]
    list_select_related = ["client"]
    search_fields = ["text", "source", "client__name"]
    actions = ["accept_selected", "reject_selected"]
    readonly_fields = ["source", "status", "in_prompt", "proposed_by", "decided_by", "decided_at", "decision_reason",
                       "use_count", "last_used_at", "created_at"]

    def get_queryset(self, request):
        pending_first = Case(When(status=MemoryStatus.PROPOSED, then=Value(0)), default=Value(1),
                             output_field=IntegerField())
        return selectors.memories_visible_to(actor=request.user).annotate(pending_first=pending_first)

    def get_ordering(self, request):
        return ["pending_first", "-id"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        actor = request.user

        class Bound(form):
            def __init__(self, *args, **kw):
                super().__init__(*args, actor=actor, **kw)

        return Bound

    @admin.display(description="in the prompt")
    def in_prompt(self, obj: Memory) -> str:
        return _told({}, obj)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "client"] if obj is not None else fields

    def get_fields(self, request, obj=None):
        shown = ["client", "text", "expires_at"]
        if obj is None:
            return shown
        return [*shown, *(f for f in self.get_readonly_fields(request, obj) if f != "client")]

    def has_decide_permission(self, request) -> bool:
        return self.allows(request, "memory.decide")

    @admin.display(description="client", ordering="client__name")
    def client_shown(self, obj: Memory) -> str:
        return obj.client.name if obj.client_id else "Agency-wide"

    @staticmethod
    def _in_prompt(request):
        """The "in the prompt" column, bound to this request (its per-client selections are shared)."""
        @admin.display(description="in the prompt")
        def in_prompt(obj: Memory) -> str:
            return _told(request.__dict__.setdefault("_memory_selection", {}), obj)

        return in_prompt

    def get_list_display(self, request):
        return [self._in_prompt(request) if f == "in_prompt" else f for f in super().get_list_display(request)]

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        try:
            if change:
                changes = {f: data[f] for f in ("text", "expires_at") if f in form.changed_data}
                saved = services.memory_edit(actor=request.user, memory=obj, changes=changes)
            else:
                saved = services.memory_create(actor=request.user, client=data.get("client"), text=data["text"],
                                               expires_at=data.get("expires_at"))
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc
        obj.pk = saved.pk

    def delete_model(self, request, obj) -> None:
        services.memory_delete(actor=request.user, memory=obj)

    def delete_queryset(self, request, queryset) -> None:
        for memory in queryset:
            services.memory_delete(actor=request.user, memory=memory)

    @admin.action(description="Accept the selected memories", permissions=["decide"])
    def accept_selected(self, request, queryset):
        self._decide_many(request, queryset, services.memory_accept, "accepted")

    @admin.action(description="Reject the selected memories", permissions=["decide"])
    def reject_selected(self, request, queryset):
        self._decide_many(request, queryset, services.memory_reject, "rejected")

    def _decide_many(self, request, queryset, decide, done: str) -> None:
        decide_each(self, request, queryset, decide, argument="memory", nouns=("memory", "memories"), done=done,
                    reason_max=300)

    def decide_view(self, request, memory_id: int, decision: str):
        """One memory's Accept / Reject button (the client page's panel); back where it was pressed."""
        if request.method != "POST":
            return HttpResponse(status=405)
        back = request.POST.get("next") or reverse("instance_admin:tuning_memory_changelist")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("instance_admin:tuning_memory_changelist")
        memory = selectors.memory_get(actor=request.user, memory_id=memory_id)
        decide = services.memory_accept if decision == "accept" else services.memory_reject
        try:
            decide(actor=request.user, memory=memory, reason=(request.POST.get("reason") or "").strip()[:300])
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Memory #{memory.pk} {decision}ed.")
        return HttpResponseRedirect(back)

    def get_urls(self):
        view = self.policy_view
        return [
            path("<int:memory_id>/accept/", view(lambda r, memory_id: self.decide_view(r, memory_id, "accept"),
                                                 "memory.decide"), name="tuning_memory_accept"),
            path("<int:memory_id>/reject/", view(lambda r, memory_id: self.decide_view(r, memory_id, "reject"),
                                                 "memory.decide"), name="tuning_memory_reject"),
            *super().get_urls(),
        ]


def memories_html(request, client: Client) -> str:
    """The client page's panel: accepted memories (told to runs, or left out by the size bound) and
    proposals, with Accept / Reject for whoever may decide."""
    if not policy.allows(request.user, "memory.view", client):
        return ""
    memories = list(selectors.memories_visible_to(actor=request.user, client_id=client.pk)
                    .filter(status__in=[MemoryStatus.PROPOSED, MemoryStatus.ACCEPTED]).order_by("status", "id"))
    may_decide = policy.allows(request.user, "memory.decide", client)
    selection = selectors.memories_for_prompt(client=client)
    told = {m.pk for m in selection.included}
    token = get_token(request)
    rows = []
    now = timezone.now()
    for memory in memories:
        if memory.status == MemoryStatus.ACCEPTED and memory.expires_at is not None and memory.expires_at <= now:
            state = "expired"
        elif memory.status == MemoryStatus.ACCEPTED:
            state = "told to runs" if memory.pk in told else "left out (size bound)"
        else:
            state = "proposed"
        buttons = ""
        if may_decide:
            forms_html = []
            for decision in ("accept", "reject"):
                if decision == "accept" and memory.status == MemoryStatus.ACCEPTED:
                    continue
                forms_html.append(format_html(
                    '<form method="post" action="{}" style="display:inline">'
                    '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
                    '<input type="hidden" name="next" value="{}">'
                    '<button type="submit" class="button memory-{}">{}</button></form>',
                    reverse(f"instance_admin:tuning_memory_{decision}", args=[memory.pk]), token,
                    request.get_full_path(), decision, decision.capitalize()))
            buttons = format_html_join("", "{}", ((f,) for f in forms_html))
        rows.append(format_html('<li class="memory memory-{}"><em class="memory-state">{}</em> · {} '
                                '<small>({})</small> {}</li>', memory.status, state, memory.text,
                                memory.source or "—", buttons))
    if not rows:
        return format_html("<p>No memories yet. Agents propose them with the remember tool; {}.</p>",
                           "accept or reject them here" if may_decide else "an account manager decides")
    link = reverse("instance_admin:tuning_memory_changelist") + f"?client__id__exact={client.pk}"
    note = ""
    if selection.left_out:
        note = format_html("<p class=\"memory-bound\">{} accepted {} left out of prompts: together they are over "
                           "the {}-character bound, and the least recently used go first.</p>",
                           len(selection.left_out), "memory is" if len(selection.left_out) == 1 else "memories are",
                           selection.limit)
    return format_html('<ul class="memories">{}</ul>{}<p><a href="{}">All of this client\'s memories</a></p>',
                       format_html_join("", "{}", ((r,) for r in rows)), note, link)


register_client_panel(ClientPanel("Memory", memories_html, order=30))
