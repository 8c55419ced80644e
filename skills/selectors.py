"""Reads for skills."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Skill


def skills_for_agent_type(*, agent_type: str, enabled_only: bool = True) -> QuerySet[Skill]:
    skills = Skill.objects.filter(agent_types__contains=[agent_type])
    return skills.filter(enabled=True) if enabled_only else skills
