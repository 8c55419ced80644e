"""The feedback API on the instance host. Thin views: one service or selector each."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from spokestack.api.views import InstanceApiView
from spokestack.errors import InvalidInput, NotFound
from tuning.selectors import client_get

from .. import selectors, services
from .serializers import FeedbackCreateSerializer, FeedbackSerializer, SuggestionIdsSerializer, SuggestionSerializer

FEEDBACK_FIELDS = ("run_id", "artifact_id", "verdict", "corrected_text", "reason", "category", "comment", "rating")


class FeedbackApiView(InstanceApiView):
    """Fails closed (InstanceApiView)."""


class FeedbackCreateView(FeedbackApiView):
    @extend_schema(request=FeedbackCreateSerializer, responses=FeedbackSerializer,
                   summary="Approve, reject, correct or partially approve a run's output (or one artifact).")
    def post(self, request):
        data = self.body()
        unknown = sorted(set(data) - set(FEEDBACK_FIELDS))
        if unknown:
            raise InvalidInput(f"{unknown[0]}: is not a feedback field; use {', '.join(FEEDBACK_FIELDS)}.")
        if not data.get("run_id"):
            raise InvalidInput("run_id: say which run's output you judge.", details={"run_id": ["required"]})
        if not data.get("verdict"):
            raise InvalidInput("verdict: approved, partially_approved, corrected or rejected.",
                               details={"verdict": ["required"]})
        feedback = services.feedback_give(actor=request.user, **{k: data[k] for k in FEEDBACK_FIELDS if k in data})
        return Response(FeedbackSerializer(feedback).data, status=status.HTTP_201_CREATED)


class ClientAnalysisView(FeedbackApiView):
    @extend_schema(summary="Analyse the client's feedback now: metrics, patterns, suggestions.")
    def get(self, request, client_id: int):
        client = client_get(actor=request.user, client_id=client_id)
        agent_type = request.query_params.get("agent_type", "")
        analysis = services.analysis_run(client=client, agent_type=agent_type, actor=request.user)
        suggestions = selectors.suggestions_visible_to(actor=request.user, client=client).filter(
            pk__in=analysis.result.get("suggestion_ids", []))
        return Response({"id": analysis.pk, "client": client.pk, "created_at": analysis.created_at,
                         **analysis.result, "suggestions": SuggestionSerializer(suggestions, many=True).data})


class ClientSuggestionsView(FeedbackApiView):
    @extend_schema(responses=SuggestionSerializer(many=True), summary="The client's suggestions (?status=pending).")
    def get(self, request, client_id: int):
        client = client_get(actor=request.user, client_id=client_id)
        rows = selectors.suggestions_visible_to(actor=request.user, client=client)
        if request.query_params.get("status"):
            rows = rows.filter(status=request.query_params["status"])
        return Response(SuggestionSerializer(rows, many=True).data)


class _DecideView(FeedbackApiView):
    decide = staticmethod(services.suggestion_apply)

    def post(self, request, client_id: int):
        client = client_get(actor=request.user, client_id=client_id)
        serializer = SuggestionIdsSerializer(data=self.body())
        serializer.is_valid(raise_exception=True)
        decided = []
        with transaction.atomic():  # all or none
            for suggestion_id in serializer.validated_data["suggestion_ids"]:
                suggestion = selectors.suggestion_get(actor=request.user, suggestion_id=suggestion_id)
                if suggestion.client_id != client.pk:
                    raise NotFound("No such suggestion for this client.", details={"suggestion_id": suggestion_id})
                decided.append(self.decide(actor=request.user, suggestion=suggestion))
        return Response({"suggestions": SuggestionSerializer(decided, many=True).data})


class ApplySuggestionsView(_DecideView):
    decide = staticmethod(services.suggestion_apply)

    @extend_schema(request=SuggestionIdsSerializer, summary="Apply suggestions: each becomes a client rule.")
    def post(self, request, client_id: int):
        return super().post(request, client_id)


class DismissSuggestionsView(_DecideView):
    decide = staticmethod(services.suggestion_dismiss)

    @extend_schema(request=SuggestionIdsSerializer, summary="Dismiss suggestions until new evidence arrives.")
    def post(self, request, client_id: int):
        return super().post(request, client_id)
