"""The Celery app. Each task runs in the schema it was queued from (tenant-schemas-celery),
and an instance task that arrives without one is refused rather than run in public."""

from __future__ import annotations

import os

from tenant_schemas_celery.app import CeleryApp as TenantAwareCeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spokestack.settings.dev")


class SpokeStackCelery(TenantAwareCeleryApp):
    task_cls = "spokestack.tasks:InstanceTask"


app = SpokeStackCelery("spokestack")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["spokestack"], related_name="tasks")
