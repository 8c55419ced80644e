"""The OpenAPI contract holds on the live server (issue #13, finding 10 and build 9).

schemathesis (its Python API: `as_strategy` per operation under Hypothesis) loads /api/schema/ from
daphne on a fresh instance's host and sends every operation a bounded number of generated requests
with an instance admin's token: MAX_EXAMPLES valid ones, MAX_EXAMPLES invalid ones, and
RANDOM_ID_EXAMPLES with generated path parameters. Each answer must not be a 5xx, and its status,
content type, headers and body must be ones the contract documents for that operation (the error
envelope for every 4xx included). Every failure is collected, so one run reports them all.

Otherwise path parameters are the ids of real objects made for the test (a client, its rule and
example, a skill, a cancelled run, a pending approval, a sandbox session, an audit entry, a spare
token), so that the documented 2xx bodies are checked too, not only 404s. Decisions that end their
object (approve, reject, promote, defer) run after the other operations and DELETEs last; after
them the object answers 404 or 409, which are documented answers as well. (schemathesis's pytest
plugin, `from_fixture` + `parametrize`, fails on pytest 9.2's nodes, hence the loop.)

One adjustment: an execute is never asked to stream (`stream: true`, `?format=sse`). No worker runs
here, so a streamed run would never end and the stream would stay open; streamed executes are
covered by tests/agents/test_runtime_live.py. The events of the (finished) seeded run are streamed.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
import schemathesis
from django.db import connection
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agents.approvals import approvals_visible_to
from agents.loop import execute_run
from agents.services import run_cancel, run_create
from agents.threads import thread_create
from skills.services import skill_create
from spokestack.accounts.services import api_token_create
from tuning.models import TuningChange
from tuning.services import client_create, client_example_add, client_rule_add, instance_tuning_update, memory_create
from versions.services import sandbox_create

from ..conftest import host_of, wait_for
from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401

pytestmark = pytest.mark.live

MAX_EXAMPLES = 7  # per operation and generation mode (valid and invalid requests)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
EXECUTE = "/api/v1/agent/execute"
READY = "/api/v1/health/ready"
ENDING = ("/approve", "/reject", "/promote", "/defer")
RANDOM_ID_EXAMPLES = 4  # per operation with path parameters, with generated ids instead of the seeded ones


def seed(admin, scripted) -> dict[str, object]:  # noqa: F811 - the fixture, passed on
    """Real objects for the path parameters, made through the services."""
    client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
    rule = client_rule_add(actor=admin, client=client, kind="never", text="Never use urgency language.")
    example = client_example_add(actor=admin, client=client, kind="caption", text="Glow gently this Ramadan.")
    skill = skill_create(actor=admin, name="list_our_clients", description="The clients of this agency.",
                         execution_type="internal", handler="list_clients", agent_types=["copy"],
                         input_schema={"type": "object", "properties": {}}).skill
    finished = run_create(actor=admin, agent_type="copy", task="A caption for the Ramadan glow collection.",
                          client_id=client.pk).run
    run_cancel(actor=admin, run=finished)
    # A pending approval: the loop runs in this process against the fake model and parks the run.
    instance_tuning_update(actor=admin, changes={"require_approval_for": ["save_draft"]}, reason="legal review")
    marker = f"contract-{uuid.uuid4().hex[:8]}"
    scripted.script(marker, [tool_turn(("toolu_c1", "save_draft", {"content": "Glow gently."})), text_turn()])
    gated = run_create(actor=admin, agent_type="copy", task=f"{marker}: a caption.", client_id=client.pk).run
    # (A worker of the session, if one runs, may claim the run first: it parks it the same way.)
    execute_run(run_id=str(gated.pk), worker="contract")
    approval = wait_for(lambda: approvals_visible_to(actor=admin).filter(run=gated).first())
    session = sandbox_create(actor=admin, agent_type="media_buying", test_version="2.3.1")
    spare = api_token_create(user=admin, name="spare").token
    thread = thread_create(actor=admin, agent_type="copy", client_id=client.pk, title="Ramadan captions").thread
    memory = memory_create(actor=admin, client=client, text="Prefers British spelling.")
    return {"client_id": client.pk, "rule_id": rule.pk, "example_id": example.pk, "skill_id": str(skill.pk),
            "run_id": str(finished.pk), "approval_id": str(approval.pk), "session_id": str(session.pk),
            "audit_id": TuningChange.objects.order_by("-pk").values_list("pk", flat=True).first(),
            "token_id": spare.pk, "agent_type": "copy", "memory_id": memory.pk,
            "thread_id": str(thread.pk)}


@pytest.fixture
def contract(live_instance, daphne_server, scripted):  # noqa: F811
    """The schema as the live server serves it on the instance's host, with the seeded ids."""
    instance, admin = live_instance.instance, live_instance.admin
    with schema_context(instance.schema_name):
        ids = seed(admin, scripted)
        token = api_token_create(user=admin, name="contract").raw
    connection.set_schema_to_public()
    base = f"http://127.0.0.1:{daphne_server}"
    headers = {"Host": f"{host_of(instance)}:{daphne_server}", "Authorization": f"Bearer {token}"}
    config = schemathesis.Config.from_dict({
        "base-url": base, "request-timeout": 30, "max-stream-events": 50,
        "generation": {"with-security-parameters": False},
        # No worker runs here, so readiness answers its documented 503 (not_ready); anywhere else a
        # 503 would be an outage that did not happen, and counts as a server error.
        "operations": [{"include-path": READY, "checks": {
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", 503]}}}],
    })
    schema = schemathesis.openapi.from_url(f"{base}/api/schema/?format=json", config=config, headers=headers)
    return schema, ids, headers


def adjust(case) -> None:
    """An execute never streams here (see the module's docstring)."""
    if case.operation.path == EXECUTE and case.method == "POST":
        if isinstance(case.body, dict) and case.body.get("stream") is not False:
            case.body["stream"] = False
        if case.query and case.query.get("format") == "sse":
            case.query["format"] = "json"


def exercise(operation, mode: GenerationMode, pinned: dict, examples: int, headers: dict, failures: dict,
             seen: Counter) -> None:
    """`examples` generated requests to one operation; every failed check is kept, none stops it."""

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=pinned))
    def send(case):
        adjust(case)
        try:
            response = case.call_and_validate(headers=headers, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = (operation.label, failure.title)
                failures.setdefault(key, f"{failure}\n  reproduce: {case.as_curl_command(headers=headers)}")
        except Failure as failure:
            failures.setdefault((operation.label, failure.title),
                                f"{failure}\n  reproduce: {case.as_curl_command(headers=headers)}")
        else:
            seen[(operation.label, response.status_code)] += 1

    try:
        send()
    except Unsatisfiable:  # nothing to make invalid (the only parameter is pinned, and there is no body)
        assert mode is GenerationMode.NEGATIVE, operation.label


def order(operation) -> tuple[bool, bool]:
    """Decisions that end their object, then deletions, last: what they end is used before."""
    return operation.method.upper() == "DELETE", operation.path.endswith(ENDING)


def test_every_operation_answers_as_documented(contract):
    schema, ids, headers = contract
    failures: dict[tuple[str, str], str] = {}
    seen: Counter = Counter()
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=order)
    assert len(operations) >= 50, [op.label for op in operations]
    for operation in operations:
        pinned = {p.name: ids[p.name] for p in operation.path_parameters if p.name in ids}
        exercise(operation, GenerationMode.POSITIVE, pinned, MAX_EXAMPLES, headers, failures, seen)
        exercise(operation, GenerationMode.NEGATIVE, pinned, MAX_EXAMPLES, headers, failures, seen)
        if pinned:  # and ids that name nothing, or cannot be ids at all
            exercise(operation, GenerationMode.POSITIVE, {}, RANDOM_ID_EXAMPLES, headers, failures, seen)
    succeeded = {label for (label, code), _ in seen.items() if code < 300}
    print(f"{sum(seen.values())} answers; a 2xx from {len(succeeded)} of {len(operations)} operations: "
          + ", ".join(f"{label} {code}x{n}" for (label, code), n in sorted(seen.items())))
    assert not failures, f"{len(failures)} contract failures:\n\n" + "\n\n".join(
        f"{label} — {title}\n{text}" for (label, title), text in sorted(failures.items()))
    # Not a contract of 401s and 404s: the seeded objects and the token let most operations succeed.
    assert len(succeeded) >= 40, sorted(succeeded)
