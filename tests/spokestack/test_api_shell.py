"""The API shell: authentication, the error shape, health and readiness, OpenAPI."""

import pytest
from django.test import override_settings

from ..conftest import HOST_A


def test_health_is_public(db, client):
    response = client.get("/api/v1/health", HTTP_HOST=HOST_A)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_missing_and_invalid_tokens_are_401_with_a_message(in_a, client):
    missing = client.get("/api/v1/me", HTTP_HOST=HOST_A)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "not_authenticated"
    assert "Bearer" in missing["WWW-Authenticate"]
    invalid = client.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION="Bearer ss_not-a-real-token")
    assert invalid.status_code == 401
    assert "Invalid" in invalid.json()["error"]["message"]
    spaced = client.get("/api/v1/me", HTTP_HOST=HOST_A, HTTP_AUTHORIZATION="Bearer two parts")
    assert spaced.status_code == 401


def test_token_identifies_the_user_and_instance(in_a, make_user, api):
    user = make_user("account_manager")
    response = api(in_a, user).get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["roles"] == ["account_manager"]
    assert response.json()["instance"]["schema"] == "tenant_a"


def test_tokens_are_created_shown_once_and_revocable(in_a, make_user, api):
    client = api(in_a, make_user())
    created = client.post("/api/v1/tokens", {"name": "ERP sync"}, format="json")
    assert created.status_code == 201
    raw = created.json()["token"]
    listed = client.get("/api/v1/tokens").json()
    assert "ERP sync" in [t["name"] for t in listed] and raw not in str(listed)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/me").status_code == 200
    assert client.delete(f"/api/v1/tokens/{created.json()['id']}").status_code == 204
    assert client.get("/api/v1/me").status_code == 401


def test_malformed_json_is_400_with_the_error_shape(in_a, make_user, api):
    response = api(in_a, make_user()).post("/api/v1/tokens", data="{not json", content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "malformed_request" and "JSON" in error["message"]


def test_validation_errors_name_the_field(in_a, make_user, api):
    response = api(in_a, make_user()).post("/api/v1/tokens", {}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("name:")


def test_unknown_token_id_is_404_in_the_error_shape(in_a, make_user, api):
    response = api(in_a, make_user()).delete("/api/v1/tokens/999999")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_openapi_schema_and_swagger_ui(db, client):
    schema = client.get("/api/schema/", HTTP_HOST=HOST_A)
    assert schema.status_code == 200 and b"/api/v1/health/ready" in schema.content
    assert client.get("/api/docs/", HTTP_HOST=HOST_A).status_code == 200


@pytest.mark.live
def test_ready_runs_a_task_through_a_real_worker_in_this_schema(live_db, celery_worker, client):
    response = client.get("/api/v1/health/ready", HTTP_HOST=HOST_A)
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert "schema tenant_a" in checks["worker"]["detail"]
    assert checks["database"]["ok"] and checks["redis"]["ok"]
    assert checks["model"]["detail"].startswith("offline model")


def test_ready_names_the_failing_check(db, client):
    with override_settings(CACHE_REDIS_URL="redis://:hush@127.0.0.1:1/1"):
        response = client.get("/api/v1/health/ready", HTTP_HOST=HOST_A)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["message"] == "Failing check(s): redis, worker."
    assert error["details"]["database"]["ok"]
    detail = error["details"]["redis"]["detail"]  # which role, where, and never its password
    assert "the cache Redis (redis://127.0.0.1:1/1) does not answer" in detail and "hush" not in detail


def test_ready_pings_each_redis_role_on_its_own_url(db, client, settings):
    """Broker, cache and channel layer on separate Redis URLs (here: other databases of the test's
    Redis): readiness pings each and says so."""
    from spokestack.redis_roles import roles

    base = settings.CELERY_BROKER_URL.rsplit("/", 1)[0]
    settings.CACHE_REDIS_URL, settings.CHANNEL_LAYER_REDIS_URL = f"{base}/5", f"{base}/6"
    assert roles() == {"broker": settings.CELERY_BROKER_URL, "cache": f"{base}/5", "channel layer": f"{base}/6"}
    checks = client.get("/api/v1/health/ready", HTTP_HOST=HOST_A).json()
    detail = (checks.get("checks") or checks["error"]["details"])["redis"]["detail"]
    assert detail == "ok (broker, cache, channel layer)"
