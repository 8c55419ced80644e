from django.urls import path

from .views import ApiTokenDetailView, ApiTokenListView, MeView

urlpatterns = [
    path("me", MeView.as_view(), name="me"),
    path("tokens", ApiTokenListView.as_view(), name="tokens"),
    path("tokens/<int:token_id>", ApiTokenDetailView.as_view(), name="token-detail"),
]
