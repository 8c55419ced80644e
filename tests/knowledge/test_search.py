"""Knowledge search (issue #17 part 3): ranking, isolation between clients and instances, the core
`search_knowledge` tool through the loop (the request the model receives and the run's events), the
offline model citing a passage, and `GET /api/v1/knowledge/search`."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from agents.loop import execute_run
from agents.models import RunEvent, RunStatus
from agents.registry import get_spec
from agents.services import run_create
from agents.tools_knowledge import KINDS
from tuning.knowledge.models import Document, DocumentKind
from tuning.knowledge.selectors import knowledge_search, knowledge_search_for
from tuning.knowledge.services import document_ingest, document_upload
from tuning.services import client_create

from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401 - the fixture
from .conftest import pdf_bytes, upload

VOICE = ("Our voice is warm, confident and sensory. We write like a friend who knows the desert: short sentences, "
         "concrete images, never shouting. The desert light ritual is our signature moment in every campaign.")
PRODUCTS = ("The Luminara Night Serum restores the skin while you sleep. Describe its texture and its ritual; never "
            "promise a medical effect. The Oasis Day Cream is its morning partner.")
SCATTERED = ("Light matters: photograph products in natural light. The desert is our backdrop, and each launch has a "
             "ritual of its own that the team plans weeks ahead of time with the retailers.")
DECOY_SERUM = "Serum pricing is set by the retailer; the agency never quotes a serum price in copy."


def _index(*, client, title, sections, kind=DocumentKind.BRAND_GUIDELINES, language="en"):
    """A document uploaded and ingested through the services: (heading, page, text) sections, as a
    PDF with those pages (fpdf2), or as Markdown when no section has a page (fpdf2's built-in fonts
    have no Arabic)."""
    if any(page for _, page, _ in sections):
        pages: list[list[tuple[str, str]]] = [[] for _ in range(max(page for _, page, _ in sections))]
        for heading, page, text in sections:
            pages[page - 1] += [("h1", heading), ("p", text)]
        name, data = "document.pdf", pdf_bytes([page or [("p", "Notes.")] for page in pages])
    else:
        name, data = "document.md", "\n\n".join(f"# {heading}\n\n{text}" for heading, _, text in sections).encode()
    document = document_upload(actor=None, client=client, title=title, kind=kind, language=language,
                               uploaded_file=upload(name, data))
    assert document_ingest(document_id=document.pk, revision=document.revision) == "ready"
    return document


@pytest.fixture
def library(in_a):
    mine = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
    other = client_create(name="Other Bank", vertical="finance")
    guidelines = _index(client=mine, title="Brand guidelines — Desert Bloom", sections=[
        ("Voice", 2, VOICE), ("Products", 3, PRODUCTS), ("Photography", 4, SCATTERED), ("Pricing", 5, DECOY_SERUM)])
    style = _index(client=mine, title="Style guide — Desert Bloom", kind=DocumentKind.STYLE_GUIDE, sections=[
        ("Spelling", 1, "Use British spelling: colour, favourite, moisturise. Capitalise Ritual only in headlines; "
                        "the desert is never capitalised, nor is light.")])
    agency = _index(client=None, title="Agency writing handbook", kind=DocumentKind.REFERENCE, sections=[
        ("Claims", 7, "Every claim about an ingredient needs a source the client approved; the Luminara Night Serum "
                      "claims sheet is kept by the account team.")])
    secret = _index(client=other, title="Other Bank tone", sections=[
        ("Voice", 1, "Other Bank speaks in a measured, reassuring voice. The Luminara Night Serum is not ours."
                     " Secret desert light ritual of the bank.")])
    return {"mine": mine, "other": other, "guidelines": guidelines, "style": style, "agency": agency,
            "secret": secret}


def test_the_exact_phrase_ranks_first_and_every_passage_carries_its_citation(library):
    passages = knowledge_search(query="desert light ritual", client=library["mine"])
    assert passages[0].document_id == library["guidelines"].pk and passages[0].heading == "Voice"
    top = passages[0]
    assert top.citation == "Brand guidelines — Desert Bloom, p. 2 › Voice"
    assert top.url == f"/admin/knowledge/document/{library['guidelines'].pk}/change/"
    assert "desert light ritual" in top.excerpt and top.kind == "brand_guidelines" and top.page == 2
    scattered = next(p for p in passages if p.heading == "Photography")
    assert scattered.score < top.score
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


def test_a_misspelt_product_name_is_still_found_through_trigrams(library):
    passages = knowledge_search(query="Lumnara serum", client=library["mine"], limit=3)
    # the two passages naming the Luminara Night Serum come before the one that says "serum" twice
    assert {p.heading for p in passages[:2]} == {"Products", "Claims"}
    assert all("Luminara Night Serum" in p.excerpt for p in passages[:2]) and passages[2].heading == "Pricing"
    # no full-text match at all ("Lumnara" is no word of any document): trigram similarity alone
    alone = knowledge_search(query="Lumnara", client=library["mine"])
    assert {p.heading for p in alone} == {"Products", "Claims"}


def test_french_and_arabic_documents_are_stemmed_in_their_language(in_a):
    client = client_create(name="Maison Nour", vertical="beauty", region="MENA", language="fr")
    french = "Nos chevaux galopent au lever du soleil ; les campagnes célèbrent la lumière du désert."
    arabic = "الحملات الإعلانية تحتفل بالصحراء وبالضوء الدافئ"
    fr = _index(client=client, title="Charte de marque", language="fr", sections=[("Voix", None, french)])
    fr_as_en = _index(client=client, title="Copie anglaise", language="en", sections=[("Voix", None, french)])
    ar = _index(client=client, title="دليل العلامة", language="ar", sections=[("الصوت", None, arabic)])
    ar_as_en = _index(client=client, title="English copy of the Arabic", language="en",
                      sections=[("Voice", None, arabic)])

    # "cheval" and "campagne" are the french stems of "chevaux" and "campagnes": only the document
    # indexed in french matches them as words (the english copy only by trigrams, ranked lower)
    found = knowledge_search(query="cheval campagne", client=client)
    assert found[0].document_id == fr.pk
    assert all(p.score < found[0].score for p in found if p.document_id == fr_as_en.pk)
    # "حملة" (a campaign) and "الحملات" (the campaigns) share the arabic stem; trigrams do not help
    found = knowledge_search(query="حملة", client=client)
    assert [p.document_id for p in found] == [ar.pk]
    assert ar_as_en.pk not in {p.document_id for p in knowledge_search(query="حملة الصحراء", client=client)}


def test_kinds_and_limit(library):
    everything = knowledge_search(query="desert light ritual", client=library["mine"], limit=10)
    assert {p.document_id for p in everything} >= {library["guidelines"].pk, library["style"].pk}
    styles = knowledge_search(query="desert light ritual", client=library["mine"], kinds=["style_guide"])
    assert [p.document_id for p in styles] == [library["style"].pk]
    assert len(knowledge_search(query="desert light ritual", client=library["mine"], limit=1)) == 1
    assert sorted(KINDS) == sorted(DocumentKind.values)  # the tool's enum is the model's kinds


def test_a_client_sees_its_own_and_the_instances_documents_never_another_clients(library):
    mine = {p.document_id for p in knowledge_search(query="Luminara Night Serum desert voice", client=library["mine"],
                                                    limit=10)}
    assert library["secret"].pk not in mine and {library["guidelines"].pk, library["agency"].pk} <= mine
    other = {p.document_id for p in knowledge_search(query="Luminara Night Serum desert voice",
                                                     client=library["other"], limit=10)}
    assert other == {library["secret"].pk, library["agency"].pk}
    # a run without a client: the instance's documents only
    assert {p.document_id for p in knowledge_search(query="Luminara Night Serum", client=None)} == {
        library["agency"].pk}


def test_documents_not_ready_are_not_searched(library):
    Document.objects.filter(pk=library["guidelines"].pk).update(status="processing")
    assert library["guidelines"].pk not in {p.document_id for p in knowledge_search(
        query="desert light ritual", client=library["mine"], limit=10)}


def test_instance_b_never_sees_instance_a_documents(library, instance_b):
    connection.set_tenant(instance_b)
    assert Document.objects.count() == 0
    b_client = client_create(name="Desert Bloom Cosmetics", vertical="beauty")
    assert knowledge_search(query="desert light ritual Luminara", client=b_client, limit=10) == []
    assert knowledge_search(query="Luminara", client=None, limit=10) == []


# --- the tool, through the loop -------------------------------------------------------------------


def test_every_agent_has_the_tool_and_its_base_prompt_asks_for_citations():
    for agent_type in ("copy", "brief", "rfp", "media"):
        spec = get_spec(agent_type)
        if spec is None:
            continue
        tool = spec.tool("search_knowledge")
        assert tool is not None and tool.side_effect is False
        assert "Cite every passage you rely on" in spec.base_prompt


def _run(actor, client, task):
    run = run_create(actor=actor, agent_type="copy", task=task, client_id=client.pk if client else None).run
    assert execute_run(run_id=str(run.pk), worker="w-knowledge") == RunStatus.SUCCEEDED
    return run


def _tool_result(request: dict) -> dict:
    block = request["messages"][-1]["content"][0]
    assert block["type"] == "tool_result" and block["is_error"] is False, block
    return json.loads(block["content"])


def test_the_tool_through_the_loop_finds_the_clients_passage_and_the_run_records_it(library, scripted, make_user):  # noqa: F811
    admin = make_user("instance_admin")
    scripted.script("kn-tool", [tool_turn(("toolu_k1", "search_knowledge", {"query": "desert light ritual"})),
                                text_turn("Per the brand guidelines (p. 2 › Voice): warm and confident.")])
    run = _run(admin, library["mine"], "kn-tool: a caption for the spring launch.")
    requests = scripted.requests("kn-tool")
    assert "search_knowledge" in [t["name"] for t in requests[0]["tools"]]
    system = "\n".join(block["text"] for block in requests[0]["system"])
    assert "Cite every passage you rely on" in system
    result = _tool_result(requests[1])
    top = result["passages"][0]
    assert top["citation"] == "Brand guidelines — Desert Bloom, p. 2 › Voice"
    assert "desert light ritual" in top["excerpt"]
    assert top["url"] == f"/admin/knowledge/document/{library['guidelines'].pk}/change/"
    assert library["secret"].pk not in {p["document_id"] for p in result["passages"]}
    events = json.dumps([e.payload for e in RunEvent.objects.filter(run_id=run.pk)], ensure_ascii=False)
    assert "Brand guidelines — Desert Bloom, p. 2 › Voice" in events


def test_the_tool_for_another_client_never_returns_this_clients_passages(library, scripted, make_user):  # noqa: F811
    admin = make_user("instance_admin")
    scripted.script("kn-other", [tool_turn(("toolu_k2", "search_knowledge",
                                            {"query": "Luminara Night Serum desert light ritual", "limit": 10})),
                                 text_turn()])
    _run(admin, library["other"], "kn-other: a caption.")
    result = _tool_result(scripted.requests("kn-other")[1])
    assert {p["document_id"] for p in result["passages"]} == {library["secret"].pk, library["agency"].pk}
    scripted.script("kn-none", [tool_turn(("toolu_k3", "search_knowledge", {"query": "zebra quantum"})), text_turn()])
    _run(admin, library["mine"], "kn-none: a caption.")
    assert _tool_result(scripted.requests("kn-none")[1])["passages"] == []
    scripted.script("kn-bad", [tool_turn(("toolu_k4", "search_knowledge", {"query": "   "})), text_turn()])
    _run(admin, library["mine"], "kn-bad: a caption.")
    bad = scripted.requests("kn-bad")[1]["messages"][-1]["content"][0]
    assert bad["is_error"] is True and "say what to search for" in json.dumps(bad)


def test_the_offline_model_searches_for_guidelines_and_cites_the_top_passage(library, scripted, make_user):  # noqa: F811
    admin = make_user("instance_admin")
    run = _run(admin, library["mine"], "kn-offline: write an on-brand caption for the Luminara serum, "
                                       "according to our brand guidelines.")
    requests = scripted.requests("kn-offline")
    first = [b for b in requests[1]["messages"][1]["content"] if b["type"] == "tool_use"]
    assert [b["name"] for b in first] == ["search_knowledge"] and "luminara" in first[0]["input"]["query"]
    top = _tool_result(requests[1])["passages"][0]
    assert top["document_id"] in (library["guidelines"].pk, library["agency"].pk)
    assert "Luminara Night Serum" in top["excerpt"]
    run.refresh_from_db()
    kind = {"brand_guidelines": "Brand guidelines", "reference": "Reference"}[top["kind"]]
    assert f"Per the {kind} (p. {top['page']} › {top['section']}): “" in run.output
    assert f"(Source: {top['citation']})" in run.output
    # a task that does not ask for guidelines does not search
    _run(admin, library["mine"], "kn-offline-plain: a caption for the spring launch.")
    calls = [b["name"] for r in scripted.requests("kn-offline-plain") for m in r["messages"]
             if isinstance(m["content"], list) for b in m["content"] if b.get("type") == "tool_use"]
    assert "search_knowledge" not in calls


# --- the API ----------------------------------------------------------------------------------------


def test_the_search_api_answers_people_within_what_they_may_see(library, api, assigned, make_user, instance_a):
    am_mine, am_other = assigned("account_manager", library["mine"]), assigned("account_manager", library["other"])
    contact = assigned("client_contact", library["mine"])
    mine = api(instance_a, am_mine)
    found = mine.get(f"/api/v1/knowledge/search?q=desert+light+ritual&client_id={library['mine'].pk}")
    assert found.status_code == 200, found.content
    top = found.json()["results"][0]
    assert top["citation"] == "Brand guidelines — Desert Bloom, p. 2 › Voice" and top["url"].endswith("/change/")
    assert library["secret"].pk not in {r["document_id"] for r in found.json()["results"]}
    assert api(instance_a, contact).get(
        f"/api/v1/knowledge/search?q=Luminara&client_id={library['mine'].pk}").status_code == 200
    # another client's account manager: that client is not visible to them
    hidden = api(instance_a, am_other).get(f"/api/v1/knowledge/search?q=desert&client_id={library['mine'].pk}")
    assert hidden.status_code == 404 and hidden.json()["error"]["code"]
    # without a client: the instance's documents only
    agency = mine.get("/api/v1/knowledge/search?q=Luminara+Night+Serum").json()["results"]
    assert {r["document_id"] for r in agency} == {library["agency"].pk}
    kinds = mine.get(f"/api/v1/knowledge/search?q=desert+light+ritual&client_id={library['mine'].pk}"
                     "&kinds=style_guide&limit=1").json()["results"]
    assert [r["document_id"] for r in kinds] == [library["style"].pk]
    for bad in ("q=", "q=%20%20", "q=desert&kinds=memo", "q=desert&limit=11", "q=desert&limit=x"):
        answer = mine.get(f"/api/v1/knowledge/search?{bad}")
        assert answer.status_code == 400, (bad, answer.content)
    assert api(instance_a).get("/api/v1/knowledge/search?q=desert").status_code in (401, 403)


def test_the_search_api_of_instance_b_never_returns_instance_a_documents(library, api, instance_b):
    from django_tenants.utils import schema_context

    from spokestack.accounts.services import user_create

    with schema_context(instance_b.schema_name):
        admin_b = user_create(email="admin-kb@example.com", password="correct-horse-battery-staple",
                              role="instance_admin")
    found = api(instance_b, admin_b).get("/api/v1/knowledge/search?q=desert+light+ritual+Luminara")
    assert found.status_code == 200 and found.json()["results"] == []


def test_a_person_search_asks_the_policy(library, assigned):
    am_other = assigned("account_manager", library["other"])
    from spokestack.errors import NotFound

    with pytest.raises(NotFound):
        knowledge_search_for(am_other, query="desert", client_id=library["mine"].pk)
    assert {p.document_id for p in knowledge_search_for(am_other, query="Luminara", client_id=library["other"].pk,
                                                        limit=10)} == {library["secret"].pk, library["agency"].pk}


def test_the_lexicon_of_corrections_follows_each_revision_of_the_document(library):
    from tuning.knowledge.models import Term
    from tuning.knowledge.services import document_delete, document_replace

    from .conftest import upload

    guidelines = library["guidelines"]
    assert Term.objects.filter(document=guidelines, term="luminara").exists()
    assert {p.heading for p in knowledge_search(query="Lumnara", client=library["mine"])} == {"Products", "Claims"}
    replaced = document_replace(actor=None, document=guidelines, uploaded_file=upload(
        "guidelines.md", b"# Voice\n\nWarm and plain. The Oasis Day Cream is our only product now.\n"))
    assert document_ingest(document_id=replaced.pk, revision=replaced.revision) == "ready"
    assert not Term.objects.filter(document=guidelines, term="luminara").exists()
    assert Term.objects.filter(document=guidelines, term="oasis").exists()
    # only the agency handbook still names it
    assert [p.document_id for p in knowledge_search(query="Lumnara", client=library["mine"])] == [
        library["agency"].pk]
    document_delete(actor=None, document=replaced, reason="outdated")
    assert not Term.objects.filter(document_id=guidelines.pk).exists()
