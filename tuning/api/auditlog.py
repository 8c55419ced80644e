"""Reading the audit log for people and compliance (DESIGN §10): the filters the API and the admin
share, and the CSV and JSON exports.

The entries come from `tuning.selectors.tuning_changes_visible_to`, so every filter and every
export is scoped like the list: an account manager gets their clients' entries and nothing of the
instance-wide ones (skills, versions, feedback settings) or of other clients. An export is
streamed in chunks of `EXPORT_CHUNK` entries (keyset on the id, newest first), so a large log
never sits in memory; each row is the list API's representation (`TuningChangeSerializer`), so
the JSON export equals the API list and the CSV has the same columns.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterator, Mapping
from types import SimpleNamespace

from django.db import connection
from django.db.models import Q, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from django_tenants.utils import schema_context
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.utils.encoders import JSONEncoder

from spokestack.api.params import choice_param, datetime_param, int_param, text_param
from spokestack.errors import InvalidInput

from ..models import Entity, TuningChange
from .serializers import TuningChangeSerializer

EXPORT_FORMATS = ("csv", "json")
EXPORT_CHUNK = 500
COLUMNS = list(TuningChangeSerializer.Meta.fields)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A cell a spreadsheet would run as a formula (CSV injection): free text is prefixed with "'".
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


FILTER_PARAMETERS = [
    OpenApiParameter("entity", str, enum=Entity.values, description="Only entries of this kind of object."),
    OpenApiParameter("actor", str, description="Only entries by this person: a user id, an e-mail address, or "
                                               "`system` (scheduled jobs and the platform)."),
    OpenApiParameter("client_id", int, description="Only entries of this client."),
    OpenApiParameter("from", str, description="Entries at or after this date (YYYY-MM-DD, UTC) or ISO 8601 "
                                              "date-time."),
    OpenApiParameter("to", str, description="Entries up to this date (the whole day, UTC) or ISO 8601 date-time."),
]
LIST_FORMAT = OpenApiParameter("format", str, enum=["json"], description="Only json here; CSV and whole-log JSON "
                               "exports are GET /api/v1/tuning/audit/export?format=csv|json.")
EXPORT_FORMAT = OpenApiParameter("format", str, enum=list(EXPORT_FORMATS),
                                 description="csv (one row per entry, the list's fields as columns; values as JSON) "
                                             "or json (an array of the list's entries). Default json.")
EXPORT_RESPONSES = {
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="A streamed CSV attachment, newest first."),
    (200, "application/json"): OpenApiResponse(TuningChangeSerializer(many=True),
                                               description="A streamed JSON array, newest first."),
}


class FormatIsAParameter(DefaultContentNegotiation):
    """`?format=` is the audit views' own parameter (validated by them: a bad value is a 400 naming
    it), not DRF's renderer switch, which would answer an unknown format with a bare 404."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)


def _moment(params: Mapping[str, str], name: str, *, end: bool) -> tuple[dt.datetime, bool] | None:
    """`?from=` / `?to=`: a date (the whole day, UTC) or an ISO 8601 date-time. Returns the moment
    and whether it is exclusive (the day after a `to` date)."""
    raw = params.get(name) or ""
    if _DATE.fullmatch(raw):
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise InvalidInput(f"{name}: {raw} is not a date that exists; give YYYY-MM-DD or an ISO 8601 "
                               "date-time, e.g. 2026-11-21 or 2026-11-21T09:00:00Z.", details={name: [raw]}) from None
        start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
        if not end:
            return start, False
        try:
            return start + dt.timedelta(days=1), True
        except OverflowError:
            return None
    moment = datetime_param(params, name)
    return None if moment is None else (moment, False)


def filter_entries(changes: QuerySet[TuningChange], params: Mapping[str, str]) -> QuerySet[TuningChange]:
    """The API's filters: entity, actor (a user id, an e-mail address, or `system`), client_id,
    from and to (dates or date-times; `to` as a date includes that day). A value that is not what
    the parameter takes is a 400 naming it."""
    if entity := choice_param(params, "entity", Entity.values):
        changes = changes.filter(entity=entity)
    if actor := text_param(params, "actor", max_length=254).strip():
        if actor.isascii() and actor.isdigit():
            changes = changes.filter(actor_id=int_param(params, "actor", minimum=1))
        elif actor == "system":
            changes = changes.filter(actor__isnull=True)
        elif "@" in actor:
            changes = changes.filter(Q(actor__email__iexact=actor) | Q(actor__username__iexact=actor))
        else:
            raise InvalidInput("actor: give a user's id, their e-mail address, or system.", details={"actor": [actor]})
    client_id = int_param(params, "client_id", minimum=1, wanted="give the client's id in ASCII digits, e.g. 12.")
    if client_id is not None:
        changes = changes.filter(client_id=client_id)
    since, until = _moment(params, "from", end=False), _moment(params, "to", end=True)
    if since is not None:
        changes = changes.filter(created_at__gte=since[0])
    if until is not None:
        changes = changes.filter(**{"created_at__lt" if until[1] else "created_at__lte": until[0]})
    if since is not None and until is not None and (since[0] >= until[0] if until[1] else since[0] > until[0]):
        raise InvalidInput("from: must not be after to.", details={"from": [params.get("from")],
                                                                   "to": [params.get("to")]})
    return changes


def export_format(params: Mapping[str, str], *, default: str | None = "json") -> str | None:
    return choice_param(params, "format", EXPORT_FORMATS) or default


def _chunks(changes: QuerySet[TuningChange], schema: str) -> Iterator[list[dict]]:
    # The response is iterated after the view returned (and under ASGI in another thread), so the
    # instance's schema is set again here rather than trusted to still be the connection's.
    last = None
    while True:
        with schema_context(schema):
            page = changes if last is None else changes.filter(pk__lt=last)
            rows = list(page.order_by("-id")[:EXPORT_CHUNK])
        if not rows:
            return
        yield TuningChangeSerializer(rows, many=True).data
        last = rows[-1].pk


def _cell(column: str, value) -> str:
    if value is None:
        return ""
    if column in ("old_value", "new_value", "affected_clients"):
        return json.dumps(value, cls=JSONEncoder, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_START) else text


def _csv(changes: QuerySet[TuningChange], schema: str) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for rows in _chunks(changes, schema):
        for row in rows:
            writer.writerow([_cell(column, row[column]) for column in COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _json(changes: QuerySet[TuningChange], schema: str) -> Iterator[str]:
    yield "["
    first = True
    for rows in _chunks(changes, schema):
        for row in rows:
            yield ("" if first else ",") + json.dumps(row, cls=JSONEncoder, ensure_ascii=False)
            first = False
    yield "]"


def export_response(changes: QuerySet[TuningChange], fmt: str) -> StreamingHttpResponse:
    """The entries as a streamed CSV or JSON attachment, newest first."""
    schema = connection.schema_name
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        response = StreamingHttpResponse(_csv(changes, schema), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(_json(changes, schema), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="audit-{schema}-{stamp}.{fmt}"'
    return response
