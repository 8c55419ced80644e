# ruff: noqa: F811 - the stream fixtures are imported by name
"""The permission matrix through the websockets (issue #13): every role gets the access policy's
answer on `ws/runs/<run>/` (policy `run.view`) and on `ws/events/` (`approval.view`: the
subscription, and which clients' approval messages reach the socket), generated from the table
as `test_policy.test_permission_matrix` is for the API and the admin.

A socket's answers: allowed (accepted and streaming; subscribed; the message arrives), refused
(a `forbidden` error and close 4403; the subscription refused), hidden (close 4404 for a run of
a client the person does not see; the message of that client's approval never arrives).

Also here: bearer tokens on a handshake spend the address's failed-authentication budget, as on
the API, and an approval that expires unanswered is announced like one that is decided.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from agents.approvals import approvals_expire
from agents.models import ApprovalRequest
from spokestack.accounts.services import api_token_create, user_create

from ..agents.test_stream_access import Agency, agency, streams, ws_client  # noqa: F401 - fixtures by name
from ..conftest import run_async
from .test_policy import ROLES, expected

WHO = {"instance_admin": "admin", "account_manager": "manager", "client_contact": "contact"}
OTHER_ROLES = ("instance_manager", "support", "no_role")


def token_for(agency: Agency, role: str) -> str:
    """The raw token of a person holding `role` (the Agency has three; the others are made here)."""
    if role in WHO:
        agency.tokens[role] = agency.tokens[WHO[role]]
        return agency.tokens[role]
    with schema_context(agency.schema):
        user = user_create(email=f"{role}@ws.example", password=None,
                           role="instance_manager" if role == "instance_manager" else "instance_admin")
        if role in ("support", "no_role"):
            user.groups.clear()
            user.is_superuser = role == "support"
            user.save(update_fields=["is_superuser"])
        token = api_token_create(user=user, name="ws probe").raw
    agency.tokens[role] = token
    return token


async def run_socket(agency: Agency, role: str, run_id: str) -> str:
    """The run ended before the socket opens: one allowed replays its events and closes normally."""
    ws = ws_client(agency, f"/ws/runs/{run_id}/", role)
    accepted, code = await ws.connect(timeout=10)
    if not accepted:
        return {4404: "hidden", 4403: "refused"}.get(code, f"closed {code}")
    messages = []
    while (output := await ws.receive_output(timeout=10))["type"] == "websocket.send":
        messages.append(json.loads(output["text"]))
    code = output.get("code", 1000)
    if code == 1000 and messages and messages[-1].get("type") == "run.succeeded":
        return "allowed"
    if code == 4403 and [m.get("code") for m in messages] == ["forbidden"]:
        return "refused"
    return f"closed {code} after {messages}"


async def events_socket(agency: Agency, role: str, approvals: dict[str, str]) -> dict[str, str]:
    """The subscription's answer, then which of the approvals (where → id, made after it) arrive."""
    ws = ws_client(agency, "/ws/events/", role)
    accepted, code = await ws.connect(timeout=10)
    assert accepted, code
    await ws.send_json_to({"subscribe": "approvals"})
    reply = await ws.receive_json_from(timeout=10)
    if reply.get("subscribed") == "approvals":
        answers = {"-": "allowed"}
    else:
        assert "does not allow" in reply.get("error", ""), reply
        answers = {"-": "refused"}
    for where, make in approvals.items():
        approval_id = await asyncio.to_thread(make)
        received = []
        while not await ws.receive_nothing(timeout=1.0):
            output = await ws.receive_output()
            if output["type"] == "websocket.close":  # a person without a role: ended at the re-check
                assert answers["-"] == "refused", output
                break
            message = json.loads(output["text"])
            if "data" in message:
                received.append(message["data"]["approval_id"])
        if answers["-"] == "refused":
            answers[where] = "refused" if not received else f"received {received}"
        else:
            answers[where] = "allowed" if approval_id in received else "hidden"
    await ws.disconnect()
    return answers


@pytest.mark.parametrize("role", ROLES)
def test_websocket_permission_matrix(agency, role):
    token_for(agency, role)
    runs = {}
    for where, client in (("mine", agency.bloom), ("other", agency.dune)):
        run = agency.run(client)
        run.write("A tagline.")
        run.finish()
        runs[where] = run.id
    got = {f"run.view:{where}": run_async(run_socket(agency, role, run_id)) for where, run_id in runs.items()}
    events = run_async(events_socket(agency, role, {"mine": lambda: agency.approval(agency.bloom),
                                                    "other": lambda: agency.approval(agency.dune)}))
    got |= {f"approval.view:{where}": answer for where, answer in events.items()}
    want = {f"run.view:{where}": expected("run.view", role, where) for where in runs}
    want |= {f"approval.view:{where}": expected("approval.view", role, None if where == "-" else where)
             for where in ("-", "mine", "other")}
    assert got == want


def test_bad_tokens_on_handshakes_spend_the_address_budget(agency, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth_failures": "3/min"}}
    from django.core.cache import cache

    with schema_context(agency.schema):
        cache.clear()
    agency.tokens["wrong"] = "ss_" + "x" * 43

    async def handshake(who: str) -> tuple[bool, int | None, dict | None]:
        ws = ws_client(agency, "/ws/events/", who)
        accepted, code = await ws.connect(timeout=10)
        if not accepted:
            return False, code, None
        if await ws.receive_nothing(timeout=0.3):
            await ws.disconnect()
            return True, None, None
        message = await ws.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            return True, message.get("code"), None
        closed = await ws.receive_output(timeout=5)
        return True, closed.get("code"), json.loads(message["text"])

    answers = [run_async(handshake("wrong")) for _ in range(3)]
    assert all(code == 4401 for _, code, _ in answers), answers  # refused, each one counted
    accepted, code, message = run_async(handshake("admin"))  # a good token from the same address
    assert (accepted, code) == (True, 4429)
    assert message["code"] == "throttled" and message["retry_after"] >= 1
    assert "failed authentications from this address" in message["message"]
    with schema_context(agency.schema):
        cache.clear()
    assert run_async(handshake("admin")) == (True, None, None)


def test_an_expired_approval_is_announced_to_those_who_see_its_client(agency):
    async def scenario():
        ws = ws_client(agency, "/ws/events/", "manager")
        assert (await ws.connect(timeout=10))[0]
        await ws.send_json_to({"subscribe": "approvals"})
        assert (await ws.receive_json_from(timeout=10)) == {"subscribed": "approvals"}
        approval_id = await asyncio.to_thread(agency.approval, agency.bloom)
        created = await ws.receive_json_from(timeout=10)
        assert (created["data"]["approval_id"], created["data"]["status"]) == (approval_id, "pending")

        def expire():
            with schema_context(agency.schema):
                ApprovalRequest.objects.filter(pk=approval_id).update(expires_at=timezone.now())
                return approvals_expire()

        assert await asyncio.to_thread(expire) == 1
        expired = await ws.receive_json_from(timeout=10)
        await ws.disconnect()
        return expired["data"]

    data = run_async(scenario())
    assert data["status"] == "expired" and data["pending"] == 0
