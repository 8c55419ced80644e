from django.urls import include, path

from ..knowledge.search_api import KnowledgeSearchView
from . import views

urlpatterns = [
    path("tuning", views.InstanceTuningView.as_view(), name="tuning"),
    path("tuning/audit", views.AuditListView.as_view(), name="tuning-audit"),
    path("tuning/audit/export", views.AuditExportView.as_view(), name="tuning-audit-export"),
    path("tuning/rollback/<int:audit_id>", views.RollbackView.as_view(), name="tuning-rollback"),
    path("agents/<str:agent_type>/tuning", views.AgentTuningView.as_view(), name="agent-tuning"),
    path("agents/<str:agent_type>/prompt-preview", views.PromptPreviewView.as_view(), name="prompt-preview"),
    path("clients", views.ClientListView.as_view(), name="clients"),
    path("clients/<int:client_id>", views.ClientDetailView.as_view(), name="client-detail"),
    path("clients/<int:client_id>/archive", views.ClientArchiveView.as_view(), name="client-archive"),
    path("clients/<int:client_id>/unarchive", views.ClientUnarchiveView.as_view(), name="client-unarchive"),
    path("clients/<int:client_id>/assignments", views.ClientAssignmentsView.as_view(), name="client-assignments"),
    path("clients/<int:client_id>/assignments/<int:user_id>", views.ClientAssignmentDetailView.as_view(),
         name="client-assignment"),
    path("clients/<int:client_id>/tuning", views.ClientTuningView.as_view(), name="client-tuning"),
    path("clients/<int:client_id>/tuning/audit", views.ClientAuditView.as_view(), name="client-tuning-audit"),
    path("clients/<int:client_id>/rules", views.ClientRulesView.as_view(), name="client-rules"),
    path("clients/<int:client_id>/rules/<int:rule_id>", views.ClientRuleDetailView.as_view(), name="client-rule"),
    path("clients/<int:client_id>/examples", views.ClientExamplesView.as_view(), name="client-examples"),
    path("clients/<int:client_id>/examples/<int:example_id>", views.ClientExampleDetailView.as_view(),
         name="client-example"),
    path("memories", views.MemoryListView.as_view(), name="memories"),
    path("memories/<int:memory_id>", views.MemoryDetailView.as_view(), name="memory"),
    path("memories/<int:memory_id>/accept", views.MemoryAcceptView.as_view(), name="memory-accept"),
    path("memories/<int:memory_id>/reject", views.MemoryRejectView.as_view(), name="memory-reject"),
    path("", include("tuning.knowledge.api")),
    path("knowledge/search", KnowledgeSearchView.as_view(), name="knowledge-search"),
]
