"""Issue #20 part 3: a run over the instance's rate or concurrency limit is refused with 429 and
Retry-After, in the error envelope, naming the limit and the tier; platform staff override a tier's
limits in the platform admin and the next check obeys."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection

from spokestack.api.errors import exception_handler
from spokestack.limits import RunLimitReached, check_run_limits
from spokestack.tenancy.models import Instance
from spokestack.tenancy.tiers import TIER_LIMITS

from ..conftest import PASSWORD


def _clear_window(schema: str) -> None:
    key = cache.make_key(f"limits:runs_per_minute:{schema}")
    cache._cache.get_client(key, write=True).delete(key)


@pytest.fixture
def fresh_window(in_a):
    _clear_window(in_a.schema_name)
    yield in_a
    _clear_window(in_a.schema_name)


def _instance(schema="tenant_a", **override) -> Instance:
    """The row as the next request reads it (no cached copy), with overrides in memory."""
    instance = Instance.objects.get(schema_name=schema)
    instance.tier = "starter"  # the session's instances are enterprise (tests/conftest.py); these test starter
    if override:
        instance.limits_override = override
    return instance


def _as_the_api_answers(exc: RunLimitReached):
    return exception_handler(exc, {})


def test_the_rate_limit_refuses_the_run_after_the_tiers_count_with_429_and_retry_after(fresh_window):
    instance = _instance(runs_per_minute=3, concurrent_runs=100)
    for _ in range(3):
        check_run_limits(instance, actor=None)
    with pytest.raises(RunLimitReached) as refused:
        check_run_limits(instance, actor=None)
    exc = refused.value
    assert 1 <= exc.retry_after <= 60
    assert exc.message == f"{instance.name} (starter tier) may start 3 runs a minute; try again in {exc.retry_after} s."
    response = _as_the_api_answers(exc)
    assert response.status_code == 429
    assert response["Retry-After"] == str(exc.retry_after)
    error = response.data["error"]
    assert error["code"] == "throttled" and error["message"] == exc.message
    assert error["details"] == {"limit": "runs_per_minute", "tier": "starter", "allowed": 3,
                                "retry_after": exc.retry_after}


def test_the_rate_window_is_per_instance(fresh_window, instance_b):
    _clear_window(instance_b.schema_name)
    check_run_limits(_instance(runs_per_minute=1), actor=None)
    with pytest.raises(RunLimitReached):
        check_run_limits(_instance(runs_per_minute=1), actor=None)
    connection.set_tenant(instance_b)
    try:
        check_run_limits(_instance("tenant_b", runs_per_minute=1), actor=None)  # B's own minute is untouched
    finally:
        connection.set_tenant(fresh_window)
        _clear_window(instance_b.schema_name)


def test_the_concurrency_limit_counts_queued_and_running_runs_only(fresh_window, runs_stay_here):
    from agents.models import AgentRun, RunStatus
    from agents.services import run_create
    from tuning.services import client_create

    client = client_create(name="Desert Bloom Cosmetics", vertical="beauty")
    runs = [run_create(actor=None, agent_type="copy", task="Write a caption.", client_id=client.pk).run
            for _ in range(2)]
    instance = _instance(concurrent_runs=2, runs_per_minute=100)
    with pytest.raises(RunLimitReached) as refused:
        check_run_limits(instance, actor=None)
    exc = refused.value
    assert exc.message.startswith(f"{instance.name} (starter tier) may have 2 runs queued or running at once and "
                                  "has 2; try again when one ends")
    assert exc.details["limit"] == "concurrent_runs" and exc.details["current"] == 2
    response = _as_the_api_answers(exc)
    assert response.status_code == 429 and int(response["Retry-After"]) == exc.retry_after >= 1
    # A run awaiting approval holds no slot; a refused check spent no place in the minute's window (the two
    # runs above took two places: a third is the last one of three).
    AgentRun.objects.filter(pk=runs[0].pk).update(status=RunStatus.AWAITING_APPROVAL)
    check_run_limits(_instance(concurrent_runs=2, runs_per_minute=3), actor=None)


def test_the_tiers_defaults_apply_without_an_override(fresh_window):
    instance = _instance()
    instance.tier, instance.limits_override = "free", {}
    allowed = TIER_LIMITS["free"].runs_per_minute
    for _ in range(allowed):
        check_run_limits(instance, actor=None)
    with pytest.raises(RunLimitReached, match=rf"\(free tier\) may start {allowed} runs a minute"):
        check_run_limits(instance, actor=None)


# --- the platform admin's override form ----------------------------------------------------------


@pytest.fixture
def platform_staff(db, client):
    connection.set_schema_to_public()
    staff = get_user_model().objects.create_superuser("ops@platform.example", "ops@platform.example", PASSWORD)
    client.force_login(staff)
    return client


def _change_form(instance: Instance, **limits) -> dict:
    return {"name": instance.name, "tier": instance.tier, "status": instance.status, "suspended_reason": "",
            "region": "", "language": "en", "timezone": instance.timezone, "erp_base_url": "", "erp_api_key_new": "",
            "approval_sla_hours": str(instance.approval_sla_hours),
            "domains-TOTAL_FORMS": "0", "domains-INITIAL_FORMS": "0",
            **{f"limit_{key}": value for key, value in limits.items()}}


def test_platform_staff_override_takes_effect_on_the_next_check(platform_staff, instance_a):
    url = f"/admin/tenancy/instance/{instance_a.pk}/change/"
    page = platform_staff.get(url, HTTP_HOST="localhost").content.decode()
    default = TIER_LIMITS[instance_a.tier].runs_per_minute
    assert "Runs per minute" in page
    assert f"Empty: the tier's default, {default} runs a minute for {instance_a.tier}" in page

    saved = platform_staff.post(url, _change_form(instance_a, runs_per_minute="1", concurrent_runs="",
                                                  monthly_budget_usd="", max_cost_per_run_usd=""),
                                HTTP_HOST="localhost")
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert Instance.objects.get(pk=instance_a.pk).limits_override == {"runs_per_minute": 1}
    page = platform_staff.get(url, HTTP_HOST="localhost").content.decode()
    assert 'name="limit_runs_per_minute" value="1"' in page  # shown back, the others empty

    connection.set_tenant(instance_a)
    _clear_window(instance_a.schema_name)
    try:
        check_run_limits(_instance(), actor=None)
        with pytest.raises(RunLimitReached, match=r"may start 1 run a minute"):
            check_run_limits(_instance(), actor=None)
    finally:
        _clear_window(instance_a.schema_name)
        connection.set_schema_to_public()

    # Emptied: the tier's default again.
    platform_staff.post(url, _change_form(instance_a), HTTP_HOST="localhost")
    assert Instance.objects.get(pk=instance_a.pk).limits_override == {}


def test_the_override_form_refuses_what_makes_no_sense(platform_staff, instance_a):
    url = f"/admin/tenancy/instance/{instance_a.pk}/change/"
    refused = platform_staff.post(url, _change_form(instance_a, runs_per_minute="0", monthly_budget_usd="5",
                                                    max_cost_per_run_usd="10"), HTTP_HOST="localhost")
    page = refused.content.decode()
    assert refused.status_code == 200
    assert "Ensure this value is greater than or equal to 1." in page
    refused = platform_staff.post(url, _change_form(instance_a, monthly_budget_usd="5", max_cost_per_run_usd="10"),
                                  HTTP_HOST="localhost")
    assert ("One run may not cost more than the monthly budget (5 USD): enter a lower maximum per run, or raise "
            "the monthly budget.") in refused.content.decode()
    assert Instance.objects.get(pk=instance_a.pk).limits_override == {}


def test_an_instance_admin_cannot_reach_the_override_form(in_a, make_user, client, instance_a):
    from ..conftest import HOST_A

    admin = make_user("instance_admin")
    client.force_login(admin)
    response = client.get(f"/admin/tenancy/instance/{instance_a.pk}/change/", HTTP_HOST=HOST_A)
    assert response.status_code == 404
