"""Tuning reaches the model: what a run sends, captured at a local fake Messages API through
the real anthropic SDK (the loop runs in-process here)."""

import json
import uuid

import pytest
from django.test import override_settings

from agents.loop import execute_run
from agents.model import reset_client
from agents.services import run_create
from tuning.services import client_create, client_rule_add, client_rule_remove, client_tuning_update


@pytest.fixture
def model_at_fake_api(fake_model, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_model.base_url)
    with override_settings(ANTHROPIC_API_KEY="sk-ant-test-not-a-real-key"):
        reset_client()
        yield fake_model
    reset_client()


def sent_for(fake_model, *, actor, client, task="Write a caption"):
    marker = f"[tuning-{uuid.uuid4().hex[:8]}]"
    fake_model.script(marker, [{"content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn"}])
    run = run_create(actor=actor, agent_type="copy", task=f"{task} {marker}", client_id=client.pk).run
    assert execute_run(run_id=str(run.pk), worker="test") == "succeeded"
    (request,) = fake_model.requests(marker)
    return request


def system_text(request) -> str:
    return "\n".join(block["text"] for block in request["system"])


def test_a_never_rule_reaches_the_next_run_and_leaves_with_its_removal(in_a, make_user, model_at_fake_api):
    admin = make_user("instance_admin")
    client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC")
    rule_text = "Never use discount or urgency language such as '% off' or 'hurry'."
    assert rule_text not in system_text(sent_for(model_at_fake_api, actor=admin, client=client))

    rule = client_rule_add(actor=admin, client=client, kind="never", text=rule_text, reason="client asked")
    assert rule_text in system_text(sent_for(model_at_fake_api, actor=admin, client=client))

    client_rule_remove(actor=admin, rule=rule, reason="campaign over")
    assert rule_text not in system_text(sent_for(model_at_fake_api, actor=admin, client=client))


def test_two_clients_share_tier_1_and_2_bytes_and_differ_in_tier_3(in_a, make_user, model_at_fake_api):
    admin = make_user("instance_admin")
    bloom = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC")
    bank = client_create(name="Gulf Bank", vertical="beauty", region="GCC")
    client_tuning_update(actor=admin, client=bloom, changes={"brand_voice": "Warm and poetic."})
    client_tuning_update(actor=admin, client=bank, changes={"brand_voice": "Precise and reassuring."})
    first = sent_for(model_at_fake_api, actor=admin, client=bloom, task="Caption for the serum")
    second = sent_for(model_at_fake_api, actor=admin, client=bank, task="Caption for the savings account")
    assert json.dumps(first["tools"]) == json.dumps(second["tools"])
    # Tier 1 and 2 blocks are byte-identical between the clients; only the client's tier differs.
    def platform_and_instance(request, client_name):
        return [b for b in request["system"] if client_name not in b["text"]]

    assert platform_and_instance(first, "Desert Bloom") == platform_and_instance(second, "Gulf Bank") != []
    assert "Warm and poetic." in system_text(first) and "Warm and poetic." not in system_text(second)
    assert "Precise and reassuring." in system_text(second)
    # The per-run task never enters the cached prefix.
    assert "serum" not in system_text(first) and "savings" not in system_text(second)


def test_a_renamed_client_is_what_the_next_run_is_told(in_a, make_user, model_at_fake_api):
    """An edit of the client reaches the next run (its prompt is kept per process under a key)."""
    from tuning.services import client_update

    admin = make_user("instance_admin")
    client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC")
    first = sent_for(model_at_fake_api, actor=admin, client=client)
    assert "# Client: Desert Bloom Cosmetics" in system_text(first)
    client_update(actor=admin, client=client, changes={"name": "Desert Bloom Beauty", "region": "EU"}, reason="rebrand")
    second = sent_for(model_at_fake_api, actor=admin, client=client)
    assert "# Client: Desert Bloom Beauty" in system_text(second)
    assert '"client": "Desert Bloom Beauty"' in json.dumps(second["messages"][0], ensure_ascii=False).replace('\\"', '"')
