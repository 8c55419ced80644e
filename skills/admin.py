"""Skills in the instance admin: metrics columns, write-only secrets, the signing secret shown
once at creation, and a Test button that runs the skill with sample input."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db import connection
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from spokestack.admin_site import InstanceModelAdmin, instance_admin
from spokestack.errors import DomainError
from tuning.admin import AuditedChangeAdmin
from tuning.models import agent_label

from .executor import SkillContext, skill_execute
from .handlers import handler_choices
from .models import Skill
from .selectors import metrics_of, skills_with_metrics
from .services import core_tool_names, skill_create, skill_delete, skill_update, skill_validate

FORM_FIELDS = ["name", "description", "input_schema", "execution_type", "agent_types", "enabled",
               "requires_approval", "approval_priority", "webhook_url", "auth_type", "auth_header", "auth_secret", "handler", "timeout_s"]


class SkillForm(forms.ModelForm):
    agent_types = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    auth_secret = forms.CharField(required=False, strip=False, widget=forms.PasswordInput(render_value=False),
                                  help_text="Bearer token or API key. Write-only: leave empty to keep the stored one.")
    handler = forms.ChoiceField(required=False)
    webhook_url = forms.URLField(required=False, max_length=500, assume_scheme="https",
                                 help_text="Called with POST and a signed JSON body.")
    input_schema = forms.JSONField(initial=dict, widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
                                   help_text="JSON Schema (Draft 2020-12) of the input, an object schema.")

    class Meta:
        model = Skill
        fields = [f for f in FORM_FIELDS if f != "auth_secret"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent_types"].choices = sorted(((t, agent_label(t)) for t in core_tool_names()),
                                                    key=lambda choice: choice[1])
        self.fields["handler"].choices = [("", "—"), *handler_choices()]
        if "approval_priority" in self.fields:  # left out: the skill keeps its own (normal at first)
            self.fields["approval_priority"].required = False

    def changes(self) -> dict:
        data = {f: self.cleaned_data.get(f) for f in FORM_FIELDS if f in self.cleaned_data}
        data["agent_types"] = list(data.get("agent_types") or [])
        data["handler"] = data.get("handler") or ""
        if data.get("approval_priority") in (None, ""):
            data.pop("approval_priority", None)
        if not data.get("auth_secret"):
            data.pop("auth_secret", None)
        return data

    def _post_clean(self) -> None:  # the service validates; the model's own clean would miss the rules
        if self.errors:
            return
        try:
            skill_validate(skill=self.instance if self.instance.pk else Skill(), data=self.changes())
        except DomainError as exc:
            field = exc.details.get("field") if isinstance(exc.details, dict) else None
            self.add_error(field if field in self.fields else None, exc.message)


class SkillTestForm(forms.Form):
    sample_input = forms.JSONField(initial=dict, widget=forms.Textarea(attrs={"rows": 6, "cols": 80}))


@admin.register(Skill, site=instance_admin)
class SkillAdmin(AuditedChangeAdmin, InstanceModelAdmin):
    view_action = "skill.view"
    add_action = change_action = delete_action = "skill.edit"
    form = SkillForm
    list_display = ["skill_name", "kind", "agent_list", "enabled", "approval", "calls", "success_rate",
                    "p50", "p95", "last_error", "test_link"]
    list_filter = ["execution_type", "enabled", "requires_approval"]
    search_fields = ["name", "description"]
    fieldsets = [
        (None, {"fields": ["name", "description", "input_schema", "agent_types", "enabled", "requires_approval",
                           "approval_priority",
                           "timeout_s", "execution_type"]}),
        ("Webhook", {"fields": ["webhook_url", "auth_type", "auth_header", "auth_secret"]}),
        ("Internal", {"fields": ["handler"]}),
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        # auth_secret is a form-only, write-only field: the model column is never edited directly
        kwargs["fields"] = [f for f in FORM_FIELDS if f != "auth_secret"]
        return super().get_form(request, obj, change, **kwargs)

    def get_queryset(self, request):
        return skills_with_metrics(super().get_queryset(request))

    def get_list_display(self, request):
        shown = super().get_list_display(request)  # the Test button only for whom the policy lets test
        return shown if self.allows(request, "skill.test") else [c for c in shown if c != "test_link"]

    @admin.display(description="Skill", ordering="name")
    def skill_name(self, skill):
        return format_html("<code>{}</code>", skill.name)  # the name the agent calls: an identifier

    @admin.display(description="Type", ordering="execution_type")
    def kind(self, skill):
        return skill.get_execution_type_display()

    @admin.display(description="Approval", boolean=True, ordering="requires_approval")
    def approval(self, skill):
        return skill.requires_approval

    @admin.display(description="Agents")
    def agent_list(self, skill):
        return ", ".join(agent_label(t) for t in skill.agent_types)

    @admin.display(description="Calls", ordering="m_calls")
    def calls(self, skill):
        return skill.m_calls

    @admin.display(description="Success")
    def success_rate(self, skill):
        rate = metrics_of(skill).success_rate
        return "—" if rate is None else f"{rate:.0%}"

    @admin.display(description="p50 ms")
    def p50(self, skill):
        return "—" if skill.m_p50 is None else f"{skill.m_p50:.0f}"

    @admin.display(description="p95 ms")
    def p95(self, skill):
        return "—" if skill.m_p95 is None else f"{skill.m_p95:.0f}"

    @admin.display(description="Last error")
    def last_error(self, skill):
        return (skill.m_last_error or "")[:80] or "—"

    @admin.display(description="")
    def test_link(self, skill):
        return format_html('<a class="button" href="{}">Test</a>', reverse("instance_admin:skills_skill_test",
                                                                           args=[skill.pk]))

    def save_model(self, request, obj, form, change):
        data = form.changes()
        if change:
            saved = skill_update(actor=request.user, skill=obj, changes=data, **self.why(form))
        else:
            created = skill_create(actor=request.user, **data, **self.why(form))
            saved = created.skill
            messages.warning(request, f"Signing secret of {saved.name} (shown once; give it to the receiver to "
                                      f"verify webhook signatures): {created.signing_secret}")
        obj.pk, obj.name = saved.pk, saved.name

    def delete_model(self, request, obj):  # through the service, so the deletion is an audit entry
        skill_delete(actor=request.user, skill=obj)

    def delete_queryset(self, request, queryset):
        for skill in queryset:
            skill_delete(actor=request.user, skill=skill)

    def get_urls(self):
        return [path("<int:skill_id>/test/", self.policy_view(self.test_view, "skill.test"), name="skills_skill_test"),
                *super().get_urls()]

    def test_view(self, request, skill_id: int):
        skill = get_object_or_404(Skill, pk=skill_id)
        form = SkillTestForm(request.POST or None)
        outcome = None
        if request.method == "POST" and form.is_valid():
            outcome = skill_execute(skill=skill, arguments=form.cleaned_data["sample_input"], context=SkillContext(
                instance=connection.schema_name, user_id=request.user.pk, test=True))
        context = {**self.admin_site.each_context(request), "skill": skill, "form": form, "opts": self.opts,
                   "title": f"Test {skill.name}", "outcome": outcome,
                   "request_json": json.dumps(outcome.request, indent=2, default=str) if outcome else "",
                   "response_json": json.dumps(outcome.response, indent=2, default=str) if outcome else ""}
        return TemplateResponse(request, "admin/skills/test.html", context)

from . import mcp_admin  # noqa: E402, F401 - MCP servers and tools on the same admin site
