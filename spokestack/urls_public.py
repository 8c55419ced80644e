"""URLs on the platform host (localhost): the platform admin and health checks."""

from django.urls import include, path
from django.views.generic import RedirectView

from .admin_site import platform_admin

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", platform_admin.urls),
    path("api/v1/", include("spokestack.api.urls")),
]
