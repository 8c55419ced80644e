"""Content tools: the client's content calendar and each channel's limits from the ERP, a
deterministic readability check, saving a draft and sending it to review.

The brand guidelines and the brand check are the copy agent's (`agents.tools.copywriting`): one
matcher decides what breaks a client's rules for every agent. `check_readability` is, like the
brand check, not a model call: the same text gets the same numbers and verdict every time, so a
writer can trust "passed" and the agency's thresholds (tool settings) decide what passes.
"""

from __future__ import annotations

import re
from typing import Any

from agents.registry import ToolContext, ToolError

from .common import CLIENT_INPUT, client_slug, erp_write, only_readable, readable_clients, settings_of, written

CHANNEL_INPUT = {"type": "string", "minLength": 1, "maxLength": 40,
                 "description": "A publishing channel as the ERP names it, e.g. 'linkedin', 'instagram', 'email', "
                                "'blog' (get_channel_specs lists them)."}
DATE_INPUT = {"type": "string", "format": "date", "maxLength": 10}
FORMATS = ("blog_article", "newsletter", "linkedin_article", "social_post", "carousel", "story", "video_script")
STATUSES = ("planned", "in_progress", "in_review", "approved", "published")

# --- get_content_calendar -------------------------------------------------------------------

CALENDAR_SCHEMA = {
    "type": "object",
    "properties": {
        "client": CLIENT_INPUT,
        "from": {**DATE_INPUT, "description": "First date to include, YYYY-MM-DD."},
        "to": {**DATE_INPUT, "description": "Last date to include, YYYY-MM-DD."},
        "channel": CHANNEL_INPUT,
        "status": {"type": "string", "enum": list(STATUSES), "description": "Only entries with this status."},
        "format": {"type": "string", "enum": list(FORMATS), "description": "Only entries of this format."},
    },
    "additionalProperties": False,
}
CALENDAR_SETTINGS = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 30,
              "description": "The most calendar entries one call returns (earliest first); count still counts "
                             "every match."},
}


def get_content_calendar(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    clients = readable_clients(ctx, tool_input)
    params = {name: tool_input[name] for name in ("from", "to", "channel", "status", "format") if tool_input.get(name)}
    if clients is not None and len(clients) == 1:
        params["client"] = next(iter(clients))
    rows = only_readable(ctx.erp().get("/content-calendar", params=params or None)["results"], clients)
    shown = rows[:settings_of(ctx, CALENDAR_SETTINGS)["limit"]]
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
    result: dict[str, Any] = {"count": len(rows), "by_status": by_status, "entries": shown}
    if len(shown) < len(rows):
        result["entries_not_shown"] = len(rows) - len(shown)
    if not rows:
        result["note"] = "No calendar entry matches; widen the dates or drop the channel, status or format filter."
    return result


# --- get_channel_specs ----------------------------------------------------------------------

CHANNEL_SPECS_SCHEMA = {"type": "object", "properties": {"channel": CHANNEL_INPUT}, "additionalProperties": False}


def channel_specs(ctx: ToolContext, channel: str | None = None) -> list[dict[str, Any]]:
    """The ERP's channel specs (all, or the one channel: an unknown one is the ERP's 400 naming them)."""
    return ctx.erp().get("/channel-specs", params={"channel": channel} if channel else None)["results"]


def get_channel_specs(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    specs = channel_specs(ctx, tool_input.get("channel"))
    return {"count": len(specs), "channels": specs}


# --- check_readability ----------------------------------------------------------------------

READABILITY_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 50_000,
                 "description": "The text to check, as it will be published (markdown headings are fine)."},
        "channel": {**CHANNEL_INPUT, "description": "Also check the length against this channel's limits in the "
                                                    "ERP, e.g. 'linkedin' or 'instagram'."},
        "language": {"type": "string", "maxLength": 10,
                     "description": "ISO 639-1 code of the text's language; left out, Arabic script is detected and "
                                    "anything else is read as English."},
    },
    "required": ["text"],
    "additionalProperties": False,
}
READABILITY_SETTINGS = {
    "max_grade": {"type": "number", "minimum": 4, "maximum": 18, "default": 10,
                  "description": "The highest Flesch-Kincaid grade level that passes (English texts)."},
    "max_sentence_words": {"type": "integer", "minimum": 10, "maximum": 60, "default": 28,
                           "description": "A sentence longer than this many words is flagged and fails the check."},
    "max_paragraph_words": {"type": "integer", "minimum": 40, "maximum": 400, "default": 150,
                            "description": "A paragraph longer than this many words is flagged and fails the check."},
}
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|\d[\d,.]*\d|\d")
_SENTENCE_END = re.compile(r"(?<=[.!?؟…])[\"'”’)\]]*\s+")
_ARABIC = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF]")
_LETTER = re.compile(r"[^\W\d_]")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
_IRREGULAR = ("known|made|done|given|taken|seen|written|built|shown|paid|sold|told|found|held|kept|left|brought|"
              "bought|thought|caught|taught|chosen|driven|grown|spoken|broken|stolen|forgotten|begun|won|led|set|put|"
              "sent|spent|run|cut|hit|read|understood|meant|felt|heard|lost|drawn|worn|torn|born")
_PASSIVE = re.compile(rf"\b(?:am|is|are|was|were|be|been|being)\s+(?:\w+ly\s+)?(?:\w+ed|{_IRREGULAR})\b", re.I)
_MAX_LISTED = 10


def _syllables(word: str) -> int:
    """English syllables by vowel groups (a silent final e dropped); 1 for numbers and short words."""
    word = word.lower().strip("'’-")
    if not word.isalpha() or len(word) <= 3:
        return 1
    groups = len(re.findall(r"[aeiouy]+", word))
    if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and groups > 1:
        groups -= 1
    if word.endswith(("ed", "es")) and len(word) > 4 and word[-3] not in "aeiouydt" and groups > 1:
        groups -= 1
    return max(1, groups)


def _blocks(text: str) -> tuple[list[str], int]:
    """(paragraphs of prose, number of headings): a markdown heading is structure, not a sentence."""
    paragraphs, headings = [], 0
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = []
        for line in block.splitlines():
            if line.lstrip().startswith("#"):
                headings += 1
            elif line.strip():
                lines.append(_BULLET.sub("", line).strip())
        if lines:
            paragraphs.append("\n".join(lines))
    return paragraphs, headings


def _sentences(paragraph: str) -> list[str]:
    # A line break inside a paragraph (a list item, a subject line) ends a sentence too.
    return [s.strip() for line in paragraph.splitlines() for s in _SENTENCE_END.split(line) if _WORD.search(s)]


def _language(text: str, given: str | None) -> str:
    if given and given.strip():
        return given.strip().lower()
    letters = _LETTER.findall(text)
    return "ar" if letters and len(_ARABIC.findall(text)) > len(letters) / 3 else "en"


def readability(text: str, *, language: str | None, max_grade: float, max_sentence_words: int,
                max_paragraph_words: int) -> dict[str, Any]:
    """The numbers and the verdict for `text` (no channel): pure, so it is tested without an ERP."""
    lang = _language(text, language)
    paragraphs, headings = _blocks(text)
    sentences = [s for p in paragraphs for s in _sentences(p)]
    sentence_words = [_WORD.findall(s) for s in sentences]
    words = [w for ws in sentence_words for w in ws]
    if not words:
        raise ToolError("The text has no words to check; pass the full text as `text`.")
    issues: list[str] = []
    average = len(words) / len(sentences)
    longest = max(range(len(sentences)), key=lambda i: len(sentence_words[i]))
    result: dict[str, Any] = {
        "language": lang, "words": len(words), "sentences": len(sentences), "paragraphs": len(paragraphs),
        "headings": headings, "average_sentence_words": round(average, 1),
        "longest_sentence": {"words": len(sentence_words[longest]), "text": sentences[longest][:300]},
    }
    if lang == "en":
        syllables = sum(_syllables(w) for w in words) / len(words)
        ease = round(206.835 - 1.015 * average - 84.6 * syllables, 1)
        grade = round(0.39 * average + 11.8 * syllables - 15.59, 1)
        result.update(reading_ease=ease, reading_ease_band=_band(ease), grade=grade)
        if grade > max_grade:
            issues.append(f"Grade level {grade:g} is above the agency's maximum of {max_grade:g}: shorten sentences "
                          "and prefer shorter words.")
        passive = [{"phrase": m.group(0), "sentence": s[:200]} for s in sentences for m in _PASSIVE.finditer(s)]
        result["passive_voice_hints"] = passive[:_MAX_LISTED]
        if passive:
            result["passive_voice_note"] = ("Hints, not errors: rewrite in the active voice where the doer matters "
                                            "('we repair it', not 'it is repaired').")
    else:
        result.update(reading_ease=None, grade=None, passive_voice_hints=[])
        result["note"] = (f"Flesch reading ease, grade level and passive-voice hints are calibrated for English; "
                          f"they are not computed for '{lang}'. Sentence and paragraph lengths still apply.")
    long_sentences = [{"index": i + 1, "words": len(ws), "text": sentences[i][:200]}
                      for i, ws in enumerate(sentence_words) if len(ws) > max_sentence_words]
    if long_sentences:
        issues.append(f"{len(long_sentences)} sentence(s) over {max_sentence_words} words: split them.")
    long_paragraphs = [{"index": i + 1, "words": n, "starts": p[:80]} for i, p in enumerate(paragraphs)
                       if (n := len(_WORD.findall(p))) > max_paragraph_words]
    if long_paragraphs:
        issues.append(f"{len(long_paragraphs)} paragraph(s) over {max_paragraph_words} words: break them up.")
    result.update(long_sentences=long_sentences[:_MAX_LISTED], long_paragraphs=long_paragraphs[:_MAX_LISTED],
                  thresholds={"max_grade": max_grade, "max_sentence_words": max_sentence_words,
                              "max_paragraph_words": max_paragraph_words})
    result["issues"], result["passed"] = issues, not issues
    return result


def _band(ease: float) -> str:
    for floor, band in ((80, "easy"), (60, "plain"), (50, "fairly difficult"), (30, "difficult")):
        if ease >= floor:
            return band
    return "very difficult"


def _channel_fit(text: str, spec: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    characters = len(text.strip())
    fit: dict[str, Any] = {"channel": spec["channel"], "characters": characters, "max_chars": spec["max_chars"],
                           "truncated_at": spec["truncated_at"], "notes": spec["notes"]}
    issues = []
    if characters > spec["max_chars"]:
        fit["over_by"] = characters - spec["max_chars"]
        issues.append(f"{characters} characters is over {spec['label']}'s limit of {spec['max_chars']}: cut "
                      f"{fit['over_by']}.")
    if spec["truncated_at"] and characters > spec["truncated_at"]:
        fit["visible_before_cut"] = text.strip()[:spec["truncated_at"]]
        fit["cut_note"] = (f"Only the first {spec['truncated_at']} characters show before 'see more': the hook and "
                           "the point must be in them.")
    hashtags = len(re.findall(r"(?<!\w)#\w+", text))
    if hashtags > spec["max_hashtags"]:
        issues.append(f"{hashtags} hashtags; {spec['label']} takes at most {spec['max_hashtags']}.")
    fit["hashtags"] = hashtags
    return fit, issues


def check_readability(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    settings = settings_of(ctx, READABILITY_SETTINGS)
    result = readability(tool_input["text"], language=tool_input.get("language"), **settings)
    if tool_input.get("channel"):
        fit, issues = _channel_fit(tool_input["text"], channel_specs(ctx, tool_input["channel"])[0])
        result["channel_fit"] = fit
        result["issues"] += issues
        result["passed"] = not result["issues"]
    return result


# --- save_draft ---------------------------------------------------------------------------

SAVE_DRAFT_SCHEMA = {
    "type": "object",
    "properties": {
        "content": {"type": "string", "minLength": 1, "maxLength": 50_000,
                    "description": "The final text, in markdown for long form (headings, lists)."},
        "title": {"type": "string", "maxLength": 200, "description": "The piece's headline or subject line."},
        "format": {"type": "string", "enum": list(FORMATS), "description": "What the piece is."},
        "channel": {**CHANNEL_INPUT, "description": "Where it will be published, e.g. 'blog', 'email', 'linkedin'."},
        "language": {"type": "string", "maxLength": 10, "description": "ISO 639-1 code of the text's language."},
        "calendar_entry_id": {"type": "string", "maxLength": 40,
                              "description": "The content calendar entry this piece fulfils (from "
                                             "get_content_calendar); its channel and format fill in any you leave out."},
        "campaign": {"type": "string", "maxLength": 120, "description": "The campaign the piece belongs to."},
        "client": CLIENT_INPUT,
    },
    "required": ["content"],
    "additionalProperties": False,
}


def save_draft(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    client = client_slug(ctx, tool_input)
    entry = None
    if tool_input.get("calendar_entry_id"):
        rows = ctx.erp().get("/content-calendar", params={"client": client})["results"]
        entry = next((row for row in rows if row["id"] == tool_input["calendar_entry_id"]), None)
        if entry is None:
            raise ToolError(f"{client} has no calendar entry {tool_input['calendar_entry_id']!r}. Call "
                            "get_content_calendar for its entries, or leave calendar_entry_id out.")
    metadata: dict[str, Any] = {"agent": "content", "run_id": ctx.run_id,
                                "words": len(_WORD.findall(tool_input["content"]))}
    fmt = tool_input.get("format") or (entry or {}).get("format")
    for key, value in (("format", fmt), ("calendar_entry_id", tool_input.get("calendar_entry_id")),
                       ("campaign", tool_input.get("campaign") or (entry or {}).get("campaign"))):
        if value:
            metadata[key] = value
    body: dict[str, Any] = {"client": client, "content": tool_input["content"]}
    for name in ("title", "channel", "language"):
        value = tool_input.get(name) or (entry or {}).get(name)
        if value:
            body[name] = value
    body["metadata"] = metadata
    result, simulated = erp_write(ctx, "/drafts", body)
    return written(result, simulated, id_key="draft_id")


# --- schedule_for_review --------------------------------------------------------------------

REVIEW_SCHEMA = {
    "type": "object",
    "properties": {
        "draft_id": {"type": "string", "minLength": 1, "maxLength": 60,
                     "description": "The id save_draft returned."},
        "reviewer": {"type": "string", "minLength": 1, "maxLength": 60,
                     "description": "The reviewer's team member id in the ERP (e.g. 'beta-t05'); a calendar entry's "
                                    "owner is a team member id."},
        "due_date": {**DATE_INPUT, "description": "When the review is due, YYYY-MM-DD."},
        "notes": {"type": "string", "maxLength": 2000,
                  "description": "What the reviewer should look at: open questions, claims to verify."},
        "client": CLIENT_INPUT,
    },
    "required": ["draft_id", "reviewer", "due_date"],
    "additionalProperties": False,
}


def schedule_for_review(ctx: ToolContext, tool_input: dict) -> dict[str, Any]:
    body: dict[str, Any] = {"client": client_slug(ctx, tool_input), "draft_id": tool_input["draft_id"],
                            "reviewer": tool_input["reviewer"], "due_date": tool_input["due_date"],
                            "metadata": {"agent": "content", "run_id": ctx.run_id}}
    if tool_input.get("notes"):
        body["notes"] = tool_input["notes"]
    result, simulated = erp_write(ctx, "/reviews", body)
    return written(result, simulated, id_key="review_id",
                   extra={"draft_id": result.get("draft_id"), "reviewer": result.get("reviewer"),
                          "due_date": result.get("due_date")})
