"""The demo's brand guidelines (#17 part 6): each demo client gets one, stored as PDF (Alpha), DOCX
(Beta) or Markdown (Gamma), read at seed time into passages with their sections; idempotent."""

from __future__ import annotations

from spokestack.demo import seed_demo_documents
from spokestack.demo_data import DEMO_GUIDELINES, DEMO_GUIDELINES_FORMAT, DEMO_INSTANCES
from tuning.assembly import assemble_prompt, platform_tier_for
from tuning.knowledge.models import Chunk, Document
from tuning.knowledge.selectors import knowledge_search
from tuning.models import Client


def test_the_seed_creates_ready_brand_guidelines_with_passages_for_every_demo_client(in_a, make_client):
    for demo in DEMO_INSTANCES:
        for name, vertical, region, language in demo.clients:
            make_client(name, vertical=vertical, region=region, language=language)
        created = seed_demo_documents(demo)
        assert len(created) == len(demo.clients) + 1  # and the first client's pin
        for name, *_ in demo.clients:
            document = Document.objects.get(client__name=name)
            assert (document.kind, document.status, document.title) == (
                "brand_guidelines", "ready", DEMO_GUIDELINES[name].title)
            assert document.file_type == DEMO_GUIDELINES_FORMAT[demo.schema] and document.error == ""
            chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
            assert len(chunks) == document.chunks_count >= 3
            assert any(c.heading.endswith("Words we avoid") for c in chunks)
            if document.file_type == "pdf":
                assert document.pages >= 2 and {c.page for c in chunks} >= {1, 2}
        assert seed_demo_documents(demo) == [], "a second seed creates nothing"
    alpha = DEMO_INSTANCES[0]
    assert "following the brand guidelines" in alpha.demo_task and alpha.demo_agent == "copy"
    desert = Client.objects.get(name=alpha.clients[0][0])
    pinned = Document.objects.get(client=desert)
    assert pinned.pinned and pinned.pin_excerpt.startswith("Words we avoid\nNever write these words")
    assert sorted(d.client.name for d in Document.objects.filter(pinned=True)) == sorted(
        d.clients[0][0] for d in DEMO_INSTANCES)
    system = assemble_prompt(platform=platform_tier_for("copy"), client=desert).system_text()
    assert "Words we avoid\nNever write these words" in system  # every run for Desert Bloom is told them
    passages = knowledge_search(query="Instagram caption hashtags", client=desert)
    assert passages and passages[0].title == "Desert Bloom Cosmetics brand guidelines"
    assert all(p.document_id == Document.objects.get(client=desert).pk for p in passages)
