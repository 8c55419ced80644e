"""The offline model: a deterministic stand-in for Claude when no ANTHROPIC_API_KEY is set (DESIGN §5).

It answers Messages API request bodies, so it plugs in below the SDK (`agents.model.OfflineTransport`
serves it to `anthropic.Anthropic` as an httpx2 transport) and behind the local fake Messages API
server the tests and benchmarks use (`tests/fakes/messages_api.py`): the same SDK code path runs
either way. This module does no HTTP itself (only `agents/model.py` and `spokestack/egress.py` may
import an HTTP client); it turns a request body into a `Reply` and a reply into the API's JSON or
its Server-Sent Events.

How it behaves, so a run always goes somewhere sensible and always ends:
* first turn (no tool results yet): the tools whose names and descriptions share the most words
  with the task (at most `MAX_TOOLS_PER_TURN`, all in one turn), arguments filled from their JSON
  schemas (required fields first; strings from the task or the client named in the prompt, enums
  → first value, numbers → a default inside minimum/maximum);
* a task asking for the brand guidelines / style guide / on-brand work, with `search_knowledge`
  offered: that tool alone first (its query from the task's words), then the turns above as if
  it were the first, and the answer cites the top passage ("Per the Brand guidelines (p. 2 ›
  Voice): …"); it is never chosen by word overlap;
* delegation tools offered (`delegate_to_…`, an orchestrator): the first turn calls each of them
  (at most `MAX_DELEGATIONS_PER_TURN`) with the task as theirs, and nothing else;
* a string argument named like a value an earlier tool returned (`role`, `person_id`, `brief_id`,
  `estimate_id`, …) takes that value instead of the task's words;
* after tool results: once (while under `MAX_TOOL_TURNS`) a "create" tool (save_/create_/draft_…)
  that matches the task and was not called yet, else the final answer (`end_turn`): it quotes key
  facts from the tool results, never uses a word the system prompt's "Never …" / "Avoid …" /
  competitor lines rule out, and its first line is `SIMULATED_MARKER`;
* a thread's follow-up (more than one user message carrying the platform's run context): no
  tools; the answer quotes the previous turn's answer and builds on it, and a "shorter" request
  shortens that answer to about a third;
* usage ≈ characters / 4, with the tools + system prefix reported as a cache read when the same
  prefix (and model) was seen before in this process, as a cache write otherwise.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SIMULATED_MARKER = "[Simulated output — offline model, no ANTHROPIC_API_KEY]"
MAX_TOOLS_PER_TURN = 3
MAX_TOOL_TURNS = 2
CREATE_PREFIXES = ("save_", "create_", "draft_", "write_", "update_")  # publishing is not creating
DELEGATE_PREFIX = "delegate_to_"  # agents.delegation.PREFIX (this module imports nothing of the platform)
MAX_DELEGATIONS_PER_TURN = 4

_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in into is it its of on or our that the their this to was "
    "were will with you your we us i me my please can could would should do does what which who how about "
    "use used using when returns return tool get".split()
)
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class Reply:
    """One assistant turn, as the Messages API would return it."""

    model: str
    content: list[dict[str, Any]]
    stop_reason: str
    usage: dict[str, int]
    id: str = "msg_offline"
    extra_events: list[tuple[str, dict]] = field(default_factory=list)

    def message(self) -> dict[str, Any]:
        """The non-streaming response body (a `Message`)."""
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": self.content, "stop_reason": self.stop_reason, "stop_sequence": None,
                "usage": dict(self.usage)}


# --- reading the request ------------------------------------------------------------------


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower().replace("_", " ")) if w not in _STOPWORDS and len(w) > 1}


def _block_text(content: Any) -> str:
    """The text of a message's content (a string or a list of blocks), tool results included."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            parts.append(_block_text(block.get("content", "")))
    return "\n".join(parts)


def _system_text(body: dict) -> str:
    system = body.get("system") or ""
    return system if isinstance(system, str) else "\n".join(b.get("text", "") for b in system if isinstance(b, dict))


_RUN_CONTEXT = re.compile(r"\s*<run_context>.*?</run_context>\s*", re.DOTALL)


def _task_text(messages: list[dict]) -> str:
    """The task: the first user message's own text (tool results are not the task), without the
    run context block the platform appends (client, date, metadata)."""
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return _RUN_CONTEXT.sub(" ", content).strip()
            text = "\n".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")
            if text:
                return _RUN_CONTEXT.sub(" ", text).strip()
    return ""


_CLIENT_PATTERNS = (
    re.compile(r"(?im)^[\s#>*-]*client(?:\s+name)?\s*[:=]\s*[*_`\"']*([^\n*_`\"'(;,]+)"),
    re.compile(r"(?i)\bclient\s+[\"“'`]([^\"”'`\n]{2,60})[\"”'`]"),
    re.compile(r"(?i)\b(?:for|on behalf of)\s+(?:the\s+)?client\s+([A-Z][\w&.'-]*(?:\s+[A-Z][\w&.'-]*){0,4})"),
    re.compile(r"\bfor\s+([A-Z][\w&'-]+(?:\s+[A-Z][\w&'-]+){0,3})"),
)


def find_client_name(system: str, messages: list[dict]) -> str:
    """The client the prompt is about: "Client: Name" lines first, then "for client Name" / "for Name"."""
    texts = [system, *(_block_text(m.get("content")) for m in messages if m.get("role") == "user")]
    for pattern in _CLIENT_PATTERNS:
        for text in texts:
            match = pattern.search(text or "")
            if match:
                name = match.group(1).strip().rstrip(".")
                if name and name.lower() not in {"the", "a", "an", "our", "this"}:
                    return name
    return ""


_RULE_LINE = re.compile(r"(?i)^[\s#>*•-]*(?:\d+[.)]\s*)?(never|avoid|do not|don't|must not)\b(.*)$")
_COMPETITOR_LINE = re.compile(r"(?i)competitors?\b[^:\n]*[:\-–]\s*(.+)$")
_QUOTED = re.compile(r"[\"“'‘`]([^\"”'’`]{2,60})[\"”'’`]")
_LEAD = re.compile(
    r"(?i)^\s*(?:ever\s+)?(?:use|say|mention|write|call\w*|refer to|describe\w*|include|promise|claim|"
    r"compare\w*(?:\s+\w+)?\s+to|name)?\s*(?:it\s+|us\s+|the\s+brand\s+|our\s+\w+\s+)?(?:as\s+)?"
    r"(?:the\s+)?(?:words?|terms?|phrases?|words\s+like|terms\s+like|such\s+as)?\s*[:]?\s*")


def avoided_terms(system: str) -> list[str]:
    """Words and phrases the prompt rules out: quoted terms on "Never/Avoid/Do not" lines, else the
    phrase after the verb; names listed on competitor lines."""
    terms: list[str] = []
    for line in system.splitlines():
        match = _RULE_LINE.match(line)
        competitor = _COMPETITOR_LINE.search(line)
        if not match and not competitor:
            continue
        quoted = _QUOTED.findall(line)
        if quoted:
            terms += quoted
            continue
        if competitor:
            terms += [t.strip(" .") for t in re.split(r",|\bor\b|\band\b|/", competitor.group(1)) if t.strip(" .")]
            continue
        rest = _LEAD.sub("", match.group(2), count=1)
        like = re.search(r"(?i)\b(?:like|such as|including|e\.g\.)\s+(.+)$", rest)
        rest = like.group(1) if like else rest
        rest = re.split(r"[.;(]|\s[-–—]\s|\b(?:because|since|unless|in|when|as it)\b", rest)[0]
        for term in re.split(r",|\bor\b|\band\b|/", rest):
            term = term.strip(" .:\"'")
            if 1 < len(term) <= 40 and len(term.split()) <= 3:
                terms.append(term)
    seen, unique = set(), []
    for term in terms:
        if term.lower() not in seen:
            seen.add(term.lower())
            unique.append(term)
    return unique


def scrub(text: str, terms: Iterable[str]) -> str:
    """`text` with every avoided term left out (whole words, case-insensitive)."""
    for term in sorted(terms, key=len, reverse=True):
        text = re.sub(rf"(?i)(?<!\w){re.escape(term)}(?!\w)", "[omitted]", text)
    return text


# --- filling arguments from a JSON schema -------------------------------------------------


@dataclass(frozen=True)
class _Context:
    task: str
    client: str
    answer: str = ""  # the draft text, for content fields of a "create" tool
    # Values the tools already returned, by key (the first of each): an id, a role or a person a later
    # call names is taken from what the systems said rather than from the task's words.
    known: dict[str, Any] = field(default_factory=dict)


def _known_values(results: list[tuple[str, str, bool]]) -> dict[str, Any]:
    """The first scalar value under each key in the (successful) tool results, oldest first; a
    record's `id` is also known as `<record>_id` when its list is named (`drafts[0].id` → draft_id)."""
    known: dict[str, Any] = {}

    def walk(value: Any, parent: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, (str, int, float)) and not isinstance(item, bool) and item != "":
                    known.setdefault(key, item)
                    if key == "id" and parent:
                        known.setdefault(f"{parent.rstrip('s')}_id", item)
                else:
                    walk(item, key)
        elif isinstance(value, list):
            for item in value[:20]:
                walk(item, parent)

    for _name, text, is_error in results:
        if is_error:
            continue
        try:
            walk(json.loads(text), "")
        except (ValueError, TypeError):
            continue
    return known


_CONTENT_FIELDS = ("text", "content", "body", "draft", "response", "copy", "message", "summary", "answer")


def _string_for(name: str, schema: dict, ctx: _Context) -> str:
    lname = name.lower()
    fmt = schema.get("format")
    if fmt == "date":
        value = datetime.now(UTC).date().isoformat()
    elif fmt == "date-time":
        value = datetime.now(UTC).replace(microsecond=0).isoformat()
    elif fmt == "email":
        value = "client@example.com"
    elif fmt in ("uri", "url"):
        value = "https://example.com/"
    elif fmt == "uuid":
        value = "00000000-0000-4000-8000-000000000000"
    elif "client" in lname and ctx.client:
        value = ctx.client
    elif isinstance(ctx.known.get(name), str) and not schema.get("enum"):
        value = ctx.known[name]  # what a tool returned under this name: an id, a role, a person
    elif ctx.answer and any(f in lname for f in _CONTENT_FIELDS):
        value = ctx.answer
    elif lname in ("title", "name", "subject", "headline"):
        value = " ".join(ctx.task.split()[:8]) or "Draft"
    elif any(w in lname for w in ("language", "lang")):
        value = "en"
    elif "industry" in lname or "vertical" in lname:
        value = next((w for w in _words(ctx.task) if w in {"beauty", "fashion", "food", "technology", "finance",
                                                           "healthcare"}), "technology")
    elif any(w in lname for w in ("query", "keyword", "search", "topic")):
        value = " ".join(sorted(_words(ctx.task))[:6]) or ctx.task
    else:
        value = ctx.task or ctx.client or "n/a"
    min_len, max_len = schema.get("minLength", 0), schema.get("maxLength")
    if len(value) < min_len:
        value = value + "." * (min_len - len(value))
    if max_len is not None:
        value = value[:max_len]
    return value


def _number_for(name: str, schema: dict, integer: bool) -> float | int:
    lname = name.lower()
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    if any(w in lname for w in ("budget", "amount", "spend", "price", "cost")):
        value: float = 10000
    elif any(w in lname for w in ("limit", "count", "max", "top", "number", "size")):
        value = 5
    elif any(w in lname for w in ("week", "month", "day", "duration")):
        value = 4
    elif lo is not None and hi is not None:
        value = (lo + hi) / 2
    else:
        value = 1
    if lo is not None:
        value = max(value, lo + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0))
    if hi is not None:
        value = min(value, hi - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0))
    return int(value) if integer else float(value)


def fill_schema(schema: dict, ctx: _Context, name: str = "") -> Any:
    """A value that satisfies `schema` (the common JSON Schema keywords), from the task and client."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return fill_schema(options[0], ctx, name)
    if schema.get("allOf"):
        merged: dict = {}
        for part in schema["allOf"]:
            merged.update(part)
        return fill_schema(merged, ctx, name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties", {})
        required = [k for k in schema.get("required", []) if k in properties]
        # Only what the schema requires: optional inputs have defaults the tool knows better
        # (the run's client, the client's market) than a guess from the task's words.
        value = {key: fill_schema(properties[key], ctx, key) for key in required}
        # A map (e.g. a budget split per channel) still needs its minProperties entries: keys from
        # propertyNames, values from additionalProperties.
        entries, names = schema.get("additionalProperties"), (schema.get("propertyNames") or {}).get("enum", [])
        for key in names:
            if len(value) >= schema.get("minProperties", 0) or not isinstance(entries, dict):
                break
            value.setdefault(key, fill_schema(entries, ctx, key))
        return value
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        count = max(1, schema.get("minItems", 1))
        if schema.get("maxItems") is not None:
            count = min(count, schema["maxItems"])
        if isinstance(items, dict) and items.get("type") == "string" and not items.get("enum"):
            words = sorted(_words(ctx.task)) or ["general"]
            values = [w for w in words][: max(count, min(3, schema.get("maxItems", 3)))]
            while len(values) < count:
                values.append(f"{values[-1]}-{len(values)}")
            return values
        return [fill_schema(items, ctx, name) for _ in range(count)]
    if kind == "integer":
        return _number_for(name, schema, integer=True)
    if kind == "number":
        return _number_for(name, schema, integer=False)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return _string_for(name, schema, ctx)


# --- choosing what to do ------------------------------------------------------------------


def _tool_score(tool: dict, task_words: set[str]) -> int:
    name_words = _words(tool.get("name", ""))
    description_words = _words(tool.get("description", ""))
    return 2 * len(name_words & task_words) + len(description_words & task_words)


def _stable_id(prefix: str, *parts: Any) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"{prefix}_{digest}"


def _tool_turns(messages: list[dict]) -> list[set[str]]:
    turns = []
    for message in messages:
        if message.get("role") == "assistant" and isinstance(message.get("content"), list):
            names = {b.get("name") for b in message["content"] if isinstance(b, dict) and b.get("type") == "tool_use"}
            if names:
                turns.append(names)
    return turns


def _tool_results(messages: list[dict]) -> list[tuple[str, str, bool]]:
    """(tool name, result text, is_error) for every tool result in the conversation, oldest first."""
    names = {}
    results = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                names[block.get("id")] = block.get("name", "tool")
            elif block.get("type") == "tool_result":
                results.append((names.get(block.get("tool_use_id"), "tool"), _block_text(block.get("content", "")),
                                bool(block.get("is_error"))))
    return results


def _facts(text: str, limit: int = 6) -> list[str]:
    """Key facts of a tool result: scalar fields of its JSON (numbers first), else its first line."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        first = text.strip().splitlines()[0] if text.strip() else "(empty)"
        return [first[:200]]
    pairs: list[tuple[str, Any]] = []

    def walk(value: Any, path: str) -> None:
        if len(pairs) >= 40:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            if value and all(not isinstance(v, (dict, list)) for v in value):
                pairs.append((path, ", ".join(str(v) for v in value[:6])))
            else:
                for index, item in enumerate(value[:5]):
                    walk(item, f"{path}[{index}]")
        elif value is not None and value != "":
            pairs.append((path or "value", value))

    walk(data, "")
    numeric = [p for p in pairs if isinstance(p[1], (int, float)) and not isinstance(p[1], bool)]
    other = [p for p in pairs if p not in numeric]
    chosen = (numeric[: limit // 2 + 1] + other)[:limit]
    return [f"{key}: {str(value)[:160]}" for key, value in chosen] or ["(no data)"]


def _final_answer(task: str, client: str, results: list[tuple[str, str, bool]], terms: list[str]) -> str:
    subject = f" for {client}" if client else ""
    lines = [SIMULATED_MARKER, "", f"Response{subject}: {' '.join(task.split())[:300]}", ""]
    cited = _cited_passage(results)
    if cited:
        lines += [cited, ""]
    if results:
        lines.append(f"What the tools returned ({len(results)} result{'s' if len(results) != 1 else ''}):")
        for name, text, is_error in results:
            if is_error:
                lines.append(f"- {name} could not help: {' '.join(text.split())[:200]}")
                continue
            lines.append(f"- {name}: " + "; ".join(_facts(text)))
    else:
        lines.append("No tool results were available, so this answer rests on the task alone.")
    lines += ["", "Recommendation: build on the facts above, confirm the figures with the account team, "
              "and review this draft before it goes to the client."]
    if terms:
        lines.append(f"(Kept to the prompt's rules: {len(terms)} ruled-out term{'s' if len(terms) != 1 else ''} "
                     "left out.)")
    return scrub("\n".join(lines), terms)


_SHORTER = re.compile(r"(?i)\b(shorter|shorten|short|brief|briefer|concise|trim|cut|tighter|fewer words)\b")


def _text_of(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")


def _requests(messages: list[dict]) -> list[int]:
    """Where the user's own messages are (the platform appends its run context to each of them;
    tool results and the output check's revision requests carry none): more than one is a thread."""
    return [i for i, m in enumerate(messages) if m.get("role") == "user" and "<run_context>" in _text_of(m)]


def _follow_up(messages: list[dict], requests: list[int], terms: list[str]) -> str:
    """A thread's next turn: the answer builds on the previous turn's final answer, visibly (it
    quotes it); "shorter" and its kin shorten it. Turns a compaction summarised (agents/compaction.py)
    count too: the summary says how many it covers."""
    summarised = re.search(r'<conversation_summary turns="(\d+)"', _text_of(messages[0])) if messages else None
    turn = len(requests) + (int(summarised.group(1)) if summarised else 0)
    request = " ".join(_RUN_CONTEXT.sub(" ", _text_of(messages[requests[-1]])).split())
    previous = next((_text_of(m) for m in reversed(messages[: requests[-1]])
                     if m.get("role") == "assistant" and _text_of(m).strip()), "")
    lines = [line.strip() for line in previous.splitlines() if line.strip() and line.strip() != SIMULATED_MARKER]
    headline = lines[0] if lines else "(no answer)"
    out = [SIMULATED_MARKER, ""]
    if _SHORTER.search(request):
        words = " ".join(lines).split()
        keep = max(8, len(words) // 3)
        short = " ".join(words[:keep]) + ("…" if keep < len(words) else "")
        out += [f"Shorter version of my previous answer (turn {turn - 1}, {len(words)} → "
                f"{len(short.split())} words), as you asked: \"{request[:200]}\"", "", short]
    else:
        points = [line for line in lines[1:] if line.startswith("- ")][:3]
        out += [f"Follow-up (turn {turn}): {request[:300]}", "",
                f"Building on my previous answer (turn {turn - 1}), which began: \"{headline[:300]}\"", *points, "",
                "Recommendation: apply this request to the draft above and review it before it goes to the client."]
    return scrub("\n".join(out), terms)


def summarise_turns(previous: str, turns: list[list[dict]], *, first_turn: int, max_chars: int) -> str:
    """A thread's earlier turns in a deterministic summary (agents/compaction.py, offline): per turn
    what the person asked, the tools used and how the answer began, after the earlier summary's
    lines; the oldest lines go first when it is over `max_chars`."""
    earlier = [line for line in previous.splitlines() if line.startswith("- Turn ")]
    dropped = sum(int(n) for n in re.findall(r"(?m)^- Earlier turns: (\d+) line", previous))
    lines = []
    for number, turn in enumerate(turns, start=first_turn):
        asked = next((" ".join(_RUN_CONTEXT.sub(" ", _text_of(m)).split()) for m in turn
                      if m.get("role") == "user" and "<run_context>" in _text_of(m)), "")
        tools: dict[str, int] = {}
        for names in _tool_turns(turn):
            for name in names:
                tools[name] = tools.get(name, 0) + 1
        used = ", ".join(name + (f" ×{n}" if n > 1 else "") for name, n in sorted(tools.items()))
        answer = next((_text_of(m) for m in reversed(turn) if m.get("role") == "assistant" and _text_of(m).strip()), "")
        answer = " ".join(line.strip() for line in answer.splitlines() if line.strip() and line.strip() != SIMULATED_MARKER)
        lines.append(f"- Turn {number}: the person asked “{asked[:300]}”. " + (f"Tools used: {used}. " if used else "")
                     + (f"The answer began: “{answer[:400]}”." if answer else "There was no answer."))
    lines = earlier + lines
    while len(lines) > 1 and len("\n".join(lines)) > max_chars - 200:
        lines.pop(0)
        dropped += 1
    head = f"Turns 1–{first_turn + len(turns) - 1} of this conversation (a deterministic summary by the offline model):"
    note = [f"- Earlier turns: {dropped} line{'s' if dropped != 1 else ''} dropped to keep this summary short."]
    return "\n".join([head, *(note if dropped else []), *lines])[:max_chars]


def estimate_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


_seen_prefixes: set[str] = set()
_seen_lock = threading.Lock()


def estimate_usage(body: dict, content: list[dict]) -> dict[str, int]:
    """Plausible usage: chars/4, the tools + system prefix a cache read once seen in this process."""
    prefix = json.dumps([body.get("model"), body.get("tools") or [], body.get("system") or ""], sort_keys=True)
    prefix_tokens = estimate_tokens(prefix)
    rest_tokens = estimate_tokens(json.dumps(body.get("messages") or [], sort_keys=True))
    key = hashlib.sha256(prefix.encode()).hexdigest()
    with _seen_lock:
        seen = key in _seen_prefixes
        _seen_prefixes.add(key)
    output = sum(estimate_tokens(b.get("text", "") if b.get("type") == "text" else json.dumps(b.get("input", {})))
                 for b in content)
    return {"input_tokens": rest_tokens, "output_tokens": output,
            "cache_creation_input_tokens": 0 if seen else prefix_tokens,
            "cache_read_input_tokens": prefix_tokens if seen else 0}


# A lasting preference the user states ("Always use British spelling."): proposed with `remember`.
_LASTING = re.compile(r"(?i)\b(from now on|going forward|in future|remember that|always (?:use|write|spell|say|"
                      r"refer|call|keep|include|sign|address)|never (?:use|write|say|mention|call|include))\b")


def _remember_lasting_preference(chosen: list[dict], tools: list[dict], messages: list[dict],
                                 has_results: bool) -> list[dict]:
    """`remember` (the core memory tool) alone, its fact that sentence, when the user's latest message
    states a lasting preference; otherwise the turn's tools without it (never chosen by word overlap)."""
    chosen = [t for t in chosen if t["name"] != "remember"]
    tool = next((t for t in tools if t["name"] == "remember"), None)
    last = messages[-1] if messages else {}
    if tool is None or has_results or last.get("role") != "user":
        return chosen
    own = _text_of(last).split("<run_context>")[0]
    sentence = next((s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", own) if _LASTING.search(s)), "")
    if not sentence:
        return chosen
    sentence = re.sub(r"^[\w-]+:\s*", "", sentence)  # a marker or label before the sentence
    fact = (sentence[0].upper() + sentence[1:])[:300]
    schema = {"type": "object", "properties": {"fact": {"type": "string", "const": fact}}, "required": ["fact"]}
    return [{**tool, "input_schema": schema}]  # on its own: remembering comes first, the work follows


# A task that asks for the client's documents: the core `search_knowledge` tool is called first.
_WANTS_GUIDELINES = re.compile(r"(?i)\b(brand\s+guide(?:lines?|book)?|style\s+guide|on[-\s]brand|"
                               r"according to (?:our|the|their) guidelines|(?:our|the|their) guidelines)\b")
SEARCH_KNOWLEDGE = "search_knowledge"
_QUERY_NOISE = frozenset("according brand guide guideline guidelines style on write draft make create give "
                         "following follow per check save saving best them before".split())


def _knowledge_query(task: str) -> str:
    """The search: the task's own words (not the words asking for guidelines), in order, plus
    "voice tone" — what a guideline's passage on writing is about."""
    words = [w for w in _WORD.findall(task.lower()) if w not in _STOPWORDS and w not in _QUERY_NOISE and len(w) > 2]
    return " ".join([*dict.fromkeys(words)][:8] + ["voice", "tone"])


def _search_knowledge_first(chosen: list[dict], tools: list[dict], task: str, first_turn: bool) -> list[dict]:
    """`search_knowledge` first in the first turn, its query built from the task, when the task asks
    for the brand guidelines / style guide / on-brand work; never chosen by word overlap."""
    chosen = [t for t in chosen if t["name"] != SEARCH_KNOWLEDGE]
    tool = next((t for t in tools if t["name"] == SEARCH_KNOWLEDGE), None)
    if tool is None or not first_turn or any(t["name"] == "remember" for t in chosen) \
            or not _WANTS_GUIDELINES.search(task):
        return chosen
    schema = {"type": "object", "properties": {"query": {"type": "string", "const": _knowledge_query(task)}},
              "required": ["query"]}
    return [{**tool, "input_schema": schema}]  # on its own: the work's tools follow in the next turn


def _cited_passage(results: list[tuple[str, str, bool]]) -> str:
    """"Per the Brand guidelines (p. 2 › Voice): “…”": the top passage search_knowledge returned."""
    for name, text, is_error in reversed(results):
        if name != SEARCH_KNOWLEDGE or is_error:
            continue
        try:
            passages = json.loads(text).get("passages") or []
        except (ValueError, TypeError, AttributeError):
            continue
        if passages and isinstance(passages[0], dict):
            top = passages[0]
            kind = str(top.get("kind") or "document").replace("_", " ").capitalize()
            where = " › ".join(part for part in (f"p. {top['page']}" if top.get("page") else "",
                                                  str(top.get("section") or "")) if part)
            excerpt = " ".join(str(top.get("excerpt", "")).split())[:300]
            return (f"Per the {kind}{f' ({where})' if where else ''}: “{excerpt}” "
                    f"(Source: {top.get('citation', '')})")
    return ""


def respond(body: dict) -> Reply:
    """The offline model's answer to a Messages API request body."""
    messages = body.get("messages") or []
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name")]
    system = _system_text(body)
    task = _task_text(messages)
    client = find_client_name(system, messages)
    terms = avoided_terms(system)
    task_words = _words(task)
    turns = _tool_turns(messages)
    called = set().union(*turns) if turns else set()
    last = messages[-1] if messages else {}
    has_results = isinstance(last.get("content"), list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"])

    chosen: list[dict] = []
    answer_for_tools = ""
    # A first turn that only searched the knowledge base does not count: the work's own turns follow it.
    work_turns = [names for names in turns if names != {SEARCH_KNOWLEDGE}]
    searched_first = bool(turns) and not work_turns
    if tools and not work_turns and (not has_results or searched_first):
        scored = sorted(((_tool_score(t, task_words), i, t) for i, t in enumerate(tools)), key=lambda s: (-s[0], s[1]))
        matching = [t for score, _, t in scored if score > 0]
        # gather first (Think → Act), create afterwards: a create tool opens only when nothing else matches
        gathering = [t for t in matching if not t["name"].startswith(CREATE_PREFIXES)]
        chosen = (gathering or matching)[:MAX_TOOLS_PER_TURN]
        # An orchestrator hands the work out first, every part at once (agents/delegation.py).
        delegations = [t for t in tools if t["name"].startswith(DELEGATE_PREFIX)]
        if delegations:
            chosen = delegations[:MAX_DELEGATIONS_PER_TURN]
    elif tools and has_results and len(work_turns) < MAX_TOOL_TURNS:
        create = [t for t in tools if t["name"].startswith(CREATE_PREFIXES) and t["name"] not in called
                  and _tool_score(t, task_words) > 0]
        if create:
            chosen = [max(create, key=lambda t: _tool_score(t, task_words))]
            answer_for_tools = _final_answer(task, client, _tool_results(messages), terms)

    seed = json.dumps(messages, sort_keys=True, default=str)
    requests = _requests(messages)
    if len(requests) > 1:  # a thread's follow-up: answered from the conversation, without tools
        chosen = []
    chosen = _remember_lasting_preference(chosen, tools, messages, has_results)
    chosen = _search_knowledge_first(chosen, tools, task, not turns and not has_results and len(requests) <= 1)
    if chosen:
        ctx = _Context(task=scrub(task, terms), client=client, answer=answer_for_tools,
                       known=_known_values(_tool_results(messages)))
        content: list[dict[str, Any]] = [{"type": "text", "text": f"Using {', '.join(t['name'] for t in chosen)}."}]
        for index, tool in enumerate(chosen):
            arguments = fill_schema(tool.get("input_schema") or {"type": "object"}, ctx)
            content.append({"type": "tool_use", "id": _stable_id("toolu", seed, tool["name"], index),
                            "name": tool["name"], "input": arguments if isinstance(arguments, dict) else {}})
        stop_reason = "tool_use"
    else:
        if len(requests) > 1:
            text = _follow_up(messages, requests, terms)
        else:
            text = _final_answer(task, client, _tool_results(messages), terms)
        stop_reason = "end_turn"
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and 0 < max_tokens < estimate_tokens(text):
            text, stop_reason = text[: max_tokens * 4], "max_tokens"  # as the API does: cut off, not summarised
        content = [{"type": "text", "text": text}]
    return Reply(model=str(body.get("model") or "offline"), content=content, stop_reason=stop_reason,
                 usage=estimate_usage(body, content), id=_stable_id("msg", seed, body.get("model")))


# --- the wire format ----------------------------------------------------------------------


def _chunks(text: str, size: int) -> list[str]:
    """`text` in pieces of about `size` characters, split after spaces where possible."""
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + 1, end + size // 2)
            end = space + 1 if space > start else end
        pieces.append(text[start:end])
        start = end
    return pieces or [""]


def sse_events(reply: Reply, *, text_chunk: int = 48, json_chunk: int = 24) -> list[tuple[str, dict]]:
    """The reply as the Messages API streams it: (event name, data) pairs, text and tool input in several deltas."""
    start_usage = {"input_tokens": reply.usage.get("input_tokens", 0), "output_tokens": 1,
                   "cache_creation_input_tokens": reply.usage.get("cache_creation_input_tokens", 0),
                   "cache_read_input_tokens": reply.usage.get("cache_read_input_tokens", 0)}
    events: list[tuple[str, dict]] = [("message_start", {"type": "message_start", "message": {
        "id": reply.id, "type": "message", "role": "assistant", "model": reply.model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": start_usage}})]
    events += reply.extra_events
    # several deltas per block, but not hundreds: a worker parses every event of hundreds of streams
    max_deltas = 12
    for index, block in enumerate(reply.content):
        if block.get("type") == "tool_use":
            events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}))
            encoded = json.dumps(block.get("input", {}), ensure_ascii=False)
            size = max(json_chunk, -(-len(encoded) // max_deltas))
            for piece in [encoded[i:i + size] for i in range(0, len(encoded), size)]:
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "input_json_delta", "partial_json": piece}}))
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": {"type": "text", "text": ""}}))
            text = block.get("text", "")
            for piece in _chunks(text, max(text_chunk, -(-len(text) // max_deltas))):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "text_delta", "text": piece}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                                     "usage": dict(reply.usage)}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def encode_event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def error_body(status: int, message: str | None = None) -> dict:
    """An API error body for `status`, typed as the API types it."""
    kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
            404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
            529: "overloaded_error"}.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message or kind.replace("_", " ").capitalize()}}


def __getattr__(name: str) -> Any:
    # The httpx2 transport lives in agents/model.py, the one agents module allowed to import an HTTP client.
    if name == "OfflineTransport":
        from agents.model import OfflineTransport

        return OfflineTransport
    raise AttributeError(name)
