"""Resolve the instance from the host, and refuse suspended instances on every path."""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django_tenants.middleware.main import TenantMainMiddleware


def _refusal(request, *, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": code, "message": message, "details": {}}}, status=status)
    html = render_to_string("spokestack/refusal.html", {"title": message, "status": status})
    return HttpResponse(html, status=status)


class InstanceMiddleware(TenantMainMiddleware):
    def no_tenant_found(self, request, hostname):
        return _refusal(request, status=404, code="unknown_instance",
                        message=f"No SpokeStack instance answers on {hostname}. Check the address.")

    def process_request(self, request):
        response = super().process_request(request)
        if response is not None:
            return response
        instance = request.tenant
        if not instance.is_active:
            reason = f" ({instance.suspended_reason})" if instance.suspended_reason else ""
            return _refusal(request, status=403, code="instance_suspended",
                            message=f"The instance {instance.name} is suspended{reason}. Contact SpokeStack support.")
        return None
