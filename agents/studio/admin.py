"""The agent studio in the instance admin (issue #18 part 6): the list of agency-built agents, the
builder (a change form for the definition, with the tool library as checkboxes grouped by where each
tool comes from, and the draft's prompt preview beside it, refreshed as the form changes), Publish
with a change note, Try in sandbox, Archive, Export and Import of the JSON contract, and the versions
with a diff against the previous one and a Roll back button.

Every write goes through `services`, which ask the policy (`studio.build`) and audit; this module
only renders and routes. Seeing the pages is `studio.view` (instance admins and managers): a
manager sees the builder read-only, and a role without it gets the admin's 403 page.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from agents.models import AgentRun
from agents.registry import get_spec
from spokestack.accounts import policy
from spokestack.admin_site import InstanceModelAdmin, instance_admin
from spokestack.errors import DomainError, InvalidInput
from tuning.admin import TextListField
from tuning.forms import DialsField
from tuning.knowledge.models import DocumentKind
from tuning.models import Vertical

from . import services
from .definition import BOUNDS, DEFAULT_LIMITS, EFFORTS, build_spec, definition_clean
from .library import CORE_GROUP, DELEGATION_GROUP, SKILL_GROUP, LibraryTool, library
from .models import AgencyAgent

LIMIT_LABELS = {"max_iterations": "Model turns", "max_tokens": "Tokens per answer",
                "max_tool_calls_per_turn": "Tool calls per turn", "time_limit_s": "Time limit (seconds)",
                "cost_ceiling_usd": "Cost ceiling (USD)"}
# Traits offered as sliders on every agent (used only when ticked); more can be named in empty rows.
SUGGESTED_TRAITS = ("creativity", "formality", "warmth", "humour")
PLACEHOLDER = "…"


class LinesField(forms.CharField):
    """A list of texts, one per line (a conversation starter may contain commas)."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 70})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value) -> list[str]:
        if isinstance(value, list):
            return value
        return [line.strip() for line in (super().to_python(value) or "").splitlines() if line.strip()]


class AgentDefinitionForm(forms.Form):
    """The definition as a person edits it. The field checks here only make the page helpful
    (lengths, the platform's bounds); the service checks the whole contract again on save and its
    refusals are shown next to the field they name (`show_refusal`)."""

    slug = forms.CharField(max_length=40, help_text="Its agent type, e.g. pr_pitch: lower case letters, digits and _, "
                                                    "never a core agent's. It cannot be changed later.")
    title = forms.CharField(max_length=120, widget=forms.TextInput(attrs={"size": 50}))
    purpose = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2, "cols": 70}),
                              help_text="One or two sentences: what it is for (shown in the agents list).")
    instructions = forms.CharField(max_length=8000, widget=forms.Textarea(attrs={"rows": 10, "cols": 70}),
                                   help_text="How it works. The platform's frame (ground rules, limits, output "
                                             "rules) always wraps these instructions.")
    persona_voice = forms.CharField(label="Voice", max_length=500, required=False,
                                    widget=forms.TextInput(attrs={"size": 60}),
                                    help_text="e.g. Warm and witty, never salesy.")
    persona_traits = DialsField(names=SUGGESTED_TRAITS, free_names=True, label="Traits",
                                help_text="0–100 each: tick a trait to use it; name another in an empty row "
                                          "(at most 8).")
    tools = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    knowledge_kinds = forms.MultipleChoiceField(label="Knowledge it searches", choices=DocumentKind.choices,
                                                required=False, widget=forms.CheckboxSelectMultiple,
                                                help_text="None ticked: every kind of document.")
    limit_effort = forms.ChoiceField(label="Effort", required=False,
                                     choices=[("", "Platform default"), *[(e, e.capitalize()) for e in EFFORTS]])
    spec_vertical = forms.ChoiceField(label="Vertical", required=False,
                                      choices=[("", "The client's"), *Vertical.choices])
    spec_region = forms.CharField(label="Region", required=False, max_length=20,
                                  widget=forms.TextInput(attrs={"size": 10}))
    spec_language = forms.CharField(label="Language", required=False, max_length=10,
                                    widget=forms.TextInput(attrs={"size": 6}))
    require_approval = TextListField(label="Needs approval",
                                     help_text="Tool names or patterns (save_*, skill.*) a person approves before "
                                               "they run, besides the platform's delete_* and publish_*.")
    starters = LinesField(label="Conversation starters", required=False,
                          help_text="One per line, at most 6: offered when someone opens a thread with it.")
    icon = forms.CharField(max_length=8, required=False, widget=forms.TextInput(attrs={"size": 4}),
                           help_text="An emoji or up to 8 characters.")
    colour = forms.CharField(max_length=7, required=False,
                             widget=forms.TextInput(attrs={"size": 8, "placeholder": "#1f6feb"}),
                             help_text="#rrggbb, e.g. #1f6feb.")
    reason = forms.CharField(label="Reason", required=False, max_length=500,
                             widget=forms.TextInput(attrs={"size": 60}),
                             help_text="Why you change it: kept in the audit log (optional).")

    def __init__(self, *args, tools: list[LibraryTool], adding: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.library = tools
        self.fields["tools"].choices = [(t.ref, t.ref) for t in tools]
        if not adding:
            del self.fields["slug"]
        for key, (low, high) in BOUNDS.items():
            kind = forms.FloatField if key == "cost_ceiling_usd" else forms.IntegerField
            self.fields[f"limit_{key}"] = kind(
                label=LIMIT_LABELS[key], required=False, min_value=low, max_value=high,
                widget=forms.NumberInput(attrs={"step": "0.01" if kind is forms.FloatField else "1",
                                                "placeholder": str(DEFAULT_LIMITS[key]), "style": "width: 7em"}),
                help_text=f"{low}–{high}; empty: {DEFAULT_LIMITS[key]}.")

    def limit_fields(self) -> list[forms.BoundField]:
        return [self[f"limit_{key}"] for key in BOUNDS] + [self["limit_effort"]]

    def definition(self) -> dict[str, Any]:
        """The definition of what was typed (a field that did not validate is left out, and the three
        texts every definition has read "…" while empty: the preview shows a draft being written)."""
        data = getattr(self, "cleaned_data", {})
        out: dict[str, Any] = {key: data.get(key) or PLACEHOLDER for key in ("title", "purpose", "instructions")}
        out["tools"] = list(data.get("tools") or [])
        persona = {key: data[f"persona_{key}"] for key in ("voice", "traits") if data.get(f"persona_{key}")}
        if persona:
            out["persona"] = persona
        if data.get("knowledge_kinds"):
            out["knowledge_kinds"] = list(data["knowledge_kinds"])
        limits = {key: data[f"limit_{key}"] for key in BOUNDS if data.get(f"limit_{key}") is not None}
        if data.get("limit_effort"):
            limits["effort"] = data["limit_effort"]
        if limits:
            out["limits"] = limits
        specialization = {key: data[f"spec_{key}"] for key in ("vertical", "region", "language")
                          if data.get(f"spec_{key}")}
        if specialization:
            out["specialization"] = specialization
        for key in ("require_approval", "starters", "icon", "colour"):
            if data.get(key):
                out[key] = data[key]
        return out

    def field_for(self, key: str) -> str | None:
        """The form field a contract path names: "persona.traits.warmth" → persona_traits,
        "limits.max_tokens" → limit_max_tokens, "tools[2]" → tools."""
        parts = [p for p in re.split(r"[.\[\]]", key) if p]
        if not parts:
            return None
        prefix = {"persona": "persona_", "limits": "limit_", "specialization": "spec_"}.get(parts[0])
        name = (prefix + parts[1] if len(parts) > 1 else {"persona": "persona_traits", "limits": "limit_max_tokens",
                                                           "specialization": "spec_vertical"}[parts[0]]) \
            if prefix else parts[0]
        return name if name in self.fields else None


def initial_from(definition: dict[str, Any]) -> dict[str, Any]:
    """The form's values for a stored definition (the draft)."""
    persona = definition.get("persona") or {}
    limits = definition.get("limits") or {}
    specialization = definition.get("specialization") or {}
    initial = {key: definition.get(key, "") for key in ("title", "purpose", "instructions", "icon", "colour")}
    initial.update(persona_voice=persona.get("voice", ""), persona_traits=persona.get("traits") or {},
                   tools=list(definition.get("tools") or []), knowledge_kinds=definition.get("knowledge_kinds") or [],
                   limit_effort=limits.get("effort", ""), require_approval=definition.get("require_approval") or [],
                   starters=definition.get("starters") or [])
    initial.update({f"limit_{key}": limits.get(key) for key in BOUNDS})
    initial.update({f"spec_{key}": specialization.get(key, "") for key in ("vertical", "region", "language")})
    return initial


def show_refusal(form: AgentDefinitionForm, exc: DomainError) -> None:
    """A service's refusal next to the fields it names (InvalidInput.details is {path: [messages]});
    what names no field of the form goes to the top of the form."""
    details = exc.details if isinstance(exc.details, dict) else {}
    if not details:
        form.add_error("slug" if "slug" in form.fields and "slug" in exc.message.lower() else None, exc.message)
        return
    for key, problems in details.items():
        field = form.field_for(str(key))
        line = re.search(r"\[(\d+)\]", str(key))
        for problem in problems if isinstance(problems, list) else [problems]:
            text = str(problem)
            if len(text.split()) <= 2:  # a code ("invalid", "required"): the service's sentence says more
                text = exc.message.split(": ", 1)[-1] if exc.message.startswith(f"{key}:") else exc.message
            elif line and field in ("require_approval", "starters"):
                text = f"Line {int(line.group(1)) + 1}: {text}"
            elif field is None or str(key).count(".") > 1:  # e.g. persona.traits.warmth names the trait
                text = f"{key}: {text}"
            form.add_error(field, text)


def group_label(group: str) -> str:
    if group == CORE_GROUP:
        return "Core tools"
    if group == SKILL_GROUP:
        return "This instance's skills (webhooks and handlers)"
    if group == DELEGATION_GROUP:
        return "Delegate to another agent (a child run)"
    spec = get_spec(group)
    return f"{spec.title} agent" if spec else group


def tool_groups(form: AgentDefinitionForm) -> list[dict[str, Any]]:
    """The library as the builder shows it: core agents' groups, then the core tools, then the skills;
    in each, the read-only tools before those that write."""
    value = form["tools"].value() or []
    chosen = set(value if isinstance(value, list | tuple) else [value])
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in form.library:
        groups.setdefault(entry.group, []).append({"entry": entry, "checked": entry.ref in chosen})
    order = sorted(groups, key=lambda g: (g == SKILL_GROUP, g == CORE_GROUP, g))
    return [{"group": g, "label": group_label(g), "count": sum(row["checked"] for row in groups[g]),
             "tools": sorted(groups[g], key=lambda row: row["entry"].side_effect)} for g in order]


def preview_of(definition: dict[str, Any], tools: list[LibraryTool], problems: list[str]) -> dict[str, Any]:
    """A definition's base prompt as a run of it would get it: tier 1, the platform's frame around it
    with the chosen library tools, made by the same `build_spec` as a published version's spec."""
    by_ref = {entry.ref: entry for entry in tools}
    spec = build_spec(slug="draft", version="draft", definition=definition, owner=connection.schema_name,
                      library=by_ref)
    chosen = [by_ref[ref] for ref in definition.get("tools") or [] if ref in by_ref]
    return {"prompt": spec.base_prompt, "characters": len(spec.base_prompt),
            "tools": [entry.name for entry in chosen], "writes": [entry.name for entry in chosen if entry.side_effect],
            "approval": list(spec.confirmation_patterns), "problems": problems}


def draft_preview(form: AgentDefinitionForm) -> dict[str, Any]:
    """The preview of what the form holds, and what would keep it from being saved."""
    form.is_valid()
    definition = form.definition()
    problems = [f"{form[name].label}: {' '.join(errors)}" if name != "__all__" else " ".join(errors)
                for name, errors in form.errors.items()]
    if not problems:
        try:
            definition_clean(definition, tools_available={entry.ref: entry for entry in form.library})
        except InvalidInput as exc:
            problems = [f"{key}: {' '.join(map(str, messages_))}" for key, messages_ in (exc.details or {}).items()]
    return preview_of(definition, form.library, problems)


def definition_diff(old: dict | None, new: dict) -> list[dict[str, str]] | None:
    """A version's definition against the previous one's, line by line on pretty-printed JSON
    (None for the first version)."""
    if old is None:
        return None
    lines = list(difflib.unified_diff(_pretty(old).splitlines(), _pretty(new).splitlines(), lineterm="", n=2))
    rows = []
    for line in lines[2:]:  # after the ---/+++ header
        if line.startswith("@@"):
            rows.append({"kind": "hunk", "sign": "", "text": "…"})
        else:
            rows.append({"kind": {"+": "add", "-": "del"}.get(line[:1], "same"), "sign": line[:1].strip(),
                         "text": line[1:]})
    return rows


def _pretty(definition: dict) -> str:
    return json.dumps(definition, indent=2, sort_keys=True, ensure_ascii=False)


class SandboxForm(forms.Form):
    task = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=4000,
                           help_text="What you would ask it, e.g. a pitch for the spring launch.")
    client = forms.ChoiceField(required=False, label="For client")

    def __init__(self, *args, actor, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["client"].choices = [("", "No client"), *[
            (str(c.pk), c.name) for c in policy.visible_clients(actor).order_by("name")]]


class ImportForm(forms.Form):
    file = forms.FileField(required=False, label="Contract file", help_text="A .json file as Export JSON gives it.")
    contract = forms.CharField(required=False, label="Or paste it",
                               widget=forms.Textarea(attrs={"rows": 14, "cols": 90, "spellcheck": "false"}))
    reason = forms.CharField(required=False, max_length=500, widget=forms.TextInput(attrs={"size": 60}),
                             help_text="Kept in the audit log (optional).")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        uploaded = data.get("file")
        text = uploaded.read().decode("utf-8", errors="replace") if uploaded else (data.get("contract") or "")
        if not text.strip():
            raise forms.ValidationError("Choose a contract file or paste the contract.")
        try:
            data["parsed"] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from exc
        return data


@admin.register(AgencyAgent, site=instance_admin)
class AgencyAgentAdmin(InstanceModelAdmin):
    """The studio: agency-built agents, their builder and their versions (policy studio.view to see,
    studio.build to change)."""

    view_action = "studio.view"
    add_action = change_action = "studio.build"
    delete_action = None  # an agent is archived, never deleted: runs and the audit log name it
    list_display = ("slug_code", "title", "status", "version_column", "unpublished")
    list_display_links = ("slug_code", "title")
    list_filter = ("status",)
    search_fields = ("slug", "title")
    list_select_related = ("current_version",)
    change_list_template = "admin/studio/agencyagent/change_list.html"
    actions = None

    @admin.display(description="Slug", ordering="slug")
    def slug_code(self, agent: AgencyAgent) -> str:
        return format_html("<code>{}</code>", agent.slug)

    @admin.display(description="Current version")
    def version_column(self, agent: AgencyAgent) -> str:
        return f"v{agent.current_version.number}" if agent.current_version_id else "—"

    @admin.display(description="Unpublished changes", boolean=True)
    def unpublished(self, agent: AgencyAgent) -> bool:
        return has_unpublished_changes(agent)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Agency-built agents",
                                                 "may_build": self.allows(request, "studio.build"),
                                                 **(extra_context or {})})

    def get_urls(self):
        view = self.policy_view
        return [
            path("preview/", view(self.preview_view, "studio.view"), name="studio_agencyagent_preview"),
            path("import/", view(self.import_view, "studio.build"), name="studio_agencyagent_import"),
            path("<int:agent_id>/publish/", view(self.publish_view, "studio.build"),
                 name="studio_agencyagent_publish"),
            path("<int:agent_id>/rollback/<int:number>/", view(self.rollback_view, "studio.build"),
                 name="studio_agencyagent_rollback"),
            path("<int:agent_id>/archive/", view(self.archive_view, "studio.build"),
                 name="studio_agencyagent_archive"),
            path("<int:agent_id>/sandbox/", view(self.sandbox_view, "studio.build"),
                 name="studio_agencyagent_sandbox"),
            path("<int:agent_id>/export/", view(self.export_view, "studio.view"), name="studio_agencyagent_export"),
            *super().get_urls(),
        ]

    # --- the builder ------------------------------------------------------------------------------

    def add_view(self, request, form_url="", extra_context=None):
        self.require(request, "studio.build")
        tools = library()
        if request.method != "POST":
            form = AgentDefinitionForm(tools=tools, adding=True)
            return self._builder(request, form, agent=None)
        form = AgentDefinitionForm(request.POST, tools=tools, adding=True)
        if form.is_valid():
            try:
                agent = services.agent_create(actor=request.user, slug=form.cleaned_data["slug"],
                                              definition=form.definition(), reason=form.cleaned_data["reason"])
            except DomainError as exc:
                if exc.status in (403, 404) or exc.status >= 500:
                    raise
                show_refusal(form, exc)
            else:
                messages.success(request, f"{agent.title} created as a draft: try it in the sandbox, then publish "
                                          "v1 so runs can use it.")
                return HttpResponseRedirect(_page(agent))
        return self._builder(request, form, agent=None, status=400)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        agent = self.get_object(request, object_id)
        if agent is None:
            raise Http404("No such agency-built agent in this instance.")
        tools = library()
        if request.method != "POST":
            return self._builder(request, AgentDefinitionForm(initial=initial_from(agent.draft), tools=tools,
                                                              adding=False), agent=agent)
        self.require(request, "studio.build")
        form = AgentDefinitionForm(request.POST, tools=tools, adding=False)
        if form.is_valid():
            try:
                before = agent.draft
                agent = services.agent_draft_update(actor=request.user, slug=agent.slug, definition=form.definition(),
                                                    reason=form.cleaned_data["reason"])
            except DomainError as exc:
                if exc.status in (403, 404) or exc.status >= 500:
                    raise
                show_refusal(form, exc)
            else:
                if agent.draft == before:
                    messages.info(request, "Nothing changed in the draft.")
                else:
                    messages.success(request, "Draft saved. Runs keep using the published version until you "
                                              "publish the draft.")
                return HttpResponseRedirect(_page(agent))
        return self._builder(request, form, agent=agent, status=400)

    def _builder(self, request: HttpRequest, form: AgentDefinitionForm, *, agent: AgencyAgent | None,
                 status: int = 200) -> TemplateResponse:
        may_build = self.allows(request, "studio.build")
        if not may_build:
            for field in form.fields.values():
                field.disabled = True
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "agent": agent, "form": form,
            "title": agent.title if agent else "Add an agent", "may_build": may_build,
            "tool_groups": tool_groups(form), "preview_url": reverse("instance_admin:studio_agencyagent_preview"),
        }
        if form.is_bound:
            context["preview"] = draft_preview(form)
        elif agent is not None:
            context["preview"] = preview_of(agent.draft, form.library, [])
        else:  # an empty form: the platform's frame with the places the definition fills
            context["preview"] = draft_preview(AgentDefinitionForm({}, tools=form.library, adding=True))
        if agent is not None:
            context.update(
                versions=versions_of(agent), unpublished=has_unpublished_changes(agent),
                sandbox_form=SandboxForm(actor=request.user, prefix="sandbox"),
                test_runs=_test_runs(agent),
                urls={name: reverse(f"instance_admin:studio_agencyagent_{name}", args=[agent.pk])
                      for name in ("publish", "archive", "sandbox", "export")})
        return TemplateResponse(request, "admin/studio/agencyagent/builder.html", context, status=status)

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """POST: the builder's form data → the draft's base prompt (JSON), for the preview beside the
        form, refreshed as the form changes. Nothing is saved."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        form = AgentDefinitionForm(request.POST, tools=library(), adding="slug" in request.POST)
        return JsonResponse(draft_preview(form))

    # --- lifecycle buttons ------------------------------------------------------------------------

    def publish_view(self, request: HttpRequest, agent_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        agent = get_object_or_404(AgencyAgent, pk=agent_id)
        try:
            version = services.agent_publish(actor=request.user, slug=agent.slug,
                                             change_note=request.POST.get("change_note") or "")
        except DomainError as exc:
            if exc.status in (403, 404) or exc.status >= 500:
                raise
            messages.error(request, f"Not published. {exc.message}")
        else:
            messages.success(request, f"Published v{version.number} of {agent.slug}: new runs use it; runs and "
                                      "threads already started keep their version.")
        return HttpResponseRedirect(_page(agent))

    def rollback_view(self, request: HttpRequest, agent_id: int, number: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        agent = get_object_or_404(AgencyAgent, pk=agent_id)
        try:
            version = services.agent_rollback(actor=request.user, slug=agent.slug, number=number,
                                              reason=(request.POST.get("reason") or "").strip()[:500])
        except DomainError as exc:
            if exc.status in (403, 404) or exc.status >= 500:
                raise
            messages.error(request, f"Not rolled back. {exc.message}")
        else:
            messages.success(request, f"Rolled back to v{number}: published again as v{version.number}, new runs use it.")
        return HttpResponseRedirect(_page(agent))

    def archive_view(self, request: HttpRequest, agent_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        agent = get_object_or_404(AgencyAgent, pk=agent_id)
        archived = request.POST.get("archived") != "0"
        agent = services.agent_archive(actor=request.user, slug=agent.slug, archived=archived,
                                       reason=(request.POST.get("reason") or "").strip()[:500])
        messages.success(request, f"{agent.title} archived: no new runs or threads (those started finish)."
                         if archived else f"{agent.title} unarchived: {agent.get_status_display().lower()}.")
        return HttpResponseRedirect(_page(agent))

    def sandbox_view(self, request: HttpRequest, agent_id: int) -> HttpResponse:
        """Try the saved draft: a sandbox run (side effects simulated), then a link to the run's page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        agent = get_object_or_404(AgencyAgent, pk=agent_id)
        form = SandboxForm(request.POST, actor=request.user, prefix="sandbox")
        if not form.is_valid():
            messages.error(request, "Not started. " + " ".join(
                f"{form[name].label}: {' '.join(errors)}"
                for name, errors in form.errors.items()))
            return HttpResponseRedirect(_page(agent))
        client = form.cleaned_data["client"]
        try:
            created = services.agent_test_run(actor=request.user, slug=agent.slug, task=form.cleaned_data["task"],
                                              client_id=int(client) if client else None)
        except DomainError as exc:
            if exc.status >= 500:
                raise
            messages.error(request, f"Not started. {exc.message}")
        else:
            run = created.run
            messages.success(request, format_html(
                'Sandbox run of the draft started: <a href="{}" id="sandbox-run-link">open run {}</a> to follow it.',
                reverse("instance_admin:agents_agentrun_change", args=[run.pk]), str(run.pk)[:8]))
        return HttpResponseRedirect(_page(agent))

    def export_view(self, request: HttpRequest, agent_id: int) -> HttpResponse:
        """The JSON contract of the current version (of the draft while nothing is published), as a
        download."""
        agent = get_object_or_404(AgencyAgent, pk=agent_id)
        number = request.GET.get("version")
        contract = services.agent_export(actor=request.user, slug=agent.slug,
                                         number=int(number) if number and number.isdigit() else None)
        response = HttpResponse(json.dumps(contract, indent=2, ensure_ascii=False) + "\n",
                                content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{agent.slug}.agent.json"'
        return response

    def import_view(self, request: HttpRequest) -> TemplateResponse | HttpResponse:
        """Upload or paste a contract: it becomes an agent of this instance, published as v1; a
        malformed one is refused with each problem naming its field."""
        problems: list[dict[str, str]] = []
        status = 200
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST":
            status = 400
            if form.is_valid():
                try:
                    agent = services.agent_import(actor=request.user, contract=form.cleaned_data["parsed"],
                                                  reason=form.cleaned_data["reason"])
                except DomainError as exc:
                    if exc.status in (403, 404) or exc.status >= 500:
                        raise
                    details = exc.details if isinstance(exc.details, dict) else {}
                    problems = [{"field": str(key), "message": str(message)} for key, messages_ in details.items()
                                for message in (messages_ if isinstance(messages_, list) else [messages_])]
                    form.add_error(None, f"Not imported. {exc.message}")
                else:
                    messages.success(request, f"{agent.title} imported and published as v1.")
                    return HttpResponseRedirect(_page(agent))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": "Import an agent", "problems": problems}
        return TemplateResponse(request, "admin/studio/agencyagent/import.html", context, status=status)


def _page(agent: AgencyAgent) -> str:
    return reverse("instance_admin:studio_agencyagent_change", args=[agent.pk])


def has_unpublished_changes(agent: AgencyAgent) -> bool:
    return agent.current_version_id is None or agent.current_version.definition != agent.draft


def versions_of(agent: AgencyAgent) -> list[dict[str, Any]]:
    """The published versions, newest first, each with its diff against the one before."""
    rows = list(agent.versions.filter(number__isnull=False).select_related("published_by").order_by("number"))
    shown, previous = [], None
    for version in rows:
        shown.append({"version": version, "current": version.pk == agent.current_version_id,
                      "previous": previous.number if previous else None,
                      "diff": definition_diff(previous.definition if previous else None, version.definition),
                      "rollback_url": reverse("instance_admin:studio_agencyagent_rollback",
                                              args=[agent.pk, version.number])})
        previous = version
    return shown[::-1]


def _test_runs(agent: AgencyAgent) -> list:
    """The draft's latest sandbox runs (test versions), for links back to them."""
    return list(AgentRun.objects.filter(agent_type=agent.slug, sandbox=True, agent_version__endswith="-test")
                .order_by("-created_at")[:5])

