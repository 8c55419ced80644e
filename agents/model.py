"""Model access, in one module (DESIGN §5). INTERFACE ONLY in this commit: the implementation
lands with the model-layer work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ModelCancelled(Exception):
    """The run was cancelled while the model was streaming; the stream was closed."""


class ModelUnavailable(Exception):
    """The model and its fallback both failed; `message` says why, for the run's error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


@dataclass(frozen=True)
class ModelRequest:
    model: str
    fallback_model: str
    system: list[dict]  # Anthropic system text blocks (cache_control on the last stable one)
    tools: list[dict]  # sorted by name, cache_control on the last
    messages: list[dict]
    max_tokens: int
    temperature: float
    metadata: dict[str, str] = field(default_factory=dict)  # e.g. {"run_id": …}; never sent as prompt text


@dataclass(frozen=True)
class StreamCallbacks:
    on_text: Callable[[str], None] = lambda text: None  # a text delta
    on_tool_input: Callable[[str, str, str], None] = lambda tool_use_id, name, partial_json: None
    should_cancel: Callable[[], bool] = lambda: False  # polled while streaming


@dataclass(frozen=True)
class ModelTurn:
    content: list[dict[str, Any]]  # assistant content blocks as plain dicts (text / tool_use)
    stop_reason: str  # end_turn | tool_use | max_tokens | stop_sequence | refusal
    usage: Usage
    model: str  # the model that answered (the fallback when it was used)
    used_fallback: bool
    simulated: bool  # answered by the offline model
    cost_usd: float
