import pytest
from django.test import override_settings

from agents.model import reset_client
from tuning.services import client_create

FAKE_KEY = "sk-ant-test-not-a-real-key"


@pytest.fixture
def scripted(fake_model, monkeypatch):
    """The in-process loop's SDK pointed at the session's fake Messages API (script by marker)."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_model.base_url)
    with override_settings(ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_MAX_RETRIES=0):
        reset_client()
        yield fake_model
        reset_client()


@pytest.fixture
def admin_a(in_a, make_user):
    return make_user("instance_admin")


@pytest.fixture
def client_a(in_a):
    return client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")


def tool_turn(*calls):
    """A scripted model turn calling the given (id, name, input) tools."""
    return {"content": [{"type": "tool_use", "id": i, "name": n, "input": x} for i, n, x in calls],
            "stop_reason": "tool_use"}


def text_turn(text="Done."):
    return {"content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}
