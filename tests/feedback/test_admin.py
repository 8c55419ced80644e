"""The feedback admin with Django's test client: run page buttons, the queue, decisions, scoping."""

import pytest
from django.test import Client as HttpClient

from feedback.models import Feedback, Suggestion, SuggestionStatus
from feedback.services import analysis_run

from ..conftest import HOST_A

pytestmark = pytest.mark.django_db
THEME = "never:theme:discount_urgency"


@pytest.fixture
def http_for():
    def make(user):
        http = HttpClient(HTTP_HOST=HOST_A)
        http.force_login(user)
        return http

    return make


def test_the_run_page_approves_rejects_and_corrects(in_a, make_client, assigned, finished_run, http_for):
    client = make_client()
    am = assigned("account_manager", client)
    run = finished_run(client, "Get 20% off today!")
    http = http_for(am)
    page = http.get(f"/admin/agents/agentrun/{run.pk}/change/").content.decode()
    assert 'id="feedback-approve"' in page and 'id="feedback-correct"' in page and "Get 20% off today!" in page
    url = f"/admin/feedback/feedback/give/{run.pk}/"
    http.post(url, {"verdict": "corrected", "corrected_text": "", "reason": "x"})
    assert not Feedback.objects.filter(run=run).exists()  # refused with a message, nothing written
    http.post(url, {"verdict": "rejected", "reason": "Too pushy"})
    http.post(url, {"verdict": "corrected", "corrected_text": "Glow gently.", "category": "tone", "rating": "3"})
    current = Feedback.objects.get(run=run, current=True)
    assert (current.verdict, current.corrected_text, current.rating) == ("corrected", "Glow gently.", 3)
    assert Feedback.objects.filter(run=run, current=False, verdict="rejected").exists()
    stranger = assigned("account_manager", make_client())
    assert http_for(stranger).post(url, {"verdict": "approved"}).status_code == 404


def test_queue_apply_dismiss_and_scoping(in_a, make_client, assigned, discount_corrections, http_for):
    client, other = make_client("Dune Rose"), make_client("Other Bank")
    am = assigned("account_manager", client)
    stranger = assigned("account_manager", other)
    discount_corrections(client, am)
    analysis_run(client=client, use_model=False)
    suggestion = Suggestion.objects.get(client=client, signature=THEME)

    queue = http_for(am).get("/admin/feedback/suggestion/").content.decode()
    assert "discount or urgency language" in queue and "Get 20% off today!" in queue
    waiting = Suggestion.objects.filter(client=client, status=SuggestionStatus.PENDING).count()
    assert f"<strong>{waiting}</strong> suggestion(s) waiting" in http_for(am).get("/admin/").content.decode()
    assert "discount" not in http_for(stranger).get("/admin/feedback/suggestion/").content.decode()
    assert http_for(stranger).get(f"/admin/feedback/suggestion/?client={client.pk}").status_code == 404
    assert http_for(stranger).post(f"/admin/feedback/suggestion/{suggestion.pk}/apply/").status_code == 404
    assert "<strong>0</strong> suggestion(s) waiting" in http_for(stranger).get("/admin/").content.decode()

    page = http_for(am).get(f"/admin/tuning/client/{client.pk}/change/").content.decode()
    assert 'id="feedback-dashboard"' in page and "<svg" in page and "discount or urgency language" in page

    response = http_for(am).post(f"/admin/feedback/suggestion/{suggestion.pk}/dismiss/")
    assert response.status_code == 302
    assert Suggestion.objects.get(pk=suggestion.pk).status == SuggestionStatus.DISMISSED
