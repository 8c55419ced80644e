"""Skill API on the instance host: list/create per agent type, read/change/delete, test."""

from __future__ import annotations

from django.db import connection
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from spokestack.api.params import text_param
from spokestack.api.views import InstanceApiView
from spokestack.catalog import require_agent_type
from spokestack.errors import NotFound

from ..executor import SkillContext, skill_execute
from ..selectors import skill_get, skills_for_agent_type, skills_with_metrics
from ..services import skill_create, skill_delete, skill_update
from .serializers import (
    SkillCreatedSerializer,
    SkillSerializer,
    SkillTestResultSerializer,
    SkillTestSerializer,
    SkillWriteSerializer,
)


class SkillView(InstanceApiView):
    """Fails closed (InstanceApiView): policy `skill.view` to read, `skill.edit` to change."""

    def _skill(self, skill_id):
        skill = skill_get(skill_id=skill_id)
        if skill is None:
            raise NotFound("No such skill in this instance.", details={"skill_id": str(skill_id)})
        return skill


class AgentSkillsView(SkillView):
    action = {"get": "skill.view", "post": "skill.edit"}

    @extend_schema(responses=SkillSerializer(many=True), summary="The skills offered to an agent type.")
    def get(self, request, agent_type: str):
        require_agent_type(agent_type)
        skills = skills_with_metrics(skills_for_agent_type(agent_type=agent_type, enabled_only=False)).order_by("name")
        return Response(SkillSerializer(skills, many=True).data)

    @extend_schema(request=SkillWriteSerializer, responses={201: SkillCreatedSerializer},
                   summary="Create a skill for this agent type. The answer carries the whsec_ signing secret once.")
    def post(self, request, agent_type: str):
        body = SkillWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        audit = {key: data.pop(key) for key in ("reason", "ticket") if key in data}
        data.setdefault("agent_types", [agent_type])
        if isinstance(data["agent_types"], list) and agent_type not in data["agent_types"]:
            data["agent_types"] = [agent_type, *data["agent_types"]]
        created = skill_create(actor=request.user, **data, **audit)
        return Response({**SkillSerializer(created.skill).data, "signing_secret": created.signing_secret},
                        status=status.HTTP_201_CREATED)


class SkillDetailView(SkillView):
    action = {"get": "skill.view", "patch": "skill.edit", "delete": "skill.edit"}

    @extend_schema(responses=SkillSerializer, summary="A skill, with its metrics (secrets never shown).")
    def get(self, request, skill_id):
        return Response(SkillSerializer(self._skill(skill_id)).data)

    @extend_schema(request=SkillWriteSerializer, responses=SkillSerializer, summary="Change a skill.")
    def patch(self, request, skill_id):
        skill = self._skill(skill_id)
        body = SkillWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        audit = {key: changes.pop(key) for key in ("reason", "ticket") if key in changes}
        skill = skill_update(actor=request.user, skill=skill, changes=changes, **audit)
        return Response(SkillSerializer(skill).data)

    @extend_schema(responses={204: None}, summary="Delete a skill.", parameters=[
        OpenApiParameter("reason", str, description="Why: kept in the audit log.")])
    def delete(self, request, skill_id):
        skill_delete(actor=request.user, skill=self._skill(skill_id),
                     reason=text_param(request.query_params, "reason"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SkillTestView(SkillView):
    action = "skill.test"

    @extend_schema(request=SkillTestSerializer, responses=SkillTestResultSerializer, summary="Run a skill with sample input: the request made "
                                                        "(secrets masked) and the response.")
    def post(self, request, skill_id):
        skill = self._skill(skill_id)
        body = SkillTestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        outcome = skill_execute(skill=skill, arguments=body.validated_data["input"], context=SkillContext(
            instance=connection.schema_name, client_id=body.validated_data.get("client_id"),
            user_id=request.user.pk, test=True))
        return Response({"ok": not outcome.is_error, "error": outcome.result if outcome.is_error else None,
                         "duration_ms": outcome.duration_ms, "request": outcome.request,
                         "response": outcome.response})
