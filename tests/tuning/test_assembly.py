"""The prompt assembler: tier order, byte stability, precedence, hot changes, specialization."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tuning.assembly import assemble_prompt, render_behaviour
from tuning.services import (
    client_example_add,
    client_rule_add,
    client_rule_remove,
    client_tuning_update,
    instance_tuning_update,
)

from .catalog import COPY, RFP


def _tier_texts(prompt, tier):
    return [s.text for s in prompt.sections if s.tier == tier]


def test_two_clients_share_tier_1_and_2_bytes_and_differ_in_tier_3(in_a, make_client):
    instance_tuning_update(actor=None, changes={"prompt_extension": "Cite the brief.", "brand_voice": "Crisp.",
                                                "behaviour_params": {"formality": 70}})
    first, second = make_client("First", vertical="beauty"), make_client("Second", vertical="beauty")
    client_tuning_update(actor=None, client=first, changes={"brand_voice": "Playful and bright."})
    client_tuning_update(actor=None, client=second, changes={"brand_voice": "Calm and clinical."})
    a, b = assemble_prompt(platform=COPY, client=first), assemble_prompt(platform=COPY, client=second)
    assert a.system[:2] == b.system[:2]
    assert json.dumps(a.tools).encode() == json.dumps(b.tools).encode()
    assert a.tier_bytes(1) == b.tier_bytes(1) and a.tier_bytes(2) == b.tier_bytes(2)
    assert a.tier_bytes(3) != b.tier_bytes(3)
    shared_prefix = json.dumps({"tools": a.tools, "system": a.system[:2]}, sort_keys=True)
    assert shared_prefix == json.dumps({"tools": b.tools, "system": b.system[:2]}, sort_keys=True)
    # Same configuration, same bytes, call after call.
    assert assemble_prompt(platform=COPY, client=first).prefix_bytes() == a.prefix_bytes()


def test_order_cache_breakpoints_and_sorted_tools(in_a, make_client):
    client = make_client("Acme", vertical="beauty", region="GCC", language="ar")
    instance_tuning_update(actor=None, changes={"prompt_extension": "Agency rules."})
    client_rule_add(actor=None, client=client, kind="never", text="Say cheap")
    prompt = assemble_prompt(platform=COPY, client=client, extra_tools=[
        {"name": "aa_skill", "description": "An instance skill.", "input_schema": {"type": "object"}}])
    assert [s.tier for s in prompt.sections] == sorted(s.tier for s in prompt.sections)
    assert [bool(block.get("cache_control")) for block in prompt.system] == [False, True, True]
    names = [tool["name"] for tool in prompt.tools]
    assert names == sorted(names) and names[0] == "aa_skill"
    assert [bool(tool.get("cache_control")) for tool in prompt.tools] == [False] * (len(names) - 1) + [True]
    assert prompt.prefix_bytes().startswith(b'{"system":') and b"Say cheap" in prompt.prefix_bytes()
    fields = [s.field for s in prompt.sections]
    assert {"knowledge.vertical.beauty", "knowledge.region.GCC", "knowledge.language.ar"} <= set(fields)


def test_per_agent_rows_override_field_by_field_and_lists_merge(in_a, make_client):
    instance_tuning_update(actor=None, changes={
        "effort": "low", "brand_voice": "Agency voice.", "disabled_tools": ["search_projects"],
        "require_approval_for": ["draft_*"], "content_filters": ["gambling"], "behaviour_params": {"verbosity": 10},
    })
    instance_tuning_update(actor=None, agent_type="copy", changes={
        "effort": "medium", "disabled_tools": ["publish_post"], "behaviour_params": {"creativity": 95},
    })
    instance_tuning_update(actor=None, changes={"terminology_avoid": ["cheap"]})
    copy = assemble_prompt(platform=COPY, client=None)
    assert [(r.kind, r.text, r.tier) for r in copy.rules] == [("avoid_term", "cheap", 2)]
    assert copy.effort == "medium" and copy.max_tokens == COPY.default_max_tokens
    assert copy.disabled_tools == ("publish_post", "search_projects")
    assert [t["name"] for t in copy.tools] == ["brand_check", "draft_document"]
    assert copy.require_approval == ("delete_*", "draft_*", "publish_*")
    assert copy.content_filters == ("gambling", "hate", "self_harm")
    behaviour = next(s.text for s in copy.sections if s.field == "behaviour_params")
    assert "verbosity 10/100" in behaviour and "creativity 95/100" in behaviour
    rfp = assemble_prompt(platform=RFP, client=None)  # the copy row does not reach rfp
    assert rfp.effort == "low" and "publish_post" not in rfp.disabled_tools
    client = make_client("Acme")
    client_tuning_update(actor=None, client=client, changes={"tone_keywords": ["warm"], "brand_voice": "Wide."})
    client_tuning_update(actor=None, client=client, agent_type="copy",
                         changes={"tone_keywords": ["bold"], "brand_voice": "Copy only.",
                                  "required_approvals": ["draft_document"]})
    for_copy = assemble_prompt(platform=COPY, client=client)
    assert "## Brand voice\nCopy only." in _tier_texts(for_copy, 3)
    assert "## Tone\nwarm, bold" in _tier_texts(for_copy, 3)
    assert "draft_document" in for_copy.require_approval
    assert "## Brand voice\nWide." in _tier_texts(assemble_prompt(platform=RFP, client=client), 3)


def test_platform_bound_tightened_later_still_wins(in_a):
    instance_tuning_update(actor=None, agent_type="copy", changes={"effort": "high", "max_tokens": 8000})
    tighter = COPY.__class__(**{**COPY.__dict__, "max_effort": "low", "max_tokens_limit": 4000})
    prompt = assemble_prompt(platform=tighter, client=None)
    assert (prompt.effort, prompt.max_tokens) == ("low", 4000)


def test_a_never_rule_is_in_the_next_prompt_and_gone_after_removal(in_a, make_client):
    client = make_client("Acme")
    assert b"Mention the competitor" not in assemble_prompt(platform=COPY, client=client).prefix_bytes()
    rule = client_rule_add(actor=None, client=client, kind="never", text="Mention the competitor")
    prompt = assemble_prompt(platform=COPY, client=client)
    assert "## Never\n- Mention the competitor" in _tier_texts(prompt, 3)
    assert [(r.kind, r.text) for r in prompt.rules] == [("never", "Mention the competitor")]
    client_rule_remove(actor=None, rule=rule)
    assert b"Mention the competitor" not in assemble_prompt(platform=COPY, client=client).prefix_bytes()


def test_rules_examples_and_competitors_render_in_a_stable_order(in_a, make_client):
    client = make_client("Acme")
    client_rule_add(actor=None, client=client, kind="prefer", text="Short words")
    client_rule_add(actor=None, client=client, kind="always", text="Sign off warmly")
    client_rule_add(actor=None, client=client, kind="never", text="Use slang", active=False)
    client_rule_add(actor=None, client=client, kind="always", text="Use the tagline", agent_type="rfp")
    client_example_add(actor=None, client=client, kind="caption", text="Glow, naturally.", context="spring launch")
    client_tuning_update(actor=None, client=client, changes={
        "competitor_rules": [{"competitor": "Rival", "instruction": "Never name them."}]})
    prompt = assemble_prompt(platform=COPY, client=client)
    fields = [s.field for s in prompt.sections if s.tier == 3]
    assert fields == ["client", "rules.always", "rules.prefer", "competitor_rules", "examples"]
    assert "Use slang" not in prompt.system_text() and "Use the tagline" not in prompt.system_text()
    assert "### caption (spring launch)\nGlow, naturally." in prompt.system_text()
    assert [r.as_dict()["kind"] for r in prompt.rules] == ["always", "prefer", "competitor"]
    assert prompt.rules[-1].competitor == "Rival"


def test_specialization_comes_from_the_run_then_the_client_then_the_instance(in_a, make_client):
    instance_tuning_update(actor=None, changes={"default_vertical": "finance", "default_region": "GCC",
                                                "vertical_knowledge": {"finance": "Our finance house style."}})
    # The language comes last from the instance itself (provisioned with "en").
    assert assemble_prompt(platform=COPY, client=None).specialization == {"vertical": "finance", "region": "GCC",
                                                                          "language": "en"}
    client = make_client("Acme", vertical="beauty", language="ar")
    prompt = assemble_prompt(platform=COPY, client=client)
    assert prompt.specialization == {"vertical": "beauty", "region": "GCC", "language": "ar"}
    run = assemble_prompt(platform=COPY, client=client, specialization={"vertical": "finance"})
    assert "knowledge.vertical.finance" in [s.field for s in run.sections]
    assert "vertical_knowledge.finance" in [s.field for s in run.sections]
    with pytest.raises(Exception, match="specialization: unknown key 'task'"):
        assemble_prompt(platform=COPY, client=client, specialization={"task": "write a post"})


def test_behaviour_is_rendered_as_concrete_instructions():
    text = render_behaviour({"verbosity": 5, "formality": 90}, {"warmth": 50})
    assert "Write very formally" in text and "Be extremely brief" in text
    assert "Warmth: show some warmth where it fits (50/100)." in text


def test_assembly_reads_a_constant_few_queries(in_a, make_client):
    client = make_client("Acme")
    for i in range(30):
        client_rule_add(actor=None, client=client, kind="never", text=f"Rule {i}")
        client_example_add(actor=None, client=client, kind="caption", text=f"Example {i}")
    def reads():
        with CaptureQueriesContext(connection) as queries:
            prompt = assemble_prompt(platform=COPY, client=client)
        return prompt, [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SET search_path")]

    first, cold = reads()
    assert len(cold) == 7  # the tuning version, tier 2 rows, memories, pinned excerpts, tier 3 rows, rules, examples
    second, warm = reads()
    assert len(warm) == 1 and "FROM tuning_tuningchange" in warm[0]
    assert second.prefix_bytes() == first.prefix_bytes() and second.system is not first.system
    second.tools.append({"name": "mutated"})
    assert reads()[0].tools == first.tools


def test_instances_never_share_tuning_or_cached_prompts(in_a, instance_b):
    from tuning.models import TuningChange

    instance_tuning_update(actor=None, changes={"brand_voice": "Voice of agency A"})
    version_a = TuningChange.objects.order_by("-id").values_list("id", flat=True).first()
    in_a_prompt = assemble_prompt(platform=COPY, client=None)
    assert b"agency A" in in_a_prompt.prefix_bytes()
    connection.set_tenant(instance_b)
    assert b"agency A" not in assemble_prompt(platform=COPY, client=None).prefix_bytes()
    # B's own sequence can reach the same newest-entry id as A's: the schema keeps them apart.
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('tuning_tuningchange', 'id'), %s, false)", [version_a])
    instance_tuning_update(actor=None, changes={"terminology_use": ["glow"]})
    assert TuningChange.objects.get(entity="instance_tuning").pk == version_a  # (B's admin was created, audited)
    prompt_b = assemble_prompt(platform=COPY, client=None)
    assert b"agency A" not in prompt_b.prefix_bytes() and b"glow" in prompt_b.prefix_bytes()
    connection.set_tenant(in_a)
