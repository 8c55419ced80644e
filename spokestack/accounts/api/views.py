from typing import Any

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from spokestack.api.pagination import Pagination
from spokestack.api.params import choice_param, text_param
from spokestack.api.views import InstanceApiView, validated_body

from .. import selectors, services
from ..models import ApiToken
from ..roles import roles_of
from ..services import api_token_create, api_token_revoke
from .serializers import (
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    IssuedTokenSerializer,
    MeSerializer,
    UserCreateSerializer,
    UserSerializer,
    UserUpdateSerializer,
)


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


AUDIT_KEYS = ("reason", "ticket")


def _split(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    return {k: v for k, v in data.items() if k not in AUDIT_KEYS}, {k: data[k] for k in AUDIT_KEYS if k in data}


def users_payload(users) -> list[dict[str, Any]]:
    """People as the API shows them: their role and assignments read for the whole page at once."""
    users = list(users)
    assignments = selectors.assignments_by_user([user.pk for user in users])
    return [{"id": user.pk, "email": user.email, "first_name": user.first_name, "last_name": user.last_name,
             "role": next((r for r in services.ROLE_ORDER if r in {g.name for g in user.groups.all()}), None),
             "is_active": user.is_active, "has_password": user.has_usable_password(),
             "assignments": assignments.get(user.pk, []), "date_joined": user.date_joined,
             "last_login": user.last_login} for user in users]


ACTIVE_PARAM = OpenApiParameter("is_active", bool, description="true: only active people; false: only deactivated.")


class UserListView(InstanceApiView):
    action = {"get": "user.view", "post": "user.manage"}
    pagination_class = Pagination

    @extend_schema(parameters=[ACTIVE_PARAM], responses=UserSerializer(many=True),
                   summary="The people of this instance, with their roles and client assignments.")
    def get(self, request):
        people = selectors.people()
        active = choice_param(request.query_params, "is_active", ["true", "false"])
        if active is not None:
            people = people.filter(is_active=active == "true")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(people, request, view=self)
        return paginator.get_paginated_response(UserSerializer(users_payload(page), many=True).data)

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer},
                   summary="Add a person with a role (no password: an instance admin sets one in the admin); "
                           "audited.")
    def post(self, request):
        fields, audit = _split(validated_body(UserCreateSerializer, request.data))
        user = services.user_create(actor=request.user, password=None, **fields, **audit)
        return Response(UserSerializer(users_payload([user])[0]).data, status=status.HTTP_201_CREATED)


class UserDetailView(InstanceApiView):
    action = {"get": "user.view", "patch": "user.manage", "delete": "user.manage"}

    @extend_schema(responses=UserSerializer, summary="One person.")
    def get(self, request, user_id: int):
        return Response(UserSerializer(users_payload([selectors.person_get(user_id=user_id)])[0]).data)

    @extend_schema(request=UserUpdateSerializer, responses=UserSerializer,
                   summary="Change a person's details, role (dropping client assignments the new role cannot "
                           "hold) or is_active; each change audited.")
    def patch(self, request, user_id: int):
        user = selectors.person_get(user_id=user_id)
        fields, audit = _split(validated_body(UserUpdateSerializer, request.data))
        with transaction.atomic():
            details = {k: fields[k] for k in services.USER_DETAIL_FIELDS if k in fields}
            if details:
                user = services.user_update(actor=request.user, user=user, changes=details, **audit)
            if "role" in fields:
                user = services.user_update_role(actor=request.user, user=user, role=fields["role"], **audit)
            if fields.get("is_active") is False:
                user = services.user_deactivate(actor=request.user, user=user, **audit)
            elif fields.get("is_active") is True:
                user = services.user_reactivate(actor=request.user, user=user, **audit)
        return Response(UserSerializer(users_payload([selectors.person_get(user_id=user.pk)])[0]).data)

    @extend_schema(parameters=[OpenApiParameter("reason", str, description="Why: kept in the audit log.")],
                   responses={204: None},
                   summary="Deactivate a person (never a delete: their history stays); audited and reversible.")
    def delete(self, request, user_id: int):
        user = selectors.person_get(user_id=user_id)
        services.user_deactivate(actor=request.user, user=user, reason=text_param(request.query_params, "reason"))
        return Response(status=status.HTTP_204_NO_CONTENT)
