"""The feedback API: every endpoint anonymous / without permission / permitted, and bad input."""

import uuid

import pytest
from django.db import connection

from feedback.models import Analysis, Suggestion, SuggestionStatus
from feedback.services import analysis_run
from tuning.models import ContentRule

pytestmark = pytest.mark.django_db

THEME = "never:theme:discount_urgency"


@pytest.fixture
def setup(in_a, make_client, assigned, make_user, discount_corrections, finished_run):
    client, other = make_client("Lumen Skin"), make_client("Other Bank")
    am = assigned("account_manager", client)
    discount_corrections(client, am)
    analysis_run(client=client, use_model=False)
    return {"client": client, "other": other, "am": am, "stranger": assigned("account_manager", other),
            "norole": make_user("instance_admin", email="norole@example.com"),
            "run": finished_run(client, "Get 20% off today!"),
            "suggestion": Suggestion.objects.get(client=client, signature=THEME)}


def _norole(user):
    user.groups.clear()
    user.__dict__.pop("_spokestack_roles", None)
    return user


def test_post_feedback(setup, api, instance_a):
    body = {"run_id": str(setup["run"].pk), "verdict": "approved", "rating": 5}
    assert api(instance_a).post("/api/v1/feedback", body, format="json").status_code == 401
    response = api(instance_a, _norole(setup["norole"])).post("/api/v1/feedback", body, format="json")
    assert response.status_code == 403
    response = api(instance_a, setup["stranger"]).post("/api/v1/feedback", body, format="json")
    assert response.status_code == 404
    response = api(instance_a, setup["am"]).post("/api/v1/feedback", body, format="json")
    assert response.status_code == 201 and response.json()["verdict"] == "approved"


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"verdict": "corrected"}, 400, "corrected_text: a correction needs the corrected text."),
    ({"verdict": "approved", "rating": 7}, 400, "rating: must be a whole number from 1 to 5, not 7."),
    ({"verdict": "approved", "artifact_id": 424242}, 404, "No such output: the run has no artifact with that id."),
    ({"verdict": "approved", "colour": "red"}, 400, "colour: is not a feedback field"),
])
def test_bad_feedback_answers_with_a_message(setup, api, instance_a, body, status, message):
    response = api(instance_a, setup["am"]).post("/api/v1/feedback", {"run_id": str(setup["run"].pk), **body},
                                                 format="json")
    assert response.status_code == status, response.json()
    assert response.json()["error"]["message"].startswith(message)


def test_feedback_on_a_run_of_another_instance_is_not_found(setup, api, instance_a, instance_b, make_user):
    stored = Analysis.objects.filter(client=setup["client"]).count()
    connection.set_tenant(instance_b)
    admin_b = make_user("instance_admin", email="admin-b@example.com")
    response = api(instance_b, admin_b).post("/api/v1/feedback", {"run_id": str(setup["run"].pk),
                                                                   "verdict": "approved"}, format="json")
    assert response.status_code == 404 and response.json()["error"]["message"] == "No such run in this instance."
    url = f"/api/v1/clients/{setup['client'].pk}/feedback/analysis"
    assert api(instance_b, admin_b).get(url).status_code == 404
    response = api(instance_b, admin_b).post(url, {}, format="json")
    assert response.status_code == 404 and response.json()["error"]["message"] == "No such client."
    connection.set_tenant(instance_a)
    assert Analysis.objects.filter(client=setup["client"]).count() == stored


def test_get_analysis(setup, api, instance_a):
    url = f"/api/v1/clients/{setup['client'].pk}/feedback/analysis"
    assert api(instance_a).get(url).status_code == 401
    assert api(instance_a, _norole(setup["norole"])).get(url).status_code == 403
    assert api(instance_a, setup["stranger"]).get(url).status_code == 404
    stored = Analysis.objects.filter(client=setup["client"]).count()
    response = api(instance_a, setup["am"]).get(url)
    assert response.status_code == 200
    data = response.json()
    assert data["id"] == Analysis.objects.get(client=setup["client"]).pk and data["client"] == setup["client"].pk
    assert data["status"] == "ok" and data["metrics"]["counts"]["corrected"] == 15
    [suggestion] = [s for s in data["suggestions"] if s["id"] == setup["suggestion"].pk]
    assert suggestion["kind"] == "never" and suggestion["evidence_count"] == 15 and len(suggestion["examples"]) == 3
    assert Suggestion.objects.filter(client=setup["client"], signature=THEME).count() == 1
    assert Analysis.objects.filter(client=setup["client"]).count() == stored, "a GET stores nothing"


def test_post_analysis_runs_one_and_get_reads_it_without_the_model(in_a, api, instance_a, make_client, assigned,
                                                                   make_user, discount_corrections,
                                                                   model_at_fake_api):
    marker = f"Lumen Skin {uuid.uuid4().hex[:8]}"  # the client's name is in the analysis' model request
    client, other = make_client(marker), make_client("Other Bank")
    am = assigned("account_manager", client)
    discount_corrections(client, am)
    url = f"/api/v1/clients/{client.pk}/feedback/analysis"

    response = api(instance_a, am).get(url)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "No analysis of this client yet; POST to this URL to run one."

    assert api(instance_a).post(url, {}, format="json").status_code == 401
    norole = _norole(make_user("instance_admin", email="norole@example.com"))
    assert api(instance_a, norole).post(url, {}, format="json").status_code == 403
    assert api(instance_a, assigned("account_manager", other)).post(url, {}, format="json").status_code == 404
    assert not Analysis.objects.filter(client=client).exists()
    assert model_at_fake_api.requests(marker) == []

    response = api(instance_a, am).post(url, {}, format="json")
    assert response.status_code == 201, response.json()
    posted = response.json()
    assert posted["client"] == client.pk and posted["metrics"]["counts"]["corrected"] == 15
    assert posted["model"]["requests"] == 1 and any(s["kind"] == "never" for s in posted["suggestions"])
    assert len(model_at_fake_api.requests(marker)) == 1, "one model request per client per analysis"

    for reader in (am, assigned("client_contact", client), make_user("instance_manager", email="im@example.com")):
        response = api(instance_a, reader).get(url)
        assert response.status_code == 200, response.json()
        assert response.json() == posted
    assert len(model_at_fake_api.requests(marker)) == 1, "a GET never reaches the model"
    assert Analysis.objects.filter(client=client).count() == 1


def test_analysis_per_agent_type(in_a, api, instance_a, make_client, assigned, discount_corrections):
    client = make_client()
    am = assigned("account_manager", client)
    discount_corrections(client, am)
    url = f"/api/v1/clients/{client.pk}/feedback/analysis"
    response = api(instance_a, am).post(f"{url}?agent_type=copy", {}, format="json")
    assert response.status_code == 201 and response.json()["metrics"]["counts"]["corrected"] == 15
    copy = response.json()["id"]
    response = api(instance_a, am).post(url, {"agent_type": "brief"}, format="json")
    assert response.status_code == 201 and response.json()["status"] == "insufficient_data"
    assert api(instance_a, am).get(f"{url}?agent_type=copy").json()["id"] == copy
    assert api(instance_a, am).get(f"{url}?agent_type=brief").json()["id"] == response.json()["id"]
    assert api(instance_a, am).get(url).status_code == 404, "all agent types together: not analysed yet"
    assert api(instance_a, am).get(f"{url}?agent_type=rfp").status_code == 404


@pytest.mark.parametrize(("method", "query", "body", "message"), [
    ("get", "?agent_type=poetry", None, "agent_type: unknown agent type 'poetry'; this instance has brief, commercial, content, copy"),
    ("get", "?agent_type=" + "x" * 500, None, "agent_type: unknown agent type"),
    ("post", "?agent_type=poetry", {}, "agent_type: unknown agent type 'poetry'"),
    ("post", "", {"agent_type": "x" * 500}, "agent_type: unknown agent type"),
    ("post", "", {"agent_type": ["copy"]}, "agent_type: unknown agent type"),
    ("post", "", {"agent_type": {"a": 1}}, "agent_type: unknown agent type"),
    ("post", "?agent_type=copy", {"agent_type": "brief"}, "agent_type: given twice, differently"),
    ("post", "", {"colour": "red"}, "colour: is not an analysis field"),
    ("post", "", ["copy"], "The request body could not be read"),
])
def test_bad_analysis_input_answers_400_with_a_message(setup, api, instance_a, method, query, body, message):
    url = f"/api/v1/clients/{setup['client'].pk}/feedback/analysis{query}"
    stored = Analysis.objects.filter(client=setup["client"]).count()
    client = api(instance_a, setup["am"])
    response = client.get(url) if method == "get" else client.post(url, body, format="json")
    # an unknown agent type is the catalog's one answer everywhere: 404 unknown_agent_type
    assert response.status_code == (404 if "unknown agent type" in message else 400), response.json()
    assert response.json()["error"]["message"].startswith(message)
    assert Analysis.objects.filter(client=setup["client"]).count() == stored


def test_list_suggestions(setup, api, instance_a):
    url = f"/api/v1/clients/{setup['client'].pk}/feedback/suggestions?status=pending"
    assert api(instance_a).get(url).status_code == 401
    assert api(instance_a, _norole(setup["norole"])).get(url).status_code == 403
    assert api(instance_a, setup["stranger"]).get(url).status_code == 404
    response = api(instance_a, setup["am"]).get(url)
    assert response.status_code == 200 and setup["suggestion"].pk in [s["id"] for s in response.json()]


def test_apply_suggestions(setup, api, instance_a, assigned):
    client, suggestion = setup["client"], setup["suggestion"]
    url = f"/api/v1/clients/{client.pk}/feedback/apply-suggestions"
    body = {"suggestion_ids": [suggestion.pk]}
    assert api(instance_a).post(url, body, format="json").status_code == 401
    assert api(instance_a, _norole(setup["norole"])).post(url, body, format="json").status_code == 403
    assert api(instance_a, setup["stranger"]).post(url, body, format="json").status_code == 404
    contact = assigned("client_contact", client)
    assert api(instance_a, contact).post(url, body, format="json").status_code == 403
    other_url = f"/api/v1/clients/{setup['other'].pk}/feedback/apply-suggestions"
    assert api(instance_a, setup["stranger"]).post(other_url, body, format="json").status_code == 404
    assert api(instance_a, setup["am"]).post(url, {"suggestion_ids": []}, format="json").status_code == 400
    response = api(instance_a, setup["am"]).post(url, body, format="json")
    assert response.status_code == 200, response.json()
    [applied] = response.json()["suggestions"]
    assert applied["status"] == "applied"
    assert ContentRule.objects.get(pk=applied["rule_id"]).source_reference == str(suggestion.pk)
    again = api(instance_a, setup["am"]).post(url, body, format="json")
    assert again.status_code == 400 and "already applied" in again.json()["error"]["message"]


def test_dismiss_suggestions(setup, api, instance_a):
    client, suggestion = setup["client"], setup["suggestion"]
    url = f"/api/v1/clients/{client.pk}/feedback/dismiss-suggestions"
    body = {"suggestion_ids": [suggestion.pk]}
    assert api(instance_a).post(url, body, format="json").status_code == 401
    assert api(instance_a, _norole(setup["norole"])).post(url, body, format="json").status_code == 403
    assert api(instance_a, setup["stranger"]).post(url, body, format="json").status_code == 404
    response = api(instance_a, setup["am"]).post(url, body, format="json")
    assert response.status_code == 200 and response.json()["suggestions"][0]["status"] == "dismissed"
    assert Suggestion.objects.get(pk=suggestion.pk).status == SuggestionStatus.DISMISSED
