# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""A thread's context budget (issue #16 part 2): tool results of earlier turns are trimmed first,
then the oldest turns are summarised (by the model when a key is set, deterministically offline),
recorded as one `thread.compacted` event; the system prompt and tools stay byte-identical.

The pure functions are tested on conversations built as the loop builds them; the thread tests go
through the real loop, the real anthropic SDK and the local fake Messages API (scripted turns), and
read what the model was sent from the fake's recorded requests."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import override_settings

from agents import compaction
from agents.compaction import (
    SUMMARY_INSTRUCTION,
    SUMMARY_SYSTEM,
    Summary,
    compact_for_budget,
    conversation_chars,
    estimate_tokens,
    split_summary,
    split_turns,
    summariser,
    trim_old_tool_results,
)
from agents.loop import RunLoop, execute_run
from agents.models import AgentRun, RunEvent, RunStatus, ToolCall
from agents.registry import get_spec
from agents.services import new_claim_token, run_claim
from agents.threads import thread_create, thread_message_send

from ..skills.conftest import admin_a, client_a, scripted, text_turn, tool_turn  # noqa: F401

# --- conversations as the loop builds them --------------------------------------------------------


def person(text: str) -> dict:
    context = json.dumps({"date": "2026-12-02", "client": "Desert Bloom Cosmetics"})
    return {"role": "user", "content": [{"type": "text", "text": f"{text}\n\n<run_context>\n{context}\n</run_context>"}]}


def turn(n: int, *, result_chars: int = 0, answer_chars: int = 200) -> list[dict]:
    """A person's message, then (with a result) a tool call and its result, then the answer."""
    messages = [person(f"Request {n}: a caption for the glow serum.")]
    if result_chars:
        messages += [
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking the rules."},
                {"type": "tool_use", "id": f"toolu_{n}", "name": "check_brand_rules", "input": {"text": f"Draft {n}"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": f"toolu_{n}", "is_error": False, "content": "v" * result_chars}]}]
    messages.append({"role": "assistant", "content": [{"type": "text", "text": f"Answer {n}: " + "a" * answer_chars}]})
    return messages


def conversation(turns: int, *, new: str = "Next: make it shorter.", **sizes) -> list[dict]:
    return [*(m for n in range(1, turns + 1) for m in turn(n, **sizes)), person(new)]


def assert_valid(messages: list[dict]) -> None:
    """What the Messages API requires: a user message first, roles alternating, every tool_use
    answered by a tool_result in the next message and no tool_result without its tool_use."""
    assert messages[0]["role"] == "user"
    assert all(a["role"] != b["role"] for a, b in zip(messages, messages[1:], strict=False)), \
        [m["role"] for m in messages]
    for index, message in enumerate(messages):
        results = {b["tool_use_id"] for b in message["content"] if b.get("type") == "tool_result"}
        if results:
            before = messages[index - 1]["content"] if index else []
            assert results == {b["id"] for b in before if b.get("type") == "tool_use"}, "no orphan tool_result"
        uses = {b["id"] for b in message["content"] if b.get("type") == "tool_use"}
        if uses and index + 1 < len(messages):
            after = {b.get("tool_use_id") for b in messages[index + 1]["content"]}
            assert uses <= after, "every tool_use has its result"


def no_summary(*args):
    raise AssertionError("trimming was enough: nothing is summarised")


def fixed_summary(calls: list):
    def summarise(previous, turns, first_turn):
        calls.append((previous, turns, first_turn))
        return Summary(text=f"Summary of turns {first_turn}–{first_turn + len(turns) - 1}.", by="offline")
    return summarise


# --- the pure functions ------------------------------------------------------------------------


def test_a_conversation_within_the_budget_is_left_alone():
    messages = conversation(3, result_chars=1000)
    assert compact_for_budget(messages, budget_tokens=estimate_tokens(messages), summarise=no_summary) is None


def test_tool_results_of_earlier_turns_are_trimmed_first_and_that_is_enough():
    messages = conversation(3, result_chars=20_000)
    budget = 5_000  # tokens: 60,000 characters of results do not fit, the rest does
    assert estimate_tokens(messages) > budget

    result = compact_for_budget(messages, budget_tokens=budget, summarise=no_summary)

    assert result.turns_summarised == 0 and result.summary is None and result.tool_results_trimmed == 3
    assert estimate_tokens(result.messages) <= budget and result.chars_after < result.chars_before
    notes = [b["content"] for m in result.messages for b in m["content"] if b.get("type") == "tool_result"]
    assert notes == ["[result of check_brand_rules from an earlier turn trimmed: 20000 characters]"] * 3
    assert result.messages[-1] == messages[-1], "the newest message is whole"
    # everything but the results is as it was
    assert [m["role"] for m in result.messages] == [m["role"] for m in messages]
    assert all(a == b for a, b in zip(result.messages, messages, strict=True)
               if not any(x.get("type") == "tool_result" for x in a["content"]))
    assert_valid(result.messages)
    payload = result.payload()
    assert payload["summary_by"] == "" and payload["estimated_tokens_after"] == result.chars_after // 4


def test_a_result_in_the_newest_turn_is_never_trimmed():
    messages = conversation(1, result_chars=30_000)
    messages += [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_now", "name": "get_brand_guidelines", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_now", "content": "n" * 30_000}]}]
    trimmed, count = trim_old_tool_results(messages)
    assert count == 1 and trimmed[-1] == messages[-1] and trimmed[2]["content"][0]["content"].startswith("[result of")


def test_when_trimming_is_not_enough_the_oldest_turns_become_one_summary_first():
    messages = conversation(8, result_chars=5_000, answer_chars=6_000)  # the answers alone are over the budget
    budget = 9_000
    calls = []

    result = compact_for_budget(messages, budget_tokens=budget, summarise=fixed_summary(calls))

    assert len(calls) == 1, "the summariser is asked once"
    previous, summarised, first_turn = calls[0]
    assert previous == "" and first_turn == 1 and len(summarised) == result.turns_summarised
    assert 1 <= result.turns_summarised <= 7, "the previous turn and the new message stay"
    assert result.summary_covers_turns == result.turns_summarised and result.tool_results_trimmed == 8
    first = result.messages[0]
    assert first["role"] == "user"
    assert first["content"][0]["text"].startswith(f'<conversation_summary turns="{result.turns_summarised}">')
    assert f"Summary of turns 1–{result.turns_summarised}." in first["content"][0]["text"]
    # the summary goes first in the first kept person's message: the turns after it are whole (results trimmed)
    trimmed, _ = trim_old_tool_results(messages)
    kept = [m for t in split_turns(trimmed)[result.turns_summarised:] for m in t]
    assert [first["content"][1:], *result.messages[1:]] == [kept[0]["content"], *kept[1:]]
    assert result.messages[-1] == messages[-1] and split_turns(result.messages)[-2] == split_turns(trimmed)[-2]
    assert estimate_tokens(result.messages) <= budget
    assert_valid(result.messages)


def test_a_summary_already_there_is_folded_into_the_next_one():
    calls = []
    first = compact_for_budget(conversation(8, answer_chars=6_000), budget_tokens=9_000,
                               summarise=fixed_summary(calls))
    covered = first.summary_covers_turns
    # the thread goes on: this turn's answer, then more turns, then the next message
    grown = [*first.messages, {"role": "assistant", "content": [{"type": "text", "text": "Answer 9: " + "b" * 6_000}]}]
    for n in range(10, 14):
        grown += turn(n, answer_chars=6_000)
    grown.append(person("And one more."))

    second = compact_for_budget(grown, budget_tokens=9_000, summarise=fixed_summary(calls))

    previous, summarised, first_turn = calls[1]
    assert previous.endswith(f"Summary of turns 1–{covered}."), "the earlier summary is handed over"
    assert first_turn == covered + 1
    assert "conversation_summary" not in json.dumps(summarised), "and taken out of the turns summarised"
    assert second.summary_covers_turns == covered + second.turns_summarised
    text = json.dumps(second.messages)
    assert text.count("<conversation_summary") == 1 and f'turns=\\"{second.summary_covers_turns}\\"' in text
    assert split_summary(second.messages[0])[:2] == (
        f"Summary of turns {covered + 1}–{second.summary_covers_turns}.", second.summary_covers_turns)
    assert_valid(second.messages)


def test_with_only_the_previous_turn_left_the_result_is_best_effort():
    messages = conversation(1, result_chars=8_000, answer_chars=40_000)
    result = compact_for_budget(messages, budget_tokens=2_000, summarise=no_summary)
    assert result.tool_results_trimmed == 1 and result.turns_summarised == 0
    assert estimate_tokens(result.messages) > 2_000 and result.messages[-1] == messages[-1]


def test_the_offline_summary_is_deterministic_and_folds_the_earlier_one(settings):
    settings.ANTHROPIC_API_KEY = ""
    summarise = summariser(model="claude-sonnet-4-5", fallback_model="", metadata={}, should_cancel=lambda: False)
    turns = split_turns(conversation(3, result_chars=500)[:-1])
    once, again = summarise("", turns, 1), summarise("", turns, 1)
    assert once == again and once.by == "offline" and not once.usage and once.cost_usd == 0
    assert once.text.startswith("Turns 1–3 of this conversation")
    assert "- Turn 2: the person asked “Request 2: a caption for the glow serum.”" in once.text
    assert "Tools used: check_brand_rules" in once.text and "<run_context>" not in once.text
    folded = summarise(once.text, split_turns(conversation(5)[-5:-1]), 4)
    assert folded.text.startswith("Turns 1–5") and "- Turn 1:" in folded.text and "- Turn 5:" in folded.text
    many = summarise("", split_turns(conversation(40, answer_chars=2_000)[:-1]), 1)
    assert len(many.text) <= compaction.SUMMARY_MAX_CHARS and "- Turn 40:" in many.text
    assert "lines dropped to keep this summary short" in many.text


# --- a thread through the real loop and SDK ------------------------------------------------------

COPY = get_spec("copy")
BUDGET = 4_000  # tokens: about 16,000 characters of conversation when a turn starts


def big_check(n: int) -> tuple[str, str, dict]:
    """check_brand_rules on a long text full of a never word: its result (one violation per match)
    is cut at the loop's 20,000 characters."""
    return (f"toolu_{uuid.uuid4().hex[:12]}", "check_brand_rules",
            {"text": f"Draft {n}: " + "glow " * 200, "extra_never": ["glow"]})


def answer(n: int) -> str:
    return f"Caption {n}: radiance in every drop of the Ramadan serum. " + "Softly lit evenings, " * 30


def play_thread(user, client, api, *, turns: int, uid: str, summary_turns: list[dict]) -> list[AgentRun]:
    """A thread of `turns` turns, each checking a long draft before answering."""
    for n in range(1, turns + 1):
        api.script(f"[cmp-{uid}-t{n}]", [tool_turn(big_check(n)), text_turn(answer(n))])
    if summary_turns:  # asked only by a summary request: the turns' own markers are used up by then
        api.script(f"[cmp-{uid}", summary_turns)
    runs = []
    for n in range(1, turns + 1):
        message = f"Caption round {n} for the glow serum [cmp-{uid}-t{n}]"
        if n == 1:
            run = thread_create(actor=user, agent_type="copy", client_id=client.pk, message=message).turn.run
            thread_id = run.thread_id
        else:
            run = thread_message_send(actor=user, thread_id=thread_id, message=message).run
        assert execute_run(run_id=str(run.pk), worker="compaction-test") == RunStatus.SUCCEEDED
        run.refresh_from_db()
        runs.append(run)
    return runs


def compactions(run: AgentRun) -> list[dict]:
    return [e.payload for e in RunEvent.objects.filter(run=run, type="thread.compacted").order_by("seq")]


def turn_requests(api, uid: str, runs: list[AgentRun]) -> list[list[dict]]:
    """Each turn's requests to the model (the summary requests left out), in order."""
    bodies = [b for b in api.requests(f"[cmp-{uid}") if b.get("system") != [{"type": "text", "text": SUMMARY_SYSTEM}]]
    return [[b for b in bodies if f"[cmp-{uid}-t{n}]" in json.dumps(b["messages"][-3:])] for n in range(1, len(runs) + 1)]


@override_settings(THREAD_CONTEXT_BUDGET_TOKENS=BUDGET)
def test_a_long_thread_is_compacted_its_requests_bounded_and_its_prefix_stable(in_a, admin_a, client_a, scripted):
    uid = uuid.uuid4().hex[:8]
    summary = {**text_turn("The person asked for glow serum captions in rounds 1–6; each draft was checked "
                           "against the never word 'glow' and answered with a Ramadan caption."),
               "usage": {"input_tokens": 1234, "output_tokens": 56}}
    runs = play_thread(admin_a, client_a, scripted, turns=9, uid=uid, summary_turns=[summary] * 5)
    requests = turn_requests(scripted, uid, runs)
    assert [len(r) for r in requests] == [2] * 9, "two model calls per turn (the check, then the answer)"

    events = {run.thread_turn: compactions(run) for run in runs}
    assert all(len(found) <= 1 for found in events.values()), "at most one compaction per turn"
    trimmed = [t for t, found in events.items() if found and found[0]["summary_by"] == ""]
    summarised = [t for t, found in events.items() if found and found[0]["summary_by"] == "model"]
    assert trimmed and summarised and min(trimmed) < min(summarised), "tool results are trimmed before any summary"
    first = events[min(summarised)][0]
    assert first["turns_summarised"] >= 1 and first["summary"].startswith("The person asked for glow serum captions")
    assert first["estimated_tokens_before"] > BUDGET >= first["estimated_tokens_after"]
    assert first["chars_after"] < first["chars_before"]

    # the request size is bounded: every turn starts within the budget, and grows by its own work only
    for n, sent in enumerate(requests, start=1):
        assert conversation_chars(sent[0]["messages"]) // 4 <= BUDGET, n
        assert conversation_chars(sent[-1]["messages"]) <= BUDGET * 4 + 25_000, n
        # the newest turn's message reaches the model whole, as the thread saved it
        assert sent[0]["messages"][-1] == AgentRun.objects.get(pk=runs[n - 1].pk).messages[
            len(sent[0]["messages"]) - 1]
        assert f"Caption round {n} for the glow serum" in sent[0]["messages"][-1]["content"][0]["text"]
        assert_valid(sent[0]["messages"])
    results = sum(min(len(json.dumps(c.result)), 20_000) for c in ToolCall.objects.filter(run__in=runs))
    largest = max(conversation_chars(b["messages"]) for r in requests for b in r)
    assert results > 3 * largest, "uncompacted, the last turn would carry every result"
    late = requests[-1][0]["messages"]
    assert late[0]["content"][0]["text"].startswith("<conversation_summary turns=")

    # prompt_prefix_stable: system and tools byte-identical in every turn's every request
    prefixes = {json.dumps({"tools": b["tools"], "system": b["system"]}, sort_keys=True) for r in requests for b in r}
    prompt_prefix_stable = 1.0 if len(prefixes) == 1 else 0.0
    assert prompt_prefix_stable == 1.0

    # with a model configured, the model writes each summary: one request per summary, no tools, its usage on the run
    summary_requests = [b for b in scripted.requests(f"[cmp-{uid}")
                        if b.get("system") == [{"type": "text", "text": SUMMARY_SYSTEM}]]
    assert len(summary_requests) == len(summarised)
    assert all("tools" not in b and SUMMARY_INSTRUCTION in b["messages"][0]["content"][0]["text"]
               for b in summary_requests)
    for run in runs:
        found = compactions(run)
        finished = [e.payload["usage"] for e in RunEvent.objects.filter(run=run, type="turn.finished")]
        extra = found[0]["usage"]["input_tokens"] if found and found[0]["summary_by"] == "model" else 0
        assert run.input_tokens == sum(u["input_tokens"] for u in finished) + extra
        if extra:
            assert extra == 1234 and found[0]["cost_usd"] > 0 and found[0]["model"] == COPY.model


@override_settings(THREAD_CONTEXT_BUDGET_TOKENS=BUDGET)
def test_a_turn_resumed_after_its_worker_died_does_not_compact_or_summarise_again(in_a, admin_a, client_a, scripted):
    uid = uuid.uuid4().hex[:8]
    summary = {**text_turn("Earlier rounds: glow serum captions, each checked."), "usage": {"input_tokens": 900}}
    runs = play_thread(admin_a, client_a, scripted, turns=7, uid=uid, summary_turns=[summary] * 5)
    n = 8  # trimming the tool results no longer suffices: the oldest turns are summarised
    marker = f"[cmp-{uid}-t{n}]"
    scripted.script(marker, [tool_turn(big_check(n)), text_turn(answer(n))])
    before = len([b for b in scripted.requests(f"[cmp-{uid}") if b.get("system")[0]["text"] == SUMMARY_SYSTEM])
    run = thread_message_send(actor=admin_a, thread_id=runs[0].thread_id,
                              message=f"Caption round {n} for the glow serum {marker}").run
    assert estimate_tokens(run.messages) > BUDGET

    # A worker compacts the turn, writes it, and dies before its first model call.
    token = new_claim_token("dying:1")
    claimed = run_claim(run_id=run.pk, worker=token)
    RunLoop(claimed, COPY, token)._compact_thread(list(claimed.messages))
    AgentRun.objects.filter(pk=run.pk).update(lease_until="2000-01-01T00:00:00Z")
    compacted = AgentRun.objects.get(pk=run.pk).messages
    assert [p["summary_by"] for p in compactions(run)] == ["model"]
    summaries = len([b for b in scripted.requests(f"[cmp-{uid}") if b.get("system")[0]["text"] == SUMMARY_SYSTEM])
    assert summaries == before + 1

    assert execute_run(run_id=str(run.pk), worker="next:1") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert len(compactions(run)) == 1, "compacted once"
    after = len([b for b in scripted.requests(f"[cmp-{uid}") if b.get("system")[0]["text"] == SUMMARY_SYSTEM])
    assert after == summaries, "the model is not asked for the summary again"
    assert run.input_tokens == 900 + sum(
        e.payload["usage"]["input_tokens"] for e in RunEvent.objects.filter(run=run, type="turn.finished"))
    assert scripted.requests(marker)[0]["messages"] == compacted
    types = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    assert types[:3] == ["run.queued", "run.started", "thread.compacted"] and "run.resumed" in types


@override_settings(THREAD_CONTEXT_BUDGET_TOKENS=700)  # offline turns are small: about 700 characters each
def test_offline_the_summary_is_the_offline_models_and_costs_nothing(in_a, admin_a, client_a, settings):
    settings.ANTHROPIC_API_KEY = ""
    created = thread_create(actor=admin_a, agent_type="copy", client_id=client_a.pk,
                            message="Write an Instagram caption for the Ramadan glow collection.")
    execute_run(run_id=str(created.turn.run.pk), worker="offline-test")
    asks = ["Make it warmer.", "Now a version for Stories.", "Add a call to action.", "Another angle, please.",
            "One for the newsletter.", "And a tweet."]
    runs = []
    for ask in asks:
        run = thread_message_send(actor=admin_a, thread_id=created.thread.pk, message=ask).run
        assert execute_run(run_id=str(run.pk), worker="offline-test") == RunStatus.SUCCEEDED
        run.refresh_from_db()
        runs.append(run)
    found = [(run, p) for run in runs for p in compactions(run) if p["summary_by"]]
    assert found, "a summary was needed"
    run, payload = found[0]
    assert payload["summary_by"] == "offline" and "usage" not in payload
    assert payload["summary"].startswith("Turns 1–") and "Write an Instagram caption" in payload["summary"]
    finished = [e.payload["usage"]["input_tokens"] for e in RunEvent.objects.filter(run=run, type="turn.finished")]
    assert run.input_tokens == sum(finished), "no model call for the summary"
    assert run.messages[0]["content"][0]["text"].startswith("<conversation_summary")
    # the offline model still answers the follow-up from the conversation, counting summarised turns
    assert "previous answer" in runs[-1].output
    assert f"Follow-up (turn {runs[-1].thread_turn})" in runs[-1].output
    assert_valid(runs[-1].messages)


# --- the live run page ----------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.live
def test_the_run_page_says_earlier_turns_were_summarised(live_instance, daphne_server, page, settings, runs_stay_here):
    """A thread turn that started from a compacted conversation says so on its page, above the answer."""
    from ..browser.support import SCREENSHOTS, in_thread, log_in
    from ..conftest import host_of

    settings.ANTHROPIC_API_KEY = ""
    settings.THREAD_CONTEXT_BUDGET_TOKENS = 700
    instance, admin = live_instance.instance, live_instance.admin

    def play() -> AgentRun:
        user = type(admin).objects.get(email=admin.email)
        created = thread_create(actor=user, agent_type="copy",
                                message="Write an Instagram caption for the Ramadan glow collection.")
        execute_run(run_id=str(created.turn.run.pk), worker="browser-test")
        for ask in ("Make it warmer.", "Now a version for Stories.", "Add a call to action.", "And a tweet."):
            run = thread_message_send(actor=user, thread_id=created.thread.pk, message=ask).run
            execute_run(run_id=str(run.pk), worker="browser-test")
        return AgentRun.objects.filter(thread=created.thread, events__type="thread.compacted",
                                       events__payload__summary_by="offline").order_by("-thread_turn").first()

    run = in_thread(instance.schema_name, play)
    assert run is not None, "a turn was compacted into a summary"
    payload = in_thread(instance.schema_name, lambda: compactions(run)[0])
    base = f"http://{host_of(instance)}:{daphne_server}"
    log_in(page, base, admin.email, f"/admin/agents/agentrun/{run.pk}/change/")
    page.wait_for_selector(".run-status[data-status=succeeded]", timeout=20_000)
    note = page.inner_text(".thread-compacted")
    covers = payload["summary_covers_turns"]
    assert note == (f"Earlier turns summarised ({covers} turn{'s' if covers != 1 else ''}, {payload['chars_before']} → "
                    f"{payload['chars_after']} characters, offline summary).")
    assert "thread.compacted" in page.inner_text("#run-log")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "thread-compacted.png"), full_page=True)
