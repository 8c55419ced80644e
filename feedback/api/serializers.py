"""Output shapes of the feedback API; input is validated by the services."""

from rest_framework import serializers

from ..models import Feedback, Suggestion


class FeedbackSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.get_username", default=None, read_only=True)

    class Meta:
        model = Feedback
        fields = ["id", "run", "artifact", "client", "agent_type", "author", "verdict", "original_text",
                  "corrected_text", "reason", "category", "comment", "rating", "current", "created_at"]
        read_only_fields = fields


class FeedbackCreateSerializer(serializers.Serializer):
    """Documentation of the request body (the service validates it)."""

    run_id = serializers.UUIDField()
    artifact_id = serializers.IntegerField(required=False, help_text="Judge one artifact instead of the run's output.")
    verdict = serializers.ChoiceField(choices=["approved", "partially_approved", "corrected", "rejected"])
    corrected_text = serializers.CharField(
        required=False, help_text="Required when verdict is corrected (and different from the output); optional for "
                                  "partially_approved (what you would keep); ignored for approved and rejected.")
    reason = serializers.CharField(required=False)
    category = serializers.CharField(required=False)
    comment = serializers.CharField(required=False, help_text="A free comment, on any verdict.")
    rating = serializers.IntegerField(required=False, min_value=1, max_value=5)


class AnalysisRunSerializer(serializers.Serializer):
    """Documentation of the request body of running an analysis (the service validates it)."""

    agent_type = serializers.CharField(required=False, help_text="One agent type's feedback only; left out, all.")


class SuggestionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Suggestion
        fields = ["id", "client", "agent_type", "kind", "text", "confidence", "evidence_count", "examples", "origin",
                  "status", "rule_id", "auto_applied", "decided_at", "created_at"]
        read_only_fields = fields


class SuggestionIdsSerializer(serializers.Serializer):
    suggestion_ids = serializers.ListField(child=serializers.IntegerField(), min_length=1)


class AnalysisSerializer(serializers.Serializer):
    """A stored feedback analysis, with the current state of the suggestions it made."""

    id = serializers.IntegerField()
    client = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    agent_type = serializers.CharField(help_text="Empty: every agent type's feedback.")
    status = serializers.CharField(help_text="ok, or insufficient_data (too few feedback items; see message).")
    metrics = serializers.DictField(help_text="Counts and rates of the feedback in the window.")
    message = serializers.CharField(required=False)
    approved_examples = serializers.ListField(child=serializers.CharField(), required=False)
    model = serializers.DictField(required=False, help_text="The model request: requests, status, note, patterns.")
    suggestion_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    suggestions = SuggestionSerializer(many=True)


class DecidedSuggestionsSerializer(serializers.Serializer):
    suggestions = SuggestionSerializer(many=True)
