from django.urls import path

from ..evals import api as evals
from . import views

urlpatterns = [
    path("agents/<str:agent_type>/versions", views.AgentVersionsView.as_view(), name="agent-versions"),
    path("agents/<str:agent_type>/version", views.AgentVersionView.as_view(), name="agent-version"),
    path("agents/<str:agent_type>/version/rollback", views.RollbackView.as_view(), name="agent-version-rollback"),
    path("updates", views.UpdatesView.as_view(), name="updates"),
    path("updates/<int:notification_id>/review", views.ReviewView.as_view(), name="update-review"),
    path("sandbox", views.SandboxCreateView.as_view(), name="sandbox"),
    path("sandbox/<str:session_id>", views.SandboxDetailView.as_view(), name="sandbox-detail"),
    path("sandbox/<str:session_id>/test", views.SandboxTestView.as_view(), name="sandbox-test"),
    path("sandbox/<str:session_id>/evals", views.SandboxEvalsView.as_view(), name="sandbox-evals"),
    path("sandbox/<str:session_id>/promote", views.SandboxPromoteView.as_view(), name="sandbox-promote"),
    path("sandbox/<str:session_id>/reject", views.SandboxRejectView.as_view(), name="sandbox-reject"),
    path("sandbox/<str:session_id>/defer", views.SandboxDeferView.as_view(), name="sandbox-defer"),
    path("evals/cases", evals.EvalCasesView.as_view(), name="eval-cases"),
    path("evals/cases/from-run", evals.EvalCaseFromRunView.as_view(), name="eval-case-from-run"),
    path("evals/cases/<str:case_id>", evals.EvalCaseView.as_view(), name="eval-case"),
    path("evals/runs", evals.EvalRunsView.as_view(), name="eval-runs"),
    path("evals/runs/<str:eval_run_id>", evals.EvalRunView.as_view(), name="eval-run"),
]
