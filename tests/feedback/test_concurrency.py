"""Two people apply the same suggestion at the same moment: the database decides, one rule results."""

import threading

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from feedback.models import Suggestion, SuggestionStatus
from feedback.services import analysis_run, feedback_give, suggestion_apply
from spokestack.errors import InvalidInput
from tuning.models import ContentRule, RuleSource
from tuning.services import client_create

from .conftest import DISCOUNT_PAIRS


@pytest.mark.live
def test_concurrent_applies_create_one_rule(live_instance, live_db):
    from agents.models import AgentRun, RunStatus
    from agents.services import run_create

    schema = live_instance.instance.schema_name
    with schema_context(schema):
        client = client_create(name="Race Rose")
        for i in range(12):
            before, after = DISCOUNT_PAIRS[i % 3]
            run = run_create(actor=None, agent_type="copy", task=f"caption {i}", client_id=client.pk).run
            # the run as the worker finishes it (no worker in this test: the row is what matters here)
            AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, output=before)
            feedback_give(actor=None, run_id=run.pk, verdict="corrected", corrected_text=after)
        analysis_run(client=client, use_model=False)
        suggestion = Suggestion.objects.get(client=client, signature="never:theme:discount_urgency")
    connection.set_schema_to_public()

    barrier = threading.Barrier(2)
    outcomes = []

    def apply():
        try:
            with schema_context(schema):
                row = Suggestion.objects.select_related("client").get(pk=suggestion.pk)
                barrier.wait(10)
                try:
                    suggestion_apply(actor=None, suggestion=row)
                    outcomes.append("applied")
                except InvalidInput as exc:
                    outcomes.append(exc.message)
        finally:
            connection.close()

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes.count("applied") == 1 and len(outcomes) == 2
    assert "already applied" in next(o for o in outcomes if o != "applied")
    with schema_context(schema):
        assert ContentRule.objects.filter(client=client, source=RuleSource.FEEDBACK_SUGGESTION).count() == 1
        assert Suggestion.objects.get(pk=suggestion.pk).status == SuggestionStatus.APPLIED
