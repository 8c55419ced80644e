"""Agency-built agents (issue #18): a definition from the tool library, the lifecycle (draft, publish,
runs keep their version, rollback, archive), the platform frame around the instructions, and an agent
like any other for runs; isolation between instances; the contract's checks."""

from __future__ import annotations

import pytest
from django.db import connection

from agents.loop import execute_run
from agents.models import RunStatus, ToolCall
from agents.registry import agent_types, get_spec
from agents.services import run_create
from agents.studio.definition import BOUNDS
from agents.studio.models import AgentStatus
from agents.studio.services import (
    agent_archive,
    agent_create,
    agent_draft_update,
    agent_export,
    agent_import,
    agent_publish,
    agent_rollback,
    agent_test_version,
)
from spokestack.errors import Conflict, InvalidInput, NotAllowed, NotFound
from tuning.assembly import assemble_prompt, platform_tier_for
from tuning.models import TuningChange
from tuning.services import client_rule_add

from ...skills.conftest import text_turn, tool_turn

CAPTION = {
    "title": "Social caption agent",
    "purpose": "Short on-brand captions for Instagram and LinkedIn.",
    "instructions": "Write three caption options, each under 150 characters, then pick the best one.",
    "persona": {"voice": "Warm and witty", "traits": {"creativity": 70, "formality": 30}},
    "tools": ["copy.get_brand_guidelines", "copy.check_brand_rules", "core.search_knowledge"],
    "limits": {"max_iterations": 8, "max_tokens": 1024},
    "require_approval": ["save_*"],
    "starters": ["Three captions for the Ramadan launch"],
}


@pytest.fixture
def caption(admin_a):
    agent = agent_create(actor=admin_a, slug="social_caption", definition=CAPTION, reason="new agent")
    agent_publish(actor=admin_a, slug="social_caption", change_note="First version")
    return agent


def test_a_published_agent_is_an_agent_type_with_the_library_tools_inside_the_platform_frame(caption):
    assert "social_caption" in agent_types()
    spec = get_spec("social_caption")
    assert spec.version == "1.0.0" and spec.owner == connection.schema_name
    assert [t.name for t in spec.tools] == ["get_brand_guidelines", "check_brand_rules", "search_knowledge"]
    assert spec.max_iterations == 8 and spec.max_tokens == 1024
    assert spec.confirmation_patterns == ("delete_*", "publish_*", "save_*")  # the platform's always apply
    prompt = spec.base_prompt
    assert prompt.startswith("You are Social caption agent") and "## Ground rules" in prompt
    assert "## Instructions from the agency\nWrite three caption options" in prompt
    assert "Traits (0–100): creativity 70, formality 30" in prompt
    # tier 1 for the assembler, byte-stable: twice the same prefix
    first = assemble_prompt(platform=platform_tier_for("social_caption"), client=None).system_text()
    assert first == assemble_prompt(platform=platform_tier_for("social_caption"), client=None).system_text()


def test_runs_keep_their_version_new_runs_take_the_next_and_a_rollback_publishes_the_old_one_again(
        caption, admin_a, client_a, scripted):
    client_rule_add(actor=None, client=client_a, kind="never", text="cheap", reason="brand")
    marker = "[studio-v1]"
    scripted.script(marker, [tool_turn(("t1", "check_brand_rules", {"text": "A cheap glow"})), text_turn("Glow.")])
    v1_run = run_create(actor=admin_a, agent_type="social_caption", task=f"Captions {marker}",
                        client_id=client_a.pk).run
    assert v1_run.agent_version == "1.0.0"
    agent_draft_update(actor=admin_a, slug="social_caption",
                       definition={**CAPTION, "instructions": "Write five caption options."})
    assert get_spec("social_caption").version == "1.0.0", "a draft changes nothing until it is published"
    agent_publish(actor=admin_a, slug="social_caption", change_note="Five options")
    assert execute_run(run_id=str(v1_run.pk), worker="test") == RunStatus.SUCCEEDED
    v1_run.refresh_from_db()
    assert v1_run.agent_version == "1.0.0"
    request = scripted.requests(marker)[0]
    system = "".join(block["text"] for block in request["system"])
    assert "Write three caption options" in system and "Write five" not in system
    assert "cheap" in system  # the client's rule, tier 3, in force
    check = ToolCall.objects.get(run=v1_run, name="check_brand_rules")
    assert check.result["passed"] is False  # the client's never rule applies to this agent's tool
    v2_run = run_create(actor=admin_a, agent_type="social_caption", task="Captions", client_id=client_a.pk).run
    assert v2_run.agent_version == "2.0.0"
    rolled = agent_rollback(actor=admin_a, slug="social_caption", number=1, reason="v2 too long")
    assert rolled.number == 3 and rolled.definition["instructions"] == CAPTION["instructions"]
    assert "Rollback to v1" in rolled.change_note
    assert run_create(actor=admin_a, agent_type="social_caption", task="x", client_id=client_a.pk) \
        .run.agent_version == "3.0.0"
    entries = TuningChange.objects.filter(entity="agent_definition", entity_id="social_caption")
    assert [e.field for e in entries.order_by("id")] == ["draft", "version", "draft", "version", "version"]


def test_archive_hides_it_from_new_runs_and_an_unknown_type_is_one_404(caption, admin_a):
    agent_archive(actor=admin_a, slug="social_caption", reason="season over")
    assert "social_caption" not in agent_types()
    assert get_spec("social_caption", "1.0.0") is not None, "runs and threads on it still finish"
    with pytest.raises(NotFound, match="social_caption"):
        run_create(actor=admin_a, agent_type="social_caption", task="x")
    with pytest.raises(NotFound, match="nonexistent"):
        run_create(actor=admin_a, agent_type="nonexistent", task="x")


def test_a_draft_is_tried_in_a_sandbox_run_before_it_is_published(admin_a, client_a):
    agent_create(actor=admin_a, slug="pitch", definition={**CAPTION, "title": "PR pitch agent"})
    assert "pitch" not in agent_types() and get_spec("pitch") is None
    test = agent_test_version(actor=admin_a, slug="pitch")
    assert agent_test_version(actor=admin_a, slug="pitch").pk == test.pk, "unchanged draft: the same test version"
    run = run_create(actor=admin_a, agent_type="pitch", task="A pitch", client_id=client_a.pk, sandbox=True,
                     agent_version=test.semver).run
    assert run.sandbox and run.agent_version.endswith("-test")
    assert execute_run(run_id=str(run.pk), worker="test") == RunStatus.SUCCEEDED


def test_the_contract_is_checked_field_by_field(admin_a):
    with pytest.raises(InvalidInput) as bad:
        agent_create(actor=admin_a, slug="bad", definition={
            "title": "", "purpose": "x", "instructions": "y", "tools": ["copy.no_such_tool", "erp.drop_tables"],
            "persona": {"traits": {"creativity": 140}}, "limits": {"max_iterations": 99}})
    details = bad.value.details
    assert set(details) >= {"title", "tools[0]", "tools[1]", "persona.traits.creativity", "limits.max_iterations"}
    assert "not in the tool library" in details["tools[0]"][0]
    assert str(BOUNDS["max_iterations"][1]) in details["limits.max_iterations"][0]
    with pytest.raises(InvalidInput, match="core agent"):
        agent_create(actor=admin_a, slug="copy", definition=CAPTION)
    with pytest.raises(InvalidInput, match="slug"):
        agent_create(actor=admin_a, slug="Copy Agent!", definition=CAPTION)


def test_only_instance_admins_build(make_user, in_a):
    manager = make_user("instance_manager")
    with pytest.raises(NotAllowed):
        agent_create(actor=manager, slug="pitch", definition=CAPTION)


def test_publishing_twice_needs_a_change_and_a_note(caption, admin_a):
    with pytest.raises(Conflict, match="Nothing changed since v1"):
        agent_publish(actor=admin_a, slug="social_caption", change_note="again")
    with pytest.raises(InvalidInput, match="change_note"):
        agent_publish(actor=admin_a, slug="social_caption", change_note=" ")


def test_an_exported_contract_imports_into_another_instance_as_the_same_agent(caption, admin_a, instance_b,
                                                                             make_user):
    contract = agent_export(actor=admin_a, slug="social_caption")
    original = get_spec("social_caption")
    connection.set_tenant(instance_b)
    assert "social_caption" not in agent_types() and get_spec("social_caption") is None  # isolation
    admin_b = make_user("instance_admin")
    imported = agent_import(actor=admin_b, contract=contract, reason="shared by Alpha")
    assert imported.status == AgentStatus.PUBLISHED
    copy = get_spec("social_caption")
    assert copy is not original and copy.owner == instance_b.schema_name
    assert (copy.base_prompt, [t.name for t in copy.tools], copy.max_iterations) == (
        original.base_prompt, [t.name for t in original.tools], original.max_iterations)
    with pytest.raises(Conflict):
        agent_import(actor=admin_b, contract=contract)
    with pytest.raises(InvalidInput, match="contract"):
        agent_import(actor=admin_b, contract={**contract, "contract": "other/v9"})
    with pytest.raises(InvalidInput, match=r"tools\[0\]"):
        agent_import(actor=admin_b, contract={**contract, "slug": "other", "tools": ["copy.nope"]})
    connection.set_schema_to_public()


def test_the_audit_log_rolls_back_a_publish(caption, admin_a):
    from tuning.services import tuning_rollback

    agent_draft_update(actor=admin_a, slug="social_caption", definition={**CAPTION, "title": "Caption agent v2"})
    agent_publish(actor=admin_a, slug="social_caption", change_note="Renamed")
    entry = TuningChange.objects.filter(entity="agent_definition", field="version").order_by("-id").first()
    tuning_rollback(actor=admin_a, change=entry, reason="keep the old name")
    assert get_spec("social_caption").title == "Social caption agent"
    assert get_spec("social_caption").version == "3.0.0"


def test_knowledge_scopes_limit_what_its_search_reads(admin_a, client_a, scripted, settings, tmp_path):
    from tuning.knowledge.services import document_ingest, document_upload

    from ...knowledge.conftest import upload

    settings.MEDIA_ROOT = str(tmp_path)
    for kind, text in (("brand_guidelines", "# Voice\n\nThe glow voice is warm.\n"),
                       ("style_guide", "# Voice\n\nThe glow style: British spelling.\n")):
        document = document_upload(actor=None, client=client_a, title=kind, kind=kind, language="en",
                                   uploaded_file=upload(f"{kind}.md", text.encode()))
        assert document_ingest(document_id=document.pk, revision=document.revision) == "ready"
    agent_create(actor=admin_a, slug="style_checker", definition={**CAPTION, "knowledge_kinds": ["style_guide"]})
    agent_publish(actor=admin_a, slug="style_checker", change_note="v1")
    search = get_spec("style_checker").tool("search_knowledge")
    assert search.input_schema["properties"]["kinds"]["items"]["enum"] == ["style_guide"]
    marker = "[scoped-search]"
    # one call a turn: parallel calls run on other connections, which do not see this test's transaction
    scripted.script(marker, [tool_turn(("s1", "search_knowledge", {"query": "glow voice"})),
                             tool_turn(("s2", "search_knowledge", {"query": "glow", "kinds": ["brand_guidelines"]})),
                             text_turn("Done.")])
    run = run_create(actor=admin_a, agent_type="style_checker", task=f"Check {marker}", client_id=client_a.pk).run
    assert execute_run(run_id=str(run.pk), worker="test") == RunStatus.SUCCEEDED
    found = ToolCall.objects.get(run=run, tool_use_id="s1")
    assert {p["kind"] for p in found.result["passages"]} == {"style_guide"}, found.result
    refused = ToolCall.objects.get(run=run, tool_use_id="s2")
    assert refused.is_error and "'brand_guidelines' is not one of ['style_guide']" in str(refused.result)


def test_a_tool_limited_to_some_roles_is_not_offered_to_anyone_else(admin_a, client_a, scripted, assigned):
    definition = {**CAPTION, "tool_roles": {"copy.check_brand_rules": ["instance_admin", "instance_manager"]}}
    agent_create(actor=admin_a, slug="guarded", definition=definition)
    agent_publish(actor=admin_a, slug="guarded", change_note="v1")
    manager = assigned("account_manager", client_a)
    for actor, offered in ((admin_a, True), (manager, False)):
        marker = f"[guarded-{actor.pk}]"
        scripted.script(marker, [tool_turn(("g1", "check_brand_rules", {"text": "x"})), text_turn("Done.")])
        run = run_create(actor=actor, agent_type="guarded", task=f"Check {marker}", client_id=client_a.pk).run
        assert execute_run(run_id=str(run.pk), worker="test") == RunStatus.SUCCEEDED
        names = [t["name"] for t in scripted.requests(marker)[0]["tools"]]
        assert ("check_brand_rules" in names) is offered
        call = ToolCall.objects.get(run=run, tool_use_id="g1")
        assert call.is_error is not offered  # named anyway by the model: refused as unknown, never run
    with pytest.raises(InvalidInput, match="tool_roles"):
        agent_draft_update(actor=admin_a, slug="guarded",
                           definition={**CAPTION, "tool_roles": {"copy.check_brand_rules": ["ceo"]}})


def test_a_read_only_tools_answer_is_reused_within_a_run(admin_a, client_a, scripted):
    agent_create(actor=admin_a, slug="cached", definition={**CAPTION, "cache_results": ["copy.check_brand_rules"]})
    agent_publish(actor=admin_a, slug="cached", change_note="v1")
    assert get_spec("cached").cached_tools == frozenset({"check_brand_rules"})
    marker = "[cached-run]"
    same = {"text": "A calm glow"}
    scripted.script(marker, [tool_turn(("c1", "check_brand_rules", same)), tool_turn(("c2", "check_brand_rules", same)),
                             text_turn("Done.")])
    run = run_create(actor=admin_a, agent_type="cached", task=f"Check {marker}", client_id=client_a.pk).run
    assert execute_run(run_id=str(run.pk), worker="test") == RunStatus.SUCCEEDED
    first, second = (ToolCall.objects.get(run=run, tool_use_id=i) for i in ("c1", "c2"))
    assert first.result == second.result and not second.is_error
    finished = {e.payload["tool_use_id"]: e.payload for e in run.events.filter(type="tool.finished")}
    assert "cached" not in finished["c1"] and finished["c2"]["cached"] is True  # the second was not run
    with pytest.raises(InvalidInput, match=r"cache_results\[0\].*writes outside"):
        agent_draft_update(actor=admin_a, slug="cached", definition={
            **CAPTION, "tools": [*CAPTION["tools"], "copy.save_draft"], "cache_results": ["copy.save_draft"]})


def test_its_approval_patterns_pause_a_run_and_tier_2_tuning_per_agent_applies(admin_a, client_a, scripted):
    from agents.models import ApprovalRequest
    from tuning.services import instance_tuning_update

    agent_create(actor=admin_a, slug="careful", definition={**CAPTION, "require_approval": ["check_*"]})
    agent_publish(actor=admin_a, slug="careful", change_note="v1")
    # tier 2 for this agent type, like any agent's: its own row, its own bounds
    instance_tuning_update(actor=admin_a, agent_type="careful", changes={"max_tokens": 512}, reason="short answers")
    marker = "[careful-run]"
    scripted.script(marker, [tool_turn(("a1", "check_brand_rules", {"text": "A calm glow"})), text_turn("Done.")])
    run = run_create(actor=admin_a, agent_type="careful", task=f"Check {marker}", client_id=client_a.pk).run
    assert execute_run(run_id=str(run.pk), worker="test") == RunStatus.AWAITING_APPROVAL
    assert ApprovalRequest.objects.get(run=run).tool_name == "check_brand_rules"
    assert scripted.requests(marker)[0]["max_tokens"] == 512


def test_a_skill_from_the_library_is_offered_to_the_agent_that_was_given_it(admin_a, client_a, scripted):
    from skills.services import skill_create

    schema = {"type": "object", "properties": {"brand": {"type": "string"}}, "required": ["brand"]}
    skill_create(actor=admin_a, name="brand_lookup", description="Look up a brand in the agency CRM.",
                 input_schema=schema, agent_types=["rfp"], execution_type="webhook",
                 webhook_url="https://hooks.example.com/brand")
    agent_create(actor=admin_a, slug="crm_captions",
                 definition={**CAPTION, "tools": [*CAPTION["tools"], "skill.brand_lookup"]})
    agent_publish(actor=admin_a, slug="crm_captions", change_note="v1")
    assert get_spec("crm_captions").skills == ("brand_lookup",)
    marker = "[skill-offered]"
    scripted.script(marker, [text_turn("Done.")])
    run = run_create(actor=admin_a, agent_type="crm_captions", task=f"Captions {marker}", client_id=client_a.pk).run
    assert execute_run(run_id=str(run.pk), worker="test") == RunStatus.SUCCEEDED
    assert "brand_lookup" in [t["name"] for t in scripted.requests(marker)[0]["tools"]]
    # … and not to the copy agent, whose type the skill was not offered to
    plain = "[skill-not-offered]"
    scripted.script(plain, [text_turn("Done.")])
    run = run_create(actor=admin_a, agent_type="copy", task=f"Captions {plain}", client_id=client_a.pk).run
    execute_run(run_id=str(run.pk), worker="test")
    assert "brand_lookup" not in [t["name"] for t in scripted.requests(plain)[0]["tools"]]


def test_its_default_specialization_applies_after_the_runs_and_the_clients(admin_a, in_a):
    from tuning.services import client_create

    agent_create(actor=admin_a, slug="gulf_finance", definition={
        **CAPTION, "specialization": {"vertical": "finance", "region": "gcc", "language": "ar"}})
    agent_publish(actor=admin_a, slug="gulf_finance", change_note="v1")
    assert get_spec("gulf_finance").default_specialization == {"vertical": "finance", "region": "GCC",
                                                               "language": "ar"}  # stored in canonical form
    tier = platform_tier_for("gulf_finance")
    bare = client_create(name="No details yet", vertical="other")
    assert assemble_prompt(platform=tier, client=bare).specialization == {
        "vertical": "finance", "region": "GCC", "language": "ar"}
    beauty = client_create(name="Desert Bloom", vertical="beauty", region="EU", language="en")
    assert assemble_prompt(platform=tier, client=beauty).specialization == {
        "vertical": "beauty", "region": "EU", "language": "en"}  # the client's own values first
    with pytest.raises(InvalidInput, match="specialization.region"):
        agent_draft_update(actor=admin_a, slug="gulf_finance", definition={**CAPTION, "specialization": {
            "region": "atlantis"}})
