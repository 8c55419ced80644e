"""Query parameters, read one way by every view: a value that is not what the parameter takes is a
400 naming the parameter and what to send, never a 500 or a silently ignored filter.

Numbers are ASCII digits only: `int()` would read Arabic-Indic `١٢` as 12 and fail on `²`, and no
client means either. Dates are ISO 8601 date-times; one that does not exist (`2026-02-30`) is
refused rather than raising in `parse_datetime`. U+0000 anywhere in the query string is refused
before any view (spokestack.api.error_envelope).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping

from django.utils.dateparse import parse_datetime

from spokestack.errors import InvalidInput

_ASCII_INT = re.compile(r"[0-9]{1,18}")  # bounded: the value must fit a bigint column


def _raw(params: Mapping[str, str], name: str) -> str | None:
    raw = params.get(name)
    return raw if raw not in (None, "") else None


def _invalid(name: str, wanted: str) -> InvalidInput:
    return InvalidInput(f"{name}: {wanted}", details={name: [wanted]})


def int_param(params: Mapping[str, str], name: str, *, minimum: int | None = None, maximum: int | None = None,
              wanted: str = "") -> int | None:
    """The integer in `?name=`, or None when it is absent or empty."""
    raw = _raw(params, name)
    if raw is None:
        return None
    bounds = (f", {minimum} or more" if minimum is not None else "") + (
        f", at most {maximum}" if maximum is not None else "")
    wanted = wanted or f"give a whole number in ASCII digits (0-9){bounds}, e.g. {minimum or 1}."
    if not _ASCII_INT.fullmatch(raw):
        raise _invalid(name, wanted)
    value = int(raw)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _invalid(name, wanted)
    return value


def datetime_param(params: Mapping[str, str], name: str) -> dt.datetime | None:
    """The aware date-time in `?name=` (UTC when it gives no offset), or None when absent."""
    raw = _raw(params, name)
    if raw is None:
        return None
    wanted = "give an ISO 8601 date-time that exists, in ASCII digits, e.g. 2026-11-21T09:00:00Z."
    if not raw.isascii():
        raise _invalid(name, wanted)
    try:
        moment = parse_datetime(raw)
        if moment is not None:
            moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment
            moment.astimezone(dt.UTC)  # 9999-12-31T23:00-05:00 is past the last representable instant
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        raise _invalid(name, wanted)
    return moment


def choice_param(params: Mapping[str, str], name: str, choices: Iterable[str]) -> str | None:
    """One of `choices` in `?name=`, or None when absent."""
    raw = _raw(params, name)
    if raw is None:
        return None
    choices = list(choices)
    if raw not in choices:
        raise _invalid(name, f"choose one of {', '.join(choices)}.")
    return raw


def text_param(params: Mapping[str, str], name: str, *, max_length: int = 200) -> str:
    """The text in `?name=` ('' when absent), at most `max_length` characters."""
    raw = params.get(name) or ""
    if len(raw) > max_length:
        raise _invalid(name, f"at most {max_length} characters.")
    return raw
