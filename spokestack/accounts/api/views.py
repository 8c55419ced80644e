from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from spokestack.api.views import InstanceApiView

from ..models import ApiToken
from ..roles import roles_of
from ..services import api_token_create, api_token_revoke
from .serializers import ApiTokenCreateSerializer, ApiTokenSerializer, IssuedTokenSerializer, MeSerializer


class MeView(InstanceApiView):
    action = "profile.view"

    @extend_schema(responses=MeSerializer, summary="Who the credentials belong to, and in which instance.")
    def get(self, request):
        user, instance = request.user, request.tenant
        data = {
            "email": user.email,
            "name": user.get_full_name() or user.email,
            "roles": sorted(roles_of(user)),
            "instance": {"name": instance.name, "schema": instance.schema_name, "tier": instance.tier},
        }
        return Response(MeSerializer(data).data)


class ApiTokenListView(InstanceApiView):
    action = "token.create"

    @extend_schema(responses=ApiTokenSerializer(many=True), summary="Your API tokens (never their values).")
    def get(self, request):
        tokens = ApiToken.objects.filter(user=request.user)
        return Response(ApiTokenSerializer(tokens, many=True).data)

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: IssuedTokenSerializer},
                   summary="Create an API token for yourself; the value is shown once.")
    def post(self, request):
        serializer = ApiTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = api_token_create(user=request.user, actor=request.user, **serializer.validated_data)
        data = {**ApiTokenSerializer(issued.token).data, "token": issued.raw}
        return Response(data, status=status.HTTP_201_CREATED)


class ApiTokenDetailView(InstanceApiView):
    action = "token.create"

    @extend_schema(responses={204: None}, summary="Revoke one of your API tokens.")
    def delete(self, request, token_id: int):
        token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
        api_token_revoke(token=token, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
