"""The scheduled analysis: a beat entry, a public task over every instance, one task per client."""

import pytest
from django.conf import settings

from feedback import tasks
from feedback.models import Analysis, Suggestion
from feedback.services import analysis_run, suggestion_apply
from tuning.models import ContentRule

pytestmark = pytest.mark.django_db


def test_the_beat_schedule_runs_the_public_task():
    entry = settings.CELERY_BEAT_SCHEDULE["analyze-feedback"]
    assert entry["task"] == "feedback.analyze_all_instances" and entry["schedule"] > 0
    assert tasks.analyze_all_instances.public and not tasks.analyze_client.public


def test_the_scheduled_task_queues_one_analysis_per_client_with_feedback(in_a, make_client, discount_corrections,
                                                                         monkeypatch):
    with_feedback, make_client_without = make_client(), make_client()
    discount_corrections(with_feedback, None, n=3)
    queued = []
    monkeypatch.setattr(tasks.analyze_client, "delay", lambda **kwargs: queued.append(kwargs))
    assert tasks.analyze_all_instances() == len(queued)
    assert {"schema": "tenant_a", "client_id": with_feedback.pk} in queued
    assert all(q["client_id"] != make_client_without.pk for q in queued)


def test_the_client_task_analyses_in_its_schema(in_a, make_client, discount_corrections):
    client = make_client()
    discount_corrections(client, None, n=10)
    analysis_id = tasks.analyze_client(schema="tenant_a", client_id=client.pk)
    assert Analysis.objects.get(pk=analysis_id).status == "ok"
    assert tasks.analyze_client(schema="tenant_a", client_id=987654) is None


def test_per_agent_type_analysis_suggests_an_agent_specific_rule(in_a, make_client, assigned, discount_corrections):
    client = make_client()
    am = assigned("account_manager", client)
    discount_corrections(client, am)
    analysis_run(client=client, agent_type="copy", use_model=False)
    suggestion = Suggestion.objects.get(client=client, agent_type="copy", signature="never:theme:discount_urgency")
    rule = ContentRule.objects.get(pk=suggestion_apply(actor=am, suggestion=suggestion).rule_id)
    assert rule.agent_type == "copy"
    assert analysis_run(client=client, agent_type="brief", use_model=False).status == "insufficient_data"
