"""Finding patterns in a client's feedback: metrics, deterministic text analysis and one model
request, turned into suggested rules with confidence and evidence (DESIGN §9).

Pure functions over plain dicts (`FeedbackItem`), so the same code serves the service, the
scheduled task and the benchmark, and nothing here touches the database.

Partial approvals: the person liked the output but not all of it. They count as half an approval
in the approval rate; their corrected text (when given) is a correction like any other, so what it
removes or adds feeds the never/always patterns; their reason and category count among the
correction reasons; they are never evidence for a `prefer` rule (only full approvals are) nor
against one (only corrections and rejections are); their comment goes to the model with the rest.

Thresholds (the guide's): a pattern from corrections or rejections becomes a `never` (or, for
what corrections add, an `always`) suggestion at ≥ 3 occurrences and ≥ 0.8 confidence; a
pattern shared by approved outputs becomes a `prefer` suggestion at ≥ 5 occurrences and
≥ 0.7 confidence.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tuning.assembly import LEGACY_LEARNED_KEY

MIN_ITEMS = 10
CORRECTION_MIN_COUNT, CORRECTION_MIN_CONFIDENCE = 3, 0.8
APPROVAL_MIN_COUNT, APPROVAL_MIN_CONFIDENCE = 5, 0.7
MAX_EXAMPLES = 3
MAX_PHRASE_WORDS = 6
MODEL_EXAMPLES_CAP = 40  # examples sent to the model, per analysis
MODEL_TEXT_CAP = 600  # characters per example text sent to the model

# Words that say what a removed phrase is about; a theme is one suggestion however it is worded.
THEMES: dict[str, tuple[str, frozenset[str]]] = {
    "discount_urgency": ("discount or urgency language", frozenset({
        "off", "discount", "discounts", "sale", "sales", "deal", "deals", "save", "saving", "cheap", "cheapest",
        "coupon", "promo", "promotion", "bargain", "clearance", "%", "hurry", "now", "today", "soon", "ends",
        "limited", "last", "chance", "quick", "quickly", "fast", "before", "gone", "tonight", "urgent", "rush",
        "don't", "miss", "expires", "only"})),
    "superlatives": ("exaggerated superlatives", frozenset({
        "best", "ultimate", "perfect", "amazing", "incredible", "revolutionary", "miracle", "unbeatable",
        "world-class", "greatest"})),
}
# A removed span counts for a theme only when it carries at least one of these stronger words
# ("now" or "only" alone are ordinary words).
THEME_ANCHORS = {
    "discount_urgency": frozenset({"off", "discount", "discounts", "sale", "deal", "deals", "save", "cheap", "coupon",
                                   "promo", "bargain", "clearance", "%", "hurry", "limited", "urgent", "rush",
                                   "expires", "ends", "today"}),
    "superlatives": THEMES["superlatives"][1],
}
# Words specific enough to quote in a rule (check_brand_rules matches quoted phrases anywhere, so
# ordinary words such as "off", "now" or "today" are only quoted inside a longer phrase).
SPECIFIC = frozenset({"discount", "discounts", "sale", "deal", "deals", "hurry", "coupon", "promo", "promotion",
                      "bargain", "clearance", "limited", "urgent", "expires", "cheapest", "miracle", "revolutionary",
                      "unbeatable", "ultimate", "incredible"})
STOPWORDS = frozenset("""a an the and or but of to in on for with at by from as is are was were be been it its this that
these those we you your our their they them he she his her i me my not no so if than then there here do does did
has have had will would can could should just also very more most all any some each into about up out over""".split())

_WORD = re.compile(r"\d+%|[\w'’-]+|%", re.UNICODE)


@dataclass(frozen=True)
class FeedbackItem:
    verdict: str
    original: str
    corrected: str = ""
    reason: str = ""
    category: str = ""
    rating: int | None = None
    created_at: datetime | None = None
    agent_type: str = ""
    comment: str = ""


@dataclass
class SuggestedRule:
    kind: str  # never | always | prefer
    text: str
    signature: str
    confidence: float
    evidence_count: int
    examples: list[dict[str, str]] = field(default_factory=list)
    origin: str = "deterministic"
    agent_type: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "signature": self.signature,
                "confidence": round(self.confidence, 3), "evidence_count": self.evidence_count,
                "examples": self.examples, "origin": self.origin, "agent_type": self.agent_type}


def words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text or "")]


def normalise(phrase_words: list[str]) -> str:
    return " ".join(phrase_words).strip()


def _split_percent(tokens: list[str]) -> set[str]:
    """'20%' carries the anchor '%' too."""
    out = set(tokens)
    out.update("%" for t in tokens if t.endswith("%"))
    return out


def phrase_diff(before: str, after: str) -> tuple[list[str], list[str]]:
    """What a correction removed and added, as normalised word spans (difflib over words)."""
    a, b = words(before), words(after)
    removed, added = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag in ("delete", "replace") and i2 > i1:
            removed.append(normalise(a[i1:i2]))
        if tag in ("insert", "replace") and j2 > j1:
            added.append(normalise(b[j1:j2]))
    return removed, added


EVIDENCE_CONTEXT_WORDS = 4


def phrase_changes(before: str, after: str, context: int = EVIDENCE_CONTEXT_WORDS) -> list[list[tuple[str, str]]]:
    """What a correction changed, for people to read: hunks of ("same" | "removed" | "added", text)
    with a few words of context either side, compared word by word (case and punctuation ignored,
    the words shown as written). ("skipped", "") marks where unchanged words were left out."""
    a, b = (before or "").split(), (after or "").split()

    def key(word: str) -> str:
        return " ".join(words(word)) or word

    hunks: list[list[tuple[str, str]]] = []
    for group in difflib.SequenceMatcher(a=[key(w) for w in a], b=[key(w) for w in b],
                                         autojunk=False).get_grouped_opcodes(context):
        if all(tag == "equal" for tag, *_ in group):
            continue
        hunk: list[tuple[str, str]] = [("skipped", "")] if group[0][1] > 0 else []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                hunk.append(("same", " ".join(a[i1:i2])))
                continue
            if i2 > i1:
                hunk.append(("removed", " ".join(a[i1:i2])))
            if j2 > j1:
                hunk.append(("added", " ".join(b[j1:j2])))
        if group[-1][2] < len(a):
            hunk.append(("skipped", ""))
        hunks.append(hunk)
    return hunks


def _theme_of(span: str) -> str | None:
    tokens = _split_percent(span.split())
    for theme, anchors in THEME_ANCHORS.items():
        if tokens & anchors:
            return theme
    return None


def _week(moment: datetime | None) -> str:
    if moment is None:
        return "unknown"
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def metrics(items: list[FeedbackItem]) -> dict[str, Any]:
    by_verdict = Counter(item.verdict for item in items)
    total = len(items)
    approved = by_verdict["approved"] + 0.5 * by_verdict["partially_approved"]
    weeks: dict[str, list[FeedbackItem]] = defaultdict(list)
    for item in items:
        weeks[_week(item.created_at)].append(item)
    trend = []
    for week in sorted(weeks):
        counts = Counter(i.verdict for i in weeks[week])
        n = len(weeks[week])
        trend.append({"week": week, "total": n,
                      "approval_rate": round((counts["approved"] + 0.5 * counts["partially_approved"]) / n, 3)})
    judged = [i for i in items if i.verdict in ("corrected", "partially_approved", "rejected")]
    ratings = [i.rating for i in items if i.rating]
    return {
        "total": total,
        "counts": {v: by_verdict.get(v, 0) for v in ("approved", "partially_approved", "corrected", "rejected")},
        "approval_rate": round(approved / total, 3) if total else None,
        "average_rating": round(sum(ratings) / len(ratings), 2) if ratings else None,
        "top_categories": [{"category": c, "count": n}
                           for c, n in Counter(i.category for i in judged if i.category).most_common(5)],
        "top_reasons": [{"reason": r, "count": n}
                        for r, n in Counter(_norm_reason(i.reason) for i in judged if i.reason.strip()).most_common(5)],
        "trend": trend,
    }


def _norm_reason(reason: str) -> str:
    return " ".join(words(reason))


def _quote_list(phrases: list[str]) -> str:
    return ", ".join(f'"{p}"' for p in phrases)


def correction_patterns(items: list[FeedbackItem], agent_type: str = "") -> list[SuggestedRule]:
    corrections = [i for i in items if i.verdict in ("corrected", "partially_approved") and i.corrected.strip()]
    theme_hits: dict[str, list[tuple[FeedbackItem, list[str]]]] = defaultdict(list)
    theme_present: Counter[str] = Counter()
    removed_counts: Counter[str] = Counter()
    removed_examples: dict[str, list[FeedbackItem]] = defaultdict(list)
    added_counts: Counter[str] = Counter()
    added_examples: dict[str, list[FeedbackItem]] = defaultdict(list)
    for item in corrections:
        removed, added = phrase_diff(item.original, item.corrected)
        original_tokens = _split_percent(words(item.original))
        by_theme: dict[str, list[str]] = defaultdict(list)
        for span in removed:
            theme = _theme_of(span)
            if theme:
                by_theme[theme].append(span)
            elif 0 < len(span.split()) <= MAX_PHRASE_WORDS and not set(span.split()) <= STOPWORDS:
                removed_counts[span] += 1
                removed_examples[span].append(item)
        for theme, anchors in THEME_ANCHORS.items():
            if original_tokens & anchors:
                theme_present[theme] += 1
        for theme, spans in by_theme.items():
            theme_hits[theme].append((item, spans))
        for span in set(added):
            if 0 < len(span.split()) <= MAX_PHRASE_WORDS and not set(span.split()) <= STOPWORDS:
                added_counts[span] += 1
                added_examples[span].append(item)

    rules: list[SuggestedRule] = []
    for theme, hits in theme_hits.items():
        count = len(hits)
        confidence = count / max(theme_present[theme], count)
        if count < CORRECTION_MIN_COUNT or confidence < CORRECTION_MIN_CONFIDENCE:
            continue
        spans = Counter(span for _, spans in hits for span in spans)
        vocabulary = THEMES[theme][1]
        anchor_words = Counter(t for _, spans in hits for s in spans for t in set(s.split()) if t in vocabulary)
        phrases = [s for s, _ in spans.most_common(3)]
        if any(re.search(r"\d+% off\b", span) for _, spans in hits for span in spans):
            phrases.append("% off")
        phrases += [w for w, _ in anchor_words.most_common(12) if w in SPECIFIC and w not in phrases][:6]
        text = f"Never use {THEMES[theme][0]} such as {_quote_list(phrases)}"
        rules.append(SuggestedRule(kind="never", text=text[:1000], signature=f"never:theme:{theme}",
                                   confidence=confidence, evidence_count=count, agent_type=agent_type,
                                   examples=_examples([item for item, _ in hits])))
    if corrections:
        originals = [set(" ".join(words(i.original)).split(" ")) for i in corrections]
        for span, count in removed_counts.most_common(20):
            if count < CORRECTION_MIN_COUNT:
                break
            span_words = set(span.split())
            present = sum(1 for o in originals if span_words <= o)
            confidence = count / max(present, count)
            if confidence >= CORRECTION_MIN_CONFIDENCE:
                rules.append(SuggestedRule(kind="never", text=f'Never use "{span}"', signature=f"never:phrase:{span}",
                                           confidence=confidence, evidence_count=count, agent_type=agent_type,
                                           examples=_examples(removed_examples[span])))
        for span, count in added_counts.most_common(20):
            if count < CORRECTION_MIN_COUNT:
                break
            confidence = count / len(corrections)
            if confidence >= CORRECTION_MIN_CONFIDENCE:
                rules.append(SuggestedRule(kind="always", text=f'Always include "{span}"',
                                           signature=f"always:phrase:{span}", confidence=confidence,
                                           evidence_count=count, agent_type=agent_type,
                                           examples=_examples(added_examples[span])))
    return rules


def _examples(items: list[FeedbackItem]) -> list[dict[str, str]]:
    return [{"before": i.original[:500], "after": (i.corrected or i.reason)[:500]} for i in items[:MAX_EXAMPLES]]


def rejection_patterns(items: list[FeedbackItem], agent_type: str = "") -> list[SuggestedRule]:
    """Recurring rejection reasons. Confidence: the reason's share of the rejections that gave one."""
    rejected = [i for i in items if i.verdict == "rejected" and i.reason.strip()]
    groups: dict[str, list[FeedbackItem]] = defaultdict(list)
    for item in rejected:
        groups[_norm_reason(item.reason)].append(item)
    rules = []
    for reason, group in groups.items():
        confidence = len(group) / len(rejected)
        if len(group) >= CORRECTION_MIN_COUNT and confidence >= CORRECTION_MIN_CONFIDENCE:
            rules.append(SuggestedRule(kind="never", text=f"Avoid what the client rejects: {group[0].reason.strip()}",
                                       signature=f"never:reason:{reason[:150]}", confidence=confidence,
                                       evidence_count=len(group), agent_type=agent_type,
                                       examples=[{"before": i.original[:500], "after": f"(rejected: {i.reason[:200]})"}
                                                 for i in group[:MAX_EXAMPLES]]))
    return rules


def approval_patterns(items: list[FeedbackItem], agent_type: str = "") -> list[SuggestedRule]:
    """What approved outputs share: a length band, and words that most approved outputs use and
    few judged-down outputs do."""
    approved = [i for i in items if i.verdict == "approved" and i.original.strip()]
    if len(approved) < APPROVAL_MIN_COUNT:
        return []
    rules = []
    lengths = sorted(len(words(i.original)) for i in approved)
    median = lengths[len(lengths) // 2]
    within = sum(1 for n in lengths if 0.7 * median <= n <= 1.3 * median)
    confidence = within / len(approved)
    if median and within >= APPROVAL_MIN_COUNT and confidence >= APPROVAL_MIN_CONFIDENCE:
        rules.append(SuggestedRule(kind="prefer", text=f"Prefer outputs of about {median} words",
                                   signature="prefer:length", confidence=confidence, evidence_count=within,
                                   agent_type=agent_type,
                                   examples=[{"before": "", "after": i.original[:500]} for i in approved[:MAX_EXAMPLES]]))
    down = [set(words(i.original)) for i in items if i.verdict in ("corrected", "rejected")]
    shared: Counter[str] = Counter()
    for item in approved:
        shared.update(w for w in set(words(item.original)) if w not in STOPWORDS and len(w) > 3)
    for word, count in shared.most_common(5):
        confidence = count / len(approved)
        down_share = sum(1 for d in down if word in d) / len(down) if down else 0.0
        if count >= APPROVAL_MIN_COUNT and confidence >= APPROVAL_MIN_CONFIDENCE and down_share < 0.3:
            examples = [i for i in approved if word in set(words(i.original))]
            rules.append(SuggestedRule(kind="prefer", text=f'Prefer wording like the approved outputs: "{word}"',
                                       signature=f"prefer:word:{word}", confidence=confidence, evidence_count=count,
                                       agent_type=agent_type,
                                       examples=[{"before": "", "after": i.original[:500]} for i in examples[:MAX_EXAMPLES]]))
    return rules


def deterministic_analysis(items: list[FeedbackItem], agent_type: str = "") -> dict[str, Any]:
    """Metrics and suggestions from text analysis alone; `insufficient_data` under MIN_ITEMS items."""
    result: dict[str, Any] = {"metrics": metrics(items), "agent_type": agent_type}
    if len(items) < MIN_ITEMS:
        result.update(status="insufficient_data", suggestions=[],
                      message=f"Only {len(items)} feedback item(s) in the window; at least {MIN_ITEMS} are needed "
                              "before patterns are looked for.")
        return result
    rules = (correction_patterns(items, agent_type) + rejection_patterns(items, agent_type)
             + approval_patterns(items, agent_type))
    result.update(status="ok", suggestions=[r.as_dict() for r in rules],
                  approved_examples=[i.original[:500] for i in items if i.verdict == "approved"][:MAX_EXAMPLES])
    return result


# --- the model's view ---------------------------------------------------------------------------

REPORT_TOOL = {
    "name": "report_patterns",
    "description": "Report the rules that the feedback supports, as structured data.",
    "input_schema": {
        "type": "object",
        "properties": {
            "patterns": {
                "type": "array", "maxItems": 10,
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string", "enum": ["never", "always", "prefer"]},
                        "text": {"type": "string", "minLength": 3, "maxLength": 500},
                        "evidence_count": {"type": "integer", "minimum": 0},
                        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                        "examples": {"type": "array", "maxItems": 3, "items": {
                            "type": "object",
                            "properties": {"before": {"type": "string"}, "after": {"type": "string"}},
                            "required": ["before", "after"]}},
                    },
                    "required": ["kind", "text", "evidence_count", "confidence"],
                },
            },
            "summary": {"type": "string", "maxLength": 1000},
        },
        "required": ["patterns"],
    },
}


def model_prompt(items: list[FeedbackItem], client_name: str) -> str:
    """The examples the model sees, capped: corrections first, then rejections, then approvals."""
    order = {"corrected": 0, "partially_approved": 1, "rejected": 2, "approved": 3}
    chosen = sorted(items, key=lambda i: order.get(i.verdict, 4))[:MODEL_EXAMPLES_CAP]
    examples = [{"verdict": i.verdict, "output": i.original[:MODEL_TEXT_CAP],
                 **({"corrected": i.corrected[:MODEL_TEXT_CAP]} if i.corrected else {}),
                 **({"reason": i.reason[:200]} if i.reason else {}),
                 **({"comment": i.comment[:300]} if i.comment else {}),
                 **({"category": i.category} if i.category else {})} for i in chosen]
    return (f"Here is feedback that people gave on agent outputs for the client {client_name} "
            f"({len(items)} items; {len(examples)} shown). Find recurring patterns: what corrections remove or add, "
            "why outputs are rejected, what approved outputs share. Call report_patterns once with rules "
            "(never / always / prefer), each with how many examples support it, your confidence 0–1 and up to "
            "three before → after examples taken from the feedback.\n\n"
            + json.dumps(examples, ensure_ascii=False, indent=1))


def parse_model_patterns(content: list[dict[str, Any]], agent_type: str = "") -> tuple[list[SuggestedRule], str]:
    """The tool input validated against REPORT_TOOL's schema -> rules above the thresholds; invalid -> []."""
    import jsonschema

    for block in content:
        if block.get("type") != "tool_use" or block.get("name") != REPORT_TOOL["name"]:
            continue
        try:
            jsonschema.validate(block.get("input"), REPORT_TOOL["input_schema"])
        except jsonschema.ValidationError as exc:
            return [], f"The model's patterns did not match the schema ({exc.message}); they were ignored."
        rules = []
        for pattern in block["input"]["patterns"]:
            kind, count, confidence = pattern["kind"], pattern["evidence_count"], pattern["confidence"]
            minimum = (APPROVAL_MIN_COUNT, APPROVAL_MIN_CONFIDENCE) if kind == "prefer" else (
                CORRECTION_MIN_COUNT, CORRECTION_MIN_CONFIDENCE)
            if count < minimum[0] or confidence < minimum[1]:
                continue
            key = " ".join(words(pattern["text"]))[:150]
            rules.append(SuggestedRule(kind=kind, text=pattern["text"].strip(), signature=f"{kind}:model:{key}",
                                       confidence=float(confidence), evidence_count=count, origin="model",
                                       agent_type=agent_type,
                                       examples=[{"before": e["before"][:500], "after": e["after"][:500]}
                                                 for e in pattern.get("examples", [])][:MAX_EXAMPLES]))
        return rules, block["input"].get("summary", "")
    return [], "The model did not call report_patterns; only the deterministic result is used."


# --- what applied suggestions teach -------------------------------------------------------------

# The guide's ClientTuning `learned_preferences` keys (§9.26), in the order the prompt shows them.
# An applied suggestion is already a client rule in the prompt; what it adds here is the pattern's
# short name (never the rule's text), so the prompt says each rule once.
LEARNED_KEYS = ("rejected_patterns", "successful_approaches", "preferred_length", "confidence_score")
LEARNED_SEPARATOR = "; "  # learned_preferences values are texts: a list is kept as "a; b; c"


def is_legacy_learned_key(key: str) -> bool:
    """Before learned preferences held the guide's structure, applying a suggestion stored a copy
    of the rule's text under "<kind> (feedback #<id>)"."""
    return bool(LEGACY_LEARNED_KEY.match(key))


def learned_preference(signature: str, text: str) -> tuple[str, str] | None:
    """(learned_preferences key, the pattern's short name) for one suggestion, from its signature;
    None when the suggestion names no pattern beyond its rule (the model's rules are free text)."""
    kind, _, rest = signature.partition(":")
    source, _, value = rest.partition(":")
    if kind == "never" and source == "theme" and value in THEMES:
        return "rejected_patterns", THEMES[value][0]
    if kind == "never" and source in ("phrase", "reason") and value:
        return "rejected_patterns", f'"{value}"' if source == "phrase" else value
    if kind == "always" and source == "phrase" and value:
        return "successful_approaches", f'including "{value}"'
    if kind == "prefer" and source == "word" and value:
        return "successful_approaches", f'wording like "{value}"'
    if kind == "prefer" and source == "length":
        found = re.search(r"about (\d+) words", text)
        return ("preferred_length", f"about {found.group(1)} words") if found else None
    return None


def learned_preferences(current: dict[str, Any], applied: list[tuple[str, str, float]]) -> dict[str, str]:
    """The client's learned preferences given the suggestions applied now ((signature, text,
    confidence), oldest first): the guide's keys are derived from them, keys a person added are
    kept, and the legacy rule copies are dropped (their rules are in the prompt already)."""
    learned = {key: value for key, value in current.items()
               if key not in LEARNED_KEYS and not is_legacy_learned_key(key)}
    derived: dict[str, list[str]] = defaultdict(list)
    for signature, text, _ in applied:
        found = learned_preference(signature, text)
        if found is None:
            continue
        key, name = found
        if key == "preferred_length":
            derived[key] = [name]  # the latest length wins
        elif name not in derived[key]:
            derived[key].append(name)
    for key in LEARNED_KEYS[:-1]:
        if derived.get(key):
            learned[key] = LEARNED_SEPARATOR.join(derived[key])
    if applied:
        learned["confidence_score"] = f"{sum(c for _, _, c in applied) / len(applied):.2f}"
    return learned


def feedback_summary(metrics: dict[str, Any]) -> str:
    """The guide's feedback summary (§9.26: totals, approval rate, common corrections) as one text,
    from an analysis's metrics. It names categories, never the rules the feedback led to."""
    counts = metrics.get("counts") or {}
    total = metrics.get("total") or 0
    if not total:
        return ""
    rate = metrics.get("approval_rate")
    text = (f"{total} output(s) judged: {counts.get('approved', 0)} approved, "
            f"{counts.get('partially_approved', 0)} partially approved, {counts.get('corrected', 0)} corrected, "
            f"{counts.get('rejected', 0)} rejected"
            + (f" (approval rate {rate:.0%})" if rate is not None else "") + ".")
    categories = [f"{c['category'].replace('_', ' ')} ({c['count']})" for c in metrics.get("top_categories") or []]
    if categories:
        text += " Most corrections concern: " + ", ".join(categories) + "."
    return text
