"""Pages of the instance host outside the admin's own views: a new person sets their password from
the invitation link (`services.user_invitation_send`), and the 403 page (`permission_denied`)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.views import PasswordResetConfirmView
from django.http import HttpRequest, HttpResponseForbidden
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from spokestack.admin_site import instance_admin
from spokestack.errors import DomainError

from . import policy


class SetPasswordView(PasswordResetConfirmView):
    """Django's password-reset confirmation (the token is checked the same way, and the link moves
    into the session so it does not leak through the Referer), in the instance admin's look. After
    the password is set the person signs in on the login page: one way in, counted by axes."""

    template_name = "registration/set_password.html"

    def get_context_data(self, **kwargs):
        context = {**instance_admin.each_context(self.request), **super().get_context_data(**kwargs)}
        context["title"] = "Choose your password" if context.get("validlink") else "This link no longer works"
        return context

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, f"Your password is set. Sign in with your e-mail address "
                                       f"{form.user.get_username()}.")
        return response

    def get_success_url(self) -> str:
        return reverse("instance_admin:login") + "?next=" + reverse("instance_admin:index")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponseForbidden:
    """The instance host's 403 page (`handler403`): the admin's header and menu, and why — the
    policy's refusal ("Your role does not allow you to …"), which `InstanceModelAdmin` and
    `InstanceAdminSite.admin_view` put on the PermissionDenied they raise."""
    reason = str(exception or "").strip() or _refusal_of_page(request)
    context = {**instance_admin.each_context(request), "title": "You cannot open this page", "exception": reason}
    return HttpResponseForbidden(render_to_string("403.html", context, request=request))


def _refusal_of_page(request: HttpRequest) -> str:
    """Django's own admin views raise a bare PermissionDenied (a changelist the role may not view):
    ask the policy with the action the page's admin names, for its refusal message."""
    for model, model_admin in instance_admin._registry.items():
        opts = model._meta
        try:
            prefix = reverse(f"{instance_admin.name}:{opts.app_label}_{opts.model_name}_changelist")
        except NoReverseMatch:
            continue
        if not request.path_info.startswith(prefix):
            continue
        adding = request.path_info.rstrip("/").endswith("/add")
        action = getattr(model_admin, "add_action" if adding else "view_action", None)
        if action is None:
            return ""
        try:
            policy.require(request.user, action)
        except DomainError as exc:
            return exc.message
        return ""
    return ""
