"""The guide's request shapes (issue #14, found 6): the example payloads of §9.25 and §9.26,
copied verbatim from the product guide, are accepted by the tuning API and show in the prompt
preview; today's shapes keep working; a word or key that means nothing is refused naming what
does."""

from __future__ import annotations

import dataclasses

import pytest

from tuning.assembly import assembly_cache_clear, registered_platform_catalog, set_platform_catalog
from tuning.models import ClientTuning, ContentRule, InstanceTuning
from tuning.services import client_tuning_update

from .catalog import COPY, RFP, FixtureCatalog, _tool

# §9.25, "Instance Tuning API" docstring, verbatim.
GUIDE_INSTANCE_TUNING = {
    "prompt_extension": "We are a Dubai-based agency specializing in luxury...",
    "default_vertical": "luxury",
    "default_region": "gcc",
    "behavior_params": {
        "verbosity": "detailed",
        "creativity": "conservative"
    },
    "agency_brand_voice": "Sophisticated, confident, innovative...",
    "disabled_tools": ["competitor_analysis"]
}

# §9.25, the column examples of InstanceTuningConfig, verbatim.
GUIDE_BEHAVIOR_PARAMS = {
    "verbosity": "detailed",  # "concise", "standard", "detailed"
    "creativity": "conservative",  # "conservative", "balanced", "creative"
    "proactivity": "high",  # Suggest next steps, alternatives
}
GUIDE_OUTPUT_PREFERENCES = {
    "default_format": "structured_doc",
    "include_rationale": True,
    "max_length": "no_limit",
}
GUIDE_AGENCY_TERMINOLOGY = {
    "use": ["client partners", "creative solutions", "strategic insights"],
    "avoid": ["customers", "stuff", "basically"],
}

# §9.26, "Client Tuning API" docstring, verbatim.
GUIDE_CLIENT_TUNING = {
    "brand_voice": "Bold, inspirational, athletic...",
    "tone_keywords": ["bold", "empowering"],
    "content_rules": {
        "always": ["Include Just Do It spirit"],
        "never": ["Mention competitors"]
    },
    "format_preferences": {
        "headlines": {"max_words": 8}
    }
}

# §9.26, the column examples of ClientTuningConfig, verbatim.
GUIDE_CONTENT_RULES = {
    "always": [
        "Include 'Just Do It' spirit in messaging",
        "Reference athletic achievement",
        "Use inclusive language"
    ],
    "never": [
        "Mention competitor brands by name",
        "Use passive voice",
        "Reference political topics",
        "Use discount-focused language"
    ],
    "prefer": [
        "Action-oriented headlines",
        "Athlete testimonials over celebrity",
        "Performance benefits over fashion"
    ]
}
GUIDE_COMPETITOR_RULES = {
    "never_mention": ["Adidas", "Puma", "Under Armour"],
    "positioning": "Premium performance leader",
    "differentiation": ["Innovation", "Athlete partnerships", "Heritage"]
}
GUIDE_FORMAT_PREFERENCES = {
    "headlines": {"max_words": 8, "style": "imperative"},
    "body_copy": {"max_paragraphs": 3, "reading_level": "8th_grade"},
    "social": {"hashtag_style": "branded", "emoji_usage": "minimal"}
}
GUIDE_LENGTH_PREFERENCES = {
    "default": "concise",
    "proposals": "comprehensive",
    "social_copy": "minimal"
}

# The guide's agent has a `competitor_analysis` tool; the shipped agents have none, and naming a
# tool the platform lacks is refused (see test_a_tool_the_platform_lacks_is_still_refused).
GUIDE_COPY = dataclasses.replace(COPY, tools=(*COPY.tools, _tool("competitor_analysis", "Analyse competitors.",
                                                                  brand={"type": "string"})))


@pytest.fixture(autouse=True)
def platform_catalog():
    previous = registered_platform_catalog()
    set_platform_catalog(FixtureCatalog(GUIDE_COPY, RFP))
    assembly_cache_clear()
    yield
    set_platform_catalog(previous)
    assembly_cache_clear()


@pytest.fixture
def world(in_a, make_user, make_client, assigned):
    mine, other = make_client("Stride Athletic", vertical="fashion"), make_client("Other Bank", vertical="finance")
    return {"mine": mine, "other": other, "admin": make_user("instance_admin"),
            "manager": assigned("account_manager", mine)}


def _preview(http, client=None) -> dict:
    path = "/api/v1/agents/copy/prompt-preview" + (f"?client_id={client.pk}" if client else "")
    answer = http.get(path)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    body["text"] = "\n\n".join(block["text"] for block in body["system"])
    return body


@pytest.mark.parametrize("path", ["/api/v1/tuning", "/api/v1/agents/copy/tuning"])
def test_the_guides_instance_payload_is_accepted_and_shows_in_the_preview(world, api, path):
    http = api(_instance(), world["admin"])
    answer = http.put(path, GUIDE_INSTANCE_TUNING, format="json")
    assert answer.status_code == 200, answer.content
    stored = answer.json()
    assert stored["default_vertical"] == "fashion" and stored["default_region"] == "GCC"
    assert stored["behaviour_params"] == {"verbosity": 70, "creativity": 30}
    assert stored["brand_voice"] == "Sophisticated, confident, innovative..."
    assert stored["disabled_tools"] == ["competitor_analysis"]

    preview = _preview(http)
    text = preview["text"]
    assert "We are a Dubai-based agency specializing in luxury..." in text
    assert "Be thorough: explain your reasoning and include supporting detail. (verbosity 70/100)" in text
    assert "Prefer safe, familiar ideas; innovate only when asked. (creativity 30/100)" in text
    assert "Sophisticated, confident, innovative..." in text
    assert "competitor_analysis" not in [tool["name"] for tool in preview["tools"]]
    assert preview["specialization"]["region"] == "GCC" and preview["specialization"]["vertical"] == "fashion"
    assert "knowledge.region.GCC" in [s["field"] for s in preview["sections"]]


def _instance():
    from django.db import connection

    return connection.tenant


def test_the_guides_column_examples_for_tier_2(world, api):
    http = api(_instance(), world["admin"])
    answer = http.put("/api/v1/agents/copy/tuning", {
        "behavior_params": GUIDE_BEHAVIOR_PARAMS, "output_preferences": GUIDE_OUTPUT_PREFERENCES,
        "agency_terminology": GUIDE_AGENCY_TERMINOLOGY}, format="json")
    assert answer.status_code == 200, answer.content
    row = InstanceTuning.objects.get(agent_type="copy")
    assert row.behaviour_params == {"verbosity": 70, "creativity": 30, "proactivity": 70}
    assert row.output_preferences == GUIDE_OUTPUT_PREFERENCES
    assert (row.terminology_use, row.terminology_avoid) == (GUIDE_AGENCY_TERMINOLOGY["use"],
                                                            GUIDE_AGENCY_TERMINOLOGY["avoid"])
    text = _preview(http)["text"]
    assert "Anticipate needs: suggest next steps and alternatives. (proactivity 70/100)" in text
    assert "- include rationale: yes" in text and "- default format: structured_doc" in text
    assert "- basically" in text and "- client partners" in text


def test_words_and_numbers_mean_the_same_instruction(world, api):
    http = api(_instance(), world["admin"])
    http.put("/api/v1/agents/copy/tuning", {"behaviour_params": {"verbosity": "concise"}}, format="json")
    by_word = _preview(http)["text"]
    http.put("/api/v1/agents/copy/tuning", {"behaviour_params": {"verbosity": 30}}, format="json")
    assert _preview(http)["text"] == by_word
    answer = http.put("/api/v1/agents/copy/tuning", {"behaviour_params": {"verbosity": "chatty"}}, format="json")
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert message.startswith("behaviour_params.verbosity: unknown word 'chatty'")
    assert "concise" in message and "detailed" in message and "0 to 100" in message
    answer = http.put("/api/v1/tuning", {"behavior_params": {"verbosity": 50}, "behaviour_params": {}}, format="json")
    assert answer.status_code == 400 and "send one of them" in answer.json()["error"]["message"]


def test_the_guides_client_payload_is_accepted_and_shows_in_the_preview(world, api):
    mine, http = world["mine"], api(_instance(), world["manager"])
    answer = http.put(f"/api/v1/clients/{mine.pk}/tuning", GUIDE_CLIENT_TUNING, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["format_preferences"] == {"headlines": {"max_words": 8}}
    assert answer.json()["tone_keywords"] == ["bold", "empowering"]
    rules = set(ContentRule.objects.filter(client=mine).values_list("kind", "text", "source"))
    assert rules == {("always", "Include Just Do It spirit", "manual"), ("never", "Mention competitors", "manual")}

    text = _preview(http, mine)["text"]
    assert "## Brand voice\nBold, inspirational, athletic..." in text
    assert "## Tone\nbold, empowering" in text
    assert "## Always\n- Include Just Do It spirit" in text and "## Never\n- Mention competitors" in text
    assert "## Format\n- headlines: max words 8" in text

    # The same PUT again adds no second copy of the rules.
    assert http.put(f"/api/v1/clients/{mine.pk}/tuning", GUIDE_CLIENT_TUNING, format="json").status_code == 200
    assert ContentRule.objects.filter(client=mine).count() == 2


def test_the_guides_column_examples_for_tier_3(world, api):
    mine, http = world["mine"], api(_instance(), world["manager"])
    answer = http.put(f"/api/v1/clients/{mine.pk}/tuning", {
        "content_rules": GUIDE_CONTENT_RULES, "competitor_rules": GUIDE_COMPETITOR_RULES,
        "format_preferences": GUIDE_FORMAT_PREFERENCES, "length_preferences": GUIDE_LENGTH_PREFERENCES,
    }, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["competitor_rules"] == [
        {"competitor": "Adidas", "instruction": "Never mention by name."},
        {"competitor": "Puma", "instruction": "Never mention by name."},
        {"competitor": "Under Armour", "instruction": "Never mention by name."},
        {"positioning": "Premium performance leader"},
        {"differentiation": ["Innovation", "Athlete partnerships", "Heritage"]},
    ]
    assert ContentRule.objects.filter(client=mine).count() == 10

    preview = _preview(http, mine)
    text = preview["text"]
    assert ("## Competitors\n- Adidas: Never mention by name.\n- Puma: Never mention by name.\n"
            "- Under Armour: Never mention by name.\n- Position the brand as: Premium performance leader\n"
            "- Differentiate on: Innovation, Athlete partnerships, Heritage") in text
    assert ("## Format\n- body copy: max paragraphs 3; reading level 8th_grade\n"
            "- headlines: max words 8; style imperative\n- social: emoji usage minimal; hashtag style branded") in text
    assert "## Length\n- default: concise\n- proposals: comprehensive\n- social copy: minimal" in text
    assert "- Use discount-focused language" in text and "- Athlete testimonials over celebrity" in text
    competitors = [r for r in preview["rules"] if r["kind"] == "competitor"]
    assert [r["competitor"] for r in competitors] == ["Adidas", "Puma", "Under Armour"]

    # What GET returns can be sent back unchanged (the stored shape is accepted too).
    stored = http.get(f"/api/v1/clients/{mine.pk}/tuning").json()
    again = {key: stored[key] for key in ("competitor_rules", "format_preferences", "length_preferences")}
    assert http.put(f"/api/v1/clients/{mine.pk}/tuning", again, format="json").status_code == 200
    assert ClientTuning.objects.get(client=mine, agent_type="").competitor_rules == stored["competitor_rules"]


def test_todays_shapes_keep_working(world, api):
    mine, http = world["mine"], api(_instance(), world["manager"])
    answer = http.put(f"/api/v1/clients/{mine.pk}/tuning", {
        "competitor_rules": [{"competitor": "Rival", "instruction": "Never name them."}],
        "format_preferences": {"structure": "one line, then three bullets"}}, format="json")
    assert answer.status_code == 200, answer.content
    text = _preview(http, mine)["text"]
    assert "## Competitors\n- Rival: Never name them." in text
    assert "## Format\n- structure: one line, then three bullets" in text


@pytest.mark.parametrize(("body", "words"), [
    ({"competitor_rules": {"never_mention": ["Acme"], "tagline": "x"}}, "competitor_rules.tagline: unknown key"),
    ({"content_rules": {"sometimes": ["x"]}}, "content_rules: must be an object with always, never, prefer"),
    ({"format_preferences": {"headlines": {"max_words": {"deep": 1}}}}, "format_preferences.headlines.max_words"),
])
def test_a_shape_that_means_nothing_is_refused_naming_what_does(world, api, body, words):
    mine, http = world["mine"], api(_instance(), world["admin"])
    answer = http.put(f"/api/v1/clients/{mine.pk}/tuning", body, format="json")
    assert answer.status_code == 400 and words in answer.json()["error"]["message"], answer.content
    assert not ContentRule.objects.filter(client=mine).exists()
    assert not ClientTuning.objects.filter(client=mine).exists()


def test_a_tool_the_platform_lacks_is_still_refused(world, api):
    set_platform_catalog(FixtureCatalog(COPY, RFP))
    answer = api(_instance(), world["admin"]).put("/api/v1/tuning", GUIDE_INSTANCE_TUNING, format="json")
    assert answer.status_code == 400 and "competitor_analysis" in answer.json()["error"]["message"]


def test_another_clients_account_manager_cannot_send_the_guides_payload(world, api):
    other, http = world["other"], api(_instance(), world["manager"])
    answer = http.put(f"/api/v1/clients/{other.pk}/tuning", GUIDE_CLIENT_TUNING, format="json")
    assert answer.status_code == 404
    assert http.get(f"/api/v1/agents/copy/prompt-preview?client_id={other.pk}").status_code == 404
    assert not ContentRule.objects.filter(client=other).exists()
    assert not ClientTuning.objects.filter(client=other).exists()


def test_the_openapi_spec_shows_both_shapes(world, api):
    answer = api(_instance(), world["admin"]).get("/api/schema/?format=json")
    assert answer.status_code == 200, answer.status_code
    schema = answer.json()
    props = {**schema["components"]["schemas"]["InstanceTuningRequest"]["properties"],
             **schema["components"]["schemas"]["ClientTuningRequest"]["properties"]}
    verbosity = props["behaviour_params"]["properties"]["verbosity"]["oneOf"]
    assert {"type": "integer", "minimum": 0, "maximum": 100} in verbosity
    assert "detailed" in verbosity[1]["enum"]
    assert "behavior_params" in props and "agency_brand_voice" in props and "content_rules" in props
    assert len(props["competitor_rules"]["oneOf"]) == 2
    assert "GCC" in props["default_region"]["description"]


def test_client_tuning_written_by_services_accepts_the_guide_too(world):
    client_tuning_update(actor=None, client=world["mine"], changes={"competitor_rules": GUIDE_COMPETITOR_RULES})
    assert ClientTuning.objects.get(client=world["mine"]).competitor_rules[3] == {
        "positioning": "Premium performance leader"}
