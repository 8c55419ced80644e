"""call_model through the real SDK against the local fake Messages API server (loopback HTTP):
streaming, fallback after the SDK's retries, readable key-free errors, cancellation, prices."""

from __future__ import annotations

import json
import threading
import time
import uuid

import anthropic
import pytest
from django.test import override_settings

from agents.model import (
    PRICES,
    ModelCancelled,
    ModelRequest,
    ModelUnavailable,
    StreamCallbacks,
    Usage,
    call_model,
    cost_usd,
    get_client,
    price_for,
    reset_client,
)
from agents.registry import DEFAULT_MODEL, FALLBACK_MODEL
from tests.fakes.messages_api import FakeMessagesApi

API_KEY = "sk-ant-test-" + "s3cr3t" * 6


@pytest.fixture(scope="module")
def fake_api():
    api = FakeMessagesApi()
    api.start()
    yield api
    api.stop()


@pytest.fixture
def live_api(fake_api, monkeypatch):
    """The SDK pointed at the fake server with a dummy key; one SDK retry so failures are quick."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.base_url)
    with override_settings(ANTHROPIC_API_KEY=API_KEY, ANTHROPIC_MAX_RETRIES=1):
        reset_client()
        yield fake_api
        reset_client()


@pytest.fixture
def marker():
    return f"task-{uuid.uuid4().hex[:10]}"


def _request(marker: str, *, system: list[dict] | None = None, tools: list[dict] | None = None) -> ModelRequest:
    return ModelRequest(
        model=DEFAULT_MODEL, fallback_model=FALLBACK_MODEL,
        system=system or [{"type": "text", "text": "You write copy. Never use the word \"cheap\".",
                           "cache_control": {"type": "ephemeral"}}],
        tools=tools or [], messages=[{"role": "user", "content": f"Write a tagline ({marker})"}],
        max_tokens=512, metadata={"run_id": "run-1"})


def test_the_key_client_is_a_real_sdk_client_on_the_configured_base_url(live_api):
    client = get_client()
    assert type(client) is anthropic.Anthropic
    assert str(client.base_url).startswith(live_api.base_url)
    assert client.max_retries == 1
    assert get_client() is client


def test_threads_share_a_bounded_set_of_clients_and_each_thread_keeps_its_own(live_api):
    from agents.model import POOL_SHARDS

    seen = []
    barrier = threading.Barrier(POOL_SHARDS * 2)

    def fetch():
        barrier.wait()
        seen.append((get_client(), get_client()))

    reset_client()
    threads = [threading.Thread(target=fetch) for _ in range(POOL_SHARDS * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(first is again for first, again in seen)
    assert len({id(first) for first, _ in seen}) == POOL_SHARDS  # made once per shard, however many threads
    reset_client()
    assert all(get_client() is not first for first, _ in seen)


def test_scripted_turns_stream_through_the_sdk_and_the_request_is_recorded(live_api, marker):
    tool = {"name": "save_draft", "description": "Save a draft.",
            "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            "cache_control": {"type": "ephemeral"}}
    live_api.script(marker, [{
        "content": [{"type": "text", "text": "Saving the tagline you asked for now."},
                    {"type": "tool_use", "id": "toolu_1", "name": "save_draft",
                     "input": {"text": "Glow that lasts all day, every day."}},
                    {"type": "tool_use", "id": "toolu_2", "name": "save_draft", "input": {"text": "Second."}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 120, "output_tokens": 40, "cache_read_input_tokens": 1000}}])
    text, tool_input = [], []
    turn = call_model(_request(marker, tools=[tool]),
                      callbacks=StreamCallbacks(on_text=text.append,
                                                on_tool_input=lambda *a: tool_input.append(a)))

    assert turn.stop_reason == "tool_use" and not turn.simulated and not turn.used_fallback
    assert turn.model == DEFAULT_MODEL
    assert turn.content == [
        {"type": "text", "text": "Saving the tagline you asked for now."},
        {"type": "tool_use", "id": "toolu_1", "name": "save_draft", "input": {"text": "Glow that lasts all day, every day."}},
        {"type": "tool_use", "id": "toolu_2", "name": "save_draft", "input": {"text": "Second."}}]
    assert "".join(text) == "Saving the tagline you asked for now."
    assert len({a[0] for a in tool_input}) == 2 and len(tool_input) > 2
    assert json.loads("".join(p for (i, _, p) in tool_input if i == "toolu_1")) == turn.content[1]["input"]
    assert turn.usage == Usage(input_tokens=120, output_tokens=40, cache_read_input_tokens=1000)
    assert turn.cost_usd == pytest.approx((120 * 3 + 40 * 15 + 1000 * 0.3) / 1e6)

    [sent] = live_api.requests(marker)
    assert sent["model"] == DEFAULT_MODEL and sent["stream"] is True and sent["max_tokens"] == 512
    assert 'Never use the word "cheap".' in sent["system"][0]["text"]
    assert sent["tools"][0]["cache_control"] == {"type": "ephemeral"}
    assert "run-1" not in json.dumps(sent)  # metadata is the platform's, never prompt text
    [raw] = live_api.raw_requests(marker)
    assert json.loads(raw) == sent


def test_unscripted_requests_get_the_offline_models_answer(live_api, marker):
    turn = call_model(_request(marker))
    assert turn.stop_reason == "end_turn" and "cheap" not in turn.content[0]["text"]
    assert turn.content[0]["text"].startswith("[Simulated output")


@pytest.mark.parametrize("status", [529, 429])
def test_overload_and_rate_limit_fall_back_after_the_sdks_retries(live_api, marker, status):
    live_api.script(marker, [{"status": status}, {"status": status},
                             {"content": [{"type": "text", "text": "From the fallback."}]}])
    turn = call_model(_request(marker))

    assert turn.used_fallback and turn.model == FALLBACK_MODEL
    assert turn.content == [{"type": "text", "text": "From the fallback."}]
    assert [r["model"] for r in live_api.requests(marker)] == [DEFAULT_MODEL, DEFAULT_MODEL, FALLBACK_MODEL]
    assert str(status) in turn.fallback_reason
    assert turn.cost_usd == pytest.approx(cost_usd(FALLBACK_MODEL, turn.usage))


def test_an_overload_in_the_middle_of_the_stream_falls_back(live_api, marker):
    live_api.script(marker, [{"content": [{"type": "text", "text": "Half an answer that will break"}],
                              "mid_stream_error": "overloaded_error"},
                             {"content": [{"type": "text", "text": "Whole."}]}])
    turn = call_model(_request(marker))
    assert turn.used_fallback and turn.content[0]["text"] == "Whole."


def test_model_unavailable_when_the_fallback_fails_too_and_the_key_never_leaks(live_api, marker):
    live_api.script(marker, [{"status": 529}] * 4)
    with pytest.raises(ModelUnavailable) as caught:
        call_model(_request(marker))
    message = caught.value.message
    assert DEFAULT_MODEL in message and FALLBACK_MODEL in message and "overloaded" in message
    assert API_KEY not in str(caught.value) and API_KEY not in repr(caught.value.__context__ or "")
    assert caught.value.__cause__ is None
    assert len(live_api.requests(marker)) == 4


def test_other_api_errors_do_not_fall_back(live_api, marker):
    live_api.script(marker, [{"status": 400, "error_message": "messages: text content blocks must be non-empty"}])
    with pytest.raises(ModelUnavailable, match="rejected the request .*must be non-empty"):
        call_model(_request(marker))
    assert [r["model"] for r in live_api.requests(marker)] == [DEFAULT_MODEL]


def test_an_error_echoing_the_key_is_redacted(live_api, marker):
    live_api.script(marker, [{"status": 401, "error_message": f"invalid x-api-key {API_KEY}"}])
    with pytest.raises(ModelUnavailable) as caught:
        call_model(_request(marker))
    assert API_KEY not in caught.value.message and "[redacted]" in caught.value.message
    assert "refused the API key" in caught.value.message


def test_an_unreachable_api_is_unavailable_not_a_crash(fake_api, monkeypatch, marker):
    with override_settings(ANTHROPIC_API_KEY=API_KEY, ANTHROPIC_MAX_RETRIES=0, ANTHROPIC_TIMEOUT_S=2):
        monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        reset_client()
        try:
            with pytest.raises(ModelUnavailable, match="could not be reached"):
                call_model(_request(marker))
        finally:
            reset_client()


def test_latency_is_real_and_spread_over_the_stream(live_api, marker):
    live_api.script(marker, [{"content": [{"type": "text", "text": "one two three four five six seven " * 4}],
                              "delay_s": 0.6}])
    arrivals = []
    started = time.monotonic()
    call_model(_request(marker), callbacks=StreamCallbacks(on_text=lambda t: arrivals.append(time.monotonic())))
    elapsed = time.monotonic() - started
    assert elapsed >= 0.6
    assert len(arrivals) > 1 and arrivals[0] - started < elapsed - 0.1  # the first delta came well before the end


def test_cancel_while_streaming_closes_the_stream_within_one_delta(live_api, marker):
    live_api.script(marker, [{"content": [{"type": "text", "text": "word " * 200}], "delay_s": 3.0}])
    text = []
    started = time.monotonic()
    with pytest.raises(ModelCancelled):
        call_model(_request(marker), callbacks=StreamCallbacks(on_text=text.append,
                                                               should_cancel=lambda: len(text) >= 1))
    assert len(text) == 1
    # Closed, not read to its end: the whole stream takes 3 s (a margin for a loaded machine).
    assert time.monotonic() - started < 3.0 * 0.8


def test_prices_cover_the_sdks_current_models_and_unknown_models_are_priced_as_sonnet():
    for model in ("claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5", "claude-opus-4-8", "claude-opus-4-6",
                  "claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5"):
        assert model in PRICES
    assert price_for("claude-unknown-9") == PRICES["claude-sonnet-5-5"]
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_creation_input_tokens=1_000_000,
                  cache_read_input_tokens=1_000_000)
    assert cost_usd("claude-haiku-5-5", usage) == pytest.approx(1 + 5 + 1.25 + 0.10)
    assert cost_usd("claude-opus-5-5", Usage(output_tokens=2_000)) == pytest.approx(0.05)


def test_the_fake_server_keeps_concurrent_scripts_apart(live_api):
    markers = [f"conc-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    for m in markers:
        live_api.script(m, [{"content": [{"type": "text", "text": f"answer for {m}"}], "delay_s": 0.5}])
    live_api.most_in_flight = 0
    results = {}

    def run(m):
        results[m] = call_model(_request(m)).content[0]["text"]

    threads = [threading.Thread(target=run, args=(m,)) for m in markers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {m: f"answer for {m}" for m in markers}
    assert live_api.most_in_flight > 1  # served in parallel (one at a time would be 1)


def test_the_fake_server_runs_as_a_process_for_benchmarks(monkeypatch, marker):
    import subprocess
    import sys

    from tests.processes import ROOT, free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.messages_api", "--port", str(port),
                                "--latency", "0.2"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
        with override_settings(ANTHROPIC_API_KEY=API_KEY):
            reset_client()
            started = time.monotonic()
            turn = call_model(_request(marker))
            assert time.monotonic() - started >= 0.2
            assert turn.content[0]["text"].startswith("[Simulated output") and not turn.simulated
    finally:
        reset_client()
        process.terminate()
        assert process.wait(10) == 0


def test_a_mid_stream_overload_on_both_models_reads_well(live_api, marker):
    live_api.script(marker, [{"content": [{"type": "text", "text": "Half an answer"}],
                              "mid_stream_error": "overloaded_error"}] * 2)
    with pytest.raises(ModelUnavailable) as caught:
        call_model(_request(marker))
    assert caught.value.message == (f"{DEFAULT_MODEL} is overloaded (HTTP 200, overloaded_error): Overloaded error; "
                                    f"the fallback {FALLBACK_MODEL} is overloaded (HTTP 200, overloaded_error): "
                                    "Overloaded error")


def test_a_connection_dropped_mid_stream_is_unavailable_without_fallback(live_api, marker):
    live_api.script(marker, [{"content": [{"type": "text", "text": "Half an answer " * 10}],
                              "mid_stream_disconnect": True}])
    with pytest.raises(ModelUnavailable, match="stream broke off"):
        call_model(_request(marker))
    assert len(live_api.requests(marker)) == 1
