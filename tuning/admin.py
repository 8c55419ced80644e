from django.contrib import admin

from spokestack.admin_site import instance_admin

from .models import Client


@admin.register(Client, site=instance_admin)
class ClientAdmin(admin.ModelAdmin):
    list_display = ["name", "vertical", "region", "language", "created_at"]
    list_filter = ["vertical", "region"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
