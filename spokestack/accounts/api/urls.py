from django.urls import path

from .views import ApiTokenDetailView, ApiTokenListView, MeView, UserDetailView, UserListView

urlpatterns = [
    path("me", MeView.as_view(), name="me"),
    path("tokens", ApiTokenListView.as_view(), name="tokens"),
    path("tokens/<int:token_id>", ApiTokenDetailView.as_view(), name="token-detail"),
    path("users", UserListView.as_view(), name="users"),
    path("users/<int:user_id>", UserDetailView.as_view(), name="user-detail"),
]
