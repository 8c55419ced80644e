"""Helpers of the versions tests: simulate a release by syncing the catalog with the new
versions hidden first, then with them."""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import schema_context

from skills.models import Skill
from versions.catalog.models import CatalogVersion
from versions.services import catalog_sync, release_fanout_run

NEW = (("media_buying", "2.4.0"), ("rfp", "2.4.0"))


def catalog_before_release() -> None:
    """The catalog as it was before 2.4.0: the old versions only."""
    with schema_context("public"):
        CatalogVersion.objects.filter(agent_type__in=["media_buying", "rfp"]).delete()
    catalog_sync(hidden=NEW)


def release(schemas: list[str], *, run_fanout: bool = True) -> list[int]:
    """Sync with 2.4.0 visible: a release. Runs the fan-out here (unit tests) unless told not to
    (then the worker runs it after commit)."""
    tenant = getattr(connection, "tenant", None)
    result = catalog_sync(fanout_schemas=schemas)
    if run_fanout:
        for fanout_id in result.fanouts:
            release_fanout_run(fanout_id=fanout_id, inline=True)
        if tenant is not None and tenant.schema_name != "public":
            connection.set_tenant(tenant)
    return result.fanouts


def skill(name: str, description: str, agent_types=("media_buying",), relies_on_tools=()) -> Skill:
    # The skills app has no create service yet (it is being built in parallel); this is its model.
    return Skill.objects.create(name=name, description=description, agent_types=list(agent_types),
                                relies_on_tools=list(relies_on_tools), input_schema={"type": "object"})


def caution_update(schema: str):
    """The guide's upgrade story in `schema`: media buying on 2.3.1 with performance/ROAS
    preferences and a roas_optimizer skill, told about 2.4.0 (caution); the catalog synced after."""
    from versions.models import UpdateNotification
    from versions.services import release_notify_instance, version_config_update

    catalog_before_release()
    try:
        with schema_context(schema):
            version_config_update(actor=None, agent_type="media_buying",
                                  changes={"optimization_preferences": ["performance", "roas"]})
            skill("roas_optimizer", "Optimises the bid strategy toward a target ROAS from conversion value data.")
            release_notify_instance(agent_type="media_buying", version="2.4.0", previous_version="2.3.1")
            return UpdateNotification.objects.get(agent_type="media_buying", version="2.4.0")
    finally:
        connection.set_schema_to_public()
        catalog_sync(fanout_schemas=[])
