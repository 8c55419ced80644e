"""Form pieces of the tuning admin: 0–100 dials as sliders, and how dials read to a person.

The behaviour parameters and the personality traits of `InstanceTuning` are mappings of a name
to a score from 0 to 100. In the admin each dial is a row: a box that says whether the dial is
used (an unused dial sends no instruction; on a per-agent row it inherits the instance-wide
value), a range slider with its two ends labelled, and the number beside it. Read-only pages show
them as "Formality 70 · Creativity 40". The services validate the values again when they are
saved (`tuning.precedence`); the field's own checks only make the message name the dial.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .precedence import BEHAVIOUR_PARAMS

# Each behaviour dial's ends, as the words of `precedence.BEHAVIOUR_WORDS` at 0 and 100 say them.
BEHAVIOUR_ENDS: dict[str, tuple[str, str]] = {
    "creativity": ("Conventional", "Experimental"),
    "detail": ("Headlines only", "Exhaustive"),
    "formality": ("Casual", "Very formal"),
    "proactivity": ("Reactive", "Anticipatory"),
    "risk_taking": ("Averse", "Provocative"),
    "verbosity": ("Terse", "Exhaustive"),
}
TRAIT_ENDS = ("Avoid", "Defining")
DIAL_FIELDS = frozenset({"behaviour_params", "traits"})
TRAIT_NAME = re.compile(r"^[a-z][a-z0-9 _-]{0,59}$")
NEW_TRAIT_ROWS = 2
_BLANK = ("", None)


def dial_label(name: str) -> str:
    """"risk_taking" -> "Risk taking"."""
    return name.replace("_", " ").replace("-", " ").strip().capitalize()


def dials_text(value: Any) -> str:
    """A dials mapping as a person reads it, by name: "Creativity 40 · Formality 70"; "none set" when empty."""
    if not value:
        return "none set"
    if not isinstance(value, dict):
        return str(value)
    return " · ".join(f"{dial_label(str(name))} {value[name]}" for name in sorted(value, key=str))


class DialsWidget(forms.Widget):
    """One slider row per dial. `names` are the known dials (always shown, in that order); with
    `free_names`, stored dials of other names are shown too, plus empty rows to add new ones."""

    template_name = "admin/tuning/widgets/dials.html"

    def __init__(self, names: tuple[str, ...] = (), *, free_names: bool = False,
                 ends: dict[str, tuple[str, str]] | None = None, attrs=None) -> None:
        super().__init__(attrs)
        self.names, self.free_names, self.ends = tuple(names), free_names, ends or {}

    def format_value(self, value):
        return value

    def _rows(self, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, dict) and "__rows__" in value:  # a submitted form shown again
            return value["__rows__"]
        stored = value if isinstance(value, dict) else {}
        rows = [{"key": name, "score": stored.get(name), "fixed": True} for name in self.names]
        if self.free_names:
            rows += [{"key": name, "score": score, "fixed": False} for name, score in stored.items()
                     if name not in self.names]
            rows += [{"key": "", "score": None, "fixed": False} for _ in range(NEW_TRAIT_ROWS)]
        return rows

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        rows = []
        for i, row in enumerate(self._rows(value)):
            score = row["score"]
            used = score not in _BLANK
            low, high = self.ends.get(row["key"], TRAIT_ENDS)
            rows.append({**row, "index": i, "used": used, "label": dial_label(row["key"]) if row["key"] else "",
                         "value": score if used and str(score).isdigit() else 50, "shown": score if used else "—",
                         "low": low, "high": high})
        context["widget"].update(rows=rows, count=len(rows), free_names=self.free_names)
        return context

    def value_from_datadict(self, data, files, name):
        if f"{name}__count" not in data:
            return None
        try:
            count = min(int(data.get(f"{name}__count")), 200)
        except (TypeError, ValueError):
            return None
        rows = []
        for i in range(count):
            key = (data.get(f"{name}__name__{i}") or "").strip()
            used = bool(data.get(f"{name}__use__{i}"))
            score = (data.get(f"{name}__value__{i}") or "").strip()
            rows.append({"key": key, "score": score if used else None, "fixed": key in self.names})
        return {"__rows__": rows}

    def value_omitted_from_data(self, data, files, name):
        return f"{name}__count" not in data

    def id_for_label(self, id_):
        return f"{id_}__value__0" if id_ else id_


class DialsField(forms.Field):
    """A mapping of dial names to whole numbers 0–100, edited with `DialsWidget`. With `names`
    and no `free_names`, only those dials are accepted."""

    def __init__(self, *, names: tuple[str, ...] = (), free_names: bool = False,
                 ends: dict[str, tuple[str, str]] | None = None, **kwargs) -> None:
        for key in ("encoder", "decoder", "max_length"):
            kwargs.pop(key, None)
        kwargs["required"] = False
        kwargs.setdefault("widget", DialsWidget(names, free_names=free_names, ends=ends))
        super().__init__(**kwargs)
        self.names, self.free_names = tuple(names), free_names

    def prepare_value(self, value):
        return value

    def to_python(self, value) -> dict[str, int]:
        if value in (None, ""):
            return {}
        if isinstance(value, dict) and "__rows__" not in value:
            rows = [{"key": k, "score": v} for k, v in value.items()]
        else:
            rows = value["__rows__"]
        cleaned: dict[str, int] = {}
        errors = []
        for row in rows:
            key, score = row["key"], row["score"]
            if not key:
                if score not in _BLANK and self.free_names:
                    errors.append("A trait with a score needs a name (e.g. warmth, humour).")
                continue
            if key not in self.names:
                if not self.free_names:
                    errors.append(f"“{key}” is not a behaviour dial; the dials are "
                                  f"{', '.join(dial_label(n).lower() for n in self.names)}.")
                    continue
                if not TRAIT_NAME.match(key.lower()):
                    errors.append(f"“{key}” is not a trait name: use letters (and spaces), at most 60 characters, "
                                  "e.g. warmth.")
                    continue
                key = "_".join(key.lower().replace("-", " ").split())
            if score in _BLANK:
                continue
            number = str(score).strip()
            if not number.isdigit() or not 0 <= int(number) <= 100:
                errors.append(f"{dial_label(key)} must be a whole number from 0 to 100, not “{score}”.")
                continue
            if key in cleaned:
                errors.append(f"{dial_label(key)} is given twice; keep one.")
                continue
            cleaned[key] = int(number)
        if errors:
            raise ValidationError(errors)
        return cleaned

    def has_changed(self, initial, data) -> bool:
        if data is None:  # the form was posted without this field's rows: nothing to change
            return False
        try:
            return self.to_python(initial or {}) != self.to_python(data)
        except ValidationError:
            return True


def behaviour_field(**kwargs) -> DialsField:
    return DialsField(names=BEHAVIOUR_PARAMS, ends=BEHAVIOUR_ENDS, **kwargs)


def traits_field(**kwargs) -> DialsField:
    return DialsField(free_names=True, **kwargs)
