from tuning.assembly import assemble_prompt
from tuning.services import client_rule_add, client_tuning_update, instance_tuning_update

from .catalog import COPY


def test_smoke(in_a, make_client):
    client = make_client("Acme", vertical="beauty", region="GCC")
    instance_tuning_update(actor=None, changes={"prompt_extension": "Be nice.", "temperature": 0.5,
                                                "behaviour_params": {"verbosity": 10}, "traits": {"warmth": 90}})
    instance_tuning_update(actor=None, agent_type="copy", changes={"disabled_tools": ["publish_post"]})
    client_tuning_update(actor=None, client=client, changes={"brand_voice": "Bold.", "tone_keywords": ["warm"]})
    client_rule_add(actor=None, client=client, kind="never", text="Say cheap")
    prompt = assemble_prompt(platform=COPY, client=client)
    print(prompt.system_text())
    print([t["name"] for t in prompt.tools], prompt.temperature, prompt.max_tokens, prompt.require_approval,
          prompt.token_estimate)
    print(prompt.system)
