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
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from agents.registry import agent_types, get_spec, versions
from spokestack.admin_site import ReadOnlyAdmin, instance_admin
from spokestack.errors import Conflict, DomainError

from . import selectors, services
from .analysis import OPTIMIZATION_TAGS
from .comparison import session_dict
from .models import AgentVersionConfig, SandboxSession, UpdateNotification, UpdatePolicy, VersionChange

# Raw HTML in the text is escaped (not passed through) and links are checked (no javascript: or
# data: URLs), so release notes and update details render as safe HTML.
_MARKDOWN = MarkdownIt("js-default")
TAG_LABELS = {"roas": "ROAS", "cpa": "CPA"}


def markdown_html(text: str) -> SafeString:
    return mark_safe(_MARKDOWN.render(text or ""))  # noqa: S308 - markdown-it escapes raw HTML (html=False)


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
        for agent_type in agent_types():
            state = selectors.version_state(actor=request.user, agent_type=agent_type)
            spec = get_spec(agent_type, state["current_version"])
            skills = list(skills_for_agent_type(agent_type=agent_type, enabled_only=False)) if see_skills else []
            config = (AgentVersionConfig.objects.filter(agent_type=agent_type).first()
                      or AgentVersionConfig(agent_type=agent_type, current_version=state["current_version"]))
            agents.append({"state": state, "title": spec.title, "status": "Active" if spec else "Unknown",
                           "policy_label": UpdatePolicy(state["policy"]).label,
                           "recipients": services.release_recipients(config),
                           "skills": [{"skill": s, "report": services.skill_core_report(skill=s)} for s in skills]})
        sessions = SandboxSession.objects.all()[:10] if see_sandboxes else []
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Agents and versions",
                   "agents": agents, "sessions": sessions,
                   "can_configure": self.allows(request, "version.configure")}
        return TemplateResponse(request, "admin/versions/dashboard.html", context)

    def update_view(self, request, notification_id: int):
        notification = UpdateNotification.objects.filter(pk=notification_id).first()
        if notification is None:
            return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "n": notification,
                   "content_html": markdown_html(notification.content),
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
            return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
        title = agent_title(n.agent_type)
        if session is not None:
            messages.success(request, f"Opened a sandbox for {title}: {session.current_version} and "
                                      f"{session.test_version} side by side for 24 hours.")
            return redirect(reverse("instance_admin:versions_sandbox", args=[session.pk]))
        running = selectors.running_version(n.agent_type)
        messages.success(request, {
            "approve": f"Approved {n.version}: {title} now runs {running}.",
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

    def sandbox_view(self, request, session_id):
        session = SandboxSession.objects.filter(pk=session_id).first()
        if session is None:
            return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
        if request.method == "POST":
            decision = request.POST.get("decision")
            self.require(request, "sandbox.run" if decision == "test" else "sandbox.decide")
            try:
                if decision == "test":
                    services.sandbox_test_add(actor=request.user, session_id=session.pk, task=request.POST.get("task"))
                elif decision == "promote":
                    services.sandbox_promote(actor=request.user, session_id=session.pk)
                elif decision == "reject":
                    services.sandbox_reject(actor=request.user, session_id=session.pk)
                elif decision == "defer":
                    services.sandbox_defer(actor=request.user, session_id=session.pk)
            except DomainError as exc:
                messages.error(request, exc.message)
            return redirect(reverse("instance_admin:versions_sandbox", args=[session.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "session": session_dict(session),
                   "title": f"Sandbox: {session.agent_type} {session.current_version} vs {session.test_version}"}
        return TemplateResponse(request, "admin/versions/sandbox.html", context)

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
