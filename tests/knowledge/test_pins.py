"""Pinned excerpts (#17 part 4): a document's chosen part told to every run for its client, in tier 3
after the memories; audited, reversible, bounded, and never told to another client's runs."""

from __future__ import annotations

import pytest
from django.test import override_settings

from agents.loop import execute_run
from agents.models import RunStatus
from agents.services import run_create
from spokestack.errors import InvalidInput, NotAllowed, NotFound
from tuning.assembly import assemble_prompt, platform_tier_for
from tuning.knowledge.pins import document_beginning, document_pin, document_unpin, pins_for_prompt
from tuning.knowledge.services import document_ingest, document_upload
from tuning.models import TuningChange
from tuning.services import memory_create

from ..skills.conftest import scripted, text_turn  # noqa: F401 - the fixture
from .conftest import VOICE, docx_bytes, guidelines_pdf, upload

EXCERPT = "Speak warmly and plainly; never use urgency language. Desert rose, sand and sage."


@pytest.fixture
def world(in_a, make_client, make_user, assigned):
    mine = make_client("Mine Cosmetics", vertical="beauty", region="GCC", language="en")
    other = make_client("Other Bank", vertical="finance")
    return {"instance": in_a, "mine": mine, "other": other, "admin": make_user("instance_admin"),
            "manager": make_user("instance_manager"), "am_mine": assigned("account_manager", mine),
            "am_other": assigned("account_manager", other), "contact": assigned("client_contact", mine)}


def ready(*, client, title="Brand guidelines", kind="brand_guidelines", data=None, name="guidelines.pdf"):
    document = document_upload(actor=None, client=client, title=title, kind=kind,
                               uploaded_file=upload(name, data or guidelines_pdf()))
    assert document_ingest(document_id=document.pk, revision=document.revision) == "ready"
    document.refresh_from_db()
    return document


def _system(request: dict) -> str:
    return "\n\n".join(block["text"] for block in request["system"])


def _run(w, scripted, marker, client):  # noqa: F811
    scripted.script(marker, [text_turn("Done.")])
    run = run_create(actor=w["admin"], agent_type="copy", task=f"{marker}: a caption for the spring launch.",
                     client_id=client.pk).run
    assert execute_run(run_id=str(run.pk), worker="w-pins") == RunStatus.SUCCEEDED
    return scripted.requests(marker)[0]


def test_a_pin_reaches_the_next_run_of_that_client_only_and_unpin_or_rollback_removes_it(world, scripted, api):  # noqa: F811
    w = world
    document = ready(client=w["mine"])
    memory_create(actor=w["admin"], client=w["mine"], text="Prefers British spelling.")
    before = _run(w, scripted, "pin-before", w["mine"])
    assert EXCERPT not in _system(before)

    document_pin(actor=w["am_mine"], document_id=document.pk, excerpt=EXCERPT, reason="The CMO asked.")
    told = _system(_run(w, scripted, "pin-mine", w["mine"]))
    heading = "## From Brand guidelines (Brand guidelines)"
    assert f"{heading}\n{EXCERPT}" in told
    assert told.index("Prefers British spelling.") < told.index(heading), "after the memories"
    other = _run(w, scripted, "pin-other", w["other"])
    assert EXCERPT not in _system(other) and EXCERPT not in str(other["messages"])

    entry = TuningChange.objects.get(entity="document", entity_id=str(document.pk), field="pin")
    assert (entry.tier, entry.client, entry.actor, entry.reason) == (3, w["mine"], w["am_mine"], "The CMO asked.")
    assert entry.old_value == {"pinned": False, "excerpt": ""}
    assert entry.new_value == {"pinned": True, "excerpt": EXCERPT}

    # rolled back through the API by the account manager: the next run is no longer told it
    am = api(w["instance"], w["am_mine"])
    assert api(w["instance"], w["am_other"]).post(f"/api/v1/tuning/rollback/{entry.pk}", format="json") \
        .status_code == 404
    rolled = am.post(f"/api/v1/tuning/rollback/{entry.pk}", {"reason": "Not yet."}, format="json")
    assert rolled.status_code == 201, rolled.content
    document.refresh_from_db()
    assert (document.pinned, document.pin_excerpt) == (False, "")
    assert EXCERPT not in _system(_run(w, scripted, "pin-rolled", w["mine"]))
    assert am.post(f"/api/v1/tuning/rollback/{entry.pk}", format="json").status_code == 409, "not twice"

    # pinned again with the document's beginning, then unpinned
    pinned = document_pin(actor=w["am_mine"], document_id=document.pk, excerpt=None)
    assert pinned.pin_excerpt.startswith("Voice") and VOICE in pinned.pin_excerpt
    assert VOICE in _system(_run(w, scripted, "pin-beginning", w["mine"]))
    document_unpin(actor=w["am_mine"], document_id=document.pk, reason="Done.")
    assert VOICE not in _system(_run(w, scripted, "pin-unpinned", w["mine"]))


def test_who_may_pin_and_what_an_excerpt_may_be(world):
    w = world
    document = ready(client=w["mine"])
    with pytest.raises(NotAllowed):
        document_pin(actor=w["contact"], document_id=document.pk, excerpt=EXCERPT)
    with pytest.raises(NotFound):
        document_pin(actor=w["am_other"], document_id=document.pk, excerpt=EXCERPT)
    with pytest.raises(NotFound):
        document_pin(actor=w["am_mine"], document_id=987654, excerpt=EXCERPT)
    with override_settings(KNOWLEDGE_PIN_MAX_CHARS=40):
        with pytest.raises(InvalidInput, match="over the 40-character bound"):
            document_pin(actor=w["am_mine"], document_id=document.pk, excerpt="x" * 41)
        beginning = document_pin(actor=w["am_mine"], document_id=document.pk, excerpt="").pin_excerpt
        assert 0 < len(beginning) <= 40 and beginning.startswith("Voice")
    processing = document_upload(actor=None, client=w["mine"], title="Draft", uploaded_file=upload("s.docx",
                                                                                                 docx_bytes()))
    with pytest.raises(InvalidInput, match="not ready|processing"):
        document_pin(actor=w["am_mine"], document_id=processing.pk, excerpt=None)
    assert TuningChange.objects.filter(entity="document", field="pin").count() == 1, "refusals record nothing"
    # pinning the same excerpt again changes nothing and records nothing
    document_pin(actor=w["am_mine"], document_id=document.pk, excerpt=document_beginning(document, 40))
    with override_settings(KNOWLEDGE_PIN_MAX_CHARS=40):
        document_pin(actor=w["am_mine"], document_id=document.pk, excerpt=None)
    assert TuningChange.objects.filter(entity="document", field="pin").count() == 1


def test_an_instance_wide_pin_is_for_admins_and_managers_and_reaches_every_client_after_its_own(world):
    w = world
    agency = ready(client=None, title="Agency style guide", kind="style_guide", data=docx_bytes(), name="s.docx")
    own = ready(client=w["mine"])
    with pytest.raises(NotAllowed, match="instance admins and managers"):
        document_pin(actor=w["am_mine"], document_id=agency.pk, excerpt="Agency: active voice.")
    document_pin(actor=w["manager"], document_id=agency.pk, excerpt="Agency: active voice.")
    document_pin(actor=w["am_mine"], document_id=own.pk, excerpt=EXCERPT)
    entry = TuningChange.objects.get(entity="document", entity_id=str(agency.pk), field="pin")
    assert entry.tier == 2 and entry.client is None and set(entry.affected_clients) >= {w["mine"].pk, w["other"].pk}

    copy = platform_tier_for("copy")
    mine = assemble_prompt(platform=copy, client=w["mine"])
    assert [s.field for s in mine.sections if s.field.startswith("knowledge.pin.")] == [
        f"knowledge.pin.{own.pk}", f"knowledge.pin.{agency.pk}"], "the client's own first, then the agency's"
    assert mine.pinned_documents == (own.pk, agency.pk)
    other = assemble_prompt(platform=copy, client=w["other"]).system_text()
    assert "## From Agency style guide (Style guide)\nAgency: active voice." in other and EXCERPT not in other
    assert "Agency: active voice." in assemble_prompt(platform=copy, client=None).system_text()
    assert mine.prefix_bytes() == assemble_prompt(platform=copy, client=w["mine"]).prefix_bytes(), "byte-stable"


def test_the_total_bound_leaves_out_the_last_pins_in_order(world):
    w = world
    first, second = ready(client=w["mine"], title="One"), ready(client=w["mine"], title="Two")
    with override_settings(KNOWLEDGE_PIN_MAX_CHARS=100):  # the total: 400
        document_pin(actor=w["admin"], document_id=first.pk, excerpt="a" * 100)
        document_pin(actor=w["admin"], document_id=second.pk, excerpt="b" * 100)
        selection = pins_for_prompt(client=w["mine"])
        assert [p.document_id for p in selection.included] == [first.pk, second.pk] and selection.limit == 400
        third = ready(client=w["mine"], title="Three")
        fourth = ready(client=w["mine"], title="Four")
        for document in (third, fourth):
            document_pin(actor=w["admin"], document_id=document.pk, excerpt="c" * 100)
        selection = pins_for_prompt(client=w["mine"])
        assert [p.document_id for p in selection.included] == [first.pk, second.pk, third.pk]
        assert [p.document_id for p in selection.left_out] == [fourth.pk]
        prompt = assemble_prompt(platform=platform_tier_for("copy"), client=w["mine"])
        assert prompt.pins_left_out == (fourth.pk,) and "## From Four" not in prompt.system_text()
