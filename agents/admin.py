"""Runs in the instance admin: a list, a live run page and a "Run an agent" form."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from feedback.selectors import feedback_visible_to
from spokestack.accounts import policy
from spokestack.admin_site import InstanceModelAdmin, LandingPanel, ReadOnlyAdmin, instance_admin
from spokestack.errors import Conflict, DomainError, InvalidInput, NotAllowed
from tuning.models import AGENT_TITLES, agent_label

from .approval_rules import approval_rule_check, approval_rule_create, approval_rule_delete, approval_rule_update
from .approvals import approval_decide, approvals_visible_to, can_decide, pending_for, sla_state, turn_pending
from .checks import SOURCES as CHECK_SOURCES
from .models import (
    AgentRun,
    ApprovalPriority,
    ApprovalRequest,
    ApprovalRule,
    ApprovalStatus,
    ReviewStatus,
    RunStatus,
    Thread,
    ThreadStatus,
)
from .registry import agent_types, get_spec
from .selectors import REVIEW_FILTERS, runs_in_review, runs_visible_to
from .services import run_cancel, run_create, run_version_for
from .threads import thread_close, thread_continue_from_run, thread_message_send, threads_visible_to

STATUS_COLOURS = {
    RunStatus.QUEUED: "#6c757d", RunStatus.RUNNING: "#0d6efd", RunStatus.AWAITING_APPROVAL: "#fd7e14",
    RunStatus.WAITING: "#6f42c1",
    RunStatus.SUCCEEDED: "#198754", RunStatus.FAILED: "#dc3545", RunStatus.CANCELLED: "#6c757d",
}


# Where tuning and the other apps name an agent type, they show its title ("Media buying").
AGENT_TITLES.update({t: get_spec(t).title for t in agent_types()})


def status_badge(run: AgentRun) -> str:
    return format_html('<span class="run-status" data-status="{}" style="background:{};color:#fff;padding:2px 8px;'
                       'border-radius:10px;font-size:11px">{}</span>', run.status,
                       STATUS_COLOURS.get(run.status, "#333"), run.get_status_display())


class RunAgentForm(forms.Form):
    agent_type = forms.ChoiceField(help_text="The core agent to run, at the version this instance uses.")
    client = forms.ModelChoiceField(queryset=None, required=False, help_text="Whose tuning and data to use.")
    task = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 80}), max_length=100_000)
    language = forms.CharField(required=False, max_length=10, help_text="e.g. en, ar, fr, de")
    vertical = forms.CharField(required=False, max_length=40, help_text="e.g. beauty, finance, technology")
    region = forms.CharField(required=False, max_length=20, help_text="e.g. GCC, EU, US")

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent_type"].choices = [
            (t, f"{get_spec(t).title} ({t} {run_version_for(t)})") for t in agent_types()]
        self.fields["client"].queryset = policy.clients_for(user, "run.create")


class ReviewFilter(admin.SimpleListFilter):
    """The review queue: outputs that broke a content filter or client rule, and every output of an
    agent the instance audits, until someone gives feedback on them."""

    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [(ReviewStatus.PENDING, "Needs review"), (ReviewStatus.REVIEWED, "Reviewed")]

    def queryset(self, request, queryset):
        return runs_in_review(queryset, self.value()) if self.value() in REVIEW_FILTERS else queryset


class AgentTypeFilter(admin.SimpleListFilter):
    """The agent types the listed runs have, by title."""

    title = "agent"
    parameter_name = "agent_type"

    def lookups(self, request, model_admin):
        types = model_admin.get_queryset(request).order_by().values_list("agent_type", flat=True).distinct()
        return sorted(((t, agent_label(t)) for t in types), key=lambda choice: choice[1])

    def queryset(self, request, queryset):
        return queryset.filter(agent_type=self.value()) if self.value() else queryset


def review_badge(run: AgentRun) -> str:
    if run.review_status == ReviewStatus.PENDING:
        return format_html('<span class="run-review" data-review="pending" title="{}" style="background:#fd7e14;'
                           'color:#fff;padding:2px 8px;border-radius:10px;font-size:11px">needs review</span>',
                           run.review_reason)
    if run.review_status == ReviewStatus.REVIEWED:
        return format_html('<span class="run-review" data-review="reviewed" title="{}">reviewed</span>',
                           run.review_reason)
    return ""


@admin.register(AgentRun, site=instance_admin)
class AgentRunAdmin(ReadOnlyAdmin):
    """Runs start from the "Run an agent" page or the API; services own every change."""

    view_action = "run.view"
    list_display = ["short_id", "agent", "agent_version", "client", "badge", "review", "created_by", "created_at",
                    "duration", "cost"]
    list_filter = ["status", ReviewFilter, AgentTypeFilter, "client", "simulated"]
    search_fields = ["task", "output", "agent_type"]
    list_select_related = ["client", "created_by"]
    date_hierarchy = "created_at"
    change_form_template = "admin/agents/agentrun/live.html"
    actions = ["cancel_runs"]

    def get_queryset(self, request):
        return runs_visible_to(actor=request.user)

    def has_cancel_permission(self, request) -> bool:
        return self.allows(request, "run.cancel")

    @admin.display(description="Run", ordering="created_at")
    def short_id(self, run):
        return str(run.pk)[:8]

    @admin.display(description="Agent", ordering="agent_type")
    def agent(self, run):  # the title, and the agent type as the API names it
        return format_html('{} <code class="quiet">{}</code>', agent_label(run.agent_type), run.agent_type)

    @admin.display(description="Status", ordering="status")
    def badge(self, run):
        return status_badge(run)

    @admin.display(description="Review", ordering="review_status")
    def review(self, run):
        return review_badge(run)

    @admin.display(description="Duration")
    def duration(self, run):
        return f"{run.duration_s:.1f} s" if run.duration_s is not None else "—"

    @admin.display(description="Cost", ordering="cost_usd")
    def cost(self, run):
        if run.children_cost_usd:
            return format_html('${} <span class="quiet" title="its own ${} plus its delegated runs\' ${}">'
                               '(with delegated)</span>', f"{run.total_cost_usd:.4f}", f"{run.cost_usd:.4f}",
                               f"{run.children_cost_usd:.4f}")
        return f"${run.cost_usd:.4f}"

    @admin.action(description="Cancel the selected runs", permissions=["cancel"])
    def cancel_runs(self, request, queryset):
        cancelled = 0
        for run in queryset:
            try:
                run_cancel(actor=request.user, run=run)
                cancelled += 1
            except DomainError as exc:
                messages.warning(request, f"{str(run.pk)[:8]}: {exc.message}")
        messages.success(request, f"Asked {cancelled} run(s) to stop.")

    def get_urls(self):
        return [path("run/", self.policy_view(self.run_agent_view, "run.create"), name="agents_agentrun_run"),
                path("<uuid:run_id>/cancel/", self.policy_view(require_POST(self.cancel_view), "run.cancel"),
                     name="agents_agentrun_cancel"),
                path("<uuid:run_id>/approvals/<uuid:approval_id>/decide/",
                     self.policy_view(require_POST(self.decide_view), "approval.decide"),
                     name="agents_agentrun_decide"),
                path("<uuid:run_id>/reply/", self.policy_view(require_POST(self.reply_view), "thread.message"),
                     name="agents_agentrun_reply"),
                path("<uuid:run_id>/close-thread/",
                     self.policy_view(require_POST(self.close_thread_view), "thread.close"),
                     name="agents_agentrun_close_thread"),
                path("<uuid:run_id>/continue/",
                     self.policy_view(require_POST(self.continue_view), "thread.create"),
                     name="agents_agentrun_continue"),
                *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        from usage.selectors import runs_totals

        may_run = self.allows(request, "run.create")
        response = super().changelist_view(request, {**(extra_context or {}), "run_agent_url": reverse(
            "instance_admin:agents_agentrun_run") if may_run else None})
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:  # the runs the filters select, all pages (one aggregate query)
            response.context_data["run_totals"] = runs_totals(changelist.queryset)
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.require(request, self.view_action)
        run = self.get_object(request, object_id)
        if run is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        context = {**self.admin_site.each_context(request), "run": run, "opts": self.opts,
                   "agent_title": agent_label(run.agent_type),
                   "title": f"{agent_label(run.agent_type)} run {str(run.pk)[:8]}", "badge": status_badge(run),
                   "tool_calls": run.tool_calls.all(), "artifacts": run.artifacts.all(),
                   "check_violations": [{**v, "source_label": CHECK_SOURCES.get(v.get("source"), v.get("source"))}
                                        for v in (run.checks or {}).get("violations", [])],
                   "check_sources": CHECK_SOURCES, **self._human_steps(request, run),
                   **self._conversation(request, run), **self._family(request, run),
                   "has_view_permission": True, "original": run}
        return TemplateResponse(request, self.change_form_template, context)

    def _family(self, request, run: AgentRun) -> dict:
        """A delegating run's children (each a collapsible section its events fill in live) and a
        delegated run's parent, as far as the viewer may see them."""
        visible = runs_visible_to(actor=request.user)
        children = list(visible.filter(parent=run).select_related("parent_call").defer("messages")
                        .order_by("created_at", "pk"))
        for child in children:
            child.badge, child.agent_title = status_badge(child), agent_label(child.agent_type)
        parent = visible.filter(pk=run.parent_id).defer("messages").first() if run.parent_id else None
        if parent is not None:
            parent.agent_title = agent_label(parent.agent_type)
        return {"children": children, "parent_run": parent}

    def _human_steps(self, request, run: AgentRun) -> dict:
        """What a person can do on the run page: the calls held for approval (Approve / Reject only
        for who may decide them), Cancel while the run has not ended, and the feedback already given.
        The page's script fetches the page again on each such event and swaps these parts in."""
        approvals = list(run.approvals.select_related("decided_by").order_by("created_at"))
        for approval in approvals:
            approval.may_decide = (approval.status == ApprovalStatus.PENDING and not run.is_finished
                                   and can_decide(request.user, approval))
        return {"approvals": approvals,
                "may_open_request": policy.allows(request.user, "approval.view", run.client_id),
                "may_cancel": not run.is_finished and policy.allows(request.user, "run.cancel", run.client_id),
                # versions/evals: a succeeded top-level run's output can become an eval case
                "may_make_eval_case": run.status == RunStatus.SUCCEEDED and not run.parent_id and bool(run.output)
                and policy.allows(request.user, "eval.manage", run.client_id),
                "feedback_given": feedback_visible_to(actor=request.user).filter(run=run, current=True)
                .order_by("-created_at")}

    def _conversation(self, request, run: AgentRun) -> dict:
        """A thread's turn: the turns before it (each message, answer, status, cost and run page),
        the ones after it, and Reply (its last turn, once finished, to whom may message the thread)
        and Close. A succeeded run outside a thread: "Continue in a thread". The page's script swaps
        the #run-thread part in when the turn ends, so Reply appears without a reload."""
        client_id = run.client_id
        if run.thread_id is None:
            return {"thread": None, "may_continue": run.status == RunStatus.SUCCEEDED
                    and policy.allows(request.user, "thread.create", client_id)}
        thread = Thread.objects.get(pk=run.thread_id)
        turns = list(runs_visible_to(actor=request.user).filter(thread=thread).defer("messages")
                     .order_by("thread_turn"))
        for turn in turns:
            turn.badge = status_badge(turn)
        later = [t for t in turns if t.thread_turn > run.thread_turn]
        is_open = thread.status == ThreadStatus.OPEN
        may_reply = (is_open and not later and run.is_finished
                     and policy.allows(request.user, "thread.message", client_id))
        # A reply that was refused waits in the session until a Reply box shows it again.
        draft = request.session.pop(self._draft_key(thread.pk), "") if may_reply else ""
        return {"thread": thread, "earlier_turns": [t for t in turns if t.thread_turn < run.thread_turn],
                "later_turns": later, "thread_turns": max(thread.turns_count, run.thread_turn),
                "may_reply": may_reply, "reply_draft": draft,
                "may_close": is_open and policy.allows(request.user, "thread.close", client_id)}

    @staticmethod
    def _draft_key(thread_id) -> str:
        return f"thread-reply-draft:{thread_id}"

    def reply_view(self, request, run_id):
        """Reply: the thread's next turn, then its run page (which streams it). A refusal (a turn
        still running, the thread closed, its version gone, an empty message) is a message on this
        page; the text is kept for the next Reply box of the thread."""
        run = self._run_or_404(request, run_id)
        if run.thread_id is None:
            raise Http404("This run is not a turn of a thread: continue it in a thread first.")
        text = request.POST.get("message", "")
        try:
            created = thread_message_send(actor=request.user, thread_id=run.thread_id, message=text,
                                          metadata={"source": "admin"})
        except (Conflict, InvalidInput) as exc:
            messages.error(request, exc.message)
            if text.strip():
                request.session[self._draft_key(run.thread_id)] = text[:100_000]
            return redirect(reverse("instance_admin:agents_agentrun_change", args=[run.pk]))
        messages.success(request, f"Sent: turn {created.run.thread_turn} started.")
        return redirect(reverse("instance_admin:agents_agentrun_change", args=[created.run.pk]))

    def close_thread_view(self, request, run_id):
        run = self._run_or_404(request, run_id)
        if run.thread_id is None:
            raise Http404("This run is not a turn of a thread.")
        try:
            thread_close(actor=request.user, thread_id=run.thread_id)
        except Conflict as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Thread closed: it takes no more messages.")
        return redirect(reverse("instance_admin:agents_agentrun_change", args=[run.pk]))

    def continue_view(self, request, run_id):
        run = self._run_or_404(request, run_id)
        try:
            continued = thread_continue_from_run(actor=request.user, run_id=run.pk)
        except (Conflict, InvalidInput) as exc:
            messages.error(request, exc.message)
        else:
            if continued.created:
                messages.success(request, "Continued in a thread: this run is its turn 1. Reply below.")
            else:
                messages.info(request, f"This run is a turn of the thread “{continued.thread}” already.")
        return redirect(reverse("instance_admin:agents_agentrun_change", args=[run.pk]))

    def _run_or_404(self, request, run_id) -> AgentRun:
        run = self.get_queryset(request).filter(pk=run_id).first()
        if run is None:
            raise Http404("No such run, or it belongs to a client you do not work on.")
        return run

    def cancel_view(self, request, run_id):
        run = self._run_or_404(request, run_id)
        try:
            run = run_cancel(actor=request.user, run=run)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from exc
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Cancelled." if run.status == RunStatus.CANCELLED
                             else "Asked the run to stop; it stops at its next step.")
        return redirect(reverse("instance_admin:agents_agentrun_change", args=[run.pk]))

    def decide_view(self, request, run_id, approval_id):
        run = self._run_or_404(request, run_id)
        approval = run.approvals.filter(pk=approval_id).first()
        if approval is None:
            raise Http404("This run has no such approval request.")
        form = DecisionForm(request.POST)
        approve = "_approve" in request.POST
        if not form.is_valid():
            messages.error(request, " ".join(form.errors.get("note", ["The note is not valid."])))
        else:
            try:
                approval_decide(actor=request.user, approval_id=approval.pk, approve=approve,
                                note=form.cleaned_data["note"])
            except NotAllowed as exc:
                raise PermissionDenied(exc.message) from exc
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"Approved {approval.tool_name}: the run goes on." if approve else
                                 f"Rejected {approval.tool_name}: the agent is told why and goes on without it.")
        return redirect(reverse("instance_admin:agents_agentrun_change", args=[run.pk]))

    def run_agent_view(self, request):
        form = RunAgentForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            specialization = {k: data[k] for k in ("language", "vertical", "region") if data.get(k)}
            try:
                created = run_create(actor=request.user, agent_type=data["agent_type"], task=data["task"],
                                     client_id=data["client"].pk if data["client"] else None,
                                     specialization=specialization, metadata={"source": "admin"})
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                for_client = f" for {data['client']}" if data["client"] else ""
                messages.success(request, f"Run started: {agent_label(created.run.agent_type)}{for_client}.")
                return redirect(reverse("instance_admin:agents_agentrun_change", args=[created.run.pk]))
        context = {**self.admin_site.each_context(request), "form": form, "opts": self.opts,
                   "title": "Run an agent"}
        return TemplateResponse(request, "admin/agents/agentrun/run_agent.html", context)


def _recent_runs(request) -> dict:
    may_run = policy.allows(request.user, "run.create")
    runs = list(runs_visible_to(actor=request.user).order_by("-created_at")[:8])
    for run in runs:
        run.agent_title = agent_label(run.agent_type)
    return {"runs": runs,
            "run_agent_url": reverse("instance_admin:agents_agentrun_run") if may_run else None}


def _agents(request) -> dict:
    if not policy.allows(request.user, "agent.view"):
        return {"agents": []}
    return {"agents": [get_spec(t, run_version_for(t)) for t in agent_types()]}


instance_admin.register_panel(LandingPanel("Agents", "admin/agents/panel_agents.html", _agents, order=10))
instance_admin.register_panel(LandingPanel("Recent runs", "admin/agents/panel_runs.html", _recent_runs, order=20))


# --- approvals --------------------------------------------------------------------------


@admin.register(Thread, site=instance_admin)
class ThreadAdmin(ReadOnlyAdmin):
    """Threads, read-only: each turn is a run, linked to its live page (services own every change)."""

    view_action = "thread.view"
    list_display = ["name", "agent", "agent_version", "client", "status", "turns_count", "turn_links", "created_by",
                    "updated_at"]
    list_display_links = None  # the title opens the conversation (the latest turn's run page)
    list_filter = ["status", AgentTypeFilter, "client"]
    search_fields = ["title", "agent_type"]
    list_select_related = ["client", "created_by"]
    fields = ["title", "agent_type", "agent_version", "client", "status", "created_by", "created_at", "closed_at",
              "turn_links"]
    readonly_fields = fields

    def get_queryset(self, request):
        turns = AgentRun.objects.defer("messages", "task", "output").order_by("thread_turn")
        return threads_visible_to(actor=request.user).prefetch_related(Prefetch("turns", queryset=turns))

    @admin.display(description="Thread", ordering="title")
    def name(self, thread):
        turns = list(thread.turns.all())
        title = thread.title or str(thread.pk)[:8]
        if not turns:  # nothing said yet: the thread's own page
            return format_html('<a href="{}">{}</a>', reverse("instance_admin:agents_thread_change",
                                                              args=[thread.pk]), title)
        return format_html('<a href="{}" class="thread-conversation" title="Open the conversation at its latest turn">'
                           '{}</a>', reverse("instance_admin:agents_agentrun_change", args=[turns[-1].pk]), title)

    @admin.display(description="Agent", ordering="agent_type")
    def agent(self, thread):
        return format_html('{} <code class="quiet">{}</code>', agent_label(thread.agent_type), thread.agent_type)

    @admin.display(description="Turns (runs)")
    def turn_links(self, thread):
        turns = list(thread.turns.all())
        if not turns:
            return "—"
        return format_html_join(" ", '<a href="{}">{}. {}</a>', (
            (reverse("instance_admin:agents_agentrun_change", args=[run.pk]), run.thread_turn, status_badge(run))
            for run in turns))


class DecisionForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
                           help_text="Why (a rejection's note is what the agent reads).")
    whole_turn = forms.BooleanField(required=False, label="Decide the whole turn",
                                    help_text="The same decision for every call of this turn still pending "
                                              "(the run goes on once).")


class SlaStateFilter(admin.SimpleListFilter):
    title = "SLA"
    parameter_name = "sla"

    def lookups(self, request, model_admin):
        return [("on_time", "On time"), ("warned", "Warned (75 %)"), ("escalated", "Escalated (breached)")]

    def queryset(self, request, queryset):
        if self.value() == "on_time":
            return queryset.filter(status=ApprovalStatus.PENDING, warned_at__isnull=True, escalated_at__isnull=True)
        if self.value() == "warned":
            return queryset.filter(status=ApprovalStatus.PENDING, warned_at__isnull=False, escalated_at__isnull=True)
        if self.value() == "escalated":
            return queryset.filter(status=ApprovalStatus.PENDING, escalated_at__isnull=False)
        return queryset


class AssignedToMeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        return [("me", "Assigned to me"), ("anyone", "Assigned to someone"), ("none", "Not assigned")]

    def queryset(self, request, queryset):
        return {"me": lambda: queryset.filter(assigned_to=request.user),
                "anyone": lambda: queryset.filter(assigned_to__isnull=False),
                "none": lambda: queryset.filter(assigned_to__isnull=True)}.get(self.value(), lambda: queryset)()


@admin.register(ApprovalRequest, site=instance_admin)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    """The approval queue: pending first; a request's page shows the exact call and decides it."""

    view_action = "approval.view"
    list_display = ["tool", "client", "priority_badge", "assignee", "sla_column", "rule_pattern", "status", "run_link",
                    "created_at", "decided_by"]
    list_filter = ["status", "priority", SlaStateFilter, AssignedToMeFilter, "tool_name"]
    search_fields = ["tool_name", "rendered_input", "rule"]
    list_select_related = ["client", "run", "decided_by", "assigned_to"]
    ordering = ["-priority", "sla_due_at", "-created_at"]
    change_form_template = "admin/agents/approvals_decide.html"

    @admin.display(description="Priority", ordering="priority")
    def priority_badge(self, approval):
        colours = {ApprovalPriority.URGENT: "#dc3545", ApprovalPriority.HIGH: "#fd7e14",
                   ApprovalPriority.NORMAL: "#6c757d", ApprovalPriority.LOW: "#adb5bd"}
        return format_html('<span class="approval-priority" data-priority="{}" style="color:{};font-weight:600">'
                           '{}</span>', ApprovalPriority(approval.priority).name.lower(),
                           colours.get(approval.priority, "#333"), approval.get_priority_display())

    @admin.display(description="Assigned to", ordering="assigned_to__email")
    def assignee(self, approval):
        if approval.assigned_to is None:
            return "—"
        return format_html('<span title="Asked first; anyone who may decide still can">{}</span>',
                           approval.assigned_to.email)

    @admin.display(description="SLA", ordering="sla_due_at")
    def sla_column(self, approval):
        from django.utils import timezone
        from django.utils.timesince import timeuntil

        state = sla_state(approval)
        if state == "escalated":
            return format_html('<span class="approval-sla" data-sla="escalated" style="color:#dc3545">escalated · '
                               'expires in {}</span>', timeuntil(approval.expires_at))
        if state == "warned":
            return format_html('<span class="approval-sla" data-sla="warned" style="color:#fd7e14">warned · due in '
                               '{}</span>', timeuntil(approval.sla_due_at))
        if state == "on_time" and approval.sla_due_at:
            if approval.sla_due_at <= timezone.now():
                return format_html('<span class="approval-sla" data-sla="breached">breached</span>')
            return format_html('<span class="approval-sla" data-sla="on_time">due in {}</span>',
                               timeuntil(approval.sla_due_at))
        return "—"

    def get_queryset(self, request):
        return approvals_visible_to(actor=request.user)

    def changelist_view(self, request, extra_context=None):
        if "status__exact" not in request.GET and not request.GET.get("all"):
            query = request.GET.copy()
            query["status__exact"] = ApprovalStatus.PENDING
            request.GET = query
            request.META["QUERY_STRING"] = query.urlencode()
        return super().changelist_view(request, extra_context)

    @admin.display(description="Run")
    def run_link(self, approval):
        return format_html('<a href="{}">{} · {}</a>', reverse("instance_admin:agents_agentrun_change",
                                                              args=[approval.run_id]),
                           agent_label(approval.run.agent_type), str(approval.run_id)[:8])

    @admin.display(description="Tool", ordering="tool_name")
    def tool(self, approval):
        return format_html("<code>{}</code>", approval.tool_name)

    @admin.display(description="Rule", ordering="rule")
    def rule_pattern(self, approval):
        return format_html("<code>{}</code>", approval.rule) if approval.rule else "—"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.require(request, self.view_action)
        approval = self.get_object(request, object_id)
        if approval is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        form = DecisionForm(request.POST or None)
        if request.method == "POST":
            self.require(request, "approval.decide", approval.client_id)
        if request.method == "POST" and form.is_valid():
            approve = "_approve" in request.POST
            try:
                decided = approval_decide(actor=request.user, approval_id=approval.pk, approve=approve,
                                          note=form.cleaned_data["note"], whole_turn=form.cleaned_data["whole_turn"])
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                also = len(decided.turn_decided) - 1
                messages.success(request, f"{'Approved' if approve else 'Rejected'}: {approval.tool_name}"
                                          + (f" and {also} more call(s) of the same turn." if also else "."))
                return redirect(reverse("instance_admin:agents_approvalrequest_changelist"))
        turn = list(turn_pending(approval).exclude(pk=approval.pk).order_by("created_at")) \
            if approval.status == ApprovalStatus.PENDING else []
        context = {**self.admin_site.each_context(request), "approval": approval, "form": form, "opts": self.opts,
                   "title": f"Approve {approval.tool_name}?", "original": approval, "has_view_permission": True,
                   "run_agent": agent_label(approval.run.agent_type), "turn_pending": turn,
                   "sla_state": sla_state(approval),
                   "can_decide": approval.status == ApprovalStatus.PENDING and can_decide(request.user, approval)}
        return TemplateResponse(request, self.change_form_template, context)


class ApprovalRuleForm(forms.ModelForm):
    value = forms.JSONField(required=False, widget=forms.TextInput(attrs={"size": 40}),
                            help_text='JSON: 5 for a number, "EUR" for a text, ["EUR", "USD"] for in. Numeric '
                                      "comparisons need a number.")

    class Meta:
        model = ApprovalRule
        fields = ["tool_name", "field_path", "op", "value", "action", "priority", "assignee_role", "enabled", "note"]

    def _post_clean(self) -> None:  # the service's checks, shown on the form's fields
        super()._post_clean()
        if self.errors:
            return
        try:
            approval_rule_check(self.instance)
        except DomainError as exc:
            field = exc.message.split(":", 1)[0]
            self.add_error(field if field in self.fields else None, exc.message)


@admin.register(ApprovalRule, site=instance_admin)
class ApprovalRuleAdmin(InstanceModelAdmin):
    """Instance admins' rules: approve matching gated calls without asking, or set their priority
    and assignee. Written through the services (audited); disable with `enabled`."""

    view_action = add_action = change_action = delete_action = "approval.rule.manage"
    form = ApprovalRuleForm
    list_display = ["preview_text", "tool_name", "action", "priority", "assignee_role", "enabled", "created_by",
                    "updated_at"]
    list_filter = ["enabled", "action", "tool_name"]
    list_select_related = ["created_by"]
    readonly_fields = ["preview_text", "created_by", "created_at", "updated_at"]
    actions = ["disable_rules"]

    @admin.display(description="Rule")
    def preview_text(self, rule):
        return rule.preview if rule.pk else "—"

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data.get(f) for f in ApprovalRuleForm.Meta.fields}
        data["op"] = data["op"] or ""
        if change:
            saved = approval_rule_update(actor=request.user, rule=obj, changes=data)
        else:
            saved = approval_rule_create(actor=request.user, **data)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        approval_rule_delete(actor=request.user, rule=obj)

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            approval_rule_delete(actor=request.user, rule=rule)

    @admin.action(description="Disable the selected rules")
    def disable_rules(self, request, queryset):
        for rule in queryset:
            approval_rule_update(actor=request.user, rule=rule, changes={"enabled": False})
        self.message_user(request, f"{queryset.count()} rule(s) disabled.")


def _approvals(request) -> dict:
    if not policy.allows(request.user, "approval.view"):
        return {"pending": None}
    pending = pending_for(actor=request.user)
    return {"pending": pending.count(), "oldest": pending.order_by("-priority", "created_at")[:5],
            "queue_url": reverse("instance_admin:agents_approvalrequest_changelist")}


instance_admin.register_panel(LandingPanel("Approvals", "admin/agents/approvals_panel.html", _approvals, order=5))
