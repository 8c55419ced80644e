"""Resolve the instance from the host, and refuse suspended instances on every path."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django_tenants.middleware.main import TenantMainMiddleware

from spokestack.api.health import LIVENESS_PATH
from spokestack.middleware import activate_instance_timezone
from spokestack.outages import DEPENDENCY_ERRORS, dependency_of


def refusal_response(request, *, status: int, code: str, message: str, details: dict | None = None) -> HttpResponse:
    """A refusal before any view: the API's error envelope under /api/, a plain page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": code, "message": message, "details": details or {}}}, status=status)
    html = render_to_string("spokestack/refusal.html", {"title": message, "status": status})
    return HttpResponse(html, status=status)


class InstanceMiddleware(TenantMainMiddleware):
    def no_tenant_found(self, request, hostname):
        return refusal_response(request, status=404, code="unknown_instance",
                                message=f"No SpokeStack instance answers on {hostname}. Check the address.")

    def process_request(self, request):
        activate_instance_timezone(None)  # UTC until the instance is known (never the last request's zone)
        try:
            response = super().process_request(request)
        except DEPENDENCY_ERRORS as exc:
            # Liveness says this process answers, nothing more: a database outage must not make
            # an orchestrator restart healthy web processes. Every other path raises on, and
            # spokestack.outages answers 503.
            if request.path_info != LIVENESS_PATH or dependency_of(exc) is None:
                raise
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            return None
        if response is not None:
            return response
        instance = request.tenant
        # Pages in the instance's zone; the API's JSON keeps UTC (a contract, not a display).
        activate_instance_timezone(None if request.path.startswith("/api/") else instance)
        if not instance.is_active:
            reason = f" ({instance.suspended_reason})" if instance.suspended_reason else ""
            return refusal_response(
                request, status=403, code="instance_suspended",
                message=f"The instance {instance.name} is suspended{reason}. Contact SpokeStack support.")
        return None
