from django.urls import path

from . import views

urlpatterns = [
    path("feedback", views.FeedbackCreateView.as_view(), name="feedback"),
    path("clients/<int:client_id>/feedback/analysis", views.ClientAnalysisView.as_view(), name="feedback-analysis"),
    path("clients/<int:client_id>/feedback/suggestions", views.ClientSuggestionsView.as_view(),
         name="feedback-suggestions"),
    path("clients/<int:client_id>/feedback/apply-suggestions", views.ApplySuggestionsView.as_view(),
         name="feedback-apply"),
    path("clients/<int:client_id>/feedback/dismiss-suggestions", views.DismissSuggestionsView.as_view(),
         name="feedback-dismiss"),
]
