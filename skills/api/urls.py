from django.urls import path

from .mcp_views import (
    McpServerDetailView,
    McpServerListView,
    McpServerRefreshView,
    McpToolDetailView,
    McpToolListView,
)
from .views import AgentSkillsView, SkillDetailView, SkillTestView

urlpatterns = [
    path("agents/<str:agent_type>/skills", AgentSkillsView.as_view(), name="agent-skills"),
    path("skills/<str:skill_id>", SkillDetailView.as_view(), name="skill-detail"),
    path("skills/<str:skill_id>/test", SkillTestView.as_view(), name="skill-test"),
    path("mcp-servers", McpServerListView.as_view(), name="mcp-servers"),
    path("mcp-servers/<str:server_id>", McpServerDetailView.as_view(), name="mcp-server-detail"),
    path("mcp-servers/<str:server_id>/refresh", McpServerRefreshView.as_view(), name="mcp-server-refresh"),
    path("mcp-servers/<str:server_id>/tools", McpToolListView.as_view(), name="mcp-server-tools"),
    path("mcp-servers/<str:server_id>/tools/<str:tool_id>", McpToolDetailView.as_view(), name="mcp-tool-detail"),
]
