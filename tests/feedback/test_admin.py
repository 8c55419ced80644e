"""The feedback admin with Django's test client: the run page's feedback (per output and per
artifact, every verdict with a comment), the feedback list, the suggestion queue (filters, search,
bulk decisions, evidence as changed phrases), the client page's Apply / Dismiss, Analyze now and
its progress, and who may reach each of them."""

import html
import re
import uuid

import pytest
from django.db import connection
from django.test import Client as HttpClient

from agents.loop import execute_run
from agents.models import AgentRun, RunStatus
from agents.services import run_create
from feedback import tasks
from feedback.models import AnalysisJob, AnalysisJobStatus, Feedback, Suggestion, SuggestionStatus
from feedback.services import analysis_run, feedback_give
from spokestack.errors import NotFound
from tuning.models import ContentRule, Entity, TuningChange

from ..conftest import HOST_A, HOST_B
from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401

pytestmark = pytest.mark.django_db
THEME = "never:theme:discount_urgency"


@pytest.fixture
def http_for():
    def make(user, host=HOST_A):
        http = HttpClient(HTTP_HOST=host)
        http.force_login(user)
        return http

    return make


def _messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


def test_the_run_page_approves_rejects_and_corrects(in_a, make_client, assigned, finished_run, http_for):
    client = make_client()
    am = assigned("account_manager", client)
    run = finished_run(client, "Get 20% off today!")
    http = http_for(am)
    page = http.get(f"/admin/agents/agentrun/{run.pk}/change/").content.decode()
    assert 'id="feedback-approve"' in page and 'id="feedback-form-output"' in page and "Get 20% off today!" in page
    assert 'value="partially_approved"' in page and 'name="comment"' in page
    url = f"/admin/feedback/feedback/give/{run.pk}/"
    http.post(url, {"verdict": "corrected", "corrected_text": "", "reason": "x"})
    assert not Feedback.objects.filter(run=run).exists()  # refused with a message, nothing written
    # the form offers the output to edit: sent back unchanged, it corrects nothing
    response = http.post(url, {"verdict": "corrected", "corrected_text": "Get 20% off today!"}, follow=True)
    assert "Change the output's text, or choose another verdict" in _messages(response)
    http.post(url, {"verdict": "rejected", "reason": "Too pushy", "corrected_text": "Get 20% off today!",
                    "comment": "We never discount."})
    rejected = Feedback.objects.get(run=run, current=True)
    assert (rejected.corrected_text, rejected.comment) == ("", "We never discount.")
    http.post(url, {"verdict": "corrected", "corrected_text": "Glow gently.", "category": "tone", "rating": "3"})
    current = Feedback.objects.get(run=run, current=True)
    assert (current.verdict, current.corrected_text, current.rating) == ("corrected", "Glow gently.", 3)
    assert Feedback.objects.filter(run=run, current=False, verdict="rejected").exists()
    stranger = assigned("account_manager", make_client())
    assert http_for(stranger).post(url, {"verdict": "approved"}).status_code == 404


@pytest.fixture
def run_with_draft(in_a, make_client, assigned, scripted):  # noqa: F811
    """A run through the real loop that saved a draft (an artifact) and answered with an output."""
    client = make_client("Dune Rose")
    am = assigned("account_manager", client)
    marker = f"fbd-{uuid.uuid4().hex[:8]}"
    scripted.script(marker, [tool_turn(("toolu_fd1", "save_draft", {"title": "Ramadan caption",
                                                                     "content": "Get 20% off today! Glow gently."})),
                             text_turn("I saved the caption draft.")])
    run = run_create(actor=am, agent_type="copy", task=f"{marker}: a caption", client_id=client.pk, sandbox=True).run
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    return run, run.artifacts.get(kind="draft"), am


def test_partial_approval_with_a_comment_on_one_artifact(run_with_draft, http_for):
    run, draft, am = run_with_draft
    http = http_for(am)
    page = http.get(f"/admin/agents/agentrun/{run.pk}/change/").content.decode()
    assert f'id="feedback-form-artifact-{draft.pk}"' in page and "Artifact: Draft · Ramadan caption" in page
    response = http.post(f"/admin/feedback/feedback/give/{run.pk}/", {
        "verdict": "partially_approved", "artifact_id": str(draft.pk), "comment": "Keep the glow, lose the discount.",
        "corrected_text": "Glow gently.", "rating": "4"}, follow=True)
    assert "Feedback recorded on the artifact: partially approved." in _messages(response)
    row = Feedback.objects.get(run=run, current=True)
    assert (row.artifact_id, row.verdict, row.comment, row.corrected_text, row.original_text) == (
        draft.pk, "partially_approved", "Keep the glow, lose the discount.", "Glow gently.",
        "Get 20% off today! Glow gently.")
    given = re.search(r'<ul id="feedback-given".*?</ul>', response.content.decode(), re.S).group(0)
    assert 'data-verdict="partially_approved"' in given and f'data-target="artifact-{draft.pk}"' in given
    assert "Ramadan caption" in given and "Keep the glow, lose the discount." in given
    # the output itself is judged apart: both stay current
    http.post(f"/admin/feedback/feedback/give/{run.pk}/", {"verdict": "approved"})
    assert Feedback.objects.filter(run=run, current=True).count() == 2


def test_the_feedback_list_links_runs_and_clients_and_filters(in_a, make_client, assigned, finished_run, http_for):
    client, other = make_client("Lumen Skin"), make_client("Other Bank")
    am = assigned("account_manager", client)
    admin = assigned("instance_admin")
    mine = finished_run(client, "Radiant skin, every day.")
    theirs = finished_run(other, "Bank on us.")
    feedback_give(actor=am, run_id=mine.pk, verdict="partially_approved", comment="Nearly there", rating=4)
    feedback_give(actor=admin, run_id=theirs.pk, verdict="rejected", reason="Off brand")
    page = http_for(am).get("/admin/feedback/feedback/").content.decode()
    assert f'href="/admin/agents/agentrun/{mine.pk}/change/"' in page
    assert f'href="/admin/tuning/client/{client.pk}/change/"' in page and "Nearly there" in page
    assert "Partially approved" in page and "Other Bank" not in page
    http = http_for(admin)
    assert "Lumen Skin" in http.get("/admin/feedback/feedback/?verdict__exact=partially_approved").content.decode()
    rejected = http.get("/admin/feedback/feedback/?verdict__exact=rejected").content.decode()
    assert "Off brand" in rejected and "Nearly there" not in rejected
    assert "Nearly there" in http.get("/admin/feedback/feedback/?rating=4").content.decode()
    assert "Nearly there" not in http.get("/admin/feedback/feedback/?rating=none").content.decode()
    by_client = http.get(f"/admin/feedback/feedback/?client__id__exact={other.pk}").content.decode()
    assert "Off brand" in by_client and "Nearly there" not in by_client
    assert "Nearly there" in http.get("/admin/feedback/feedback/?agent_type=copy").content.decode()
    assert "Nearly there" in http.get("/admin/feedback/feedback/?q=Lumen").content.decode()
    assert "Nearly there" not in http.get("/admin/feedback/feedback/?q=Bank").content.decode()
    assert "Nearly there" in http.get("/admin/feedback/feedback/?created_at__gte=2000-01-01+00:00:00%2B00:00").content.decode()
    # the client filter offers only the clients the person may see
    assert "Other Bank" not in http_for(am).get("/admin/feedback/feedback/").content.decode()


@pytest.fixture
def queue(in_a, make_client, assigned, discount_corrections):
    client, other = make_client("Dune Rose"), make_client("Other Bank")
    am = assigned("account_manager", client)
    stranger = assigned("account_manager", other)
    discount_corrections(client, am)
    discount_corrections(other, stranger)
    analysis_run(client=client, use_model=False)
    analysis_run(client=other, use_model=False)
    return {"client": client, "other": other, "am": am, "stranger": stranger,
            "suggestion": Suggestion.objects.get(client=client, signature=THEME),
            "theirs": Suggestion.objects.get(client=other, signature=THEME)}


def test_queue_shows_evidence_as_the_phrases_that_changed(queue, http_for):
    page = http_for(queue["am"]).get("/admin/feedback/suggestion/").content.decode()
    assert "discount or urgency language" in page
    assert '<del class="removed" title="removed">Get 20% off today!</del>' in page
    assert '<span class="same">Glow gently with our</span>' in page  # a few words of context, not the whole text
    assert "<del>Get 20% off today! Glow gently with our rose serum." not in page
    waiting = Suggestion.objects.filter(client=queue["client"], status=SuggestionStatus.PENDING).count()
    assert f"<strong>{waiting}</strong> suggestion{'' if waiting == 1 else 's'} waiting" in http_for(queue["am"]).get("/admin/").content.decode()


def test_queue_filters_and_search(queue, http_for, assigned):
    http = http_for(assigned("instance_admin"))
    everything = http.get("/admin/feedback/suggestion/").content.decode()
    assert "Dune Rose" in everything and "Other Bank" in everything
    mine = http.get(f"/admin/feedback/suggestion/?client__id__exact={queue['client'].pk}").content.decode()
    assert "Dune Rose" in mine and 'class="client-link">Other Bank' not in mine
    assert 'class="client-link">Dune Rose' not in http.get("/admin/feedback/suggestion/?q=Other+Bank").content.decode()
    assert "discount or urgency" in http.get("/admin/feedback/suggestion/?q=urgency").content.decode()
    assert "discount or urgency" not in http.get("/admin/feedback/suggestion/?status__exact=applied").content.decode()
    assert "discount or urgency" in http.get("/admin/feedback/suggestion/?confidence=high").content.decode()
    assert "discount or urgency" not in http.get("/admin/feedback/suggestion/?confidence=low").content.decode()
    assert "discount or urgency" in http.get(
        "/admin/feedback/suggestion/?created_at__gte=2000-01-01+00:00:00%2B00:00").content.decode()
    # ?client= (the client page's link) lands on the client filter; another client's is a 404
    response = http_for(queue["am"]).get(f"/admin/feedback/suggestion/?client={queue['client'].pk}")
    assert response.status_code == 302 and response["Location"].endswith(f"client__id__exact={queue['client'].pk}")
    assert http_for(queue["stranger"]).get(f"/admin/feedback/suggestion/?client={queue['client'].pk}").status_code == 404


def test_bulk_apply_and_dismiss_each_through_the_service(queue, http_for):
    am, client = queue["am"], queue["client"]
    pending = list(Suggestion.objects.filter(client=client, status=SuggestionStatus.PENDING).order_by("pk"))
    first, rest = pending[0], pending[1:]
    http = http_for(am)
    http.post(f"/admin/feedback/suggestion/{first.pk}/apply/")  # decided before the bulk action
    ids = [s.pk for s in pending]
    response = http.post("/admin/feedback/suggestion/", {
        "action": "apply_selected", "_selected_action": ids, "decision_reason": "Brand book v3"}, follow=True)
    text = _messages(response)
    assert f"{len(rest)} suggestion{'' if len(rest) == 1 else 's'} applied" in text
    assert f"1 failed: #{first.pk} (Suggestion #{first.pk} is already applied.)" in text
    for suggestion in rest:
        assert Suggestion.objects.get(pk=suggestion.pk).status == SuggestionStatus.APPLIED
        entry = TuningChange.objects.get(entity=Entity.SUGGESTION, entity_id=str(suggestion.pk))
        assert entry.reason.startswith("Brand book v3 (Feedback suggestion #") and entry.actor == am
    assert ContentRule.objects.filter(client=client, source="feedback_suggestion").count() == len(pending)
    # the other client's suggestion, posted among the ids, is not touched (not in the person's queryset)
    http_for(queue["stranger"]).post("/admin/feedback/suggestion/", {
        "action": "dismiss_selected", "_selected_action": [queue["suggestion"].pk], "decision_reason": "no"})
    assert Suggestion.objects.get(pk=queue["suggestion"].pk).status == SuggestionStatus.APPLIED


def test_bulk_dismiss_and_who_sees_the_actions(queue, http_for, assigned):
    theirs = queue["theirs"]
    response = http_for(queue["stranger"]).post("/admin/feedback/suggestion/", {
        "action": "dismiss_selected", "_selected_action": [theirs.pk], "decision_reason": "Not for a bank"},
        follow=True)
    assert "1 suggestion dismissed: #" in _messages(response)
    entry = TuningChange.objects.get(entity=Entity.SUGGESTION, entity_id=str(theirs.pk))
    assert (entry.new_value, entry.reason) == ("dismissed", "Not for a bank")
    contact = assigned("client_contact", queue["client"])
    page = http_for(contact).get("/admin/feedback/suggestion/").content.decode()
    assert "discount or urgency" in page and "apply_selected" not in page and 'class="button default apply"' not in page
    response = http_for(contact).post("/admin/feedback/suggestion/", {
        "action": "apply_selected", "_selected_action": [queue["suggestion"].pk]})
    assert response.status_code == 403
    assert Suggestion.objects.get(pk=queue["suggestion"].pk).status == SuggestionStatus.PENDING


def test_apply_and_dismiss_from_the_client_page(queue, http_for):
    am, client, suggestion = queue["am"], queue["client"], queue["suggestion"]
    http = http_for(am)
    client_url = f"/admin/tuning/client/{client.pk}/change/"
    page = http.get(client_url).content.decode()
    panel = re.search(r'<div id="feedback-suggestions-panel">.*?</div>\s*<style>', page, re.S).group(0)
    apply_url = f"/admin/feedback/suggestion/{suggestion.pk}/apply/?next={client_url}"
    assert f'formaction="{apply_url}"' in panel and f'name="suggestion-reason-{suggestion.pk}"' in panel
    assert '<del class="removed" title="removed">' in panel and 'id="client-analyze-now"' in panel
    # the button posts the client's whole form (as the browser does) with the reason typed beside it
    response = http.post(apply_url, {"name": client.name, f"suggestion-reason-{suggestion.pk}": "Client asked",
                                     "suggestion-reason-999": "not this one"}, follow=True)
    assert response.redirect_chain[-1][0] == client_url
    assert f"Suggestion #{suggestion.pk} applied: it is now a client rule." in _messages(response)
    never = re.search(r'<section class="never">.*?</section>', response.content.decode(), re.S).group(0)
    assert html.escape(suggestion.text) in never
    entry = TuningChange.objects.get(entity=Entity.SUGGESTION, entity_id=str(suggestion.pk))
    assert entry.reason.startswith("Client asked (Feedback suggestion #")
    other = Suggestion.objects.filter(client=client, status=SuggestionStatus.PENDING).first()
    if other is not None:
        response = http.post(f"/admin/feedback/suggestion/{other.pk}/dismiss/?next={client_url}",
                             {f"suggestion-reason-{other.pk}": "Too broad"}, follow=True)
        assert f"Suggestion #{other.pk} dismissed." in _messages(response)
        assert TuningChange.objects.get(entity=Entity.SUGGESTION, entity_id=str(other.pk)).reason == "Too broad"
    # deciding again says why, and still comes back to the client page
    response = http.post(apply_url, {}, follow=True)
    assert "is already applied" in _messages(response) and response.redirect_chain[-1][0] == client_url


def test_analyze_now_runs_as_a_job_whose_progress_the_page_follows(queue, http_for, django_capture_on_commit_callbacks,
                                                                   monkeypatch):
    am, client = queue["am"], queue["client"]
    http = http_for(am)
    queued = []
    monkeypatch.setattr(tasks.analyze_client, "apply_async", lambda kwargs=None, **_: queued.append(kwargs))
    client_url = f"/admin/tuning/client/{client.pk}/change/"
    with django_capture_on_commit_callbacks(execute=True):
        response = http.post(f"/admin/feedback/suggestion/analyze/{client.pk}/?next={client_url}", follow=True)
    job = AnalysisJob.objects.get(client=client)
    assert queued == [{"schema": "tenant_a", "client_id": client.pk, "agent_type": "", "job_id": job.pk}]
    assert "Analysis of Dune Rose's feedback started" in _messages(response)
    page = response.content.decode()
    assert f'data-job="{job.pk}" data-status="queued"' in page and "queued for a worker" in page
    state = http.get(f"/admin/feedback/suggestion/analysis-job/{job.pk}/").json()
    assert (state["status"], state["finished"]) == ("queued", False)

    # new corrections give the analysis something new to suggest; then the worker runs the job
    for before, after in [("Act now: our rose serum glows.", "Our rose serum glows.")] * 3:
        run = run_create(actor=am, agent_type="copy", task="Write", client_id=client.pk).run
        AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, output=before)
        feedback_give(actor=am, run_id=run.pk, verdict="corrected", corrected_text=after)
    assert tasks.analyze_client(**queued[0]) is not None
    assert tasks.analyze_client(**queued[0]) is None  # a second delivery finds the job taken
    job.refresh_from_db()
    assert job.status == AnalysisJobStatus.DONE and job.created_suggestions >= 1
    state = http.get(f"/admin/feedback/suggestion/analysis-job/{job.pk}/").json()
    assert state["finished"] and state["message"].startswith(
        f"Analysis of Dune Rose's feedback finished: {job.created_suggestions} new suggestion")
    assert f'data-job="{job.pk}" data-status="done"' in http.get("/admin/feedback/suggestion/").content.decode()


def test_a_job_whose_message_or_worker_was_lost_is_sent_again_when_its_page_reads_it(
        queue, http_for, django_capture_on_commit_callbacks, monkeypatch):
    """Faults: the broker was down when "Analyze now" queued the job (its message never arrived), or
    the worker running it was killed. Reading the job's progress sends it again, once, however many
    pages poll; a second delivery of the same message still runs it once."""
    from datetime import timedelta

    from django.utils import timezone

    am, client = queue["am"], queue["client"]
    http = http_for(am)
    sent = []
    monkeypatch.setattr(tasks.analyze_client, "apply_async", lambda kwargs=None, **_: sent.append(kwargs))
    job = AnalysisJob.objects.create(client=client, requested_by=am)  # its message was lost
    url = f"/admin/feedback/suggestion/analysis-job/{job.pk}/"
    with django_capture_on_commit_callbacks(execute=True):
        assert http.get(url).json()["status"] == "queued"
    assert sent == [], "a job just queued is not sent twice"
    AnalysisJob.objects.filter(pk=job.pk).update(queued_at=timezone.now() - timedelta(seconds=31))
    with django_capture_on_commit_callbacks(execute=True):
        http.get(url), http.get(url)
    assert sent == [{"schema": "tenant_a", "client_id": client.pk, "agent_type": "", "job_id": job.pk}]

    assert tasks.analyze_client(**sent[0]) is not None  # it ran; now as if its worker had died mid-way
    AnalysisJob.objects.filter(pk=job.pk).update(status=AnalysisJobStatus.RUNNING,
                                                 started_at=timezone.now() - timedelta(seconds=421))
    with django_capture_on_commit_callbacks(execute=True):
        assert http.get(url).json()["status"] == "queued"
    assert len(sent) == 2
    assert tasks.analyze_client(**sent[1]) is not None and tasks.analyze_client(**sent[1]) is None
    job.refresh_from_db()
    assert job.status == AnalysisJobStatus.DONE


def test_a_failed_job_says_why(queue, http_for):
    from feedback.jobs import analysis_job_run

    job = AnalysisJob.objects.create(client=queue["client"], requested_by=queue["stranger"])
    with pytest.raises(NotFound):  # the stranger may not analyse this client
        analysis_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == AnalysisJobStatus.FAILED and job.error


def test_another_clients_account_manager_reaches_none_of_it(queue, http_for, finished_run):
    am, stranger, suggestion = queue["am"], queue["stranger"], queue["suggestion"]
    run = finished_run(queue["client"], "Radiant skin.")
    feedback_give(actor=am, run_id=run.pk, verdict="partially_approved", comment="Secret note")
    job = AnalysisJob.objects.create(client=queue["client"], requested_by=am)
    http = http_for(stranger)
    assert "Secret note" not in http.get("/admin/feedback/feedback/").content.decode()
    assert "Secret note" not in http.get("/admin/feedback/feedback/?q=Secret").content.decode()
    feedback = Feedback.objects.get(run=run)
    assert http.get(f"/admin/feedback/feedback/{feedback.pk}/change/").status_code == 404
    assert http.post(f"/admin/feedback/feedback/give/{run.pk}/", {"verdict": "approved"}).status_code == 404
    assert http.get(f"/admin/feedback/suggestion/{suggestion.pk}/change/").status_code == 404
    for url in (f"/admin/feedback/suggestion/{suggestion.pk}/apply/", f"/admin/feedback/suggestion/{suggestion.pk}/dismiss/",
                f"/admin/feedback/suggestion/analyze/{queue['client'].pk}/"):
        assert http.post(url, {f"suggestion-reason-{suggestion.pk}": "x"}).status_code == 404, url
    assert http.get(f"/admin/feedback/suggestion/analysis-job/{job.pk}/").status_code == 404
    assert http.get(f"/admin/tuning/client/{queue['client'].pk}/change/").status_code == 404
    assert Suggestion.objects.get(pk=suggestion.pk).status == SuggestionStatus.PENDING
    assert AnalysisJob.objects.filter(client=queue["client"]).count() == 1


def test_another_instances_admin_reaches_none_of_it(queue, http_for, instance_a, instance_b, make_user, finished_run):
    run = finished_run(queue["client"], "Radiant skin.")
    feedback_give(actor=queue["am"], run_id=run.pk, verdict="partially_approved", comment="Secret note")
    job = AnalysisJob.objects.create(client=queue["client"], requested_by=queue["am"])
    suggestion = queue["suggestion"]
    connection.set_tenant(instance_b)
    http = http_for(make_user("instance_admin", email="admin-b@example.com"), host=HOST_B)
    assert "Secret note" not in http.get("/admin/feedback/feedback/").content.decode()
    assert "discount or urgency" not in http.get("/admin/feedback/suggestion/").content.decode()
    assert http.post(f"/admin/feedback/feedback/give/{run.pk}/", {"verdict": "approved"}).status_code == 404
    for url in (f"/admin/feedback/suggestion/{suggestion.pk}/apply/", f"/admin/feedback/suggestion/{suggestion.pk}/dismiss/",
                f"/admin/feedback/suggestion/analyze/{queue['client'].pk}/"):
        assert http.post(url).status_code == 404, url
    assert http.get(f"/admin/feedback/suggestion/analysis-job/{job.pk}/").status_code == 404
    connection.set_tenant(instance_a)
    assert Suggestion.objects.get(pk=suggestion.pk).status == SuggestionStatus.PENDING
    assert not Feedback.objects.filter(run=run, verdict="approved").exists()
