"""Issue #20 part 3: instance admins set monthly budgets per client and per person, never above the
instance's own; the API and the admin page show this month's spent and reserved; account managers
and other instances neither see nor set them."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client as HttpClient

from spokestack.tenancy.tiers import limits_for
from usage.budget_services import budget_clear, budget_set
from usage.budgets import this_month
from usage.models import Budget, BudgetPeriod, BudgetScope

from ..conftest import HOST_A

J = {"format": "json"}


@pytest.fixture
def client_a(in_a):
    from tuning.services import client_create

    return client_create(name="Desert Bloom Cosmetics", vertical="beauty")


@pytest.fixture
def admin_a(in_a, make_user):
    return make_user("instance_admin")


def test_an_admin_sets_reads_and_clears_a_client_budget_through_the_api(admin_a, client_a, api, in_a):
    http = api(in_a, admin_a)
    url = f"/api/v1/budgets/clients/{client_a.pk}"
    missing = http.get(url)
    assert missing.status_code == 404 and "No budget is set for this client" in missing.json()["error"]["message"]

    saved = http.put(url, {"monthly_limit_usd": "150.00"}, **J)
    assert saved.status_code == 200, saved.json()
    body = saved.json()
    assert (body["scope"], body["client_id"], body["label"], body["monthly_limit_usd"]) == (
        "client", client_a.pk, "Desert Bloom Cosmetics", 150.0)
    assert body["spent_usd"] == 0 and body["reserved_usd"] == 0 and body["month"] == this_month().isoformat()

    # This month's ledger, when calls were made, is shown beside the limit.
    budget = Budget.objects.get(client=client_a)
    BudgetPeriod.objects.create(budget=budget, month=this_month(), spent_usd=Decimal("12.5"),
                                reserved_usd=Decimal("0.75"))
    read = http.get(url).json()
    assert (read["spent_usd"], read["reserved_usd"]) == (12.5, 0.75)

    assert http.put(url, {"monthly_limit_usd": 90}, **J).json()["monthly_limit_usd"] == 90.0
    assert Budget.objects.get(client=client_a).monthly_limit_usd == Decimal("90.00")

    assert http.delete(url).status_code == 204
    assert not Budget.objects.filter(client=client_a).exists()
    gone = http.delete(url)
    assert gone.status_code == 404 and gone.json()["error"]["message"] == "No budget is set for client Desert Bloom Cosmetics."


def test_a_budget_above_the_instances_own_is_refused_with_400(admin_a, client_a, api, in_a):
    http = api(in_a, admin_a)
    ceiling = limits_for(in_a).monthly_budget_usd
    refused = http.put(f"/api/v1/budgets/clients/{client_a.pk}", {"monthly_limit_usd": str(ceiling + 1)}, **J)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        f"monthly_limit_usd: {ceiling + 1:.2f} USD is above the monthly budget of {in_a.name} itself ({ceiling} USD); "
        f"enter at most {ceiling}, or ask platform staff to raise the instance's.")
    assert http.put(f"/api/v1/budgets/clients/{client_a.pk}", {"monthly_limit_usd": str(ceiling)}, **J).status_code == 200
    Budget.objects.filter(client=client_a).delete()
    assert not Budget.objects.filter(client=client_a).exists()
    for bad, says in (("ten", "A valid number is required"), ("-5", "greater than or equal to 0"), ("0", "must be more than 0")):
        answer = http.put(f"/api/v1/budgets/users/{admin_a.pk}", {"monthly_limit_usd": bad}, **J)
        assert answer.status_code == 400 and says in answer.json()["error"]["message"], (bad, answer.json())
    unknown = http.put(f"/api/v1/budgets/users/{admin_a.pk}", {"monthly_limit": "5"}, **J)
    assert unknown.status_code == 400 and "monthly_limit: is not a field here" in unknown.json()["error"]["message"]


def test_the_list_shows_the_instances_budget_and_every_client_and_person(admin_a, client_a, api, in_a,
                                                                         django_assert_max_num_queries, make_user):
    person = make_user("instance_manager")
    budget_set(actor=admin_a, client=client_a, monthly_limit_usd=Decimal("100"))
    budget_set(actor=admin_a, user=person, monthly_limit_usd=Decimal("20"))
    http = api(in_a, admin_a)
    body = http.get("/api/v1/budgets").json()
    assert body["instance"]["scope"] == "instance" and body["instance"]["monthly_limit_usd"] == float(limits_for(in_a).monthly_budget_usd)
    assert [(r["scope"], r["label"], r["monthly_limit_usd"]) for r in body["results"]] == [
        ("client", "Desert Bloom Cosmetics", 100.0), ("user", person.email, 20.0)]
    # more budgets, not more queries
    from tuning.services import client_create

    for n in range(5):
        budget_set(actor=admin_a, client=client_create(name=f"Client {n}"), monthly_limit_usd=Decimal("10"))
    with django_assert_max_num_queries(12):
        assert len(http.get("/api/v1/budgets").json()["results"]) == 7


@pytest.mark.parametrize("role", ["instance_manager", "account_manager", "client_contact"])
def test_no_one_but_an_instance_admin_sees_or_sets_budgets(role, admin_a, client_a, api, in_a, assigned, make_user):
    budget_set(actor=admin_a, client=client_a, monthly_limit_usd=Decimal("100"))
    person = make_user(role) if role == "instance_manager" else assigned(role, client_a)
    http = api(in_a, person)
    assert http.get("/api/v1/budgets").status_code == 403
    assert http.get(f"/api/v1/budgets/clients/{client_a.pk}").status_code == 403
    assert http.put(f"/api/v1/budgets/clients/{client_a.pk}", {"monthly_limit_usd": "199"}, **J).status_code == 403
    assert http.delete(f"/api/v1/budgets/clients/{client_a.pk}").status_code == 403
    assert Budget.objects.get(client=client_a).monthly_limit_usd == Decimal("100")
    admin = HttpClient(HTTP_HOST=HOST_A)
    admin.force_login(person)
    assert admin.get("/admin/usage/budget/").status_code == 403


def test_another_instance_sees_none_of_its_budgets(admin_a, client_a, api, in_a, instance_b, make_user):
    budget_set(actor=admin_a, client=client_a, monthly_limit_usd=Decimal("100"))
    connection.set_tenant(instance_b)
    admin_b = make_user("instance_admin")
    http = api(instance_b, admin_b)
    assert http.get("/api/v1/budgets").json()["results"] == []
    assert http.get(f"/api/v1/budgets/clients/{client_a.pk}").status_code == 404
    connection.set_tenant(in_a)


def test_services_refuse_an_account_manager_and_need_one_owner(admin_a, client_a, assigned):
    from spokestack.errors import InvalidInput, NotAllowed

    manager = assigned("account_manager", client_a)
    with pytest.raises(NotAllowed):
        budget_set(actor=manager, client=client_a, monthly_limit_usd=Decimal("5"))
    with pytest.raises(InvalidInput, match="Name either a client or a person"):
        budget_set(actor=admin_a, client=client_a, user=admin_a, monthly_limit_usd=Decimal("5"))
    budget_set(actor=admin_a, user=admin_a, monthly_limit_usd=Decimal("5"))
    with pytest.raises(NotAllowed):
        budget_clear(actor=manager, user=admin_a)
    assert Budget.objects.get(user=admin_a).scope == BudgetScope.USER


def test_the_admin_page_lists_adds_and_refuses_above_the_instance(admin_a, client_a, in_a):
    ceiling = limits_for(in_a).monthly_budget_usd
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(admin_a)
    page = http.get("/admin/usage/budget/add/").content.decode()
    assert f"at most {ceiling}, the monthly budget of {in_a.name}" in page
    refused = http.post("/admin/usage/budget/add/", {"scope": "client", "client": client_a.pk,
                                                     "monthly_limit_usd": str(ceiling + 1)})
    assert refused.status_code == 200
    assert (f"{ceiling + 1:.2f} USD is above the instance&#x27;s own monthly budget ({ceiling} USD): enter at most "
            f"{ceiling}.") in refused.content.decode()
    saved = http.post("/admin/usage/budget/add/", {"scope": "client", "client": client_a.pk,
                                                   "monthly_limit_usd": "120"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    budget = Budget.objects.get(client=client_a)
    BudgetPeriod.objects.create(budget=budget, month=this_month(), spent_usd=Decimal("30"))
    listing = http.get("/admin/usage/budget/").content.decode()
    assert "Desert Bloom Cosmetics" in listing and "30.00" in listing and "25 %" in listing
    assert f"own monthly budget: {ceiling} USD" in listing
    changed = http.post(f"/admin/usage/budget/{budget.pk}/change/", {"monthly_limit_usd": "60"})
    assert changed.status_code == 302, changed.content.decode()[:2000]
    assert Budget.objects.get(pk=budget.pk).monthly_limit_usd == Decimal("60")
    deleted = http.post(f"/admin/usage/budget/{budget.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not Budget.objects.filter(pk=budget.pk).exists()


def test_every_budget_change_is_audited_and_rolls_back(admin_a, client_a):
    from tuning.models import Entity, TuningChange
    from tuning.services import tuning_rollback

    budget_set(actor=admin_a, client=client_a, monthly_limit_usd=Decimal("100"))
    budget_set(actor=admin_a, client=client_a, monthly_limit_usd=Decimal("60"))
    budget_set(actor=admin_a, client=client_a, monthly_limit_usd=Decimal("60"))  # no change: no entry
    entries = list(TuningChange.objects.filter(entity=Entity.BUDGET).order_by("id"))
    assert [(e.action, e.old_value and e.old_value["monthly_limit_usd"], e.new_value["monthly_limit_usd"],
             e.client_id) for e in entries] == [("create", None, "100.00", client_a.pk),
                                                ("update", "100.00", "60.00", client_a.pk)]
    tuning_rollback(actor=admin_a, change=entries[1])
    assert Budget.objects.get(client=client_a).monthly_limit_usd == Decimal("100")
    budget_clear(actor=admin_a, client=client_a)
    deleted = TuningChange.objects.filter(entity=Entity.BUDGET, action="delete").get()
    tuning_rollback(actor=admin_a, change=deleted)
    assert Budget.objects.get(client=client_a).monthly_limit_usd == Decimal("100")
