"""Copy tools: the client's guidelines and approved examples from the ERP, a deterministic brand
check, and saving a draft.

`check_brand_rules` is deliberately not a model call: the same text against the same rules must
always give the same verdict, so an account manager can trust a "passed" and a test can prove
it. Rules are free text written by people ("Never use discount or urgency language such as
'sale', '% off', 'hurry'"), so each rule is reduced to key phrases: the quoted phrases, and the
short fragments of the rule's head once the instruction words ("never use", "language",
"claims") are stripped. A phrase matches case-insensitively on word edges, with simple plural
verb and comparative endings, so "discounts" breaks a "discount" rule and "cheaper" a "cheap" one,
but "wholesale" does not break "sale".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agents.registry import ToolContext

from .common import CLIENT_INPUT, client_record, client_slug, erp_write, written

_QUOTED = re.compile(r"'([^']{1,60})'|\"([^\"]{1,60})\"|‘([^’]{1,60})’|“([^”]{1,60})”|«\s?([^»]{1,60}?)\s?»")
_PARENTHESES = re.compile(r"\(([^()]{1,200})\)")
# Where a rule's head ends: its examples ("such as …") or its condition ("… unless verified"): a
# conditional phrase is flagged for a human to confirm the condition.
_EXAMPLES_CUT = re.compile(r"\b(?:such as|like|e\.g\.?|for example|including|for instance|i\.e\.?|unless|without|"
                           r"except|if not|when not)\b|[:(]", re.I)
_LEAD = re.compile(
    r"^\s*(?:never|don't|do not|dont|avoid|no|must not|should not|shouldn't|stop)\b\s*"
    r"(?:(?:ever|use|using|say|saying|write|writing|mention|mentioning|include|including|claim|claiming|make|making|"
    r"call|calling|describe|describing|refer to|name|naming|compare with|compare to|promise|promising|imply|"
    r"implying|show|showing)\b\s*)*(?:(?:the|any|a|an)\s+)?(?:(?:words?|terms?|phrases?|expressions?)\b\s*)?",
    re.I)
_GENERIC_TAIL = re.compile(r"\s+(?:language|wording|words?|terms?|phrases?|claims?|messaging|messages?|copy|tone|"
                           r"statements?|references?|imagery)$", re.I)
_STOP = {"the", "a", "an", "any", "of", "to", "in", "on", "for", "with", "our", "their", "its", "it", "that",
         "this", "these", "those", "them", "we", "you", "or", "and", "is", "are", "be", "language", "words",
         "claims", "copy", "tone", "competitors", "competitor", "brands", "brand"}
_MAX_PHRASE_WORDS = 4


def rule_phrases(rule_text: str) -> list[str]:
    """The phrases a never rule forbids, lower-cased, longest first."""
    phrases = [next(g for g in match.groups() if g) for match in _QUOTED.finditer(rule_text)]
    for group in _PARENTHESES.findall(rule_text):  # "(Oud Luxe, Sahara Glow)": examples, like quotes
        phrases += [p.strip(" .") for p in re.split(r",|;|/|\bor\b", group) if 0 < len(p.split()) <= _MAX_PHRASE_WORDS]
    head = _QUOTED.sub(" ", rule_text)
    head = _EXAMPLES_CUT.split(head, maxsplit=1)[0]
    head = _LEAD.sub("", head.strip())
    for fragment in re.split(r",|;|/|\bor\b|\band\b|\bnor\b", head):
        fragment = fragment.strip(" .!-–—\t")
        while _GENERIC_TAIL.search(fragment):
            fragment = _GENERIC_TAIL.sub("", fragment).strip()
        words = fragment.split()
        if not words or len(words) > _MAX_PHRASE_WORDS or all(w.lower() in _STOP for w in words):
            continue
        phrases.append(fragment)
    return _unique_longest_first(phrases)


def competitor_names(rule_text: str) -> list[str]:
    """The names in a competitor rule: "Oud Luxe", "Competitors: Oud Luxe, Sahara Glow", or quoted names."""
    quoted = [next(g for g in match.groups() if g) for match in _QUOTED.finditer(rule_text)]
    if quoted:
        return _unique_longest_first(quoted)
    _, colon, after = rule_text.partition(":")
    listed = after if colon else re.split(r"\b(?:such as|like|including|e\.g\.?)\b|\(", rule_text, maxsplit=1)[-1]
    listed = _LEAD.sub("", listed.strip())
    names = [n.strip(" .()") for n in re.split(r",|;|/|\bor\b|\band\b", listed.rstrip(")"))]
    names = [n for n in names if n and len(n.split()) <= _MAX_PHRASE_WORDS]
    if not names and len(rule_text.split()) <= _MAX_PHRASE_WORDS:
        names = [rule_text.strip(" .")]
    return _unique_longest_first(names)


def _unique_longest_first(phrases: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for phrase in phrases:
        key = " ".join(phrase.lower().split())
        if key:
            seen.setdefault(key, None)
    return sorted(seen, key=lambda p: (-len(p), p))


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(word) for word in phrase.split())
    start = r"(?<!\w)" if phrase[0].isalnum() else ""
    if phrase[-1] == "y" and len(phrase) > 3:  # hurry: hurries, hurried, hurrying
        body, end = body[:-1], r"(?:y|ies|ied|ying)(?!\w)"
    elif phrase[-1].isalpha():  # cheap: cheaper, cheapest; discount: discounts, discounted
        end = r"(?:s|es|ed|d|ing|er|est|ly)?(?!\w)"
    elif phrase[-1].isalnum():
        end = r"(?!\w)"
    else:
        end = ""
    return re.compile(start + body + end, re.I)


def check_text(text: str, rules: tuple[Mapping[str, str], ...] | list[Mapping[str, str]]) -> dict[str, Any]:
    """Violations of never and competitor rules in `text`, one per rule and matched span."""
    violations: list[dict[str, Any]] = []
    checked = 0
    for rule in rules:
        kind, rule_text = rule.get("kind"), (rule.get("text") or "").strip()
        if kind not in ("never", "competitor") or not rule_text:
            continue
        checked += 1
        phrases = rule_phrases(rule_text) if kind == "never" else competitor_names(rule_text)
        taken: list[tuple[int, int]] = []  # a longer phrase's span hides the shorter ones inside it
        for phrase in phrases:
            for match in _phrase_pattern(phrase).finditer(text):
                if any(s <= match.start() and match.end() <= e for s, e in taken):
                    continue
                taken.append((match.start(), match.end()))
                violations.append({"kind": kind, "rule": rule_text, "phrase": phrase, "match": match.group(0),
                                   "start": match.start(), "end": match.end()})
    violations.sort(key=lambda v: (v["start"], v["end"]))
    return {"passed": not violations, "violations": violations, "rules_checked": checked}


# --- handlers --------------------------------------------------------------------------------

GUIDELINES_SCHEMA = {"type": "object", "properties": {"client": CLIENT_INPUT}, "additionalProperties": False}


def get_brand_guidelines(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    record = client_record(ctx, client_slug(ctx, tool_input))
    return {
        "client": record.get("slug"), "name": record.get("name"), "industry": record.get("industry"),
        "region": record.get("region"), "language": record.get("language"),
        "brand_guidelines": record.get("brand_guidelines", {}), "competitors": record.get("competitors", []),
        # The rules the agency keeps in the platform (tier 3) also bind; check_brand_rules checks them.
        "platform_rules": [dict(rule) for rule in ctx.rules],
    }


EXAMPLES_SCHEMA = {
    "type": "object",
    "properties": {
        "client": CLIENT_INPUT,
        "channel": {"type": "string", "maxLength": 40, "description": "Only examples for this channel, e.g. 'instagram'."},
        "language": {"type": "string", "maxLength": 10, "description": "Only examples in this language (ISO 639-1)."},
    },
    "additionalProperties": False,
}


def get_approved_examples(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    record = client_record(ctx, client_slug(ctx, tool_input))
    examples = record.get("approved_examples", [])
    channel, language = (tool_input.get("channel") or "").lower(), (tool_input.get("language") or "").lower()
    matching = [e for e in examples if (not channel or str(e.get("channel", "")).lower() == channel)
                and (not language or str(e.get("language", "")).lower() == language)]
    result: dict[str, Any] = {"client": record.get("slug"), "count": len(matching), "examples": matching}
    if not matching and examples:
        result["note"] = (f"No approved example matches those filters; the client has {len(examples)} for "
                          f"channels {sorted({e.get('channel') for e in examples})}.")
    return result


CHECK_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 50_000, "description": "The copy to check."},
        "extra_never": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 300}, "maxItems": 50,
                        "description": "More never rules to apply, e.g. the ERP guidelines' never list."},
        "extra_competitors": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100},
                              "maxItems": 50, "description": "More competitor names, e.g. from get_brand_guidelines."},
    },
    "required": ["text"],
    "additionalProperties": False,
}


def check_brand_rules(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    rules = [*ctx.rules, *({"kind": "never", "text": t} for t in tool_input.get("extra_never", [])),
             *({"kind": "competitor", "text": f'"{t}"'} for t in tool_input.get("extra_competitors", []))]
    result = check_text(tool_input["text"], rules)
    result["reminders"] = [rule["text"] for rule in ctx.rules if rule.get("kind") == "always"]
    if not result["rules_checked"]:
        result["note"] = ("No never or competitor rules are set for this client in the platform; pass the ERP "
                          "guidelines' never list and competitors (get_brand_guidelines) as extra_never and "
                          "extra_competitors.")
    return result


SAVE_DRAFT_SCHEMA = {
    "type": "object",
    "properties": {
        "content": {"type": "string", "minLength": 1, "maxLength": 50_000, "description": "The final copy."},
        "title": {"type": "string", "maxLength": 200, "description": "A short name for the draft."},
        "channel": {"type": "string", "maxLength": 40, "description": "Where it runs, e.g. 'instagram', 'email'."},
        "language": {"type": "string", "maxLength": 10, "description": "ISO 639-1 code of the copy's language."},
        "client": CLIENT_INPUT,
    },
    "required": ["content"],
    "additionalProperties": False,
}


def save_draft(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    body = {"client": client_slug(ctx, tool_input), "content": tool_input["content"],
            "metadata": {"agent": "copy", "run_id": ctx.run_id}}
    for name in ("title", "channel", "language"):
        if tool_input.get(name):
            body[name] = tool_input[name]
    result, simulated = erp_write(ctx, "/drafts", body)
    return written(result, simulated, id_key="draft_id")
