"""The agent studio in the admin (#18 part 6): build an agent through the builder's form, see a
refusal next to its field, the live preview of the draft's framed prompt, publish with a change
note, the versions with their diffs and a rollback, sandbox, archive, export and import (a malformed
contract names its field); an instance manager looks but does not change, an account manager does
not get in, and instance B's admin never sees instance A's agents."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test import Client as HttpClient

from agents.models import AgentRun
from agents.registry import get_spec
from agents.studio.models import AgencyAgent, AgentStatus
from agents.studio.services import agent_create, agent_draft_update, agent_export, agent_publish
from tuning.models import TuningChange

from ...conftest import HOST_A, HOST_B
from .test_studio import CAPTION

LIST = "/admin/studio/agencyagent/"
ADD = f"{LIST}add/"
PREVIEW = f"{LIST}preview/"
IMPORT = f"{LIST}import/"
TOOLS = ["copy.get_brand_guidelines", "copy.check_brand_rules", "core.search_knowledge"]


def browser_as(user, host: str = HOST_A) -> HttpClient:
    http = HttpClient(HTTP_HOST=host)
    http.force_login(user)
    return http


def builder_data(**changes) -> dict:
    """The builder's form as a person fills it: three library tools, a persona with one trait slider
    ticked and one left alone, two starters, a limit and an approval pattern."""
    data = {
        "slug": "pr_pitch", "title": "PR pitch agent",
        "purpose": "Pitch emails to journalists for a client's launch.",
        "instructions": "Write a pitch of at most 150 words with a subject line.",
        "persona_voice": "Confident, never pushy",
        "persona_traits__count": "2",
        "persona_traits__name__0": "creativity", "persona_traits__use__0": "1", "persona_traits__value__0": "70",
        "persona_traits__name__1": "warmth", "persona_traits__value__1": "50",
        "tools": TOOLS, "knowledge_kinds": ["brand_guidelines"],
        "limit_max_iterations": "8", "limit_effort": "",
        "require_approval": "save_*", "starters": "Pitch the Ramadan launch\nPitch the award, briefly",
        "icon": "📣", "colour": "#1f6feb", "reason": "The PR team asked for it.",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def page_of(agent: AgencyAgent) -> str:
    return f"{LIST}{agent.pk}/change/"


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def manager(in_a, make_user):
    return make_user("instance_manager")


def test_build_an_agent_through_the_form_and_edit_its_draft(admin_a):
    http = browser_as(admin_a)
    empty = text(http.get(ADD))
    assert 'value="copy.check_brand_rules"' in empty and 'value="core.search_knowledge"' in empty
    assert ">Copywriting agent<" in empty and ">Core tools<" in empty, "grouped by where the tool comes from"
    assert re.search(r"<code>save_draft</code></label><span class=\"writes\"", empty), "a tool that writes says so"
    assert "## Ground rules" in empty, "the preview shows the platform's frame before anything is typed"

    created = http.post(ADD, builder_data())
    assert created.status_code == 302, text(created)[:3000]
    agent = AgencyAgent.objects.get(slug="pr_pitch")
    assert created["Location"] == page_of(agent)
    assert agent.status == AgentStatus.DRAFT and agent.created_by == admin_a
    assert agent.draft == {
        "title": "PR pitch agent", "purpose": "Pitch emails to journalists for a client's launch.",
        "instructions": "Write a pitch of at most 150 words with a subject line.",
        "persona": {"voice": "Confident, never pushy", "traits": {"creativity": 70}},
        "tools": TOOLS, "knowledge_kinds": ["brand_guidelines"], "limits": {"max_iterations": 8},
        "require_approval": ["save_*"], "starters": ["Pitch the Ramadan launch", "Pitch the award, briefly"],
        "icon": "📣", "colour": "#1f6feb"}
    entry = TuningChange.objects.get(entity="agent_definition", entity_id="pr_pitch")
    assert (entry.action, entry.reason) == ("create", "The PR team asked for it.")

    page = text(http.get(page_of(agent)))
    assert 'id="studio-unpublished"' in page and "Nothing published yet" in page
    assert re.search(r'value="copy.check_brand_rules"\s+checked', page), "the draft's tools are ticked"
    assert "You are PR pitch agent, an agent this agency built on SpokeStack." in page
    assert "Traits (0–100): creativity 70" in page

    edited = http.post(page_of(agent), builder_data(slug=None, instructions="Write two pitches, short ones."))
    assert edited.status_code == 302
    agent.refresh_from_db()
    assert agent.draft["instructions"] == "Write two pitches, short ones." and agent.current_version is None
    again = http.post(page_of(agent), builder_data(slug=None, instructions="Write two pitches, short ones."),
                      follow=True)
    assert "Nothing changed in the draft." in text(again)

    agent_publish(actor=admin_a, slug="pr_pitch", change_note="First version")
    preview = http.post(PREVIEW, builder_data(slug=None, instructions="Write two pitches, short ones.")).json()
    assert preview["prompt"] == get_spec("pr_pitch").base_prompt, "the preview is what a run of it gets"
    assert preview["approval"] == ["delete_*", "publish_*", "save_*"]


def test_a_refusal_is_shown_next_to_the_field_it_names_and_nothing_is_made(admin_a):
    http = browser_as(admin_a)
    core = http.post(ADD, builder_data(slug="copy"))
    assert core.status_code == 400
    page = text(core)
    row = page[page.index('class="form-row field-slug errors"'):]
    assert "a core agent" in row[:600], "the service's refusal sits in the slug's row"
    assert not AgencyAgent.objects.exists()

    pattern = text(http.post(ADD, builder_data(require_approval="save drafts")))
    row = pattern[pattern.index('class="form-row field-require_approval errors"'):]
    assert "Line 1:" in row[:600] and "save drafts" in row[:600]

    bounds = text(http.post(ADD, builder_data(limit_max_tokens="99999")))
    assert 'class="form-row field-limit_max_tokens errors"' in bounds and "8192" in bounds
    assert not AgencyAgent.objects.exists()


def test_the_preview_view_frames_the_posted_draft_and_saves_nothing(admin_a):
    http = browser_as(admin_a)
    preview = http.post(PREVIEW, builder_data(instructions="Open with the news, then the quote."))
    assert preview.status_code == 200
    answer = preview.json()
    prompt = answer["prompt"]
    assert prompt.startswith("You are PR pitch agent") and "## Ground rules" in prompt
    assert "## Instructions from the agency\nOpen with the news, then the quote." in prompt
    assert "Voice: Confident, never pushy" in prompt
    assert answer["tools"] == ["get_brand_guidelines", "check_brand_rules", "search_knowledge"]
    assert answer["problems"] == [] and answer["characters"] == len(prompt)

    unfinished = http.post(PREVIEW, builder_data(slug="copy", title="", tools=["copy.check_brand_rules"])).json()
    assert unfinished["prompt"].startswith("You are …") and "check_brand_rules" in unfinished["prompt"]
    assert any(problem.startswith("Title:") for problem in unfinished["problems"])
    assert http.get(PREVIEW).status_code == 405
    assert not AgencyAgent.objects.exists()


def test_publish_with_a_change_note_then_the_versions_show_it(admin_a):
    agent = agent_create(actor=admin_a, slug="social_caption", definition=CAPTION)
    http = browser_as(admin_a)
    publish = f"{LIST}{agent.pk}/publish/"
    no_note = text(http.post(publish, {"change_note": "  "}, follow=True))
    assert "Not published." in no_note and "change_note" in no_note
    published = http.post(publish, {"change_note": "First version for the social team"}, follow=True)
    page = text(published)
    assert "Published v1 of social_caption" in page
    agent.refresh_from_db()
    assert (agent.status, agent.current_version.number) == (AgentStatus.PUBLISHED, 1)
    assert get_spec("social_caption").version == "1.0.0"
    versions = page[page.index('id="studio-versions"'):]
    assert 'id="version-1"' in versions and "First version for the social team" in versions
    assert admin_a.username in versions or str(admin_a) in versions
    assert "The first version." in versions and 'id="studio-unpublished"' not in page
    assert "Roll back to this version" not in versions, "the current version has no rollback"
    again = text(http.post(publish, {"change_note": "Again"}, follow=True))
    assert "Not published. Nothing changed since v1" in again

    changelist = text(http.get(LIST))
    assert "social_caption" in changelist and "v1" in changelist and 'id="studio-import"' in changelist


def test_versions_show_their_diff_and_roll_back_to_an_earlier_one(admin_a):
    agent_create(actor=admin_a, slug="social_caption", definition=CAPTION)
    agent_publish(actor=admin_a, slug="social_caption", change_note="First version")
    agent_draft_update(actor=admin_a, slug="social_caption", definition={**CAPTION, "instructions": "Five options."})
    agent_publish(actor=admin_a, slug="social_caption", change_note="Five options")
    agent = AgencyAgent.objects.get(slug="social_caption")
    http = browser_as(admin_a)
    page = text(http.get(page_of(agent)))
    diff = page[page.index('id="version-2-diff"'):page.index('id="version-1"')]
    assert "Changes since v1" in diff
    assert re.search(r'<tr class="del"><td class="sign">-</td><td><code>\s*&quot;instructions&quot;: &quot;Write three', diff)
    assert re.search(r'<tr class="add"><td class="sign">\+</td><td><code>\s*&quot;instructions&quot;: &quot;Five options.&quot;', diff)
    assert f'action="{LIST}{agent.pk}/rollback/1/"' in page and f"{LIST}{agent.pk}/rollback/2/" not in page

    rolled = text(http.post(f"{LIST}{agent.pk}/rollback/1/", {"reason": "The team preferred three."}, follow=True))
    assert "Rolled back to v1: published again as v3" in rolled
    assert get_spec("social_caption").version == "3.0.0"
    assert "## Instructions from the agency\nWrite three caption options" in get_spec("social_caption").base_prompt
    assert "Rollback to v1: The team preferred three." in rolled[rolled.index('id="version-3"'):]


def test_try_in_sandbox_archive_and_export(admin_a, client_a):
    agent = agent_create(actor=admin_a, slug="social_caption", definition=CAPTION)
    http = browser_as(admin_a)
    tried = text(http.post(f"{LIST}{agent.pk}/sandbox/", {"sandbox-task": "Three captions for the launch",
                                                           "sandbox-client": str(client_a.pk)}, follow=True))
    run = AgentRun.objects.get(agent_type="social_caption")
    assert run.sandbox and run.agent_version.endswith("-test") and run.client == client_a
    assert f'href="/admin/agents/agentrun/{run.pk}/change/" id="sandbox-run-link"' in tried

    archived = text(http.post(f"{LIST}{agent.pk}/archive/", {"archived": "1"}, follow=True))
    agent.refresh_from_db()
    assert agent.status == AgentStatus.ARCHIVED and "Unarchive" in archived
    http.post(f"{LIST}{agent.pk}/archive/", {"archived": "0"})
    agent.refresh_from_db()
    assert agent.status == AgentStatus.DRAFT

    download = http.get(f"{LIST}{agent.pk}/export/")
    assert download["Content-Disposition"] == 'attachment; filename="social_caption.agent.json"'
    assert json.loads(download.content) == agent_export(actor=admin_a, slug="social_caption")


def test_import_names_the_field_of_a_malformed_contract_and_imports_a_good_one(admin_a):
    contract = {"contract": "spokestack.agent/v1", "slug": "pr_pitch", **CAPTION, "title": "PR pitch agent"}
    http = browser_as(admin_a)
    bad = http.post(IMPORT, {"contract": json.dumps({**contract, "tools": ["copy.nope"],
                                                     "limits": {"max_tokens": 99999}})})
    assert bad.status_code == 400
    page = text(bad)
    assert "Not imported." in page
    assert '<li data-field="tools[0]"><code>tools[0]</code>: &#x27;copy.nope&#x27; is not in the tool library' in page
    assert 'data-field="limits.max_tokens"' in page
    assert "Not JSON" in text(http.post(IMPORT, {"contract": "{not json"}))
    assert not AgencyAgent.objects.exists()

    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("pr_pitch.agent.json", json.dumps(contract).encode(), "application/json")
    imported = http.post(IMPORT, {"file": upload, "reason": "From the Gulf office"})
    agent = AgencyAgent.objects.get(slug="pr_pitch")
    assert imported.status_code == 302 and imported["Location"] == page_of(agent)
    assert (agent.status, agent.current_version.number, agent.title) == (AgentStatus.PUBLISHED, 1, "PR pitch agent")


def test_an_instance_manager_looks_but_does_not_change_and_an_account_manager_does_not_get_in(
        admin_a, manager, assigned, client_a):
    agent = agent_create(actor=admin_a, slug="social_caption", definition=CAPTION)
    look = browser_as(manager)
    listed = text(look.get(LIST))
    assert "social_caption" in listed and 'id="studio-import"' not in listed and 'id="studio-add"' not in listed
    page = look.get(page_of(agent))
    assert page.status_code == 200
    assert 'id="studio-read-only"' in text(page) and 'id="publish-form"' not in text(page)
    assert 'id="builder-save"' not in text(page) and "## Ground rules" in text(page)
    assert look.post(PREVIEW, builder_data()).status_code == 200
    assert look.get(f"{LIST}{agent.pk}/export/").status_code == 200
    for url, data in ((f"{LIST}{agent.pk}/publish/", {"change_note": "Mine"}), (page_of(agent), builder_data()),
                      (ADD, builder_data(slug="other")), (IMPORT, {"contract": "{}"}),
                      (f"{LIST}{agent.pk}/archive/", {"archived": "1"}),
                      (f"{LIST}{agent.pk}/sandbox/", {"sandbox-task": "Try"})):
        assert look.post(url, data).status_code == 403, url
    assert look.get(ADD).status_code == 403 and look.get(IMPORT).status_code == 403
    agent.refresh_from_db()
    assert agent.current_version is None and agent.status == AgentStatus.DRAFT
    assert AgencyAgent.objects.count() == 1 and not AgentRun.objects.exists()

    outsider = browser_as(assigned("account_manager", client_a))
    for url in (LIST, page_of(agent), ADD, IMPORT, f"{LIST}{agent.pk}/export/"):
        assert outsider.get(url).status_code == 403, url
    assert outsider.post(PREVIEW, builder_data()).status_code == 403
    assert "Agency-built agents" not in text(outsider.get("/admin/"))


def test_instance_b_does_not_see_instance_a_agents(admin_a, instance_b, make_user):
    agent = agent_create(actor=admin_a, slug="social_caption", definition=CAPTION)
    agent_publish(actor=admin_a, slug="social_caption", change_note="First version")
    connection.set_tenant(instance_b)
    admin_b = browser_as(make_user("instance_admin"), HOST_B)
    listed = admin_b.get(LIST)
    assert listed.status_code == 200 and "social_caption" not in text(listed)
    for url in (page_of(agent), f"{LIST}{agent.pk}/export/"):
        assert admin_b.get(url).status_code == 404, url
    assert admin_b.post(f"{LIST}{agent.pk}/publish/", {"change_note": "x"}).status_code == 404
    connection.set_schema_to_public()
