"""The feedback API on the instance host. Thin views: one service or selector each."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from spokestack.api.params import choice_param
from spokestack.api.views import InstanceApiView
from spokestack.errors import InvalidInput, NotFound
from tuning.selectors import client_get

from .. import selectors, services
from ..models import SuggestionStatus
from .serializers import (
    AnalysisRunSerializer,
    AnalysisSerializer,
    DecidedSuggestionsSerializer,
    FeedbackCreateSerializer,
    FeedbackSerializer,
    SuggestionIdsSerializer,
    SuggestionSerializer,
)

FEEDBACK_FIELDS = ("run_id", "artifact_id", "verdict", "corrected_text", "reason", "category", "comment", "rating")


class FeedbackApiView(InstanceApiView):
    """Fails closed (InstanceApiView)."""


class FeedbackCreateView(FeedbackApiView):
    action = "feedback.add"

    @extend_schema(request=FeedbackCreateSerializer, responses={201: FeedbackSerializer},
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


AGENT_TYPE_PARAM = OpenApiParameter("agent_type", str, required=False,
                                    description="One agent type's feedback only; left out, all of them.")
ANALYSIS_SHAPE = ("{id, client, created_at, status, metrics, patterns, model, suggestion_ids, …, suggestions}: "
                  "the stored result and the current state of the suggestions it made.")


class ClientAnalysisView(FeedbackApiView):
    """GET reads the latest stored analysis (no side effects, no model tokens); POST runs a new one."""

    action = {"get": "analysis.view", "post": "analysis.run"}

    @extend_schema(parameters=[AGENT_TYPE_PARAM],
                   responses={200: OpenApiResponse(AnalysisSerializer, description=ANALYSIS_SHAPE),
                              404: OpenApiResponse(description="No such client, or no analysis of it yet.")},
                   summary="The client's latest feedback analysis, as stored: runs nothing (POST runs one).")
    def get(self, request, client_id: int):
        client = client_get(actor=request.user, client_id=client_id)
        agent_type = request.query_params.get("agent_type", "")
        analysis = selectors.analysis_latest_visible(actor=request.user, client=client, agent_type=agent_type)
        if analysis is None:
            raise NotFound("No analysis of this client yet; POST to this URL to run one.",
                           details={"client_id": client.pk, "agent_type": agent_type})
        return Response(self._shown(client, analysis))

    @extend_schema(parameters=[AGENT_TYPE_PARAM], request=AnalysisRunSerializer,
                   responses={201: OpenApiResponse(AnalysisSerializer, description=ANALYSIS_SHAPE)},
                   summary="Analyse the client's feedback now (one model request): metrics, patterns, suggestions.")
    def post(self, request, client_id: int):
        client = client_get(actor=request.user, client_id=client_id)
        analysis = services.analysis_run(client=client, agent_type=self._agent_type_to_run(), actor=request.user)
        return Response(self._shown(client, analysis), status=status.HTTP_201_CREATED)

    def _agent_type_to_run(self) -> str:
        """From the body (`{"agent_type": …}`) or, as the GET takes it, the query string; not two different ones."""
        data = self.body()
        unknown = sorted(set(data) - {"agent_type"})
        if unknown:
            raise InvalidInput(f"{unknown[0]}: is not an analysis field; the body takes only agent_type.")
        in_body, in_query = data.get("agent_type") or "", self.request.query_params.get("agent_type", "")
        if in_body and in_query and in_body != in_query:
            raise InvalidInput("agent_type: given twice, differently (body and query string); send it once.",
                               details={"agent_type": [in_body, in_query]})
        return in_body or in_query

    def _shown(self, client, analysis) -> dict:
        suggestions = selectors.suggestions_visible_to(actor=self.request.user, client=client).filter(
            pk__in=analysis.result.get("suggestion_ids", []))
        return {"id": analysis.pk, "client": client.pk, "created_at": analysis.created_at,
                **analysis.result, "suggestions": SuggestionSerializer(suggestions, many=True).data}


class ClientSuggestionsView(FeedbackApiView):
    action = "suggestion.view"

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=SuggestionStatus.values)],
                   responses=SuggestionSerializer(many=True), summary="The client's suggestions (?status=pending).")
    def get(self, request, client_id: int):
        client = client_get(actor=request.user, client_id=client_id)
        rows = selectors.suggestions_visible_to(actor=request.user, client=client)
        if status_ := choice_param(request.query_params, "status", SuggestionStatus.values):
            rows = rows.filter(status=status_)
        return Response(SuggestionSerializer(rows, many=True).data)


class _DecideView(FeedbackApiView):
    action = "suggestion.decide"
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

    @extend_schema(request=SuggestionIdsSerializer, responses=DecidedSuggestionsSerializer,
                   summary="Apply suggestions: each becomes a client rule.")
    def post(self, request, client_id: int):
        return super().post(request, client_id)


class DismissSuggestionsView(_DecideView):
    decide = staticmethod(services.suggestion_dismiss)

    @extend_schema(request=SuggestionIdsSerializer, responses=DecidedSuggestionsSerializer,
                   summary="Dismiss suggestions until new evidence arrives.")
    def post(self, request, client_id: int):
        return super().post(request, client_id)
