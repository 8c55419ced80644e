"""The feedback loop in the instance admin: feedback buttons on the run page, the suggestion
queue (Apply / Dismiss, Analyze now), the per-client dashboard on the tuning client page, and
the count of pending suggestions on the landing page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.http import Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from spokestack.accounts import policy
from spokestack.admin_site import InstanceModelAdmin, LandingPanel, ReadOnlyAdmin, instance_admin
from spokestack.errors import DomainError, NotAllowed, NotFound
from tuning.admin import AuditedChangeAdmin, ClientPanel, register_client_panel
from tuning.models import Client
from tuning.selectors import client_get, clients_visible_to

from . import analysis, selectors, services
from .models import Category, Feedback, FeedbackSettings, Suggestion, SuggestionStatus, Verdict


def _back(request, default: str) -> str:
    back = request.POST.get("next") or request.GET.get("next") or ""
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return back
    return default


def _posted(request, back: str, call: Callable[[], object], *, done: Callable[[], str]) -> HttpResponseRedirect:
    """An admin form's service call: NotFound → 404, NotAllowed → 403, any other refusal → its message;
    on success the `done` message. Back to `back` either way."""
    try:
        call()
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done())
    return HttpResponseRedirect(back)


@admin.register(Feedback, site=instance_admin)
class FeedbackAdmin(ReadOnlyAdmin):
    view_action = "feedback.view"
    list_display = ["id", "created_at", "verdict", "client", "agent_type", "author", "rating", "current", "reason"]
    list_filter = ["verdict", "category", "current", "agent_type"]
    list_select_related = ["client", "author"]
    search_fields = ["original_text", "corrected_text", "reason", "comment"]
    readonly_fields = [f.name for f in Feedback._meta.fields]

    def get_queryset(self, request):
        return selectors.feedback_visible_to(actor=request.user)

    def get_urls(self):
        return [path("give/<uuid:run_id>/", self.policy_view(require_POST(self.give_view), "feedback.add"),
                     name="feedback_give"), *super().get_urls()]

    def give_view(self, request, run_id):
        """The run page's Approve / Reject / Correct forms post here."""
        back = _back(request, reverse("instance_admin:agents_agentrun_change", args=[run_id]))
        data = request.POST
        return _posted(request, back, lambda: services.feedback_give(
            actor=request.user, run_id=run_id, verdict=data.get("verdict", ""),
            artifact_id=data.get("artifact_id") or None, corrected_text=data.get("corrected_text", ""),
            reason=data.get("reason", ""), category=data.get("category", ""), comment=data.get("comment", ""),
            rating=data.get("rating") or None),
            done=lambda: f"Feedback recorded: {Verdict(data['verdict']).label.lower()}.")


@admin.register(Suggestion, site=instance_admin)
class SuggestionAdmin(ReadOnlyAdmin):
    """The queue: pending suggestions with their evidence, Apply / Dismiss, and Analyze now."""

    view_action = "suggestion.view"
    list_display = ["id", "client", "kind", "text", "confidence", "evidence_count", "status", "auto_applied"]
    list_select_related = ["client", "decided_by"]

    def get_queryset(self, request):
        return selectors.suggestions_visible_to(actor=request.user)

    def get_urls(self):
        view = self.policy_view
        return [
            path("<int:suggestion_id>/apply/", view(require_POST(self.apply_view), "suggestion.decide"),
                 name="feedback_suggestion_apply"),
            path("<int:suggestion_id>/dismiss/", view(require_POST(self.dismiss_view), "suggestion.decide"),
                 name="feedback_suggestion_dismiss"),
            path("analyze/<int:client_id>/", view(require_POST(self.analyze_view), "analysis.run"),
                 name="feedback_analyze"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        self.require(request, self.view_action)
        rows = self.get_queryset(request)
        client = None
        if request.GET.get("client"):
            try:
                client = client_get(actor=request.user, client_id=request.GET["client"])
            except NotFound as exc:
                raise Http404(exc.message) from exc
            rows = rows.filter(client=client)
        pending = list(rows.filter(status=SuggestionStatus.PENDING).order_by("client__name", "-confidence", "id"))
        decided = list(rows.exclude(status=SuggestionStatus.PENDING).order_by("-decided_at", "-id")[:20])
        clients = [client] if client else list(clients_visible_to(actor=request.user).filter(
            feedback__isnull=False).distinct())
        for suggestion in pending:
            suggestion.may_decide = policy.allows(request.user, "suggestion.decide", suggestion.client_id)
        return TemplateResponse(request, "admin/feedback/queue.html", {
            **self.admin_site.each_context(request), "title": "Suggested improvements", "opts": self.model._meta,
            "pending": pending, "decided": decided, "client": client, "clients": clients,
            "next": request.get_full_path()})

    def _decide(self, request, suggestion_id: int, decide, done: str):
        back = _back(request, reverse("instance_admin:feedback_suggestion_changelist"))
        return _posted(request, back, lambda: decide(
            actor=request.user, suggestion=selectors.suggestion_get(actor=request.user, suggestion_id=suggestion_id)),
            done=lambda: f"Suggestion #{suggestion_id} {done}.")

    def apply_view(self, request, suggestion_id: int):
        return self._decide(request, suggestion_id, services.suggestion_apply, "applied: it is now a client rule")

    def dismiss_view(self, request, suggestion_id: int):
        return self._decide(request, suggestion_id, services.suggestion_dismiss, "dismissed")

    def analyze_view(self, request, client_id: int):
        """Analyze now: queued for a worker after commit (the analysis makes a model request)."""
        from .tasks import analyze_client

        back = _back(request, reverse("instance_admin:feedback_suggestion_changelist") + f"?client={client_id}")
        try:
            client = client_get(actor=request.user, client_id=client_id)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        self.require(request, "analysis.run", client)
        schema = connection.schema_name
        transaction.on_commit(lambda: analyze_client.delay(schema=schema, client_id=client.pk))
        messages.success(request, f"Analysis of {client.name}'s feedback queued; refresh in a moment.")
        return HttpResponseRedirect(back)


@admin.register(FeedbackSettings, site=instance_admin)
class FeedbackSettingsAdmin(AuditedChangeAdmin, InstanceModelAdmin):
    view_action = "feedback_settings.view"
    add_action = change_action = "feedback_settings.edit"
    list_display = ["__str__", "auto_apply", "auto_apply_min_confidence", "window_days"]

    def has_add_permission(self, request) -> bool:
        return not FeedbackSettings.objects.exists() and super().has_add_permission(request)

    def save_model(self, request, obj, form, change) -> None:
        try:
            services.feedback_settings_update(actor=request.user, auto_apply=obj.auto_apply,
                                              min_confidence=obj.auto_apply_min_confidence,
                                              window_days=obj.window_days, **self.why(form))
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc


# --- the client dashboard -----------------------------------------------------------------------

CHART_W, CHART_H = 360, 120


def _chart(trend: list[dict[str, Any]]) -> dict[str, Any]:
    """Approval rate by week as inline-SVG bars (no JS library)."""
    weeks = trend[-12:]
    if not weeks:
        return {"bars": [], "width": CHART_W, "height": CHART_H}
    step = CHART_W / len(weeks)
    bars = []
    for i, week in enumerate(weeks):
        h = max(1.0, week["approval_rate"] * (CHART_H - 20))
        bars.append({"x": round(i * step + 2, 1), "y": round(CHART_H - 14 - h, 1), "w": round(step - 4, 1),
                     "h": round(h, 1), "label": week["week"][-3:], "rate": round(week["approval_rate"] * 100),
                     "tx": round(i * step + step / 2, 1), "total": week["total"]})
    return {"bars": bars, "width": CHART_W, "height": CHART_H}


def dashboard_html(request, client: Client) -> str:
    items = selectors.feedback_items(client=client)
    stats = analysis.metrics(items)
    approved = [i.original for i in reversed(items) if i.verdict == Verdict.APPROVED][:3]
    categories = dict(Category.choices)
    return render_to_string("admin/feedback/client_dashboard.html", {
        "client": client, "m": stats, "rate_pct": round((stats["approval_rate"] or 0) * 100),
        "chart": _chart(stats["trend"]), "approved": approved,
        "categories": [{"label": categories.get(c["category"], c["category"]), "count": c["count"]}
                       for c in stats["top_categories"]],
        "insufficient": len(items) < analysis.MIN_ITEMS, "min_items": analysis.MIN_ITEMS,
    }, request=request)


def suggestions_html(request, client: Client) -> str:
    pending = list(selectors.suggestions_visible_to(actor=request.user, client=client).filter(
        status=SuggestionStatus.PENDING)[:8])
    return render_to_string("admin/feedback/client_suggestions.html", {
        "pending": pending, "latest": selectors.latest_analysis(client=client),
        "queue_url": reverse("instance_admin:feedback_suggestion_changelist") + f"?client={client.pk}",
    }, request=request)


register_client_panel(ClientPanel("Feedback metrics", dashboard_html, order=10))
register_client_panel(ClientPanel("Suggested improvements", suggestions_html, order=20))


def _landing(request) -> dict:
    rows = selectors.suggestions_visible_to(actor=request.user).filter(status=SuggestionStatus.PENDING)
    counts: dict[str, int] = {}
    for name in rows.values_list("client__name", flat=True):
        counts[name] = counts.get(name, 0) + 1
    return {"pending_total": sum(counts.values()), "pending_by_client": sorted(counts.items()),
            "queue_url": reverse("instance_admin:feedback_suggestion_changelist")}


instance_admin.register_panel(LandingPanel("Suggested improvements", "admin/feedback/panel_suggestions.html",
                                           _landing, order=30))
