"""The expectation checker of an eval case (DESIGN §16): a verdict over a finished run.

`case_verdict(case, run)` reads the run's output, its tool calls and its artifacts and judges each
expectation of the case; it writes nothing. Every failure says what was wrong in words a person
understands ("forbidden phrase 'cheap' found"). The rubric is graded by the model only when a
real model is configured (ANTHROPIC_API_KEY); offline it is skipped and said so, never passed or
failed. `clean_expectations` is the one validation of the expectations, for the services.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spokestack.errors import InvalidInput

KINDS = ("tools_required", "tools_forbidden", "brand_rules_pass", "phrases_required", "phrases_forbidden",
         "min_chars", "max_chars", "artifact_schema", "rubric")
LIST_KINDS = ("tools_required", "tools_forbidden", "phrases_required", "phrases_forbidden")
OFFLINE_RUBRIC = "skipped (offline model): the rubric is graded only when a real model is configured"


@dataclass
class Verdict:
    passed: bool
    failures: list[dict[str, str]] = field(default_factory=list)  # [{expectation, message}]
    skipped: list[dict[str, str]] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": self.failures, "skipped": self.skipped, "checked": self.checked}


def clean_expectations(value: Any) -> dict[str, Any]:
    """The expectations in canonical form; InvalidInput naming the field to fix otherwise."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("expectations: give an object such as {\"tools_required\": [\"save_draft\"]}.",
                           details={"expectations": "object"})
    unknown = sorted(set(value) - set(KINDS))
    if unknown:
        raise InvalidInput(f"expectations: unknown {', '.join(unknown)}; use {', '.join(KINDS)}.",
                           details={"expectations": unknown})
    cleaned: dict[str, Any] = {}
    for kind in LIST_KINDS:
        if kind not in value or value[kind] in (None, []):
            continue
        items = value[kind]
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
            raise InvalidInput(f"expectations.{kind}: give a list of non-empty texts.",
                               details={f"expectations.{kind}": "list of texts"})
        cleaned[kind] = list(dict.fromkeys(i.strip() for i in items))
    if value.get("brand_rules_pass") not in (None, False, True):
        raise InvalidInput("expectations.brand_rules_pass: true or false.",
                           details={"expectations.brand_rules_pass": "boolean"})
    if value.get("brand_rules_pass"):
        cleaned["brand_rules_pass"] = True
    for kind in ("min_chars", "max_chars"):
        if value.get(kind) is None:
            continue
        number = value[kind]
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise InvalidInput(f"expectations.{kind}: give a whole number of characters (0 or more).",
                               details={f"expectations.{kind}": "integer ≥ 0"})
        cleaned[kind] = number
    if "min_chars" in cleaned and "max_chars" in cleaned and cleaned["min_chars"] > cleaned["max_chars"]:
        raise InvalidInput(f"expectations.max_chars: {cleaned['max_chars']} is below min_chars {cleaned['min_chars']}.",
                           details={"expectations.max_chars": "≥ min_chars"})
    if value.get("artifact_schema") not in (None, {}):
        schema = value["artifact_schema"]
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        if not isinstance(schema, dict):
            raise InvalidInput("expectations.artifact_schema: give a JSON Schema (an object).",
                               details={"expectations.artifact_schema": "object"})
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise InvalidInput(f"expectations.artifact_schema: not a valid JSON Schema ({exc.message}).",
                               details={"expectations.artifact_schema": exc.message}) from None
        cleaned["artifact_schema"] = schema
    if value.get("rubric") not in (None, ""):
        if not isinstance(value["rubric"], str):
            raise InvalidInput("expectations.rubric: describe in text what a good answer does.",
                               details={"expectations.rubric": "text"})
        cleaned["rubric"] = value["rubric"].strip()
    return cleaned


def _contains(text: str, phrase: str) -> bool:
    return re.search(re.escape(phrase), text, flags=re.IGNORECASE) is not None


def run_rules(run: Any, overlay_rules: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The rules the run's output is checked against, as the loop's output check builds them
    (agents/loop.py `RunLoop.__init__`): the assembled prompt's rules for the run's client and
    specialization, the content filters, and any rules a what-if overlay adds."""
    from agents.catalog import platform_tier
    from agents.checks import filter_rules
    from agents.registry import get_spec
    from tuning.assembly import assemble_prompt

    spec = get_spec(run.agent_type, run.agent_version)
    if spec is None:
        return list(overlay_rules)
    prompt = assemble_prompt(platform=platform_tier(spec), client=run.client, specialization=run.specialization)
    return [*(rule.as_dict() for rule in prompt.rules), *filter_rules(spec.content_filters, prompt.content_filters),
            *overlay_rules]


def _json_artifact(run: Any) -> Any:
    """The last JSON artifact the run saved: its `data` when it has any, else its content parsed."""
    for artifact in reversed(list(run.artifacts.all())):
        if artifact.data:
            return artifact.data
        try:
            return json.loads(artifact.content)
        except (TypeError, ValueError):
            continue
    return None


def _rubric(rubric: str, output: str, case: Any) -> tuple[bool | None, str]:
    """(passed, why) from the model; (None, why) when no real model is configured or it failed."""
    from django.conf import settings

    if not settings.ANTHROPIC_API_KEY:
        return None, OFFLINE_RUBRIC
    from agents.model import ModelRequest, ModelUnavailable, StreamCallbacks, call_model
    from agents.registry import get_spec

    spec = get_spec(case.agent_type)
    system = ("You grade an AI agent's answer against a rubric. Reply with one line: PASS or FAIL, a colon, "
              "and the reason in one sentence.")
    prompt = f"Task:\n{case.task}\n\nRubric:\n{rubric}\n\nAnswer:\n{output}"
    request = ModelRequest(model=spec.model, fallback_model=spec.fallback_model,
                           system=[{"type": "text", "text": system}], tools=[],
                           messages=[{"role": "user", "content": [{"type": "text", "text": prompt}]}],
                           max_tokens=200, metadata={"user_id": f"eval-case-{case.pk}"})
    try:
        turn = call_model(request, callbacks=StreamCallbacks())
    except ModelUnavailable as exc:
        return None, f"skipped (the model was unavailable: {exc.message})"
    text = "".join(b.get("text", "") for b in turn.content if b.get("type") == "text").strip()
    verdict, _, why = text.partition(":")
    if verdict.strip().upper() == "PASS":
        return True, why.strip()
    if verdict.strip().upper() == "FAIL":
        return False, f"rubric not met: {why.strip() or text}"
    return None, f"skipped (the grader's answer was not PASS or FAIL: {text[:120]!r})"


def case_verdict(case: Any, run: Any, *, overlay_rules: Sequence[Mapping[str, Any]] = ()) -> Verdict:
    """Judge every expectation of `case` on the finished `run`. A run that did not succeed fails
    with its error; expectations that cannot be judged (the rubric offline) are `skipped`."""
    from agents.models import RunStatus

    expectations = case.expectations or {}
    verdict = Verdict(passed=True)

    def fail(kind: str, message: str) -> None:
        verdict.failures.append({"expectation": kind, "message": message})

    if run.status != RunStatus.SUCCEEDED:
        fail("run", f"the run {run.get_status_display().lower()}" + (f": {run.error}" if run.error else ""))
    output = run.output or ""
    called = list(dict.fromkeys(run.tool_calls.values_list("name", flat=True)))
    for tool in expectations.get("tools_required", []):
        verdict.checked.append("tools_required")
        if tool not in called:
            fail("tools_required", f"tool {tool} was not called" + (f" (called: {', '.join(called)})" if called else ""))
    for tool in expectations.get("tools_forbidden", []):
        verdict.checked.append("tools_forbidden")
        if tool in called:
            fail("tools_forbidden", f"tool {tool} was called, which this case forbids")
    for phrase in expectations.get("phrases_required", []):
        verdict.checked.append("phrases_required")
        if not _contains(output, phrase):
            fail("phrases_required", f"required phrase '{phrase}' not found")
    for phrase in expectations.get("phrases_forbidden", []):
        verdict.checked.append("phrases_forbidden")
        if _contains(output, phrase):
            fail("phrases_forbidden", f"forbidden phrase '{phrase}' found")
    if expectations.get("min_chars") is not None:
        verdict.checked.append("min_chars")
        if len(output) < expectations["min_chars"]:
            fail("min_chars", f"the output has {len(output)} characters, fewer than the minimum "
                              f"{expectations['min_chars']}")
    if expectations.get("max_chars") is not None:
        verdict.checked.append("max_chars")
        if len(output) > expectations["max_chars"]:
            fail("max_chars", f"the output has {len(output)} characters, more than the maximum "
                              f"{expectations['max_chars']}")
    if expectations.get("brand_rules_pass"):
        from agents.checks import find_violations, rule_targets

        verdict.checked.append("brand_rules_pass")
        for v in find_violations(output, rule_targets(run_rules(run, overlay_rules))):
            fail("brand_rules_pass", f"brand rule broken: '{v['match']}' matches the rule \"{v['rule']}\"")
    if expectations.get("artifact_schema"):
        from jsonschema import Draft202012Validator

        verdict.checked.append("artifact_schema")
        data = _json_artifact(run)
        if data is None:
            fail("artifact_schema", "the run saved no JSON artifact to check against the schema")
        else:
            errors = sorted(Draft202012Validator(expectations["artifact_schema"]).iter_errors(data),
                            key=lambda e: list(e.absolute_path))
            for error in errors[:5]:
                where = "/".join(str(p) for p in error.absolute_path) or "(the artifact)"
                fail("artifact_schema", f"the artifact does not match the schema at {where}: {error.message}")
    if expectations.get("rubric"):
        verdict.checked.append("rubric")
        passed, why = _rubric(expectations["rubric"], output, case)
        if passed is None:
            verdict.skipped.append({"expectation": "rubric", "message": why})
        elif not passed:
            fail("rubric", why)
    verdict.checked = list(dict.fromkeys(verdict.checked))
    verdict.passed = not verdict.failures
    return verdict
