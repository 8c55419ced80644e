"""Request and response shapes of the version-control API, for its OpenAPI contract. Input is
validated by the services (so the admin and the API refuse the same values with the same
messages); these document it, and what the selectors return."""

from rest_framework import serializers

from ..comparison import VERDICTS
from ..models import Recommendation, SandboxSession, UpdateNotification, UpdatePolicy, VersionChange
from ..services import REVIEW_ACTIONS


class CatalogVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    release_date = serializers.CharField(help_text="YYYY-MM-DD, or empty.")
    notes = serializers.CharField()
    breaking = serializers.BooleanField()
    optimization_tags = serializers.JSONField()
    tool_changes = serializers.JSONField()
    prompt_changes = serializers.JSONField()
    behaviour_changes = serializers.JSONField()
    deprecations = serializers.JSONField()
    min_platform_version = serializers.CharField()
    sunset_date = serializers.CharField(help_text="YYYY-MM-DD, or empty: no sunset announced.")
    tools = serializers.ListField(child=serializers.CharField())
    is_current = serializers.BooleanField()


class AgentVersionsSerializer(serializers.Serializer):
    agent_type = serializers.CharField()
    versions = CatalogVersionSerializer(many=True)


class UpdateNotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    agent_type = serializers.CharField()
    from_version = serializers.CharField()
    version = serializers.CharField()
    recommendation = serializers.ChoiceField(choices=Recommendation.choices)
    reason = serializers.CharField()
    status = serializers.ChoiceField(choices=UpdateNotification.Status.choices)
    analysis = serializers.JSONField()
    content = serializers.CharField(help_text="The notification (markdown).")
    emailed_to = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    reviewed_at = serializers.DateTimeField(allow_null=True)


class UpdateListSerializer(serializers.Serializer):
    results = UpdateNotificationSerializer(many=True, help_text="Newest first, at most 200.")


class VersionHistorySerializer(serializers.Serializer):
    version = serializers.CharField()
    from_version = serializers.CharField()
    action = serializers.ChoiceField(choices=VersionChange.Action.choices)
    activated_at = serializers.DateTimeField()
    activated_by = serializers.EmailField(allow_null=True)
    reason = serializers.CharField()


class VersionStateSerializer(serializers.Serializer):
    agent_type = serializers.CharField()
    current_version = serializers.CharField()
    pinned_version = serializers.CharField(help_text="Empty: follows releases per the policy.")
    policy = serializers.ChoiceField(choices=UpdatePolicy.choices)
    sandbox_version = serializers.CharField()
    optimization_preferences = serializers.ListField(child=serializers.CharField())
    notify = serializers.BooleanField()
    notify_contacts = serializers.ListField(child=serializers.CharField())
    latest_version = serializers.CharField()
    update_available = serializers.BooleanField()
    pending_update = UpdateNotificationSerializer(allow_null=True)
    history = VersionHistorySerializer(many=True)


class VersionConfigSerializer(serializers.Serializer):
    """Only the fields sent change."""

    pinned_version = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                           help_text="Pin (activates it if it is not current); null or \"\" unpins.")
    policy = serializers.ChoiceField(choices=UpdatePolicy.choices, required=False)
    optimization_preferences = serializers.ListField(child=serializers.CharField(), required=False)
    notify = serializers.BooleanField(required=False)
    notify_contacts = serializers.ListField(child=serializers.EmailField(), required=False)
    reason = serializers.CharField(required=False, help_text="Kept in the version history.")


class VersionRollbackSerializer(serializers.Serializer):
    version = serializers.CharField()
    reason = serializers.CharField(help_text="Kept in the version history.")
    force = serializers.BooleanField(required=False, default=False,
                                     help_text="Switch to a version this instance never ran.")


class ReviewSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=REVIEW_ACTIONS)
    reason = serializers.CharField(required=False)


class ComparisonSideSerializer(serializers.Serializer):
    run_id = serializers.UUIDField()
    version = serializers.CharField()
    status = serializers.CharField()
    output = serializers.CharField()
    error = serializers.CharField()
    output_length = serializers.IntegerField()
    tools_used = serializers.ListField(child=serializers.CharField())
    simulated_writes = serializers.ListField(child=serializers.JSONField())
    tool_errors = serializers.ListField(child=serializers.DictField())
    duration_s = serializers.FloatField(allow_null=True)
    cost_usd = serializers.FloatField()
    tool_calls = serializers.IntegerField(help_text="How many tool calls the run made.")


class SandboxClientSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class SpecializationSerializer(serializers.Serializer):
    vertical = serializers.CharField(required=False)
    region = serializers.CharField(required=False)
    language = serializers.CharField(required=False)


class ComparisonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    task = serializers.CharField()
    created_at = serializers.DateTimeField()
    client = SandboxClientSerializer(allow_null=True, help_text="The client both runs worked for, if any.")
    specialization = SpecializationSerializer(help_text="The normalised specialization of both runs.")
    finished = serializers.BooleanField()
    verdict = serializers.ChoiceField(choices=list(VERDICTS.items()))
    verdict_label = serializers.CharField()
    current = ComparisonSideSerializer(help_text="Per agent type also: bid_strategy, objective, budget_split "
                                                 "(media_buying); requirements_found (rfp).")
    test = ComparisonSideSerializer()
    tools_added = serializers.ListField(child=serializers.CharField())
    tools_removed = serializers.ListField(child=serializers.CharField())
    tool_calls_change = serializers.IntegerField(help_text="Test version's tool calls minus the current version's.")
    cost_change_usd = serializers.FloatField(help_text="Test version's cost minus the current version's.")
    output_length_change = serializers.IntegerField()
    output_length_change_pct = serializers.FloatField(allow_null=True)
    differences = serializers.DictField(child=serializers.DictField())


class SandboxSummarySerializer(serializers.Serializer):
    tests_run = serializers.IntegerField()
    finished = serializers.IntegerField(help_text="Tests whose runs on both versions ended.")
    passed = serializers.IntegerField(help_text="Finished tests in which the test version succeeded.")
    failed = serializers.IntegerField(help_text="Finished tests in which the test version failed.")


class SandboxSessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    agent_type = serializers.CharField()
    current_version = serializers.CharField()
    test_version = serializers.CharField()
    status = serializers.ChoiceField(choices=SandboxSession.Status.choices)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    expired = serializers.BooleanField()
    time_left = serializers.CharField(help_text='Until the session expires, e.g. "23 h 12 min"; empty once it ended.')
    created_by = serializers.EmailField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.EmailField(allow_null=True, help_text="Who promoted, rejected or deferred it.")
    decision_reason = serializers.CharField(allow_blank=True)
    notes = serializers.CharField(allow_blank=True, help_text="Review notes kept with the session.")
    tests = ComparisonSerializer(many=True, required=False, help_text="Left out in a review's answer.")
    summary = SandboxSummarySerializer(required=False, help_text="With the tests.")
    evals = serializers.JSONField(required=False, allow_null=True, help_text=(
        "The eval set on both versions, side by side: {state: running|ok|fewer|incomplete, message, current, test, "
        "cases: [{case_id, title, current, test}], regressions: [{case_id, title, failures}]}; null when neither "
        "version was evaluated."))


class ReviewedUpdateSerializer(UpdateNotificationSerializer):
    sandbox = SandboxSessionSerializer(required=False, help_text="The session opened by action=sandbox.")


class SandboxCreateSerializer(serializers.Serializer):
    agent_type = serializers.CharField()
    test_version = serializers.CharField()


class SandboxTestSerializer(serializers.Serializer):
    task = serializers.CharField()
    client_id = serializers.IntegerField(required=False, allow_null=True,
                                         help_text="Run both versions for this client (its tuning and tools).")
    specialization = SpecializationSerializer(required=False, allow_null=True,
                                              help_text='e.g. {"region": "uae"} (normalised: GCC).')


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, help_text="Kept with the session, in the version history and "
                                                             "the audit log.")
    notes = serializers.CharField(required=False, help_text="Review notes kept with the session.")
