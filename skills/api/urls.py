from django.urls import path

from .views import AgentSkillsView, SkillDetailView, SkillTestView

urlpatterns = [
    path("agents/<str:agent_type>/skills", AgentSkillsView.as_view(), name="agent-skills"),
    path("skills/<str:skill_id>", SkillDetailView.as_view(), name="skill-detail"),
    path("skills/<str:skill_id>/test", SkillTestView.as_view(), name="skill-test"),
]
