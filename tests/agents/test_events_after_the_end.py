"""An event stream asked for after a finished run's last event answers 204 at once (issue #13,
found by the OpenAPI contract test): it used to stay open on keep-alives until the stream's
maximum lifetime, and an EventSource reconnecting after the terminal event waited with it. 204 is
what the SSE spec tells an EventSource to stop reconnecting with."""

import pytest

from agents.services import run_cancel, run_create


@pytest.fixture
def cancelled(in_a, make_user):
    admin = make_user("instance_admin")
    run = run_create(actor=admin, agent_type="copy", task="A caption.").run
    return admin, run_cancel(actor=admin, run=run)


def test_past_the_last_event_of_a_finished_run_is_204(in_a, cancelled, api):
    admin, run = cancelled
    last = run.events.order_by("-seq").values_list("seq", flat=True).first()
    http = api(in_a, admin)
    for headers, query in (({"HTTP_LAST_EVENT_ID": str(last)}, ""), ({}, f"?after={last + 1000}")):
        response = http.get(f"/api/v1/agent/runs/{run.pk}/events{query}", **headers)
        assert response.status_code == 204 and response.content == b""

