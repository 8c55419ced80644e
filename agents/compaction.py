"""A thread's context budget: compacting the conversation a turn continues (issue #16 part 2, DESIGN §11).

A thread's turn continues the last succeeded turn's conversation (agents/threads.py), so without a
bound a long thread's request grows with every turn until the model refuses it. Before a thread
turn's first model call the loop (`RunLoop._compact_thread`) asks `compact_for_budget` whether the
conversation fits `settings.THREAD_CONTEXT_BUDGET_TOKENS`, estimated as the loop estimates
everything (JSON characters / 4). When it does not:

1. the tool results of earlier turns (every turn before the newest user message) are trimmed
   first: each keeps its tool_use id, its error flag and a note saying what it was; when that
   suffices, nothing else changes;
2. otherwise the oldest turns (never the previous turn or the new message) are replaced by one
   summary, written by the model when one is configured (one call, no tools, its usage on the run)
   and deterministically by the offline model otherwise. The summary goes first, as the first
   block of the first kept user message, so the conversation still starts with a user message and
   alternates; a summary already there is folded into the next one as the thread grows.

Only the messages change: the system prompt and the tools, the request's cached prefix, stay
byte-identical, so the cache still hits on every turn. A turn starts at a user message carrying the
platform's run context (`agents.loop._task_message`); tool results and the output check's revision
requests belong to the turn they are in, so whole turns keep every tool_use with its tool_result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TRIM_MIN_CHARS = 200  # a shorter tool result is kept: its note would save next to nothing
SUMMARY_MAX_TOKENS = 1024  # what the model may write for a summary
SUMMARY_MAX_CHARS = 4500  # a summary is cut to this (about SUMMARY_MAX_TOKENS; the offline one is written within it)
TARGET_SHARE = 0.6  # summarise down to this share of the budget, so the next turns fit without compacting again
TRANSCRIPT_PART_CHARS = 4000  # each text, tool input or tool result in the summary request, at most
SUMMARY_TAG = "conversation_summary"
SUMMARY_SYSTEM = (
    "You summarise the earlier turns of a conversation between a person at an agency and an AI agent, so the "
    "conversation can go on within its context budget. Write a compact, factual summary: what the person asked "
    "for in each turn, the decisions and preferences they stated, the key facts and figures the tools returned, "
    "and what the agent delivered (names, numbers, drafts' key lines). Keep anything a later turn may refer to; "
    "leave out pleasantries. Fold an earlier summary, when there is one, into yours. Plain text, at most about "
    "600 words, no preamble.")
SUMMARY_INSTRUCTION = "Summarise the earlier turns of this conversation above"

_SUMMARY_BLOCK = re.compile(rf'^<{SUMMARY_TAG} turns="(\d+)">\n.*?\n\n(.*)\n</{SUMMARY_TAG}>\s*$', re.DOTALL)


# --- measuring ----------------------------------------------------------------------------------


def conversation_chars(messages: list[dict]) -> int:
    """The conversation's size as the loop measures a request (JSON characters)."""
    return len(json.dumps(messages, default=str))


def estimate_tokens(messages: list[dict]) -> int:
    return conversation_chars(messages) // 4


# --- turns ------------------------------------------------------------------------------------


def _blocks(message: dict) -> list[dict]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def is_turn_start(message: dict) -> bool:
    """A person's message: a user message with the platform's run context, not tool results."""
    if message.get("role") != "user":
        return False
    blocks = _blocks(message)
    return (not any(b.get("type") == "tool_result" for b in blocks)
            and any(b.get("type") == "text" and "<run_context>" in b.get("text", "") for b in blocks))


def split_turns(messages: list[dict]) -> list[list[dict]]:
    """The conversation in turns, oldest first: each from a person's message up to the next one
    (the first turn starts at the first message, whatever it is)."""
    turns: list[list[dict]] = []
    for index, message in enumerate(messages):
        if index == 0 or is_turn_start(message):
            turns.append([])
        turns[-1].append(message)
    return turns


# --- 1. trimming tool results of earlier turns ------------------------------------------------------


def _result_chars(content: Any) -> int:
    return len(content) if isinstance(content, str) else len(json.dumps(content, ensure_ascii=False, default=str))


def trim_note(name: str, chars: int) -> str:
    return f"[result of {name} from an earlier turn trimmed: {chars} characters]"


def trim_old_tool_results(messages: list[dict]) -> tuple[list[dict], int]:
    """(the messages with every tool result before the newest person's message replaced by a note,
    how many were trimmed). The tool_result blocks stay, with their ids and error flags, so every
    tool_use keeps its result."""
    turns = split_turns(messages)
    if len(turns) < 2:
        return list(messages), 0
    older = len(messages) - len(turns[-1])
    names = {b.get("id"): b.get("name", "a tool") for m in messages[:older] for b in _blocks(m)
             if b.get("type") == "tool_use"}
    trimmed, count = [], 0
    for message in messages[:older]:
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            trimmed.append(message)
            continue
        blocks = []
        for block in content:
            if (isinstance(block, dict) and block.get("type") == "tool_result"
                    and _result_chars(block.get("content", "")) > TRIM_MIN_CHARS):
                note = trim_note(names.get(block.get("tool_use_id"), "a tool"), _result_chars(block.get("content", "")))
                block = {**block, "content": note}
                count += 1
            blocks.append(block)
        trimmed.append({**message, "content": blocks})
    return [*trimmed, *messages[older:]], count


# --- 2. summarising the oldest turns ------------------------------------------------------------


def split_summary(message: dict) -> tuple[str, int, dict]:
    """(an earlier summary's text, the turns it covers, the message without it) for the first
    message of a conversation; ("", 0, message) when it carries none."""
    blocks = _blocks(message)
    if message.get("role") == "user" and blocks and blocks[0].get("type") == "text":
        match = _SUMMARY_BLOCK.match(blocks[0].get("text", ""))
        if match:
            return match.group(2), int(match.group(1)), {**message, "content": blocks[1:]}
    return "", 0, message


def _clean(text: str) -> str:
    """A summary's text, unable to pass for the platform's own markup (a run context would count as
    a person's message; a closing tag would end the summary early)."""
    text = re.sub(r"</?run_context>", "", text)
    text = re.sub(rf"</?{SUMMARY_TAG}[^>]*>", "", text).strip()
    return text if len(text) <= SUMMARY_MAX_CHARS else text[: SUMMARY_MAX_CHARS - 1] + "…"


def summary_text_block(text: str, turns: int) -> dict:
    what = "turn 1" if turns == 1 else f"turns 1–{turns}"
    return {"type": "text", "text": (
        f'<{SUMMARY_TAG} turns="{turns}">\nThe earlier part of this conversation ({what}) was compacted into '
        f"this summary to stay within the context budget; the messages after it are whole.\n\n{_clean(text)}\n"
        f"</{SUMMARY_TAG}>")}


def with_summary(text: str, turns: int, kept: list[dict]) -> list[dict]:
    """The kept messages (whole turns, starting with a person's message) with the summary first:
    the first block of the first user message, so the conversation still starts with a user message
    and alternates."""
    first, *rest = kept
    return [{**first, "content": [summary_text_block(text, turns), *_blocks(first)]}, *rest]


def turns_to_summarise(turns: list[list[dict]], *, budget_tokens: int, keep_last_turns: int = 1) -> int:
    """How many of the oldest turns to summarise: the fewest that bring the conversation (with a
    summary of the largest size) under TARGET_SHARE of the budget, else as many as may go (the
    newest turn and `keep_last_turns` before it stay whole)."""
    most = max(0, len(turns) - 1 - keep_last_turns)
    placeholder = len(json.dumps(summary_text_block("x" * SUMMARY_MAX_CHARS, 9999)))
    target = budget_tokens * TARGET_SHARE
    sizes = [sum(conversation_chars([m]) for m in turn) for turn in turns]  # about the JSON of the turns kept
    kept = sum(sizes)
    for count in range(1, most + 1):
        kept -= sizes[count - 1]
        if (kept + placeholder) // 4 <= target:
            return count
    return most


def _clip(text: str, limit: int = TRANSCRIPT_PART_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters]"


def transcript(previous: str, turns: list[list[dict]], first_turn: int) -> str:
    """The summary request's one user message: the earlier summary, the turns to summarise as plain
    text (no tool_use blocks: the request has no tools), then what to do."""
    lines = []
    if previous:
        lines += [f"<earlier_summary turns=\"1–{first_turn - 1}\">", _clean(previous), "</earlier_summary>", ""]
    for number, turn in enumerate(turns, start=first_turn):
        lines.append(f"--- turn {number} ---")
        for message in turn:
            for block in _blocks(message):
                kind = block.get("type")
                if kind == "text" and block.get("text", "").strip():
                    who = "person" if message.get("role") == "user" else "agent"
                    lines.append(f"{who}: {_clip(_clean(block['text']))}")
                elif kind == "tool_use":
                    lines.append(f"agent called {block.get('name')}: "
                                 f"{_clip(json.dumps(block.get('input') or {}, ensure_ascii=False), 1000)}")
                elif kind == "tool_result":
                    content = block.get("content", "")
                    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)
                    lines.append(f"tool {'error' if block.get('is_error') else 'result'}: {_clip(text)}")
    last = first_turn + len(turns) - 1
    lines += ["", f"{SUMMARY_INSTRUCTION} (turns 1–{last}, the earlier summary included), for the agent to "
                  "continue from."]
    return "\n".join(lines)


# --- compacting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    text: str
    by: str  # "model" | "offline"
    usage: dict[str, int] = field(default_factory=dict)  # the model's call, counted on the run (empty offline)
    cost_usd: float = 0.0
    model: str = ""
    error: str = ""  # why the model did not write it, when it was asked and failed


Summariser = Callable[[str, list[list[dict]], int], Summary]
"""(an earlier summary's text, the turns to summarise, the first of those turns' number) → Summary."""


@dataclass(frozen=True)
class Compaction:
    messages: list[dict]
    tool_results_trimmed: int
    turns_summarised: int  # turns replaced by the summary in this compaction
    summary_covers_turns: int  # every turn the summary now stands for (an earlier summary's included)
    chars_before: int
    chars_after: int
    summary: Summary | None = None

    def payload(self) -> dict[str, Any]:
        """The `thread.compacted` event's payload."""
        payload: dict[str, Any] = {
            "turns_summarised": self.turns_summarised, "summary_covers_turns": self.summary_covers_turns,
            "tool_results_trimmed": self.tool_results_trimmed,
            "chars_before": self.chars_before, "chars_after": self.chars_after,
            "estimated_tokens_before": self.chars_before // 4, "estimated_tokens_after": self.chars_after // 4,
            "summary_by": self.summary.by if self.summary else "", "summary": self.summary.text if self.summary else ""}
        if self.summary and self.summary.usage:
            payload.update(usage=self.summary.usage, cost_usd=self.summary.cost_usd, model=self.summary.model)
        if self.summary and self.summary.error:
            payload["summary_error"] = self.summary.error
        return payload


def compact_for_budget(messages: list[dict], *, budget_tokens: int, summarise: Summariser,
                       keep_last_turns: int = 1) -> Compaction | None:
    """The conversation within `budget_tokens`, or None when it fits already (or nothing in it may
    be compacted). Tool results of earlier turns are trimmed first; only when that is not enough
    are the oldest turns summarised (`summarise` is called at most once). Best effort: when the
    newest turn and the `keep_last_turns` before it are over the budget on their own, the result is
    still over it (`chars_after` says by how much)."""
    before = conversation_chars(messages)
    if before // 4 <= budget_tokens:
        return None
    trimmed, count = trim_old_tool_results(messages)
    turns = split_turns(trimmed)
    summarised = turns_to_summarise(turns, budget_tokens=budget_tokens, keep_last_turns=keep_last_turns)
    if conversation_chars(trimmed) // 4 <= budget_tokens or not summarised:
        if not count:
            return None
        return Compaction(messages=trimmed, tool_results_trimmed=count, turns_summarised=0,
                          summary_covers_turns=split_summary(trimmed[0])[1], chars_before=before,
                          chars_after=conversation_chars(trimmed))
    older = [list(turn) for turn in turns[:summarised]]
    previous, covered, older[0][0] = split_summary(older[0][0])
    summary = summarise(previous, older, covered + 1)
    compacted = with_summary(summary.text, covered + summarised, [m for turn in turns[summarised:] for m in turn])
    return Compaction(messages=compacted, tool_results_trimmed=count, turns_summarised=summarised,
                      summary_covers_turns=covered + summarised, chars_before=before,
                      chars_after=conversation_chars(compacted), summary=summary)


def summariser(*, model: str, fallback_model: str, metadata: dict[str, str],
               should_cancel: Callable[[], bool]) -> Summariser:
    """The summariser of a run: the model writes the summary when a key is configured (one call
    through `agents.model.call_model`, no tools; ModelCancelled goes to the caller), the offline
    model's deterministic summary otherwise, or when the model is unavailable (saying so)."""
    from django.conf import settings

    from . import offline_model
    from .model import ModelRequest, ModelUnavailable, StreamCallbacks, call_model

    def offline(previous: str, turns: list[list[dict]], first_turn: int, **failed: Any) -> Summary:
        text = offline_model.summarise_turns(previous, turns, first_turn=first_turn, max_chars=SUMMARY_MAX_CHARS)
        return Summary(text=text, by="offline", **failed)

    def summarise(previous: str, turns: list[list[dict]], first_turn: int) -> Summary:
        if not settings.ANTHROPIC_API_KEY:
            return offline(previous, turns, first_turn)
        request = ModelRequest(
            model=model, fallback_model=fallback_model, system=[{"type": "text", "text": SUMMARY_SYSTEM}], tools=[],
            messages=[{"role": "user", "content": [{"type": "text", "text": transcript(previous, turns, first_turn)}]}],
            max_tokens=SUMMARY_MAX_TOKENS, metadata=metadata)
        try:
            turn = call_model(request, callbacks=StreamCallbacks(should_cancel=should_cancel))
        except ModelUnavailable as exc:
            return offline(previous, turns, first_turn, error=exc.message)
        text = "".join(b.get("text", "") for b in turn.content if b.get("type") == "text").strip()
        if not text:
            return offline(previous, turns, first_turn, error=f"{turn.model} wrote no summary ({turn.stop_reason})",
                           usage=dict(turn.usage.__dict__), cost_usd=turn.cost_usd, model=turn.model)
        return Summary(text=_clean(text), by="model", usage=dict(turn.usage.__dict__), cost_usd=turn.cost_usd,
                       model=turn.model)

    return summarise
