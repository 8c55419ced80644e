"""The feedback loop in the instance admin: feedback buttons on the run page (per output and per
artifact), the feedback list, the suggestion queue (filters, search, Apply / Dismiss one or many,
Analyze now with its progress), the per-client dashboard and suggestions on the tuning client
page, and the count of pending suggestions on the landing page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime
from django.views.decorators.http import require_GET, require_POST

from spokestack.accounts import policy
from spokestack.admin_site import InstanceModelAdmin, LandingPanel, ReadOnlyAdmin, decide_each, instance_admin
from spokestack.errors import DomainError, NotAllowed, NotFound
from tuning.admin import AuditedChangeAdmin, ClientPanel, register_client_panel
from tuning.models import Client, agent_label
from tuning.selectors import client_get, clients_visible_to

from . import analysis, jobs, selectors, services
from .models import (
    AnalysisJob,
    AnalysisJobStatus,
    Category,
    Feedback,
    FeedbackSettings,
    Suggestion,
    SuggestionStatus,
    Verdict,
)


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


def _client_link(client: Client | None) -> str:
    if client is None:
        return "—"
    return format_html('<a href="{}" class="client-link">{}</a>',
                       reverse("instance_admin:tuning_client_change", args=[client.pk]), client.name)


# --- evidence: the phrases a correction changed -------------------------------------------------

EVIDENCE_TEXT_CAP = 220


def _changes_html(before: str, after: str) -> str:
    """One correction as the phrases that changed: removed struck, added highlighted, a few words of
    context around each, "…" for what is left out."""
    hunks = analysis.phrase_changes(before, after)
    if not hunks:
        return format_html('<span class="quiet">no change in the words</span>')
    parts = []
    for hunk in hunks:
        inner = format_html_join(" ", "{}", ((_segment(kind, text),) for kind, text in hunk))
        parts.append(format_html('<span class="change">{}</span>', inner))
    return format_html_join(" ", "{}", ((p,) for p in parts))


def _segment(kind: str, text: str) -> str:
    if kind == "removed":
        return format_html('<del class="removed" title="removed">{}</del>', text)
    if kind == "added":
        return format_html('<ins class="added" title="added">{}</ins>', text)
    if kind == "skipped":
        return mark_safe('<span class="skipped" title="unchanged words left out">…</span>')  # noqa: S308 - a constant
    return format_html('<span class="same">{}</span>', text)


def _clip(text: str, cap: int = EVIDENCE_TEXT_CAP) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= cap else text[:cap - 1].rstrip() + "…"


def evidence_html(examples: list[dict[str, str]] | None) -> str:
    """A suggestion's evidence as people read it: for a correction the phrases that changed, for a
    rejection the output (clipped) and the reason, for an approval the approved output (clipped)."""
    rows = []
    for example in (examples or [])[:analysis.MAX_EXAMPLES]:
        before, after = str(example.get("before") or ""), str(example.get("after") or "")
        if not before:
            rows.append(format_html('<li class="approved-example"><span class="label">Approved:</span> {}</li>',
                                    _clip(after)))
        elif after.startswith("(rejected:"):
            rows.append(format_html('<li class="rejected-example"><span class="label">Rejected</span> “{}” — {}</li>',
                                    _clip(before), after.strip("()").removeprefix("rejected:").strip()))
        else:
            rows.append(format_html('<li class="correction-example">{}</li>', _changes_html(before, after)))
    if not rows:
        return format_html('<span class="quiet">{}</span>', "no examples")
    return format_html('<ul class="evidence">{}</ul>', format_html_join("", "{}", ((r,) for r in rows)))


# --- feedback -----------------------------------------------------------------------------------


class RatingFilter(admin.SimpleListFilter):
    title = "rating (1–5)"
    parameter_name = "rating"

    def lookups(self, request, model_admin):
        return [("none", "No rating"), *[(str(n), f"{n} / 5") for n in range(5, 0, -1)]]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(rating__isnull=True)
        if self.value() and self.value().isdigit():
            return queryset.filter(rating=int(self.value()))
        return queryset


class AgentTypeFilter(admin.SimpleListFilter):
    """The agent types of the rows the person may see, labelled as people read them."""

    title = "agent"
    parameter_name = "agent_type"

    def lookups(self, request, model_admin):
        values = model_admin.get_queryset(request).order_by("agent_type").values_list("agent_type", flat=True)
        return [(v, agent_label(v)) for v in dict.fromkeys(values) if v]

    def queryset(self, request, queryset):
        return queryset.filter(agent_type=self.value()) if self.value() else queryset


@admin.register(Feedback, site=instance_admin)
class FeedbackAdmin(ReadOnlyAdmin):
    view_action = "feedback.view"
    list_display = ["given", "verdict_shown", "run_link", "comment_shown"]
    list_display_links = ["given"]
    list_filter = ["verdict", RatingFilter, AgentTypeFilter, "client", "created_at", "category"]
    list_select_related = ["client", "author", "artifact"]
    search_fields = ["original_text", "corrected_text", "reason", "comment", "client__name", "author__email"]
    date_hierarchy = "created_at"
    # the one row's page: people as text (a link to a person's page would be a 403 for most roles)
    fields = readonly_fields = ["created_at", "author_shown", "verdict_shown", "run_link", "original_text",
                                "corrected_text", "reason", "category", "comment", "current", "superseded_by"]

    def get_queryset(self, request):
        return selectors.feedback_visible_to(actor=request.user).select_related("artifact")

    @admin.display(description="given", ordering="created_at")
    def given(self, obj: Feedback) -> str:
        return format_html('{}<br><small class="quiet">{}</small>',
                           date_format(localtime(obj.created_at), "SHORT_DATETIME_FORMAT"),
                           obj.author.email if obj.author is not None else "the system")

    @admin.display(description="author")
    def author_shown(self, obj: Feedback) -> str:
        return obj.author.email if obj.author is not None else "the system"

    @admin.display(description="verdict", ordering="verdict")
    def verdict_shown(self, obj: Feedback) -> str:
        """The verdict, what it judged (the output or one artifact), the rating, and whether a newer
        judgement by the same person replaced it."""
        if obj.artifact is None:
            target = "the output"
        else:
            target = f"{obj.artifact.kind}: {obj.artifact.title}" if obj.artifact.title else obj.artifact.kind
        return format_html('<span class="verdict" data-verdict="{}">{}</span>{}<br><small class="quiet">on {}</small>{}',
                           obj.verdict, obj.get_verdict_display(), f" · {obj.rating}/5" if obj.rating else "",
                           target, format_html(' <small class="quiet">(replaced)</small>') if not obj.current else "")

    @admin.display(description="run · client")
    def run_link(self, obj: Feedback) -> str:
        return format_html('<a href="{}" class="run-link">{} run {}</a><br>{}',
                           reverse("instance_admin:agents_agentrun_change", args=[obj.run_id]),
                           agent_label(obj.agent_type), str(obj.run_id)[:8], _client_link(obj.client))

    @admin.display(description="comment / reason")
    def comment_shown(self, obj: Feedback) -> str:
        return _clip(" · ".join(t for t in (obj.reason, obj.comment) if t), 160) or "—"

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Feedback", **(extra_context or {})})

    def get_urls(self):
        return [path("give/<uuid:run_id>/", self.policy_view(require_POST(self.give_view), "feedback.add"),
                     name="feedback_give"), *super().get_urls()]

    def give_view(self, request, run_id):
        """The run page's feedback forms (the output, or one artifact) post here."""
        back = _back(request, reverse("instance_admin:agents_agentrun_change", args=[run_id]))
        data = request.POST
        verdict = data.get("verdict", "")

        def done() -> str:
            what = " on the artifact" if data.get("artifact_id") else ""
            return f"Feedback recorded{what}: {Verdict(verdict).label.lower()}."

        return _posted(request, back, lambda: services.feedback_give(
            actor=request.user, run_id=run_id, verdict=verdict,
            artifact_id=data.get("artifact_id") or None, corrected_text=data.get("corrected_text", ""),
            reason=data.get("reason", ""), category=data.get("category", ""), comment=data.get("comment", ""),
            rating=data.get("rating") or None), done=done)


# --- suggestions --------------------------------------------------------------------------------


class ConfidenceFilter(admin.SimpleListFilter):
    title = "confidence"
    parameter_name = "confidence"
    BANDS = {"high": (0.9, None, "0.90 and above"), "medium": (0.8, 0.9, "0.80 – 0.89"),
             "low": (None, 0.8, "below 0.80")}

    def lookups(self, request, model_admin):
        return [(key, label) for key, (_, _, label) in self.BANDS.items()]

    def queryset(self, request, queryset):
        if self.value() not in self.BANDS:
            return queryset
        low, high, _ = self.BANDS[self.value()]
        if low is not None:
            queryset = queryset.filter(confidence__gte=low)
        if high is not None:
            queryset = queryset.filter(confidence__lt=high)
        return queryset


def _reason_of(request, suggestion_id: int) -> str:
    """The reason typed beside a suggestion (the client page and the queue name it per suggestion)."""
    data = request.POST
    return (data.get(f"suggestion-reason-{suggestion_id}") or data.get("reason") or "").strip()[:500]


def job_message(job: AnalysisJob) -> str:
    name = job.client.name
    if job.status == AnalysisJobStatus.QUEUED:
        return f"Analysis of {name}'s feedback is queued for a worker…"
    if job.status == AnalysisJobStatus.RUNNING:
        return f"Analysing {name}'s feedback (one model request)…"
    if job.status == AnalysisJobStatus.FAILED:
        return f"The analysis of {name}'s feedback failed: {job.error or 'no reason given'}."
    result = job.analysis.result if job.analysis is not None else {}
    if job.analysis is not None and job.analysis.status == "insufficient_data":
        return f"Analysis of {name}'s feedback finished: {result.get('message') or 'not enough feedback yet.'}"
    created, refreshed = job.created_suggestions, job.refreshed_suggestions
    return (f"Analysis of {name}'s feedback finished: {created} new suggestion{'' if created == 1 else 's'}"
            + (f", {refreshed} refreshed" if refreshed else "") + ".")


def job_state(job: AnalysisJob) -> dict[str, Any]:
    return {"id": job.pk, "client": job.client_id, "status": job.status, "finished": job.finished,
            "created_suggestions": job.created_suggestions, "refreshed_suggestions": job.refreshed_suggestions,
            "analysis_status": job.analysis.status if job.analysis is not None else None,
            "message": job_message(job)}


@admin.register(Suggestion, site=instance_admin)
class SuggestionAdmin(ReadOnlyAdmin):
    """The queue: suggestions with their evidence; Apply / Dismiss one (with a reason) or many
    (bulk actions); Analyze now with its progress."""

    view_action = "suggestion.view"
    change_list_template = "admin/feedback/suggestion/change_list.html"
    list_display = ["suggestion", "client_shown", "confidence_shown", "status_shown"]
    list_display_links = None  # the suggestion's text links to its page; its evidence is not a link
    list_filter = ["status", AgentTypeFilter, "client", ConfidenceFilter, "created_at"]
    list_select_related = ["client", "decided_by"]
    search_fields = ["text", "client__name"]
    actions = ["apply_selected", "dismiss_selected"]
    fields = readonly_fields = ["client", "agent_type", "kind", "text", "confidence", "evidence_count", "evidence",
                                "origin", "status", "rule_id", "auto_applied", "decided_by", "decided_at",
                                "created_at"]

    def get_queryset(self, request):
        pending_first = Case(When(status=SuggestionStatus.PENDING, then=Value(0)), default=Value(1),
                             output_field=IntegerField())
        return selectors.suggestions_visible_to(actor=request.user).annotate(pending_first=pending_first)

    def get_ordering(self, request):
        return ["pending_first", "-confidence", "-id"]

    def get_list_display(self, request):
        """Who may decide gets Apply / Dismiss (and a reason) under each pending suggestion."""
        shown = list(super().get_list_display(request))
        return ["suggestion_decide", *shown[1:]] if self.allows(request, "suggestion.decide") else shown

    def has_decide_permission(self, request) -> bool:
        return self.allows(request, "suggestion.decide")

    @admin.display(description="suggestion and evidence", ordering="text")
    def suggestion(self, obj: Suggestion) -> str:
        return format_html('<span class="kind {}">{}</span> <a href="{}" class="suggestion-text">{}</a>{}',
                           obj.kind, obj.get_kind_display(),
                           reverse("instance_admin:feedback_suggestion_change", args=[obj.pk]), obj.text,
                           evidence_html(obj.examples))

    @admin.display(description="suggestion and evidence", ordering="text")
    def suggestion_decide(self, obj: Suggestion) -> str:
        return format_html("{}{}", self.suggestion(obj), self.decide(obj))

    @admin.display(description="evidence")
    def evidence(self, obj: Suggestion) -> str:
        return evidence_html(obj.examples)

    @admin.display(description="client · agent", ordering="client__name")
    def client_shown(self, obj: Suggestion) -> str:
        return format_html('{}<br><small class="quiet">{}</small>', _client_link(obj.client),
                           agent_label(obj.agent_type) if obj.agent_type else "all agents")

    @admin.display(description="confidence", ordering="confidence")
    def confidence_shown(self, obj: Suggestion) -> str:
        return format_html('{}<br><small class="quiet">{} item{}</small>', f"{obj.confidence:.2f}",
                           obj.evidence_count, "" if obj.evidence_count == 1 else "s")

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj: Suggestion) -> str:
        label = obj.get_status_display()
        if obj.auto_applied:
            label += " (auto-applied)"
        if obj.decided_by is not None:
            label += f" by {obj.decided_by.email}"
        return format_html('<span class="suggestion-status" data-status="{}">{}</span>', obj.status, label)

    @admin.display(description="decide")
    def decide(self, obj: Suggestion) -> str:
        """Apply / Dismiss with a reason, posted through the changelist's form to the decision URLs."""
        if obj.status != SuggestionStatus.PENDING:
            return ""
        apply_url = reverse("instance_admin:feedback_suggestion_apply", args=[obj.pk])
        dismiss_url = reverse("instance_admin:feedback_suggestion_dismiss", args=[obj.pk])
        return format_html(
            '<div class="decide" data-suggestion="{pk}">'
            '<input type="text" name="suggestion-reason-{pk}" placeholder="Reason (optional)" maxlength="500" '
            'aria-label="Reason for suggestion #{pk}">'
            '<button type="submit" class="button default apply" formaction="{apply}" formmethod="post" '
            'formnovalidate>Apply</button> '
            '<button type="submit" class="button dismiss" formaction="{dismiss}" formmethod="post" '
            'formnovalidate>Dismiss</button></div>', pk=obj.pk, apply=apply_url, dismiss=dismiss_url)

    def get_urls(self):
        view = self.policy_view
        return [
            path("<int:suggestion_id>/apply/", view(require_POST(self.apply_view), "suggestion.decide"),
                 name="feedback_suggestion_apply"),
            path("<int:suggestion_id>/dismiss/", view(require_POST(self.dismiss_view), "suggestion.decide"),
                 name="feedback_suggestion_dismiss"),
            path("analyze/<int:client_id>/", view(require_POST(self.analyze_view), "analysis.run"),
                 name="feedback_analyze"),
            path("analysis-job/<int:job_id>/", view(require_GET(self.job_view), "analysis.view"),
                 name="feedback_analysis_job"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        self.require(request, self.view_action)
        if request.GET.get("client"):  # the client page's link: a client the person may not see is a 404
            try:
                client = client_get(actor=request.user, client_id=request.GET["client"])
            except NotFound as exc:
                raise Http404(exc.message) from exc
            return HttpResponseRedirect(f"{request.path}?client__id__exact={client.pk}")
        chosen = request.GET.get("client__id__exact")
        clients = [c for c in clients_visible_to(actor=request.user).filter(feedback__isnull=False).distinct()
                   .order_by("name") if not chosen or str(c.pk) == chosen]
        may_run = [c for c in clients if policy.allows(request.user, "analysis.run", c)]
        context = {"title": "Suggested improvements", "analyze_clients": may_run, "next": request.get_full_path(),
                   "analysis_jobs": self._jobs(request), "reload_when_done": True,
                   "may_decide": self.allows(request, "suggestion.decide")}
        return super().changelist_view(request, {**(extra_context or {}), **context})

    @staticmethod
    def _jobs(request, client: Client | None = None) -> list[dict[str, Any]]:
        return [{**job_state(job), "url": reverse("instance_admin:feedback_analysis_job", args=[job.pk])}
                for job in selectors.analysis_jobs_recent(actor=request.user, client=client)]

    # one suggestion (the queue's row buttons, the client page)

    def _decide(self, request, suggestion_id: int, decide, done: str):
        back = _back(request, reverse("instance_admin:feedback_suggestion_changelist"))
        reason = _reason_of(request, suggestion_id)
        return _posted(request, back, lambda: decide(
            actor=request.user, suggestion=selectors.suggestion_get(actor=request.user, suggestion_id=suggestion_id),
            reason=reason), done=lambda: f"Suggestion #{suggestion_id} {done}.")

    def apply_view(self, request, suggestion_id: int):
        return self._decide(request, suggestion_id, services.suggestion_apply, "applied: it is now a client rule")

    def dismiss_view(self, request, suggestion_id: int):
        return self._decide(request, suggestion_id, services.suggestion_dismiss, "dismissed")

    # many suggestions (bulk actions)

    @admin.action(description="Apply selected suggestions", permissions=["decide"])
    def apply_selected(self, request, queryset):
        self._decide_many(request, queryset, services.suggestion_apply, "applied")

    @admin.action(description="Dismiss selected suggestions", permissions=["decide"])
    def dismiss_selected(self, request, queryset):
        self._decide_many(request, queryset, services.suggestion_dismiss, "dismissed")

    def _decide_many(self, request, queryset, decide, done: str) -> None:
        decide_each(self, request, queryset, decide, argument="suggestion", nouns=("suggestion", "suggestions"),
                    done=done)

    # analysis

    def analyze_view(self, request, client_id: int):
        """Analyze now: a job for a worker; the page that asked shows it running, then its result."""
        back = _back(request, reverse("instance_admin:feedback_suggestion_changelist") + f"?client={client_id}")
        try:
            client = client_get(actor=request.user, client_id=client_id)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        self.require(request, "analysis.run", client)
        return _posted(request, back, lambda: jobs.analysis_job_start(actor=request.user, client=client),
                       done=lambda: f"Analysis of {client.name}'s feedback started: its progress shows below.")

    def job_view(self, request, job_id: int):
        """The progress of an "Analyze now" job, as JSON for the page's poll."""
        job = selectors.analysis_job_visible(actor=request.user, job_id=job_id)
        return JsonResponse(job_state(jobs.analysis_job_recover(job=job)))


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
    """The client page's suggestions: each pending one with its evidence, a reason field and Apply /
    Dismiss (for who may decide), Analyze now and its progress. The panel sits inside the client's
    change form, so its buttons post that form to the decision URLs (`formaction`), and come back here."""
    pending = list(selectors.suggestions_visible_to(actor=request.user, client=client).filter(
        status=SuggestionStatus.PENDING)[:8])
    for suggestion in pending:
        suggestion.evidence_html = evidence_html(suggestion.examples[:1])
    here = reverse("instance_admin:tuning_client_change", args=[client.pk])
    return render_to_string("admin/feedback/client_suggestions.html", {
        "client": client, "pending": pending, "latest": selectors.latest_analysis(client=client),
        "may_decide": policy.allows(request.user, "suggestion.decide", client),
        "may_analyze": policy.allows(request.user, "analysis.run", client),
        "analysis_jobs": SuggestionAdmin._jobs(request, client), "reload_when_done": False, "next": here,
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
            "queue_url": reverse("instance_admin:feedback_suggestion_changelist") + "?status__exact=pending"}


instance_admin.register_panel(LandingPanel("Suggested improvements", "admin/feedback/panel_suggestions.html",
                                           _landing, order=30))
