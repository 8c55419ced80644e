"""`/api/v1/` on every instance host. Each app adds its routes here."""

from django.urls import include, path

from .health import HealthView, ReadinessView

urlpatterns = [
    path("health", HealthView.as_view(), name="health"),
    path("health/ready", ReadinessView.as_view(), name="health-ready"),
    path("", include("spokestack.accounts.api.urls")),
    path("", include("agents.api.urls")),
    path("", include("agents.studio.api")),
    path("", include("tuning.api.urls")),
    path("", include("feedback.api.urls")),
    path("", include("skills.api.urls")),
    path("", include("versions.api.urls")),
    path("", include("usage.api")),
    path("", include("usage.budget_api")),
    path("", include("spokestack.webhooks.api")),
]
