"""Instance provisioning time, and `migrate` time when nothing is left to migrate.

django-tenants#719 reports ~900 tenants taking 12 minutes with nothing to migrate: the stock
executor runs Django's full `migrate` per schema. Ours reads every schema's applied
migrations in one query and skips the up-to-date ones; both are measured here on the same
200 instances.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from django.conf import global_settings, settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = 200


def _migrate_seconds(*extra: str) -> float:
    import os

    db = settings.DATABASES["default"]
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", "migrate_schemas", "--noinput", "-v", "0", *extra],
                   check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run() -> dict[str, float]:
    from spokestack.tenancy.services import instance_provision

    # Provisioning is measured with Django's real password hasher, not the test suite's fast one.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    timings = []
    for n in range(10):
        started = time.perf_counter()
        instance_provision(name=f"Bench {n}", domain=f"bench{n}.localhost", admin_email="a@bench.example",
                           schema_name=f"bench_{n}")
        timings.append(time.perf_counter() - started)
        # One provisioning per connection, as in a request or a command: a PostgreSQL backend
        # that clones hundreds of schemas keeps growing its catalog caches and slows down.
        connection.close()

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    for n in range(10, INSTANCES):
        instance_provision(name=f"Bench {n}", domain=f"bench{n}.localhost", admin_email="a@bench.example",
                           schema_name=f"bench_{n}")
        connection.close()

    ours = _migrate_seconds()
    stock = _migrate_seconds("--executor", "django-tenants")
    return {
        "instance_provision_s": statistics.median(timings),
        "instance_provision_max_s": max(timings),
        f"migrate_noop_{INSTANCES}_instances_s": ours,
        f"migrate_noop_{INSTANCES}_instances_django_tenants_stock_s": stock,
        "migrate_noop_speedup_x": stock / ours,
    }
