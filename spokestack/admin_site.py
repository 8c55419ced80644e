"""Two admin sites: one per instance host (the agency's main UI) and the platform's on the public host.

The instance site is branded with the instance's name and its landing page shows panels that
the apps register (agents, recent runs, pending work), so the dependency points from each app
to this module and never back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.urls import path, reverse
from django.utils import timezone

from spokestack.accounts import policy
from spokestack.errors import NotAllowed, NotFound


@dataclass(frozen=True)
class LandingPanel:
    title: str
    template: str
    context: Callable[[HttpRequest], dict]
    order: int = 100


def client_of(obj) -> models.Model | int | None:
    """The client an admin object belongs to (the object itself when it is a client, else its
    `client_id`), or None."""
    if obj is None:
        return None
    if obj._meta.label == "tuning.Client":
        return obj
    return getattr(obj, "client_id", None)


class ClientScopedFilter(admin.RelatedFieldListFilter):
    """The changelist filter of a foreign key to a client: only the clients the person may see."""

    def field_choices(self, field, request, model_admin):
        return [(client.pk, str(client)) for client in policy.visible_clients(request.user).order_by("name")]


class PolicyPermissions:
    """What a person may see and do on an admin page (or inline) is asked of the access policy
    (`spokestack.accounts.policy`) with the actions the class names; an action left None is refused.
    With an object, its client (`client_of`) is asked about."""

    view_action: str | None = None
    add_action: str | None = None
    change_action: str | None = None
    delete_action: str | None = None

    def allows(self, request: HttpRequest, action: str | None, obj=None) -> bool:
        return action is not None and policy.allows(request.user, action, client_of(obj))

    @staticmethod
    def require(request: HttpRequest, action: str, client=None) -> None:
        """A refusal as the admin shows it: a 403 page, or a 404 page for a client the person may not see."""
        try:
            policy.require(request.user, action, client)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.allows(request, self.view_action)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.allows(request, self.view_action, obj)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.allows(request, self.add_action, obj)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.allows(request, self.change_action, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.allows(request, self.delete_action, obj)


class InstanceModelAdmin(PolicyPermissions, admin.ModelAdmin):
    """The base of every instance admin page (DESIGN §10). Permissions come from the policy;
    a refusal is a 403 page and an object the person may not see a 404 page (never Django's
    redirect with a message, never a 500: `InstanceAdminSite.admin_view` turns a service's
    NotAllowed and NotFound into them); filters on a client list only the visible clients; a
    posted admin action the person may not use is refused, not ignored."""

    def has_add_permission(self, request: HttpRequest) -> bool:  # ModelAdmin's signature has no obj
        return self.allows(request, self.add_action)

    def policy_view(self, view: Callable, action: str) -> Callable:
        """A custom admin URL's view, allowed only to whom the policy gives `action` (role level;
        the view and the services check the object's client)."""

        @functools.wraps(view)
        def checked(request, *args, **kwargs):
            self.require(request, action)
            return view(request, *args, **kwargs)

        return self.admin_site.admin_view(checked)

    def get_list_filter(self, request: HttpRequest):
        Client = apps.get_model("tuning", "Client")
        scoped = []
        for entry in super().get_list_filter(request):
            if isinstance(entry, str) and "__" not in entry:
                field = self.model._meta.get_field(entry)
                if field.is_relation and field.related_model is Client:
                    entry = (entry, ClientScopedFilter)
            scoped.append(entry)
        return scoped

    def get_object(self, request, object_id, from_field=None):
        # A role that may not see these objects at all is refused (403) before any lookup (404).
        self.require(request, self.view_action)
        return super().get_object(request, object_id, from_field)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404(f"No such {opts.verbose_name} (or not one you may see).")

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST" and request.POST.get("action"):
            declared = {getattr(a, "__name__", a) for a in (self.actions or [])}
            declared |= {name for name, _ in self.admin_site.actions}
            if request.POST["action"] in declared and request.POST["action"] not in self.get_actions(request):
                raise PermissionDenied("Your role does not allow this action.")
        return super().changelist_view(request, extra_context)


def decide_each(model_admin: admin.ModelAdmin, request: HttpRequest, queryset, decide: Callable, *, argument: str,
                nouns: tuple[str, str], done: str, reason_max: int = 500) -> None:
    """A bulk admin action: each row through its service (`decide(actor=, <argument>=row, reason=)`,
    each its own audited decision, with the reason typed beside the action), then one message
    saying how many were decided and which failed, and why."""
    from django.contrib import messages

    from spokestack.errors import DomainError

    reason = (request.POST.get("decision_reason") or "").strip()[:reason_max]
    decided, failed = [], []
    for row in queryset.order_by("pk"):
        try:
            decide(actor=request.user, **{argument: row}, reason=reason)
        except (DomainError, PermissionDenied) as exc:
            failed.append(f"#{row.pk} ({getattr(exc, 'message', None) or exc})")
        else:
            decided.append(f"#{row.pk}")
    text = f"{len(decided)} {nouns[0] if len(decided) == 1 else nouns[1]} {done}"
    text += f": {', '.join(decided)}." if decided else "."
    if failed:
        text += f" {len(failed)} failed: {'; '.join(failed)}"
    level = messages.SUCCESS if not failed else messages.WARNING if decided else messages.ERROR
    model_admin.message_user(request, text, level)


class InstanceInline(PolicyPermissions):
    """The base of every inline on an instance admin page: as InstanceModelAdmin, asked about the
    parent object's client."""


class ReadOnlyAdmin(InstanceModelAdmin):
    """An admin page over records that only services write (runs, audit entries, feedback, …):
    nothing is added, changed or deleted through it; subclasses name their view_action."""


class InstanceAdminSite(admin.AdminSite):
    site_title = "SpokeStack"
    index_title = "Overview"
    index_template = "admin/instance_index.html"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._panels: list[LandingPanel] = []

    def admin_view(self, view, cacheable=False):
        """Every admin view: a service's refusal is a 403 page, a thing the person may not see a 404."""

        @functools.wraps(view)
        def refusals_as_pages(request, *args, **kwargs):
            try:
                return view(request, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.message) from exc
            except NotAllowed as exc:
                raise PermissionDenied(exc.message) from exc

        return super().admin_view(refusals_as_pages, cacheable)

    def register_panel(self, panel: LandingPanel) -> None:
        self._panels.append(panel)
        self._panels.sort(key=lambda p: (p.order, p.title))

    def each_context(self, request: HttpRequest) -> dict:
        context = super().each_context(request)
        instance = getattr(request, "tenant", None)
        if instance is not None:
            context["site_header"] = f"{instance.name} · SpokeStack"
            context["site_title"] = instance.name
            context["instance"] = instance
        # The zone this page's times are shown in (the instance's, activated per request by
        # spokestack.middleware.activate_instance_timezone): the header names it, pages may too.
        context["time_zone"] = timezone.get_current_timezone_name()
        if request.user.is_authenticated:  # the header's live badges (templates/admin/base_site.html)
            context["live_counts_url"] = reverse(f"{self.name}:live_counts")
        return context

    def index(self, request: HttpRequest, extra_context: dict | None = None):
        panels = [{"title": p.title, "template": p.template, **p.context(request)} for p in self._panels]
        return super().index(request, {**(extra_context or {}), "panels": panels,
                                       "live_counts": self.live_counts(request)})

    def get_urls(self):
        return [path("live/counts/", self.admin_view(self.live_counts_view), name="live_counts"), *super().get_urls()]

    def live_counts(self, request: HttpRequest) -> dict[str, dict | None]:
        """The header's and the landing page's live counts as the viewer may see them (None for a
        topic their role does not see), each with its label and the page it leads to."""
        from spokestack.consumers import live_counts

        answer: dict[str, dict | None] = {}
        for topic, count in live_counts(request.user).items():
            if count is None:
                answer[topic] = None
                continue
            url_name, one, many = LIVE_COUNT_LINKS[topic]
            answer[topic] = {"count": count, "label": f"{count} {one if count == 1 else many}",
                             "url": reverse(f"{self.name}:{url_name}")}
        return answer

    def live_counts_view(self, request: HttpRequest) -> JsonResponse:
        """GET: the viewer's live counts, read by the header's script (templates/admin/base_site.html)
        on every (re)connect of `ws/events/` and after each message, so nothing is missed while it
        was away and no count is computed from messages of clients the viewer may not see."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        return JsonResponse(self.live_counts(request))


# The live counts' labels and pages: topic → (admin URL name, one, many).
LIVE_COUNT_LINKS = {
    "approvals": ("agents_approvalrequest_changelist", "approval waiting", "approvals waiting"),
    "updates": ("versions_agentversionconfig_changelist", "update to review", "updates to review"),
}


class PlatformAdminSite(admin.AdminSite):
    site_header = "SpokeStack platform"
    site_title = "SpokeStack platform"
    index_title = "Instances and platform"

    def has_permission(self, request: HttpRequest) -> bool:
        # Platform staff are users of the public schema only.
        return super().has_permission(request) and request.tenant.schema_name == "public"


instance_admin = InstanceAdminSite(name="instance_admin")
platform_admin = PlatformAdminSite(name="platform_admin")
