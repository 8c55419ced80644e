"""Two admin sites: one per instance host (the agency's main UI) and the platform's on the public host.

The instance site is branded with the instance's name and its landing page shows panels that
the apps register (agents, recent runs, pending work), so the dependency points from each app
to this module and never back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin
from django.http import HttpRequest


@dataclass(frozen=True)
class LandingPanel:
    title: str
    template: str
    context: Callable[[HttpRequest], dict]
    order: int = 100


class ReadOnlyAdmin(admin.ModelAdmin):
    """An admin page over records that only services write (runs, audit entries, feedback, …):
    nothing is added, changed or deleted through it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class InstanceAdminSite(admin.AdminSite):
    site_title = "SpokeStack"
    index_title = "Overview"
    index_template = "admin/instance_index.html"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._panels: list[LandingPanel] = []

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
        return context

    def index(self, request: HttpRequest, extra_context: dict | None = None):
        panels = [{"title": p.title, "template": p.template, **p.context(request)} for p in self._panels]
        return super().index(request, {**(extra_context or {}), "panels": panels})


class PlatformAdminSite(admin.AdminSite):
    site_header = "SpokeStack platform"
    site_title = "SpokeStack platform"
    index_title = "Instances and platform"

    def has_permission(self, request: HttpRequest) -> bool:
        # Platform staff are users of the public schema only.
        return super().has_permission(request) and request.tenant.schema_name == "public"


instance_admin = InstanceAdminSite(name="instance_admin")
platform_admin = PlatformAdminSite(name="platform_admin")
