"""The agents dashboard (per agent: version, status, policy, optimization, update available with
its recommendation, skills, history) and the sandbox page, in the instance admin."""

from __future__ import annotations

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from agents.registry import agent_types, get_spec
from spokestack.admin_site import ReadOnlyAdmin, instance_admin
from spokestack.errors import DomainError

from . import selectors, services
from .comparison import session_dict
from .models import AgentVersionConfig, SandboxSession, UpdateNotification


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
            agents.append({"state": state, "title": spec.title, "status": "Active" if spec else "Unknown",
                           "skills": [{"skill": s, "report": services.skill_core_report(skill=s)} for s in skills]})
        sessions = SandboxSession.objects.all()[:10] if see_sandboxes else []
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Agents and versions",
                   "agents": agents, "sessions": sessions}
        return TemplateResponse(request, "admin/versions/dashboard.html", context)

    def update_view(self, request, notification_id: int):
        notification = UpdateNotification.objects.filter(pk=notification_id).first()
        if notification is None:
            return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "n": notification,
                   "title": f"{notification.agent_type} {notification.version}: update details"}
        return TemplateResponse(request, "admin/versions/update.html", context)

    def review_view(self, request, notification_id: int, action: str):
        if request.method != "POST":
            return redirect(reverse("instance_admin:versions_update", args=[notification_id]))
        try:
            _, session = services.notification_review(actor=request.user, notification_id=notification_id,
                                                      action=action)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))
        if session is not None:
            return redirect(reverse("instance_admin:versions_sandbox", args=[session.pk]))
        messages.success(request, f"Update {action}d." if action != "defer" else "Update deferred.")
        return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))

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
        if request.method == "POST":
            try:
                services.version_rollback(actor=request.user, agent_type=agent_type,
                                          version=request.POST.get("version"), reason=request.POST.get("reason"))
                messages.success(request, f"{agent_type} rolled back to {request.POST.get('version')}.")
            except DomainError as exc:
                messages.error(request, exc.message)
        return redirect(reverse("instance_admin:versions_agentversionconfig_changelist"))

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
