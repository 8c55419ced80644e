"""The instance admin's budgets page: clients' and people's monthly budgets, for instance admins.

Every write goes through usage/budget_services.py (`budget_set`, `budget_clear`); the form checks
first what the service would refuse (an amount above the instance's own budget), so a refusal is a
form error naming the limit. The instance's own budget is shown above the list, not edited here:
platform staff set it (the platform admin's instance page).
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin
from django.db.models import DecimalField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from spokestack.admin_site import InstanceModelAdmin, instance_admin
from spokestack.errors import Conflict, InvalidInput

from . import budget_services as services
from .models import Budget, BudgetPeriod, BudgetScope

ACTION = services.ACTION


class BudgetForm(forms.ModelForm):
    scope = forms.ChoiceField(choices=[(BudgetScope.CLIENT, "A client"), (BudgetScope.USER, "A person")],
                              help_text="Whose model calls this budget covers.")

    class Meta:
        model = Budget
        fields = ["scope", "client", "user", "monthly_limit_usd"]
        labels = {"monthly_limit_usd": "Monthly limit (USD)", "user": "Person"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        ceiling, name = services.instance_monthly_budget()
        self.ceiling = ceiling
        self.fields["monthly_limit_usd"].help_text = (
            f"US dollars a calendar month (the instance's time zone); at most {ceiling}, the monthly budget of "
            f"{name}. A model call that would cross it is not made.")
        self.fields["client"].help_text = "For a client's budget."
        self.fields["user"].help_text = "For a person's budget: every run they start."
        if self.instance.pk:  # the owner of an existing budget stays; clear it and add another instead
            for name in ("scope", "client", "user"):
                self.fields[name].disabled = True

    def clean(self):
        cleaned = super().clean()
        scope, client, user = cleaned.get("scope"), cleaned.get("client"), cleaned.get("user")
        if scope == BudgetScope.CLIENT and (client is None or user is not None):
            self.add_error("client", "Choose the client (and no person) for a client's budget.")
        if scope == BudgetScope.USER and (user is None or client is not None):
            self.add_error("user", "Choose the person (and no client) for a person's budget.")
        amount = cleaned.get("monthly_limit_usd")
        if amount is not None and amount <= 0:
            self.add_error("monthly_limit_usd", "Enter more than 0; to remove the budget, delete it instead.")
        elif amount is not None and amount > self.ceiling:
            self.add_error("monthly_limit_usd", f"{amount:.2f} USD is above the instance's own monthly budget "
                                                f"({self.ceiling} USD): enter at most {self.ceiling}.")
        if not self.instance.pk and not self.errors:
            taken = Budget.objects.filter(scope=scope, client=client if scope == BudgetScope.CLIENT else None,
                                          user=user if scope == BudgetScope.USER else None).exists()
            if taken:
                self.add_error(None, "This one already has a budget: change that one instead.")
        return cleaned

    def validate_unique(self):  # the service decides; the form's own check above names what to do
        pass


def _this_month(field: str) -> Coalesce:
    period = BudgetPeriod.objects.filter(budget=OuterRef("pk"), month=services._month()).values(field)[:1]
    return Coalesce(Subquery(period), Value(Decimal(0)), output_field=DecimalField(max_digits=14, decimal_places=6))


@admin.register(Budget, site=instance_admin)
class BudgetAdmin(InstanceModelAdmin):
    view_action = add_action = change_action = delete_action = ACTION
    form = BudgetForm
    list_display = ["owner", "scope", "monthly_limit_usd", "spent_this_month", "reserved_this_month", "used",
                    "updated_at"]
    list_filter = ["scope"]
    list_select_related = ["client", "user"]
    search_fields = ["client__name", "user__email"]
    actions = None

    def get_queryset(self, request):
        return (super().get_queryset(request).exclude(scope=BudgetScope.INSTANCE)
                .annotate(spent=_this_month("spent_usd"), reserved=_this_month("reserved_usd")))

    def changelist_view(self, request, extra_context=None):
        if self.has_view_permission(request):
            instance = services.instance_budget_view(actor=request.user)
            extra_context = {**(extra_context or {}), "subtitle": (
                f"{instance.label}'s own monthly budget: {instance.monthly_limit_usd} USD, "
                f"{instance.spent_usd:.2f} spent and {instance.reserved_usd:.2f} reserved this month. "
                "Client and person budgets are set below, never above it.")}
        return super().changelist_view(request, extra_context)

    @admin.display(description="Client or person", ordering="client__name")
    def owner(self, obj: Budget) -> str:
        return services._label(obj)

    @admin.display(description="Spent this month (USD)", ordering="spent")
    def spent_this_month(self, obj: Budget) -> str:
        return f"{obj.spent:.2f}"

    @admin.display(description="Reserved now (USD)", ordering="reserved")
    def reserved_this_month(self, obj: Budget) -> str:
        return f"{obj.reserved:.2f}"

    @admin.display(description="Used")
    def used(self, obj: Budget) -> str:
        if not obj.monthly_limit_usd:
            return "-"
        return f"{(obj.spent + obj.reserved) * 100 / obj.monthly_limit_usd:.0f} %"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        budget = services.budget_set(
            actor=request.user, monthly_limit_usd=data["monthly_limit_usd"],
            client=obj.client if obj.scope == BudgetScope.CLIENT else None,
            user=obj.user if obj.scope == BudgetScope.USER else None)
        for field in Budget._meta.concrete_fields:
            setattr(obj, field.attname, getattr(budget, field.attname))
        obj._state.adding = False

    def delete_model(self, request, obj):
        services.budget_clear(actor=request.user, client=obj.client if obj.scope == BudgetScope.CLIENT else None,
                              user=obj.user if obj.scope == BudgetScope.USER else None)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (InvalidInput, Conflict) as exc:  # a refusal the form could not foresee (a race)
            from django.contrib import messages
            from django.http import HttpResponseRedirect

            self.message_user(request, f"Nothing was saved: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
