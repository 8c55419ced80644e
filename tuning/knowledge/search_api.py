"""`GET /api/v1/knowledge/search`: the knowledge search for people and integrations (issue #17).

Thin: read the query parameters, call `knowledge_search_for` (which asks the policy and finds the
client among the ones the caller may see), serialize the passages."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from spokestack.api.params import int_param
from spokestack.api.schema import ErrorEnvelopeSerializer
from spokestack.api.views import InstanceApiView

from .models import DocumentKind
from .selectors import MAX_LIMIT, knowledge_search_for

SEARCH_PARAMETERS = [
    OpenApiParameter("q", str, required=True, description="What to look for: words, a phrase, a product name."),
    OpenApiParameter("client_id", int, description="Search this client's documents and the instance's; without "
                     "it, the instance's documents only."),
    OpenApiParameter("kinds", str, description=f"Comma-separated kinds: {', '.join(DocumentKind.values)}."),
    OpenApiParameter("limit", int, description=f"How many passages, 1-{MAX_LIMIT} (default 5)."),
]

PassageSerializer = inline_serializer("KnowledgePassage", fields={
    "document_id": serializers.IntegerField(), "title": serializers.CharField(), "kind": serializers.CharField(),
    "heading": serializers.CharField(), "page": serializers.IntegerField(allow_null=True),
    "excerpt": serializers.CharField(), "score": serializers.FloatField(), "citation": serializers.CharField(),
    "url": serializers.CharField(), "chunk_id": serializers.IntegerField(),
}, many=True)


class KnowledgeSearchView(InstanceApiView):
    action = {"get": "knowledge.view"}

    @extend_schema(parameters=SEARCH_PARAMETERS,
                   responses={200: inline_serializer("KnowledgeSearch", fields={
                       "query": serializers.CharField(), "results": PassageSerializer}),
                       404: OpenApiResponse(ErrorEnvelopeSerializer,
                                            description="client_id names no client you may see.")},
                   summary="Ranked passages of a client's and the instance's ready documents, each with its citation.")
    def get(self, request):
        params = request.query_params
        client_id = int_param(params, "client_id", minimum=1)
        limit = int_param(params, "limit", minimum=1, maximum=MAX_LIMIT) or 5
        passages = knowledge_search_for(request.user, query=params.get("q", ""), client_id=client_id,
                                        kinds=params.get("kinds") or None, limit=limit)
        return Response({"query": " ".join(params.get("q", "").split()),
                         "results": [p.as_dict() for p in passages]})
