from django.urls import path

from .views import (
    AgentListView,
    ApprovalApproveView,
    ApprovalListView,
    ApprovalRejectView,
    ApprovalRuleDetailView,
    ApprovalRuleListView,
    ExecuteView,
    RunCancelView,
    RunEventsView,
    RunListView,
    RunStatusView,
    RunThreadView,
    ThreadDetailView,
    ThreadListView,
    ThreadMessagesView,
)

urlpatterns = [
    path("agent/execute", ExecuteView.as_view(), name="agent-execute"),
    path("agent/status/<str:run_id>", RunStatusView.as_view(), name="agent-status"),
    path("agent/task/<str:run_id>", RunCancelView.as_view(), name="agent-cancel"),
    path("agent/runs", RunListView.as_view(), name="agent-runs"),
    path("agent/runs/<str:run_id>/events", RunEventsView.as_view(), name="agent-run-events"),
    path("agent/runs/<str:run_id>/thread", RunThreadView.as_view(), name="agent-run-thread"),
    path("agents", AgentListView.as_view(), name="agents"),
    path("approvals", ApprovalListView.as_view(), name="approvals"),
    path("approvals/<str:approval_id>/approve", ApprovalApproveView.as_view(), name="approval-approve"),
    path("approvals/<str:approval_id>/reject", ApprovalRejectView.as_view(), name="approval-reject"),
    path("approval-rules", ApprovalRuleListView.as_view(), name="approval-rules"),
    path("approval-rules/<str:rule_id>", ApprovalRuleDetailView.as_view(), name="approval-rule"),
    path("threads", ThreadListView.as_view(), name="threads"),
    path("threads/<str:thread_id>", ThreadDetailView.as_view(), name="thread"),
    path("threads/<str:thread_id>/messages", ThreadMessagesView.as_view(), name="thread-messages"),
]
