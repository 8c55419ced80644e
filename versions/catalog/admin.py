from django.contrib import admin

from spokestack.admin_site import platform_admin

from .models import CatalogVersion, CoreSubmission, ReleaseFanout


@admin.register(CatalogVersion, site=platform_admin)
class CatalogVersionAdmin(admin.ModelAdmin):
    list_display = ("agent_type", "version", "release_date", "breaking", "released_at")
    list_filter = ("agent_type",)
    readonly_fields = [f.name for f in CatalogVersion._meta.fields]


@admin.register(ReleaseFanout, site=platform_admin)
class ReleaseFanoutAdmin(admin.ModelAdmin):
    list_display = ("release", "status", "instances_total", "instances_done", "applied", "created_at", "finished_at")
    list_select_related = ("release",)


@admin.register(CoreSubmission, site=platform_admin)
class CoreSubmissionAdmin(admin.ModelAdmin):
    list_display = ("skill_name", "instance", "status", "submitted_by", "created_at")
    list_filter = ("status",)
    list_select_related = ("instance",)
    readonly_fields = ("instance", "skill_name", "description", "input_schema", "agent_types", "report", "rationale",
                       "submitted_by", "created_at")
