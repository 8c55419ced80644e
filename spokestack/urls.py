"""URLs on an instance host (alpha.localhost). The public host uses urls_public."""

from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .accounts.views import SetPasswordView, permission_denied
from .admin_site import instance_admin

handler403 = permission_denied  # the admin's look and the policy's reason, not a bare "403 Forbidden"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", instance_admin.urls),
    path("account/welcome/<uidb64>/<token>/", SetPasswordView.as_view(), name="set_password"),
    path("api/v1/", include("spokestack.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("metrics", include("spokestack.metrics")),  # Prometheus, behind METRICS_TOKEN
]
