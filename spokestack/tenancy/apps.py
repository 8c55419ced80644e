from django.apps import AppConfig
from django.core import checks


class TenancyConfig(AppConfig):
    name = "spokestack.tenancy"
    label = "tenancy"
    verbose_name = "Instances"

    def ready(self) -> None:
        checks.register(pooling_check, checks.Tags.database)


def pooling_check(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """`manage.py migrate` / `check --database default`: a pooler in transaction mode is an error
    (spokestack.db.pooling_mode_problem); daphne and the workers refuse to start behind one too."""
    if not databases or "default" not in databases:
        return []
    from spokestack.db import pooling_mode_problem

    problem = pooling_mode_problem()
    return [checks.Error(problem, id="spokestack.E001", hint="Set pool_mode = session.")] if problem else []
