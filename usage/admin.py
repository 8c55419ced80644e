"""The usage pages (issue #20): the instance's "Usage" page (charts drawn on the server, filters, top
runs, totals, CSV) for whoever the policy gives `usage.view` (an account manager sees their clients
only), and the platform's per-instance totals. Both read the rollup (usage/selectors.py), never runs
(but the ten costliest, LIMIT 10), so a page's queries do not grow with the number of runs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from spokestack.accounts import policy
from spokestack.admin_site import ReadOnlyAdmin, instance_admin, platform_admin
from spokestack.errors import DomainError, InvalidInput
from tuning.models import agent_label as agent_title

from . import (
    budget_admin,  # noqa: F401 - registers the budgets page
    charts,
    selectors,
)
from .api import usage_csv, usage_query, usage_report
from .models import UsageDaily

ACTION = selectors.ACTION
MAX_SERIES = 7  # more agents or clients than this: the rest are one "Other" series


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:,.4f}"


def _duration(ms: int | None, runs: int) -> str:
    if not runs:
        return "—"
    if ms is None:
        return f"over {selectors.DURATION_BUCKETS_MS[-1] // 60_000} min"
    return f"≤ {ms / 1000:g} s" if ms < 120_000 else f"≤ {ms // 60_000} min"


def _labelled(group: dict[str, Any]) -> dict[str, Any]:
    """A totals dict with what the page shows of it."""
    return {**group, "cost_label": _money(float(group["cost_usd"])), "saved_label": _money(float(group["cache_saved_usd"])),
            "share_label": f"{100 * group['cache_read_share']:.1f} %",
            "p50_label": _duration(group["p50_duration_ms"], group["runs"]),
            "p95_label": _duration(group["p95_duration_ms"], group["runs"])}


def _weekly_series(groups: list[dict[str, Any]], weeks: list[dt.date], label, metric: str,
                   order: list[str] | None = None) -> dict[str, list[float]]:
    """{series label: one value per week}, the biggest series first (or in `order`, so that an agent
    keeps its colour from chart to chart), the tail folded into "Other"."""
    by_name: dict[str, dict[dt.date, float]] = {}
    for group in groups:
        name = label(group["group"])
        by_name.setdefault(name, {})
        week = group["group"]["week"]
        by_name[name][week] = by_name[name].get(week, 0.0) + float(group[metric])
    ranked = sorted(by_name, key=lambda name: -sum(by_name[name].values()))
    if order:
        ranked = [name for name in order if name in by_name] + [name for name in ranked if name not in order]
    series = {name: [by_name[name].get(week, 0.0) for week in weeks] for name in ranked[:MAX_SERIES]}
    if len(ranked) > MAX_SERIES:
        series["Other"] = [sum(by_name[name].get(week, 0.0) for name in ranked[MAX_SERIES:]) for week in weeks]
    return series


@admin.register(UsageDaily, site=instance_admin)
class UsageAdmin(ReadOnlyAdmin):
    """The changelist is the usage page; nothing else is served (the rows are the rollup's)."""

    view_action = ACTION

    def get_urls(self):
        return [path("", self.policy_view(self.changelist_view, ACTION), name="usage_usagedaily_changelist"),
                path("export.csv", self.policy_view(self.export_view, ACTION), name="usage_usagedaily_export")]

    def _query(self, request: HttpRequest) -> tuple[dict[str, Any], str | None]:
        try:
            return usage_query(request), None
        except DomainError as exc:
            date_from, date_to = selectors.default_window()
            return {"date_from": date_from, "date_to": date_to, "agent_type": None, "client_id": None}, exc.message

    def export_view(self, request: HttpRequest) -> HttpResponse:
        group_by = request.GET.get("group_by") or "agent"
        try:
            if group_by not in selectors.GROUPS:
                raise InvalidInput(f"group_by: choose one of {', '.join(selectors.GROUPS)}.")
            query = usage_query(request)
            report = usage_report(request.user, query, group_by)
        except InvalidInput as exc:
            return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d")
        return usage_csv(report, filename=f"usage-{query['date_from']}-{query['date_to']}-{group_by}-{stamp}.csv")

    def changelist_view(self, request: HttpRequest, extra_context=None):
        query, problem = self._query(request)
        rows = selectors.usage_rows(request.user, **query)
        weeks = selectors.weeks_between(query["date_from"], query["date_to"])
        by_week_agent = selectors.usage_breakdown(rows, ["week", "agent"])
        by_week_client = selectors.usage_breakdown(rows, ["week", "client"])
        by_agent = sorted(selectors.usage_breakdown(rows, ["agent"]), key=lambda g: -g["cost_usd"])
        totals = _labelled(selectors.window_totals(rows))
        x_labels = [week.strftime("%d %b") for week in weeks]

        def agent_label(group):
            return agent_title(group["agent"])

        def client_label(group):
            return group["client_name"] or "No client"

        def money_axis(value):
            return _money(value)

        agent_order = [agent_title(g["group"]["agent"]) for g in by_agent]  # by cost, as the table
        cost_by_agent = charts.stacked_bars(
            title="Cost by week, per agent", x_labels=x_labels, value_label=money_axis,
            series=_weekly_series(by_week_agent, weeks, agent_label, "cost_usd", agent_order))
        cost_by_client = charts.stacked_bars(
            title="Cost by week, per client", x_labels=x_labels, value_label=money_axis,
            series=_weekly_series(by_week_client, weeks, client_label, "cost_usd"))
        runs_by_agent = charts.stacked_bars(
            title="Runs by week, per agent", x_labels=x_labels, value_label=lambda v: f"{v:,.0f}", whole=True,
            series=_weekly_series(by_week_agent, weeks, agent_label, "runs", agent_order))
        clients = policy.clients_for(request.user, ACTION).order_by("name").only("id", "name")
        agent_choices = sorted({g["group"]["agent"] for g in by_agent} | (
            {query["agent_type"]} if query["agent_type"] else set()))
        filters = {k: v for k, v in (("from", query["date_from"]), ("to", query["date_to"]),
                                     ("agent_type", query["agent_type"]), ("client_id", query["client_id"])) if v}
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "title": "Usage",
            "problem": f"{problem} Showing the last 30 days instead." if problem else "",
            "query": query, "clients": clients, "agent_choices": [(a, agent_title(a)) for a in agent_choices],
            "totals": totals, "by_agent": [{**_labelled(g), "title": agent_title(g["group"]["agent"])} for g in by_agent],
            "cost_by_agent": cost_by_agent, "cost_by_client": cost_by_client, "runs_by_agent": runs_by_agent,
            "cache_share": charts.share_bar(title="Share of prompt tokens read from the cache",
                                            share=totals["cache_read_share"]),
            "cache_share_percent": round(100 * totals["cache_read_share"], 1),
            "top_runs": self._top_runs(request, query),
            "csv_url": reverse("instance_admin:usage_usagedaily_export") + "?" + urlencode(
                {**filters, "group_by": "agent"}),
            "csv_daily_url": reverse("instance_admin:usage_usagedaily_export") + "?" + urlencode(
                {**filters, "group_by": "day"}),
        }
        return TemplateResponse(request, "admin/usage/usage.html", context)


    @staticmethod
    def _top_runs(request: HttpRequest, query: dict[str, Any]) -> list:
        runs = list(selectors.top_runs(request.user, **query))
        for run in runs:
            run.agent_title = agent_title(run.agent_type)
            run.cost_label = _money(float(run.cost_usd))
        return runs


class PlatformUsageAdmin(admin.ModelAdmin):
    """The platform's usage page: each instance's runs and cost of the last 30 days. Served on the
    public host, where the rollup's table does not exist: only this page is routed, and it reads each
    instance in its own schema."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        return [path("", self.admin_site.admin_view(self.changelist_view), name="usage_usagedaily_changelist")]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("Only platform staff see the instances' usage.")
        instances = selectors.platform_usage(days=30)
        total_cost = sum((row["cost_usd"] for row in instances), Decimal(0))
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Usage per instance",
                   "instances": instances, "total_cost": total_cost,
                   "total_runs": sum(row["runs"] for row in instances),
                   "chart": charts.stacked_bars(
                       title="Cost of the last 30 days, per instance", x_labels=[r["instance"].name for r in instances],
                       series={"Cost": [float(r["cost_usd"]) for r in instances]}, value_label=_money)}
        return TemplateResponse(request, "admin/usage/platform_usage.html", context)


platform_admin.register(UsageDaily, PlatformUsageAdmin)
