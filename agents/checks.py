"""Deterministic output checks and the review queue (DESIGN §4 content filters; issue #14).

One phrase matcher serves the copy agent's `check_brand_rules` tool and the check the loop runs on
every final output: the same text against the same rules always gives the same verdict, so an
account manager can trust a "passed" and a test can prove it.

What is checked (each a `Target`: where it comes from, the rule, the phrases it forbids):
* the platform's content filters (tier 1, `ContentFilter` in each spec: the text the prompt shows,
  a name, and the phrases a check catches);
* the instance's own content filters and `terminology_avoid` (tier 2): phrases the output must
  not contain, as written;
* the client's never rules and competitor rules (tier 3): free text written by people, so each
  never rule is reduced to key phrases (the quoted phrases, and the short fragments of the rule's
  head once the instruction words, "never use", "language", "claims", are stripped), and a
  competitor rule to the competitor's name.

A phrase matches case-insensitively on word edges, with simple plural, verb and comparative
endings, so "discounts" breaks a "discount" rule and "cheaper" a "cheap" one, but "wholesale"
does not break "sale".

A run whose final output breaks a rule, or whose instance reviews every output of its agent
(`audit_all_outputs`), waits in the review queue (`AgentRun.review_status` "pending") until someone
gives feedback on it (`feedback.services.feedback_give` calls `run_review_close`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils import timezone

if TYPE_CHECKING:  # the matcher is imported by tool modules and specs, before models may load
    from .models import AgentRun

# --- content filters --------------------------------------------------------------------------


class ContentFilter(str):
    """A platform content filter (tier 1). The string itself is the text the prompt shows under
    "Content you must never produce" (so the assembler and the instance's "only stricter" rule treat
    it as any filter); `name` names it in a violation; `phrases` are what the check catches."""

    name: str
    phrases: tuple[str, ...]

    def __new__(cls, text: str, name: str = "", phrases: Sequence[str] = ()) -> ContentFilter:
        if not phrases:
            raise ValueError(f"content filter {name or text!r}: give the phrases a check catches")
        value = super().__new__(cls, text)
        value.name = name or text
        value.phrases = tuple(phrases)
        return value

    def __reduce__(self):
        return (ContentFilter, (str(self), self.name, self.phrases))


# The platform's filters; each core agent declares the ones that apply to it (agents/specs/*.py).
UNVERIFIABLE_GUARANTEES = ContentFilter(
    'Guarantees and absolute promises nobody can verify ("guaranteed results", "risk-free", "100% safe")',
    name="unverifiable guarantees",
    phrases=("guaranteed results", "guaranteed returns", "guaranteed success", "guaranteed roi", "guaranteed sales",
             "results guaranteed", "risk-free", "risk free", "zero risk", "100% safe", "100% effective",
             "100% guaranteed", "100% success"))
HEALTH_CLAIMS = ContentFilter(
    'Medical claims a product cannot prove ("cures", "heals", "clinically proven", "no side effects")',
    name="unproven health claims",
    phrases=("cures", "cure for", "miracle cure", "heals", "clinically proven", "medically proven",
             "no side effects", "doctor recommended", "fda approved"))
FINANCIAL_PROMISES = ContentFilter(
    'Promises of financial performance ("guaranteed ROAS", "double your sales", "can\'t lose")',
    name="financial performance promises",
    phrases=("guaranteed roas", "guaranteed conversions", "guaranteed cpa", "guaranteed profit",
             "double your sales", "double your revenue", "double your money", "can't lose", "cannot lose",
             "no-lose"))


# --- reducing rules to phrases -----------------------------------------------------------------

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


def _unique_longest_first(phrases: Iterable[str]) -> list[str]:
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


# --- the one matcher ---------------------------------------------------------------------------

SOURCES = {
    "platform_filter": "platform content filter",
    "instance_filter": "instance content filter",
    "terminology_avoid": "instance term to avoid",
    "never_rule": "never rule",
    "competitor_rule": "competitor rule",
}
_KIND_SOURCE = {"never": "never_rule", "competitor": "competitor_rule", "avoid_term": "terminology_avoid"}


@dataclass(frozen=True)
class Target:
    """One rule the text is checked against: where it comes from (a key of SOURCES), its kind
    (never, competitor, avoid_term, filter), the rule as people know it, and its phrases."""

    source: str
    kind: str
    rule: str
    phrases: tuple[str, ...]


def rule_targets(rules: Iterable[Mapping[str, Any]]) -> list[Target]:
    """Targets of assembled rules (`PromptRule.as_dict()`, `ToolContext.rules`, filters as rules):
    never, competitor, avoid_term and filter rules; always and prefer rules are not checkable."""
    targets = []
    for rule in rules:
        kind, text = rule.get("kind"), str(rule.get("text") or "").strip()
        if not text:
            continue
        if kind == "never":
            phrases = rule_phrases(text)
        elif kind == "competitor":
            phrases = [rule["competitor"]] if rule.get("competitor") else competitor_names(text)
        elif kind == "avoid_term":
            phrases = [text]
        elif kind == "filter":
            phrases = list(rule.get("phrases") or [text])
            text = str(rule.get("name") or text)
        else:
            continue
        source = str(rule.get("source") or "instance_filter") if kind == "filter" else _KIND_SOURCE[kind]
        targets.append(Target(source=source, kind=kind, rule=text, phrases=tuple(phrases)))
    return targets


def find_violations(text: str, targets: Iterable[Target]) -> list[dict[str, Any]]:
    """Every match of every target's phrases in `text`, in text order: {source, kind, rule, phrase,
    match, span: [start, end]}. Within one target a longer phrase's match hides the shorter ones in it."""
    violations: list[dict[str, Any]] = []
    for target in targets:
        taken: list[tuple[int, int]] = []
        for phrase in _unique_longest_first(target.phrases):
            for match in _phrase_pattern(phrase).finditer(text):
                if any(s <= match.start() and match.end() <= e for s, e in taken):
                    continue
                taken.append((match.start(), match.end()))
                violations.append({"source": target.source, "kind": target.kind, "rule": target.rule,
                                   "phrase": phrase, "match": match.group(0), "span": [match.start(), match.end()]})
    violations.sort(key=lambda v: (v["span"][0], v["span"][1], v["source"]))
    return violations


def check_text(text: str, rules: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """check_brand_rules' verdict: violations of the checkable rules in `text`, one per rule and
    matched span ({kind, source, rule, phrase, match, start, end})."""
    targets = rule_targets(rules)
    violations = [{"kind": v["kind"], "source": v["source"], "rule": v["rule"], "phrase": v["phrase"],
                   "match": v["match"], "start": v["span"][0], "end": v["span"][1]}
                  for v in find_violations(text, targets)]
    return {"passed": not violations, "violations": violations, "rules_checked": len(targets)}


def filter_rules(platform_filters: Sequence[str], content_filters: Sequence[str]) -> tuple[dict[str, Any], ...]:
    """The content filters as rules (kind "filter"), for the tools (`ToolContext.rules`) and the
    output check: the platform's (with their phrases) and the instance's own (the text is the phrase)."""
    rules = []
    for item in platform_filters:
        phrases = getattr(item, "phrases", None) or (str(item),)
        rules.append({"kind": "filter", "text": str(item), "tier": 1, "source": "platform_filter",
                      "name": getattr(item, "name", str(item)), "phrases": list(phrases)})
    platform = {str(item) for item in platform_filters}
    for item in content_filters:
        if str(item) not in platform:
            rules.append({"kind": "filter", "text": str(item), "tier": 2, "source": "instance_filter",
                          "name": str(item), "phrases": [str(item)]})
    return tuple(rules)


# --- the check of a final output ---------------------------------------------------------------

AUDIT_ALL_REASON = "the instance reviews every output of this agent"


def describe(violations: Sequence[Mapping[str, Any]]) -> str:
    """The violations in one line each: what matched, which rule, where it comes from."""
    return "\n".join(f'- "{v["match"]}" (characters {v["span"][0]}–{v["span"][1]}): {SOURCES.get(v["source"], v["source"])}'
                     f' "{v["rule"]}"' for v in violations)


def review_reason(violations: Sequence[Mapping[str, Any]], *, revised: bool, audit_all: bool) -> str:
    """Why a run waits for review ('' when it does not)."""
    parts = []
    if violations:
        rules = _unique_in_order(f'{SOURCES.get(v["source"], v["source"])} "{v["rule"]}" ("{v["match"]}")'
                                 for v in violations)
        count = len({(v["source"], v["rule"]) for v in violations})
        parts.append(f"The output breaks {count} rule{'s' if count != 1 else ''}"
                     f"{' even after one revision' if revised else ''}: " + "; ".join(rules))
    if audit_all:
        parts.append(AUDIT_ALL_REASON)
    return "; ".join(parts)


def revision_request(violations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The user message that asks the agent to revise its answer once."""
    return {"role": "user", "content": [{"type": "text", "text": (
        "<output_check>\nAn automatic check of your answer found words it must not contain:\n"
        f"{describe(violations)}\n"
        "Revise the answer once: give the complete answer again without them (rephrase, do not just delete), "
        "keeping everything else that was right.\n</output_check>")}]}


def _unique_in_order(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --- writes ----------------------------------------------------------------------------------


def run_review_close(*, run: AgentRun) -> bool:
    """Feedback on a run waiting for review takes it out of the queue (a conditional update: the
    first feedback does it, later ones change nothing). True when this call closed it."""
    from .models import AgentRun, ReviewStatus

    closed = AgentRun.objects.filter(pk=run.pk, review_status=ReviewStatus.PENDING).update(
        review_status=ReviewStatus.REVIEWED, reviewed_at=timezone.now())
    if closed:
        run.review_status = ReviewStatus.REVIEWED
    return bool(closed)
