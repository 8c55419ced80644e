"""Eval cases and eval runs in the instance admin (issue 22): the cases' form shows each
expectation as a field; an eval run's page shows its progress, pass rate and every case's result
with the failing expectation. Writes go through versions.evals.services."""

from __future__ import annotations

import threading

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from spokestack.accounts import policy
from spokestack.admin_site import InstanceModelAdmin, ReadOnlyAdmin, instance_admin
from spokestack.errors import DomainError
from tuning.models import Client, agent_label

from ..models import EvalCase, EvalRun
from . import selectors, services
from .checks import LIST_KINDS

LIST_HELP = {"tools_required": "Tools the run must call, one per line.",
             "tools_forbidden": "Tools the run must not call, one per line.",
             "phrases_required": "Phrases the output must contain (case-insensitive), one per line.",
             "phrases_forbidden": "Phrases the output must not contain (case-insensitive), one per line."}
_viewer = threading.local()  # who is looking at an eval run page: its results table is scoped to them


class EvalCaseForm(forms.ModelForm):
    agent_type = forms.ChoiceField(choices=())
    client = forms.ModelChoiceField(queryset=Client.objects.none(), required=False, empty_label="No client")
    tools_required = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tools_forbidden = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    phrases_required = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    phrases_forbidden = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    brand_rules_pass = forms.BooleanField(required=False, help_text="The client's rules pass the brand check.")
    min_chars = forms.IntegerField(required=False, min_value=0)
    max_chars = forms.IntegerField(required=False, min_value=0)
    artifact_schema = forms.JSONField(required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
                                      help_text="JSON Schema (Draft 2020-12) of the JSON artifact the run saves.")
    rubric = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Graded by the model when one is configured; skipped offline.")

    class Meta:
        model = EvalCase
        fields = ["agent_type", "title", "task", "client", "reference", "enabled"]

    def __init__(self, *args, actor=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from tuning.admin import _agent_type_choices

        self.actor = actor
        self.fields["agent_type"].choices = _agent_type_choices("—")[1:]
        self.fields["client"].queryset = policy.clients_for(actor, "eval.manage").order_by("name")
        for kind in LIST_KINDS:
            self.fields[kind].help_text = LIST_HELP[kind]
        expectations = self.instance.expectations or {}
        for kind in LIST_KINDS:
            self.initial[kind] = "\n".join(expectations.get(kind, []))
        for kind in ("brand_rules_pass", "min_chars", "max_chars", "artifact_schema", "rubric"):
            if kind in expectations:
                self.initial[kind] = expectations[kind]

    def changes(self) -> dict:
        data = self.cleaned_data
        expectations = {kind: [line.strip() for line in (data.get(kind) or "").splitlines() if line.strip()]
                        for kind in LIST_KINDS}
        expectations.update(brand_rules_pass=bool(data.get("brand_rules_pass")), min_chars=data.get("min_chars"),
                            max_chars=data.get("max_chars"), artifact_schema=data.get("artifact_schema") or None,
                            rubric=data.get("rubric") or None)
        client = data.get("client")
        return {"agent_type": data.get("agent_type"), "title": data.get("title") or "", "task": data.get("task"),
                "client_id": client.pk if client else None, "reference": data.get("reference") or "",
                "enabled": bool(data.get("enabled")), "expectations": expectations}

    def _post_clean(self) -> None:  # the service validates (same messages as the API)
        if self.errors:
            return
        from .checks import clean_expectations

        try:
            clean_expectations({k: v for k, v in self.changes()["expectations"].items() if v not in (None, [], False)})
        except DomainError as exc:
            field = next(iter(exc.details or {}), "").removeprefix("expectations.")
            self.add_error(field if field in self.fields else None, exc.message)


@admin.register(EvalCase, site=instance_admin)
class EvalCaseAdmin(InstanceModelAdmin):
    view_action = "eval.view"
    add_action = change_action = delete_action = "eval.manage"
    form = EvalCaseForm
    list_display = ["__str__", "agent", "client", "expectation_list", "enabled", "updated_at"]
    list_filter = ["agent_type", "client", "enabled"]
    list_select_related = ["client"]
    search_fields = ["title", "task"]
    actions = ["run_eval_set"]
    def get_urls(self):
        return [path("from-run/<uuid:run_id>/", self.policy_view(self.from_run_view, "eval.manage"),
                     name="versions_evalcase_from_run"), *super().get_urls()]

    def from_run_view(self, request, run_id):
        """The run page's "Make an eval case": the case is made (its output the reference, expectations
        proposed) and opened for editing; a refusal goes back to the run with its reason."""
        run_page = reverse("instance_admin:agents_agentrun_change", args=[run_id])
        if request.method != "POST":
            return HttpResponseRedirect(run_page)
        try:
            case = services.eval_case_from_run(actor=request.user, run_id=run_id)
        except DomainError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(run_page)
        messages.success(request, "Eval case made from this run: its output is the reference and the expectations "
                                  "below were proposed from it; adjust them and save.")
        return HttpResponseRedirect(reverse("instance_admin:versions_evalcase_change", args=[case.pk]))

    fieldsets = [
        (None, {"fields": ["agent_type", "title", "task", "client", "enabled"]}),
        ("Expectations", {"fields": ["tools_required", "tools_forbidden", "brand_rules_pass", "phrases_required",
                                     "phrases_forbidden", "min_chars", "max_chars", "artifact_schema", "rubric"]}),
        ("Reference", {"fields": ["reference"]}),
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["fields"] = ["agent_type", "title", "task", "client", "reference", "enabled"]
        form = super().get_form(request, obj, change, **kwargs)

        class WithActor(form):
            def __init__(self, *args, **kw):
                super().__init__(*args, actor=request.user, **kw)

        return WithActor

    def get_queryset(self, request):
        return selectors.eval_cases(actor=request.user)

    def get_actions(self, request):
        found = super().get_actions(request)
        if not self.allows(request, "eval.run"):
            found.pop("run_eval_set", None)
        return found

    @admin.display(description="Agent", ordering="agent_type")
    def agent(self, case):
        return agent_label(case.agent_type)

    @admin.display(description="Expectations")
    def expectation_list(self, case):
        return ", ".join(k.replace("_", " ") for k in case.expectations) or "—"

    def save_model(self, request, obj, form, change):
        data = form.changes()
        if change:
            saved = services.eval_case_update(actor=request.user, case_id=obj.pk, changes=data)
        else:
            saved = services.eval_case_create(actor=request.user, data=data)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.eval_case_delete(actor=request.user, case_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for case in queryset:
            services.eval_case_delete(actor=request.user, case_id=case.pk)

    @admin.action(description="Run the eval set (of the selected cases' agent types)")
    def run_eval_set(self, request, queryset):
        self.require(request, "eval.run")
        for agent_type in sorted(set(queryset.values_list("agent_type", flat=True))):
            try:
                eval_run = services.eval_run_start(actor=request.user, agent_type=agent_type)
            except DomainError as exc:
                self.message_user(request, f"{agent_label(agent_type)}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{agent_label(agent_type)}: eval run of {eval_run.cases_total} case(s) "
                                           f"on {eval_run.version} started.", messages.SUCCESS)


class WhatIfForm(forms.Form):
    """A tuning change to try before saving it: a client rule, or an avoided term for an agent."""

    agent_type = forms.ChoiceField(choices=(), help_text="The agent whose eval cases run with the change.")
    client = forms.ModelChoiceField(queryset=Client.objects.none(), required=False, empty_label="No client",
                                    help_text="For a client rule: that client's cases run. Leave empty for an "
                                              "avoided term (instance tuning).")
    kind = forms.ChoiceField(choices=[("never", "Never (client rule)"), ("always", "Always (client rule)"),
                                      ("prefer", "Prefer (client rule)"), ("avoid_term", "Avoid the term (instance)")])
    text = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))

    def __init__(self, *args, actor=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from tuning.admin import _agent_type_choices

        self.fields["agent_type"].choices = _agent_type_choices("—")[1:]
        self.fields["client"].queryset = policy.clients_for(actor, "eval.run").filter(
            archived_at__isnull=True).order_by("name")

    def clean(self):
        data = super().clean()
        if data.get("kind") == "avoid_term" and data.get("client"):
            self.add_error("client", "An avoided term is instance tuning: leave the client empty.")
        elif data.get("kind") in ("never", "always", "prefer") and not data.get("client"):
            self.add_error("client", "A rule belongs to a client: choose one.")
        return data


@admin.register(EvalRun, site=instance_admin)
class EvalRunAdmin(ReadOnlyAdmin):
    view_action = "eval.view"
    change_form_template = "admin/versions/evalrun/change_form.html"
    list_display = ["__str__", "agent", "version", "status", "progress", "pass_rate_shown", "cost_usd", "created_at"]
    list_filter = ["agent_type", "status"]
    fields = ["agent_type", "version", "tuning_overlay", "status", "progress", "pass_rate_shown", "cost_usd",
              "change", "started_at", "finished_at", "results_table"]
    readonly_fields = fields

    def get_queryset(self, request):
        return selectors.eval_runs(actor=request.user)

    def get_urls(self):
        return [path("what-if/", self.policy_view(self.what_if_view, "eval.run"), name="versions_evalrun_what_if"),
                path("<uuid:eval_run_id>/save-what-if/", self.policy_view(self.what_if_save_view, "eval.view"),
                     name="versions_evalrun_what_if_save"), *super().get_urls()]

    def what_if_view(self, request):
        """The tuning form's "What-if": the agent's eval cases run with the change told and checked;
        nothing is saved until "Save this change" on the finished eval run's page."""
        from django.template.response import TemplateResponse

        from .gating import what_if_start

        initial = {k: request.GET[k] for k in ("agent_type", "client", "kind", "text") if k in request.GET}
        form = WhatIfForm(request.POST or None, initial=initial, actor=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                runs = what_if_start(actor=request.user, client_id=data["client"].pk if data["client"] else None,
                                     agent_type=data["agent_type"], rules=[{"kind": data["kind"], "text": data["text"]}])
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"What-if eval started on {runs[0].cases_total} case(s); nothing is saved. "
                                          "When it has finished, save the change from this page.")
                return HttpResponseRedirect(reverse("instance_admin:versions_evalrun_change", args=[runs[0].pk]))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form,
                   "title": "What-if: try a tuning change on the eval cases",
                   "required": _require_eval()}
        return TemplateResponse(request, "admin/versions/evalrun/what_if.html", context)

    def what_if_save_view(self, request, eval_run_id):
        """Save the change a finished what-if eval tried: the client's rules, or the agent's avoided
        terms (the tuning services ask the policy and the instance's requirement again)."""
        page = reverse("instance_admin:versions_evalrun_change", args=[eval_run_id])
        eval_run = self.get_queryset(request).filter(pk=eval_run_id).first()
        if request.method != "POST" or eval_run is None:
            return HttpResponseRedirect(page)
        try:
            saved = services.what_if_save(actor=request.user, eval_run=eval_run)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, saved)
        return HttpResponseRedirect(page)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        eval_run = self.get_queryset(request).filter(pk=object_id).first() if _is_uuid(object_id) else None
        extra = dict(extra_context or {})
        if eval_run is not None:
            extra["running"] = eval_run.status in (EvalRun.Status.QUEUED, EvalRun.Status.RUNNING)
            extra["what_if_save"] = _what_if_save_offer(request.user, eval_run)
        return self._change_view(request, object_id, form_url, extra)

    def get_fields(self, request, obj=None):
        if policy.acts_on_every_client(request.user, "eval.view"):
            return self.fields
        return [f for f in self.fields if f not in ("pass_rate_shown", "cost_usd", "change")]

    @admin.display(description="Agent", ordering="agent_type")
    def agent(self, eval_run):
        return agent_label(eval_run.agent_type)

    @admin.display(description="Progress")
    def progress(self, eval_run):
        return f"{eval_run.cases_done}/{eval_run.cases_total}"

    @admin.display(description="Pass rate")
    def pass_rate_shown(self, eval_run):
        return "—" if eval_run.pass_rate is None else f"{eval_run.cases_passed}/{eval_run.cases_done} " \
                                                      f"({eval_run.pass_rate:.0%})"

    @admin.display(description="Change against the previous run")
    def change(self, eval_run):
        summary = eval_run.summary or {}
        if not summary.get("previous"):
            return "—"
        return (f"previous {summary['previous']['passed']}/{summary['previous']['total']}; newly failing: "
                f"{', '.join(map(str, summary['newly_failing'])) or 'none'}; newly passing: "
                f"{', '.join(map(str, summary['newly_passing'])) or 'none'}")

    @admin.display(description="Results")
    def results_table(self, eval_run):
        viewer = getattr(_viewer, "user", None)
        if viewer is None:  # outside a person's page view: show nobody's results
            return "—"
        rows = selectors.eval_results(actor=viewer, eval_run=eval_run)
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (r.case_title, r.get_status_display(),
             "; ".join(f"{f['expectation']}: {f['message']}" for f in r.failures) or "—",
             ", ".join(r.tools_used) or "—", r.output_excerpt[:200]) for r in rows))
        return format_html('<table><thead><tr><th>Case</th><th>Result</th><th>Failing expectation</th>'
                           "<th>Tools</th><th>Output</th></tr></thead><tbody>{}</tbody></table>", body)

    def _change_view(self, request, object_id, form_url="", extra_context=None):
        _viewer.user = request.user
        try:
            response = super().change_view(request, object_id, form_url, extra_context)
            if hasattr(response, "render"):
                response.render()  # while the viewer is known
            return response
        finally:
            _viewer.user = None


def _is_uuid(value) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _require_eval() -> bool:
    from .gating import require_eval_enabled

    return require_eval_enabled()


def _what_if_save_offer(actor, eval_run: EvalRun) -> str:
    """What "Save this change" would save, for whom the tuning services would let save it; "" when
    there is nothing to save (not a what-if, not finished, or not theirs to change)."""
    overlay = eval_run.tuning_overlay or {}
    rules = overlay.get("rules") or []
    if eval_run.status != EvalRun.Status.SUCCEEDED or not rules:
        return ""
    terms = [r["text"] for r in rules if r["kind"] == "avoid_term"]
    client_rules = [r for r in rules if r["kind"] != "avoid_term"]
    client = Client.objects.filter(pk=overlay.get("client_id")).first() if overlay.get("client_id") else None
    if client_rules and (client is None or not policy.allows(actor, "client_rule.add", client)):
        return ""
    if terms and not policy.allows(actor, "instance_tuning.edit"):
        return ""
    parts = [f"{r['kind']} “{r['text']}” for {client.name}" for r in client_rules] + \
            [f"avoid “{t}”" for t in terms]
    return (f"{eval_run.cases_passed}/{eval_run.cases_done} cases passed with this change. Save it for "
            f"{agent_label(eval_run.agent_type)}: {'; '.join(parts)}.")
