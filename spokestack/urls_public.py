"""URLs on the platform host (localhost): the platform admin and health checks.

No instance API here: it is served on each instance's own host, where a request has an
instance's schema and users. Any other /api/ path answers the 404 envelope
(spokestack.api.error_envelope), which says where the instance API is.
"""

from django.urls import include, path
from django.views.generic import RedirectView

from .admin_site import platform_admin
from .api.health import HealthView, ReadinessView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", platform_admin.urls),
    path("api/v1/health", HealthView.as_view(), name="health"),
    path("api/v1/health/ready", ReadinessView.as_view(), name="health-ready"),
    path("metrics", include("spokestack.metrics")),  # Prometheus, behind METRICS_TOKEN
]
