"""Text that PostgreSQL cannot store, and JSON that would exhaust the interpreter.

PostgreSQL's `text` and `jsonb` refuse U+0000 (NUL): one in a webhook's, an ERP's or the model's
answer made the step write fail, and the run with it. Lone surrogates (U+D800–U+DFFF on their
own, which `json.loads` accepts from `"\\ud800"`) cannot be encoded to UTF-8 at all. Two rules:

* what we are *sent* (an API request body, a query parameter, a path) is refused with 400 and a
  message naming where (`first_unstorable`, `spokestack.api.parsers`,
  `spokestack.api.error_envelope.UnstorableInputMiddleware`): the client can fix it;
* what we *receive* from a tool, a webhook or the model is kept, minus those characters
  (`scrub_unstorable`), and marked with how many were removed: a run goes on, and whoever reads
  the result knows it was altered.

Both walk iteratively: the depth of a JSON value is bounded by `MAX_JSON_DEPTH` for requests, but
an answer parsed by `json.loads` can be nested up to the interpreter's recursion limit.
"""

from __future__ import annotations

import re
from typing import Any

NUL = "\x00"
# The API refuses request bodies nested deeper than this (objects and arrays both count).
MAX_JSON_DEPTH = 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_count(text: str) -> int:
    """How many characters of `text` PostgreSQL cannot store (U+0000, lone surrogates)."""
    if NUL not in text and (text.isascii() or _encodes(text)):
        return 0
    return len(_UNSTORABLE.findall(text))


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean(text: str) -> tuple[str, int]:
    count = unstorable_count(text)
    return (_UNSTORABLE.sub("", text), count) if count else (text, 0)


def scrub_unstorable(value: Any) -> tuple[Any, int]:
    """`value` without U+0000 and lone surrogates in any string, dict key included, and how many
    were removed. Dicts, lists and tuples (returned as lists) are copied only when something was
    removed from them; other values are returned as they are. When two keys of one dict become
    equal, the later one wins (both are counted)."""
    if isinstance(value, str):
        return _clean(value)
    if not isinstance(value, (dict, list, tuple)):
        return value, 0
    removed = 0
    holder: list[Any] = [None]
    # (the container to fill, where in it, the value to clean): children are cleaned into copies
    # made in advance, so the order of keys and items is kept without recursion.
    stack: list[tuple[Any, Any, Any]] = [(holder, 0, value)]
    while stack:
        parent, slot, node = stack.pop()
        if isinstance(node, str):
            node, count = _clean(node)
            removed += count
        elif isinstance(node, dict):
            copy: dict[Any, Any] = {}
            for key, item in node.items():
                if isinstance(key, str):
                    key, count = _clean(key)
                    removed += count
                copy[key] = None
                stack.append((copy, key, item))
            node = copy
        elif isinstance(node, (list, tuple)):
            items: list[Any] = [None] * len(node)
            stack.extend((items, index, item) for index, item in enumerate(node))
            node = items
        parent[slot] = node
    return (holder[0], removed) if removed else (value, 0)


def first_unstorable(value: Any) -> str | None:
    """Where the first string (or dict key) holding U+0000 or a lone surrogate is, as a path such
    as `metadata.notes[2]` (`$` for the value itself), or None when everything can be stored."""
    # Each visited container or value is an entry (its parent's entry, its own segment); the
    # path is built once, for the one found, so a deep value costs no long strings per level.
    entries: list[tuple[int, str]] = []

    def path_of(entry: int) -> str:
        segments = []
        while entry >= 0:
            entry, segment = entries[entry]
            segments.append(segment)
        return "".join(reversed(segments)).lstrip(".") or "$"

    stack: list[tuple[int, str, Any]] = [(-1, "", value)]
    while stack:
        parent, segment, node = stack.pop()
        entries.append((parent, segment))
        here = len(entries) - 1
        if isinstance(node, str):
            if unstorable_count(node):
                return path_of(here)
        elif isinstance(node, dict):
            for key in node:
                if isinstance(key, str) and unstorable_count(key):
                    return _printable(f"{path_of(here)}.{key}".removeprefix("$.").lstrip("."))
            stack.extend((here, f".{key}", item) for key, item in reversed(list(node.items())))
        elif isinstance(node, (list, tuple)):
            stack.extend((here, f"[{index}]", item) for index, item in reversed(list(enumerate(node))))
    return None


def _printable(path: str) -> str:
    return _UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", path)


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` nests objects and arrays more than `limit` levels deep."""
    stack: list[tuple[int, Any]] = [(1, value)]
    while stack:
        depth, node = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((depth + 1, child) for child in children if isinstance(child, (dict, list, tuple)))
    return False


def removed_note(count: int) -> str:
    """The mark for a result that was scrubbed, for a reader (a person or the model)."""
    return (f"[{count} character(s) that cannot be stored (U+0000 or unpaired surrogates) were removed "
            "from this result]")
