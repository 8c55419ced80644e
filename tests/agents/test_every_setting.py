# ruff: noqa: F811 - the scripted model fixture is imported by name
"""Every setting does what it says (issue #14): for each field of the instance and client tuning
models, changing it changes what the next run sends to the model or does — the request at the SDK
transport (the real anthropic SDK against the local fake Messages API), a tool result, the run's
outcome or its recorded check.

The probes are keyed by the models' field lists (`tuning.precedence.INSTANCE_FIELDS`,
`CLIENT_FIELDS`): a new setting without a probe here fails `test_every_setting_has_a_probe`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from agents.loop import execute_run
from agents.models import AgentRun
from agents.services import run_create
from spokestack.errors import InvalidInput
from tuning.precedence import CLIENT_FIELDS, INSTANCE_FIELDS
from tuning.services import client_create, client_tuning_update, instance_tuning_update

from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401 - the scripted model, by fixture name


@dataclass
class Sent:
    """What one run sent and did: its model requests (bodies as received) and the run row."""

    requests: list[dict]
    run: AgentRun | None
    refused: str = ""

    @property
    def first(self) -> dict:
        return self.requests[0]

    def system(self) -> str:
        return "\n".join(block["text"] for block in self.first["system"])

    def prefix(self) -> str:
        """Everything of the first request but the per-run messages."""
        return json.dumps({k: v for k, v in self.first.items() if k != "messages"}, sort_keys=True)

    def tool_results(self) -> str:
        """Every tool result the model was sent, as text."""
        return json.dumps([block for request in self.requests for message in request["messages"]
                           if message["role"] == "user" and isinstance(message["content"], list)
                           for block in message["content"] if block.get("type") == "tool_result"])


@dataclass
class Probe:
    changes: dict[str, Any]
    see: Callable[[Sent, Sent], None]  # (before, after) -> assert the change is visible
    turns: Callable[[], list[dict]] = field(default=lambda: [text_turn("Glow, gently.")])
    client: dict[str, Any] = field(default_factory=lambda: {"vertical": "beauty", "region": "GCC", "language": "en"})
    agent_type: str = "copy"


def shows(text: str) -> Callable[[Sent, Sent], None]:
    """The new text is in the system prompt now and was not before."""
    def see(before: Sent, after: Sent) -> None:
        assert text not in before.system() and text in after.system()
    return see


def request_field(name: str, value: Any) -> Callable[[Sent, Sent], None]:
    def see(before: Sent, after: Sent) -> None:
        assert before.first.get(name) != value and after.first.get(name) == value
    return see


def tools_lack(name: str) -> Callable[[Sent, Sent], None]:
    def see(before: Sent, after: Sent) -> None:
        assert name in [t["name"] for t in before.first["tools"]]
        assert name not in [t["name"] for t in after.first["tools"]]
    return see


def refused_with(words: str) -> Callable[[Sent, Sent], None]:
    def see(before: Sent, after: Sent) -> None:
        assert not before.refused and words in after.refused
    return see


def waits_for_approval(before: Sent, after: Sent) -> None:
    assert before.run.status == "succeeded" and after.run.status == "awaiting_approval"


def flags(phrase: str) -> Callable[[Sent, Sent], None]:
    """The same output passed the check before and is held for review now, naming the phrase."""
    def see(before: Sent, after: Sent) -> None:
        assert before.run.status == after.run.status == "succeeded"
        assert before.run.review_status == "" and after.run.review_status == "pending"
        assert phrase in json.dumps(after.run.checks["violations"]).lower()
    return see


def saying(text: str) -> Callable[[], list[dict]]:
    return lambda: [text_turn(text)]


def reviews_everything(before: Sent, after: Sent) -> None:
    assert before.run.review_status == "" and after.run.review_status == "pending"
    assert not after.run.checks.get("violations")


def revises_once(before: Sent, after: Sent) -> None:
    assert len(before.requests) == 1 and before.run.review_status == "pending"  # flag: held as it was
    assert len(after.requests) == 2 and after.run.checks["revised"] is True  # revise: asked once more
    assert after.run.output == "Glow, gently." and after.run.review_status == ""


def tool_result_changes(before: Sent, after: Sent) -> None:
    assert before.tool_results() != after.tool_results()
    assert len(json.loads(before.tool_results())) == len(json.loads(after.tool_results())) == 1


RFP = "# RFP\n" + "\n".join(f"The agency must deliver item {n} on time." for n in range(1, 9))


def save_draft_turns() -> list[dict]:
    return [tool_turn((f"toolu_{uuid.uuid4().hex[:10]}", "save_draft", {"content": "Glow, gently."})),
            text_turn("Saved.")]


INSTANCE_PROBES: dict[str, Probe] = {
    "enabled": Probe({"enabled": False}, refused_with("disabled for this instance")),
    "prompt_extension": Probe({"prompt_extension": "Cite two sources for every claim."},
                              shows("Cite two sources for every claim.")),
    "instruction_overrides": Probe({"instruction_overrides": {"sign_off": "End with the agency's name."}},
                                   shows("End with the agency's name.")),
    "default_vertical": Probe({"default_vertical": "finance"}, lambda b, a: (
        b.system() != a.system() and "finance" in a.system().lower()) or pytest.fail("no finance knowledge"),
        client={"vertical": "other"}),
    "default_region": Probe({"default_region": "GCC"}, lambda b, a: (
        b.system() != a.system()) or pytest.fail("the region added nothing"), client={"vertical": "beauty"}),
    "default_language": Probe({"default_language": "ar"}, lambda b, a: (
        b.system() != a.system()) or pytest.fail("the language added nothing"), client={"vertical": "beauty"}),
    "vertical_knowledge": Probe({"vertical_knowledge": {"beauty": "Our beauty clients launch every Thursday."}},
                                shows("Our beauty clients launch every Thursday.")),
    "disabled_tools": Probe({"disabled_tools": ["get_approved_examples"]}, tools_lack("get_approved_examples")),
    "behaviour_params": Probe({"behaviour_params": {"verbosity": 5}}, shows("verbosity 5/100")),
    "traits": Probe({"traits": {"warmth": 95}}, shows("(95/100)")),
    "output_preferences": Probe({"output_preferences": {"headings": "sentence case only"}},
                                shows("sentence case only")),
    "brand_voice": Probe({"brand_voice": "Quietly confident, never loud."}, shows("Quietly confident, never loud.")),
    "terminology_use": Probe({"terminology_use": ["skin ritual"]}, shows("skin ritual")),
    "terminology_avoid": Probe({"terminology_avoid": ["anti-ageing"]}, flags("anti-ageing"),
                               turns=saying("An anti-ageing glow, gently.")),
    "require_approval_for": Probe({"require_approval_for": ["save_draft"]}, waits_for_approval,
                                  turns=save_draft_turns),
    "effort": Probe({"effort": "low"}, lambda b, a: (
        "output_config" not in b.first and a.first["output_config"] == {"effort": "low"})
        or pytest.fail(f"{b.first.get('output_config')} / {a.first.get('output_config')}")),
    "max_tokens": Probe({"max_tokens": 321}, request_field("max_tokens", 321)),
    "content_filters": Probe({"content_filters": ["fast fashion"]}, flags("fast fashion"),
                             turns=saying("Your fast fashion glow, gently.")),
    "tool_config_overrides": Probe(
        {"tool_config_overrides": {"analyze_rfp": {"max_items": 5}}}, tool_result_changes, agent_type="rfp",
        turns=lambda: [tool_turn((f"toolu_{uuid.uuid4().hex[:10]}", "analyze_rfp", {"rfp_text": RFP})),
                       text_turn("Analysed.")]),
    "audit_all_outputs": Probe({"audit_all_outputs": True}, reviews_everything),
    "on_rule_violation": Probe({"on_rule_violation": "revise"}, revises_once, turns=lambda: [
        text_turn("Guaranteed results in a week."), text_turn("Glow, gently.")]),
}
CLIENT_PROBES: dict[str, Probe] = {
    "brand_voice": Probe({"brand_voice": "Like a trusted friend who knows skin."},
                         shows("Like a trusted friend who knows skin.")),
    "tone_keywords": Probe({"tone_keywords": ["luminous", "unhurried"]}, shows("luminous, unhurried")),
    "competitor_rules": Probe({"competitor_rules": [{"competitor": "Sahara Glow", "instruction": "Never name them."}]},
                              flags("sahara glow"), turns=saying("Softer than Sahara Glow, gently.")),
    "format_preferences": Probe({"format_preferences": {"structure": "one line, then three bullets"}},
                                shows("one line, then three bullets")),
    "length_preferences": Probe({"length_preferences": {"caption": "under 90 characters"}},
                                shows("under 90 characters")),
    "required_approvals": Probe({"required_approvals": ["save_draft"]}, waits_for_approval, turns=save_draft_turns),
    "learned_preferences": Probe({"learned_preferences": {"emoji": "one at most, at the end"}},
                                 shows("one at most, at the end")),
    "feedback_summary": Probe({"feedback_summary": "The client loves short, sensory captions."},
                              shows("The client loves short, sensory captions.")),
}


def test_every_setting_has_a_probe():
    assert set(INSTANCE_PROBES) == set(INSTANCE_FIELDS), "a tier-2 setting without a probe (or a stale probe)"
    assert set(CLIENT_PROBES) == set(CLIENT_FIELDS), "a tier-3 setting without a probe (or a stale probe)"


def _run(model, client, turns: list[dict], agent_type: str) -> Sent:
    marker = f"[setting-{uuid.uuid4().hex[:8]}]"
    model.script(marker, turns)
    try:
        run = run_create(actor=None, agent_type=agent_type, task=f"Write a caption {marker}", client_id=client.pk,
                         sandbox=True).run
    except InvalidInput as exc:
        return Sent([], None, refused=exc.message)
    execute_run(run_id=str(run.pk), worker="settings-test")
    run.refresh_from_db()
    return Sent(model.requests(marker), run)


def _observe(model, probe: Probe, apply: Callable[[Any], None]) -> tuple[Sent, Sent]:
    client = client_create(name=f"Client {uuid.uuid4().hex[:6]}", **probe.client)
    before = _run(model, client, probe.turns(), probe.agent_type)
    apply(client)
    after = _run(model, client, probe.turns(), probe.agent_type)
    return before, after


@pytest.mark.parametrize("name", sorted(INSTANCE_PROBES))
def test_an_instance_setting_changes_the_next_run(in_a, scripted, name):
    probe = INSTANCE_PROBES[name]
    before, after = _observe(scripted, probe, lambda client: instance_tuning_update(
        actor=None, changes=probe.changes, reason="settings probe"))
    probe.see(before, after)


@pytest.mark.parametrize("name", sorted(CLIENT_PROBES))
def test_a_client_setting_changes_the_next_run(in_a, scripted, name):
    probe = CLIENT_PROBES[name]
    before, after = _observe(scripted, probe, lambda client: client_tuning_update(
        actor=None, client=client, changes=probe.changes, reason="settings probe"))
    probe.see(before, after)
