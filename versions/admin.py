"""The agents dashboard (per agent: version, status, policy, optimization, update available with
its recommendation, skills, history) and the sandbox page, in the instance admin."""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from agents.registry import core_agent_types, get_spec, versions
from spokestack.admin_site import ReadOnlyAdmin, instance_admin
from spokestack.errors import Conflict, DomainError

from . import selectors, services
from .analysis import OPTIMIZATION_TAGS
from .comparison import session_dict
from .evals import admin as _evals_admin  # noqa: F401  (registers the eval cases' and runs' pages)
from .models import AgentVersionConfig, SandboxSession, UpdateNotification, UpdatePolicy, VersionChange

# Raw HTML in the text is escaped (not passed through) and links are checked (no javascript: or
# data: URLs), so release notes and update details render as safe HTML.
_MARKDOWN = MarkdownIt("js-default")
TAG_LABELS = {"roas": "ROAS", "cpa": "CPA"}


def markdown_html(text: str) -> SafeString:
    return mark_safe(_MARKDOWN.render(text or ""))  # noqa: S308 - markdown-it escapes raw HTML (html=False)


def readable(value) -> str:
    """A compared value in words: a channel split as "search 60 %, social 40 %", never a dict repr."""
    if value in (None, "", [], {}):
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k} {round(v * 100) if isinstance(v, float) and v <= 1 else v}"
                         f"{' %' if isinstance(v, float) and v <= 1 else ''}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(readable(v) for v in value)
    return str(value).replace("_", " ")


def with_sides(evals: dict | None) -> dict | None:
    """An eval comparison with each case's two results as a list, for the side-by-side table."""
    if evals:
        evals = {**evals, "cases": [{**row, "sides": [row["current"], row["test"]]} for row in evals["cases"]]}
    return evals


def agent_title(agent_type: str) -> str:
    spec = get_spec(agent_type)
    return spec.title if spec else agent_type.replace("_", " ").capitalize()


class VersionSettingsForm(forms.Form):
    """The version settings of one agent type; saved by `services.version_config_update` (audited)."""

    policy = forms.ChoiceField(choices=UpdatePolicy.choices, widget=forms.RadioSelect, label="Update policy")
    follow = forms.ChoiceField(label="Version", widget=forms.RadioSelect,
                               choices=[("latest", "Follow releases (as the policy says)"), ("pin", "Pin a version")])
    pinned_version = forms.ChoiceField(label="Pinned version", required=False,
                                       help_text="Used with \"Pin a version\". Pinning a version other than the one running "
                                                 "switches to it now.")
    optimization_preferences = forms.MultipleChoiceField(
        label="Optimization preferences", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(t, TAG_LABELS.get(t, t.replace("_", " ").capitalize())) for t in sorted(OPTIMIZATION_TAGS)],
        help_text="What this agency optimises for; an update that optimises for something else is marked caution.")
    notify = forms.BooleanField(label="E-mail about releases", required=False)
    notify_contacts = forms.CharField(label="Notification contacts", required=False,
                                      widget=forms.Textarea(attrs={"rows": 3, "cols": 50}))
    reason = forms.CharField(label="Reason", required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 50}),
                             help_text="Why you change this; kept in the audit log.")
    ticket = forms.CharField(label="Ticket", required=False, max_length=100,
                             help_text="A ticket or request reference, if there is one.")

    def __init__(self, *args, agent_type: str, admins: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pinned_version"].choices = [("", "—"), *[(v, v) for v in reversed(versions(agent_type))]]
        default = ", ".join(admins) if admins else "nobody yet: this instance has no admin with an e-mail address"
        self.fields["notify_contacts"].help_text = (
            f"One e-mail address per line. Leave empty to e-mail the instance admins ({default}); "
            "this default applies wherever release e-mails are sent.")

    def clean_notify_contacts(self) -> list[str]:
        contacts = [c for c in re.split(r"[\s,;]+", self.cleaned_data["notify_contacts"]) if c]
        for email in contacts:
            try:
                validate_email(email)
            except ValidationError:
                raise ValidationError(f"'{email}' is not an e-mail address.") from None
        return list(dict.fromkeys(contacts))

    def clean(self):
        data = super().clean()
        if data.get("follow") == "pin" and not data.get("pinned_version"):
            self.add_error("pinned_version", "Choose the version to pin, or follow releases.")
        return data

    def changes(self) -> dict:
        data = self.cleaned_data
        return {"policy": data["policy"], "pinned_version": data["pinned_version"] if data["follow"] == "pin" else "",
                "optimization_preferences": data["optimization_preferences"], "notify": data["notify"],
                "notify_contacts": data["notify_contacts"]}


class SandboxTestForm(forms.Form):
    """A task run on both versions, for a client (its tuning and client-bound tools) if chosen."""

    task = forms.CharField(label="Task", widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
                           help_text="What the agent should do; both versions get the same task.")
    client = forms.ModelChoiceField(label="Client", required=False, queryset=None, empty_label="No client",
                                    help_text="Run for this client: its brand voice, rules and client-bound tools.")
    vertical = forms.CharField(label="Vertical", required=False, max_length=60,
                               help_text="Optional, e.g. beauty or e-commerce; the client's own when left empty.")
    region = forms.CharField(label="Region", required=False, max_length=60, help_text="Optional, e.g. GCC, uae or EU.")
    language = forms.CharField(label="Language", required=False, max_length=60, help_text="Optional, e.g. en or Arabic.")

    def __init__(self, *args, clients, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["client"].queryset = clients

    def specialization(self) -> dict[str, str]:
        return {k: self.cleaned_data[k] for k in ("vertical", "region", "language") if self.cleaned_data[k].strip()}


SANDBOX_DECISIONS = {
    "promote": ("Promote {test}", "{title} will run {test} for every client from now on."),
    "reject": ("Reject {test}", "{title} stays on {current}, pinned there so the next release does not move it."),
    "defer": ("Defer the decision on {test}", "The session ends without a change; the update stays in the updates "
                                               "to review, so you can test it again later."),
}


class SandboxDecisionForm(forms.Form):
    reason = forms.CharField(label="Reason", required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                             help_text="Why you decide so; kept with the session, in the version history and the "
                                       "audit log.")
    notes = forms.CharField(label="Review notes", required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
                            help_text="What you saw in the tests; kept with the session.")

    def __init__(self, *args, decision: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.decision = decision
        if decision == "reject":
            self.fields["reason"].label = "Reason (required)"
            self.fields["reason"].help_text = "Required: say why you stay on the current version. " + (
                self.fields["reason"].help_text)

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if self.decision == "reject" and not reason:
            raise ValidationError("Say why you reject this version.")
        return reason


class RollbackForm(forms.Form):
    version = forms.ChoiceField(label="Roll back to")
    reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 2, "cols": 50}),
                             help_text="Why you go back; kept in the version history and the audit log.")
    force = forms.BooleanField(label="Switch anyway", required=False,
                               help_text="Needed only for a version this instance never ran: it was not tested "
                                         "here, so confirm that you want to switch to it.")

    def __init__(self, *args, agent_type: str, current: str, **kwargs):
        super().__init__(*args, **kwargs)
        ran = set(VersionChange.objects.filter(agent_type=agent_type).values_list("version", flat=True))
        self.fields["version"].choices = [(v, v if v in ran else f"{v} (never ran here)")
                                          for v in reversed(versions(agent_type)) if v != current]


@admin.register(AgentVersionConfig, site=instance_admin)
class AgentVersionsAdmin(ReadOnlyAdmin):
    """The changelist is the agents dashboard; every change goes through the services."""

    view_action = "version.view"

    def get_urls(self):
        view = self.policy_view
        return [
            path("update/<int:notification_id>/", view(self.update_view, "version.view"), name="versions_update"),
            path("update/<int:notification_id>/<str:action>/", view(self.review_view, "version.configure"),
                 name="versions_review"),
            path("sandbox/<uuid:session_id>/", view(self.sandbox_view, "sandbox.view"), name="versions_sandbox"),
            path("sandbox/<uuid:session_id>/status/", view(self.sandbox_status_view, "sandbox.view"),
                 name="versions_sandbox_status"),
            path("sandbox/<uuid:session_id>/<str:decision>/", view(self.sandbox_decide_view, "sandbox.decide"),
                 name="versions_sandbox_decide"),
            path("rollback/<str:agent_type>/", view(self.rollback_view, "version.configure"),
                 name="versions_rollback"),
            path("settings/<str:agent_type>/", view(self.settings_view, "version.configure"),
                 name="versions_settings"),
            path("submit-skill/<int:skill_id>/", view(self.submit_skill_view, "version.configure"),
                 name="versions_submit_skill"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        from skills.selectors import skills_for_agent_type

        self.require(request, self.view_action)
        see_skills, see_sandboxes = self.allows(request, "skill.view"), self.allows(request, "sandbox.view")
        agents = []
        for agent_type in core_agent_types():  # the core agents' versions
            state = selectors.version_state(actor=request.user, agent_type=agent_type)
            for h in state["history"]:
                h["action_label"] = VersionChange.Action(h["action"]).label
            testing = (SandboxSession.objects.filter(agent_type=agent_type, status=SandboxSession.Status.ACTIVE,
                                                     test_version=state["pending_update"]["version"]).first()
                       if state["pending_update"] and see_sandboxes else None)
            spec = get_spec(agent_type, state["current_version"])
            skills = list(skills_for_agent_type(agent_type=agent_type, enabled_only=False)) if see_skills else []
            config = (AgentVersionConfig.objects.filter(agent_type=agent_type).first()
                      or AgentVersionConfig(agent_type=agent_type, current_version=state["current_version"]))
            agents.append({"state": state, "title": spec.title, "testing": testing,
                           "preferences": [TAG_LABELS.get(t, t.replace("_", " ")) for t in
                                           state["optimization_preferences"]], "status": "Active" if spec else "Unknown",
                           "policy_label": UpdatePolicy(state["policy"]).label,
                           "recipients": services.release_recipients(config),
                           "skills": [{"skill": s, "report": services.skill_core_report(skill=s)} for s in skills]})
        sessions = ([{"session": x, "title": agent_title(x.agent_type)}
                     for x in SandboxSession.objects.select_related("decided_by")[:10]] if see_sandboxes else [])
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Agents and versions",
                   "agents": agents, "sessions": sessions,
                   "can_configure": self.allows(request, "version.configure")}
        return TemplateResponse(request, "admin/versions/dashboard.html", context)

    def update_view(self, request, notification_id: int):
        notification = UpdateNotification.objects.filter(pk=notification_id).first()
        if notification is None:
            return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
        config = AgentVersionConfig.objects.filter(agent_type=notification.agent_type).first()
        staged = (config.policy if config else UpdatePolicy.STAGED) == UpdatePolicy.STAGED
        tested = selectors.tested_in_sandbox(agent_type=notification.agent_type, version=notification.version)
        session = SandboxSession.objects.filter(agent_type=notification.agent_type, test_version=notification.version,
                                                status=SandboxSession.Status.ACTIVE).first()
        from .evals.gating import eval_comparison

        evals = with_sides(eval_comparison(agent_type=notification.agent_type, test_version=notification.version,
                                           current_version=config.current_version if config else
                                           notification.from_version))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "n": notification,
                   "content_html": markdown_html(notification.content), "staged": staged, "tested": tested,
                   "evals": evals, "eval_hint": "Testing it in a sandbox runs the eval set on both versions.",
                   "session": session, "can_configure": self.allows(request, "version.configure"),
                   "title": f"{agent_title(notification.agent_type)} {notification.version}: update details"}
        return TemplateResponse(request, "admin/versions/update.html", context)

    def review_view(self, request, notification_id: int, action: str):
        if request.method != "POST":
            return redirect(reverse("instance_admin:versions_update", args=[notification_id]))
        try:
            n, session = services.notification_review(actor=request.user, notification_id=notification_id,
                                                      action=action, reason=request.POST.get("reason") or "")
        except DomainError as exc:
            messages.error(request, exc.message)
            if UpdateNotification.objects.filter(pk=notification_id).exists():
                # back to the update, whose page offers the sandbox
                return redirect(reverse("instance_admin:versions_update", args=[notification_id]))
            return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
        title = agent_title(n.agent_type)
        if session is not None:
            messages.success(request, f"Opened a sandbox for {title}: {session.current_version} and "
                                      f"{session.test_version} side by side for 24 hours.")
            return redirect(reverse("instance_admin:versions_sandbox", args=[session.pk]))
        running = selectors.running_version(n.agent_type)
        messages.success(request, {
            "approve": f"Update approved: {title} now runs {running}.",
            "reject": f"Skipped {n.version}: {title} stays on {running}, pinned there until you change it in "
                      f"Version settings.",
            "defer": f"Deferred the decision on {title} {n.version}; it stays in the updates to review.",
        }[action])
        return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))

    def settings_view(self, request, agent_type: str):
        services.known_agent_type(agent_type)
        state = selectors.version_state(actor=request.user, agent_type=agent_type)
        admins = services.release_recipients(AgentVersionConfig(agent_type=agent_type))  # the default
        initial = {"policy": state["policy"], "follow": "pin" if state["pinned_version"] else "latest",
                   "pinned_version": state["pinned_version"] or state["current_version"],
                   "optimization_preferences": state["optimization_preferences"], "notify": state["notify"],
                   "notify_contacts": "\n".join(state["notify_contacts"])}
        form = VersionSettingsForm(request.POST or None, initial=initial, agent_type=agent_type, admins=admins)
        if request.method == "POST" and form.is_valid():
            try:
                config = services.version_config_update(actor=request.user, agent_type=agent_type,
                                                        changes=form.changes(), reason=form.cleaned_data["reason"],
                                                        ticket=form.cleaned_data["ticket"])
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                follows = f"pinned to {config.pinned_version}" if config.pinned_version else "following releases"
                messages.success(request, f"Saved the version settings of {agent_title(agent_type)}: "
                                          f"{config.get_policy_display().lower()}, {follows}, running "
                                          f"{config.current_version}.")
                return redirect(reverse("instance_admin:versions_settings", args=[agent_type]))
        audit_url = (reverse("instance_admin:tuning_tuningchange_changelist") + "?entity=version_settings"
                     if self.allows(request, "audit.view") else None)
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form, "state": state,
                   "agent_type": agent_type, "audit_url": audit_url,
                   "settings_fields": [f for f in form if f.name not in ("reason", "ticket")],
                   "why_fields": [form["reason"], form["ticket"]],
                   "title": f"{agent_title(agent_type)}: version settings"}
        return TemplateResponse(request, "admin/versions/settings.html", context)

    def _session(self, session_id) -> SandboxSession | None:
        return SandboxSession.objects.select_related("created_by", "decided_by").filter(pk=session_id).first()

    def _sandbox_tests_context(self, request, session: SandboxSession) -> dict:
        data = session_dict(session)
        for t in data["tests"]:
            t["difference_rows"] = [(k.replace("_", " ").capitalize(), readable(d["current"]), readable(d["test"]))
                                    for k, d in t["differences"].items()]
        evals_running = bool(data["evals"]) and data["evals"]["state"] == "running"
        return {"session": data, "title_agent": agent_title(session.agent_type), "evals": with_sides(data["evals"]),
                "evals_running": evals_running,
                "live": session.status == SandboxSession.Status.ACTIVE or evals_running
                or not all(t["finished"] for t in data["tests"])}

    def sandbox_view(self, request, session_id):
        session = self._session(session_id)
        if session is None:
            messages.error(request, "That sandbox session does not exist in this instance.")
            return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
        from spokestack.accounts import policy

        clients = policy.visible_clients(request.user).filter(archived_at__isnull=True).order_by("name")
        form = SandboxTestForm(request.POST or None, clients=clients)
        decision = request.POST.get("decision") if request.method == "POST" else None
        if decision in SANDBOX_DECISIONS:  # a decision is taken on its confirmation page, with a reason
            self.require(request, "sandbox.decide")
            return redirect(reverse("instance_admin:versions_sandbox_decide", args=[session.pk, decision]))
        if request.method == "POST" and "run_evals" in request.POST:
            try:
                services.sandbox_evals_run(actor=request.user, session_id=session.pk)
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"The eval set is running on {session.current_version} and "
                                          f"{session.test_version}; the results appear below side by side.")
            return redirect(reverse("instance_admin:versions_sandbox", args=[session.pk]))
        if request.method == "POST":
            self.require(request, "sandbox.run")
            if form.is_valid():
                client = form.cleaned_data["client"]
                self.require(request, "sandbox.run", client)
                try:
                    services.sandbox_test_add(actor=request.user, session_id=session.pk,
                                              task=form.cleaned_data["task"], client_id=client.pk if client else None,
                                              specialization=form.specialization())
                except DomainError as exc:
                    form.add_error(None, exc.message)
                else:
                    messages.success(request, f"Test started on {session.current_version} and "
                                              f"{session.test_version}{f' for {client.name}' if client else ''}; "
                                              f"its verdict appears below when both runs end.")
                    return redirect(reverse("instance_admin:versions_sandbox", args=[session.pk]))
        active = session.status == SandboxSession.Status.ACTIVE and session.expires_at > timezone.now()
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form,
                   **self._sandbox_tests_context(request, session), "active": active,
                   "can_run": active and self.allows(request, "sandbox.run"),
                   "can_decide": active and self.allows(request, "sandbox.decide"),
                   "status_label": SandboxSession.Status(session.status).label,
                   "title": f"Sandbox: {agent_title(session.agent_type)} {session.current_version} vs "
                            f"{session.test_version}"}
        return TemplateResponse(request, "admin/versions/sandbox.html", context)

    def sandbox_status_view(self, request, session_id):
        """What the sandbox page polls: the tests and the summary, rendered, and whether to poll on."""
        from django.http import JsonResponse
        from django.template.loader import render_to_string

        session = self._session(session_id)
        if session is None:
            return JsonResponse({"error": "No such sandbox session."}, status=404)
        context = self._sandbox_tests_context(request, session)
        data = context["session"]
        return JsonResponse({"status": session.status, "summary": data["summary"], "time_left": data["time_left"],
                             "finished": all(t["finished"] for t in data["tests"]) and not context["evals_running"],
                             "tests": [{"id": t["id"], "verdict": t["verdict"]} for t in data["tests"]],
                             "html": render_to_string("admin/versions/_sandbox_tests.html", context, request)})

    def sandbox_decide_view(self, request, session_id, decision: str):
        session = self._session(session_id)
        if session is None or decision not in SANDBOX_DECISIONS:
            messages.error(request, "That sandbox session or decision does not exist.")
            return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
        back = reverse("instance_admin:versions_sandbox", args=[session.pk])
        title = agent_title(session.agent_type)
        form = SandboxDecisionForm(request.POST or None, decision=decision)
        if request.method == "POST" and form.is_valid():
            reason, notes = form.cleaned_data["reason"], form.cleaned_data["notes"]
            try:
                if decision == "promote":
                    config = services.sandbox_promote(actor=request.user, session_id=session.pk, reason=reason,
                                                      notes=notes)
                    messages.success(request, f"Version {session.test_version} promoted: {title} now runs "
                                              f"{config.current_version}.")
                    return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
                if decision == "reject":
                    config = services.sandbox_reject(actor=request.user, session_id=session.pk, reason=reason,
                                                     notes=notes)
                    messages.success(request, f"Update rejected: {title} stays on {config.current_version}, pinned "
                                              f"there until you change it in Version settings.")
                    return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
                services.sandbox_defer(actor=request.user, session_id=session.pk, reason=reason, notes=notes)
                messages.success(request, f"Decision deferred: {title} stays on {session.current_version} and "
                                          f"{session.test_version} waits in the updates to review.")
                return redirect(back)
            except DomainError as exc:
                messages.error(request, exc.message)
                return redirect(back)
        data = session_dict(session)
        heading, consequence = SANDBOX_DECISIONS[decision]
        names = {"title": title, "test": session.test_version, "current": session.current_version}
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form, "session": data,
                   "decision": decision, "consequence": consequence.format(**names), "back": back,
                   "title": f"{heading.format(**names)}?", "title_agent": title}
        return TemplateResponse(request, "admin/versions/sandbox_decide.html", context)

    def rollback_view(self, request, agent_type: str):
        services.known_agent_type(agent_type)
        state = selectors.version_state(actor=request.user, agent_type=agent_type)
        for h in state["history"]:
            h["action_label"] = VersionChange.Action(h["action"]).label
        form = RollbackForm(request.POST or None, agent_type=agent_type, current=state["current_version"])
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                config = services.version_rollback(actor=request.user, agent_type=agent_type, version=data["version"],
                                                   reason=data["reason"], force=data["force"])
            except DomainError as exc:
                never_ran = isinstance(exc, Conflict) and "version" in exc.details  # needs "Switch anyway"
                form.add_error("force" if never_ran else None, exc.message)
            else:
                messages.success(request, f"{agent_title(agent_type)} now runs {config.current_version}, pinned "
                                          f"there; follow releases again in Version settings when you are ready.")
                return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form, "state": state,
                   "agent_type": agent_type, "title": f"{agent_title(agent_type)}: roll back"}
        return TemplateResponse(request, "admin/versions/rollback.html", context)

    def submit_skill_view(self, request, skill_id: int):
        from skills.models import Skill

        skill = Skill.objects.filter(pk=skill_id).first()
        if request.method == "POST" and skill is not None:
            try:
                services.skill_submit_core(actor=request.user, skill=skill)
                messages.success(request, f"{skill.name} was submitted for core consideration.")
            except DomainError as exc:
                messages.error(request, exc.message)
        return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
