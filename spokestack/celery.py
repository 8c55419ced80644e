"""The Celery app. Each task runs in the schema it was queued from (tenant-schemas-celery),
and an instance task that arrives without one is refused rather than run in public."""

from __future__ import annotations

import os

from tenant_schemas_celery.app import CeleryApp as TenantAwareCeleryApp

from spokestack import celery_resilience

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spokestack.settings.dev")
# A Redis outage with tasks in flight must not stop the worker (issue #12; kombu#970).
celery_resilience.install()


class SpokeStackCelery(TenantAwareCeleryApp):
    task_cls = "spokestack.tasks:InstanceTask"


app = SpokeStackCelery("spokestack")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["spokestack"], related_name="tasks")
