"""`/api/v1/budgets`: the monthly budgets of clients and people, for instance admins (`budget.manage`).

GET /budgets lists the instance's own budget and every client and user budget with this month's spent
and reserved; GET/PUT/DELETE /budgets/clients/{id} and /budgets/users/{id} read, set and clear one.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from spokestack.api.views import InstanceApiView, validated_body
from spokestack.errors import NotFound

from . import budget_services as services

ACTION = services.ACTION


class BudgetSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=["instance", "client", "user"])
    client_id = serializers.IntegerField(allow_null=True)
    user_id = serializers.IntegerField(allow_null=True)
    label = serializers.CharField(help_text="The client's name, the person's e-mail, or the instance's name.")
    monthly_limit_usd = serializers.FloatField()
    spent_usd = serializers.FloatField(help_text="This month's settled cost of model calls it covers.")
    reserved_usd = serializers.FloatField(help_text="This month's worst case of model calls under way.")
    month = serializers.DateField(help_text="The first day of the month, in the instance's time zone.")
    updated_at = serializers.DateTimeField(allow_null=True)


class BudgetListSerializer(serializers.Serializer):
    instance = BudgetSerializer()
    results = BudgetSerializer(many=True)


class BudgetInputSerializer(serializers.Serializer):
    monthly_limit_usd = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0,
                                                 help_text="US dollars a calendar month; at most the instance's.")


class BudgetListView(InstanceApiView):
    action = {"get": ACTION}

    @extend_schema(responses=BudgetListSerializer, summary="The instance's budget and every client's and person's.")
    def get(self, request):
        return Response({"instance": services.instance_budget_view(actor=request.user).as_dict(),
                         "results": [view.as_dict() for view in services.budget_views(actor=request.user)]})


class OwnerBudgetView(InstanceApiView):
    action = {"get": ACTION, "put": ACTION, "delete": ACTION}
    kind = ""

    def owner(self, owner_id: int) -> dict:
        raise NotImplementedError

    @extend_schema(responses=BudgetSerializer, summary="One budget with this month's spent and reserved.")
    def get(self, request, owner_id: int):
        self.owner(owner_id)
        views = services.budget_views(actor=request.user, **{f"{self.kind}_id": owner_id})
        if not views:
            raise NotFound(f"No budget is set for this {self.kind}; PUT one to set it.")
        return Response(views[0].as_dict())

    @extend_schema(request=BudgetInputSerializer, responses=BudgetSerializer,
                   summary="Set the monthly budget (never above the instance's).")
    def put(self, request, owner_id: int):
        owner = self.owner(owner_id)
        data = validated_body(BudgetInputSerializer, request.data)
        services.budget_set(actor=request.user, monthly_limit_usd=data["monthly_limit_usd"], **owner)
        return Response(services.budget_views(actor=request.user, **{f"{self.kind}_id": owner_id})[0].as_dict())

    @extend_schema(responses={204: None}, summary="Remove the budget: only the instance's then covers it.")
    def delete(self, request, owner_id: int):
        services.budget_clear(actor=request.user, **self.owner(owner_id))
        return Response(status=204)


class ClientBudgetView(OwnerBudgetView):
    kind = "client"

    def owner(self, owner_id: int) -> dict:
        from tuning.models import Client

        client = Client.objects.filter(pk=owner_id).first()
        if client is None:
            raise NotFound("No such client.", details={"client_id": owner_id})
        return {"client": client}


class UserBudgetView(OwnerBudgetView):
    kind = "user"

    def owner(self, owner_id: int) -> dict:
        user = get_user_model().objects.filter(pk=owner_id).first()
        if user is None:
            raise NotFound("No such person in this instance.", details={"user_id": owner_id})
        return {"user": user}


urlpatterns = [
    path("budgets", BudgetListView.as_view(), name="budgets"),
    path("budgets/clients/<int:owner_id>", ClientBudgetView.as_view(), name="budget-client"),
    path("budgets/users/<int:owner_id>", UserBudgetView.as_view(), name="budget-user"),
]
