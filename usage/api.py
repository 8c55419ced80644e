"""`GET /api/v1/usage` (and `/api/v1/usage.csv`): usage totals from the rollup, grouped by agent,
client, user, model, day or week, as JSON or a CSV attachment (issue #20)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from spokestack.api.params import choice_param, int_param, text_param
from spokestack.api.schema import ErrorEnvelopeSerializer
from spokestack.api.views import InstanceApiView
from spokestack.errors import InvalidInput
from tuning.api.auditlog import FormatIsAParameter

from . import selectors

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The group's own columns, per group_by (then the metrics).
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "agent": ("agent_type",), "client": ("client_id", "client_name"), "user": ("user_id", "user_email"),
    "model": ("model",), "day": ("day",), "week": ("week",),
}
METRICS = ("runs", "runs_succeeded", "runs_failed", "runs_cancelled", "turns", "tool_calls", "input_tokens",
           "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "cost_usd",
           "cache_read_share", "cache_saved_usd", "p50_duration_ms", "p95_duration_ms")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a cell a spreadsheet would run (CSV injection)


def date_param(params: Mapping[str, str], name: str) -> dt.date | None:
    raw = params.get(name) or ""
    if not raw:
        return None
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name}: give a date that exists as YYYY-MM-DD, e.g. 2026-11-01.",
                           details={name: ["YYYY-MM-DD"]}) from None


def usage_query(request) -> dict[str, Any]:
    """The window and filters of a usage request (defaults: the last 30 days, by day)."""
    params = request.query_params if hasattr(request, "query_params") else request.GET
    date_to = date_param(params, "to") or selectors.default_window()[1]
    date_from = date_param(params, "from") or date_to - dt.timedelta(days=29)
    if date_from > date_to:
        raise InvalidInput(f"from: {date_from} is after to ({date_to}); give from on or before to.",
                           details={"from": [str(date_from)], "to": [str(date_to)]})
    if (date_to - date_from).days > 366 * 3:
        raise InvalidInput("to: the window is at most three years; narrow from/to.", details={"to": [str(date_to)]})
    return {"date_from": date_from, "date_to": date_to,
            "agent_type": text_param(params, "agent_type", max_length=40) or None,
            "client_id": int_param(params, "client_id", minimum=1,
                                   wanted="give the client's id in ASCII digits, e.g. 12.")}


def _row(group: dict[str, Any], group_by: str) -> dict[str, Any]:
    keys = group.get("group", {})
    shown = {"agent_type": keys.get("agent"), "client_id": keys.get("client"), "client_name": keys.get("client_name"),
             "user_id": keys.get("user"), "user_email": keys.get("user_email"), "model": keys.get("model"),
             "day": keys.get("day"), "week": keys.get("week")}
    row = {column: shown[column] for column in KEY_COLUMNS[group_by]}
    for metric in METRICS:
        value = group[metric]
        row[metric] = float(value) if isinstance(value, Decimal) else value
    return row


def usage_report(actor, query: dict[str, Any], group_by: str) -> dict[str, Any]:
    rows = selectors.usage_rows(actor, **query)
    result = selectors.usage_totals(rows, group_by)
    totals = _row(result["totals"] | {"group": {}}, group_by)
    return {"from": query["date_from"], "to": query["date_to"], "group_by": group_by,
            "groups": [_row(group, group_by) for group in result["groups"]],
            "totals": {metric: totals[metric] for metric in METRICS}}


def _cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_START) else text


def usage_csv(report: dict[str, Any], *, filename: str) -> HttpResponse:
    """The report as a CSV attachment: a header, one line per group, then a `total` line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    keys = list(KEY_COLUMNS[report["group_by"]])
    writer.writerow([*keys, *METRICS])
    for group in report["groups"]:
        writer.writerow([_cell(group[k]) for k in keys] + [_cell(group[m]) for m in METRICS])
    writer.writerow(["total", *[""] * (len(keys) - 1)] + [_cell(report["totals"][m]) for m in METRICS])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class UsageMetricsSerializer(serializers.Serializer):
    runs = serializers.IntegerField(help_text="Ended runs (succeeded + failed + cancelled).")
    runs_succeeded = serializers.IntegerField()
    runs_failed = serializers.IntegerField()
    runs_cancelled = serializers.IntegerField()
    turns = serializers.IntegerField(help_text="Model turns.")
    tool_calls = serializers.IntegerField()
    input_tokens = serializers.IntegerField(help_text="Uncached input tokens.")
    output_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField(help_text="Input tokens written to the prompt cache.")
    cache_read_input_tokens = serializers.IntegerField(help_text="Input tokens read from the prompt cache.")
    cost_usd = serializers.FloatField()
    cache_read_share = serializers.FloatField(help_text="Cache reads over all prompt tokens (0..1).")
    cache_saved_usd = serializers.FloatField(
        help_text="What the cache saved: read tokens × 90 % of their model's input price.")
    p50_duration_ms = serializers.IntegerField(
        allow_null=True, help_text="Median run duration: the upper bound of its histogram bucket; null above 30 min.")
    p95_duration_ms = serializers.IntegerField(allow_null=True, help_text="95th percentile, as p50.")


class UsageGroupSerializer(UsageMetricsSerializer):
    agent_type = serializers.CharField(required=False, help_text="group_by=agent")
    client_id = serializers.IntegerField(required=False, allow_null=True,
                                         help_text="group_by=client (null: runs without a client)")
    client_name = serializers.CharField(required=False, allow_null=True)
    user_id = serializers.IntegerField(required=False, allow_null=True, help_text="group_by=user")
    user_email = serializers.CharField(required=False, allow_null=True)
    model = serializers.CharField(required=False, help_text="group_by=model")
    day = serializers.DateField(required=False, help_text="group_by=day")
    week = serializers.DateField(required=False, help_text="group_by=week (its Monday)")


# `from` is a Python keyword, hence the class made by type().
UsageReportSerializer = type("UsageReportSerializer", (serializers.Serializer,), {
    "from": serializers.DateField(), "to": serializers.DateField(),
    "group_by": serializers.ChoiceField(choices=selectors.GROUPS), "groups": UsageGroupSerializer(many=True),
    "totals": UsageMetricsSerializer(), "__module__": __name__})

PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="First day (YYYY-MM-DD, the instance's days). "
                                                            "Default: 29 days before `to`."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day, included. Default: today."),
    OpenApiParameter("group_by", str, enum=list(selectors.GROUPS), description="Default: day."),
    OpenApiParameter("agent_type", str, description="Only this agent's usage."),
    OpenApiParameter("client_id", int, description="Only this client's usage (404 for a client you may not see)."),
    OpenApiParameter("format", str, enum=["json", "csv"], description="csv: a CSV attachment (a header, one line "
                                                                      "per group, a total line). Default json."),
]


class UsageView(InstanceApiView):
    """Usage from the rollup; an account manager sees their clients' usage only."""

    action = "usage.view"
    content_negotiation_class = FormatIsAParameter
    csv_only = False

    @extend_schema(parameters=PARAMETERS, responses={
        (200, "application/json"): UsageReportSerializer,
        (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The same report as a CSV attachment."),
        400: OpenApiResponse(description="A date that is not YYYY-MM-DD, from after to, an unknown group_by."),
        404: OpenApiResponse(ErrorEnvelopeSerializer, description="client_id names no client you may see.")},
        summary="Usage and cost totals per agent, client, user, model, day or week (default: the last 30 days).")
    def get(self, request):
        params = request.query_params
        query = usage_query(request)
        group_by = choice_param(params, "group_by", selectors.GROUPS) or "day"
        fmt = "csv" if self.csv_only else (choice_param(params, "format", ("json", "csv")) or "json")
        report = usage_report(request.user, query, group_by)
        if fmt == "csv":
            stamp = timezone.now().strftime("%Y%m%d")
            return usage_csv(report, filename=f"usage-{query['date_from']}-{query['date_to']}-{group_by}-{stamp}.csv")
        return Response(report)


class UsageCsvView(UsageView):
    csv_only = True


urlpatterns = [
    path("usage", UsageView.as_view(), name="usage"),
    path("usage.csv", UsageCsvView.as_view(), name="usage-csv"),
]
