from django.apps import AppConfig


class VersionsConfig(AppConfig):
    """The per-instance half of versions (tenant schemas); versions.catalog is the public half."""

    name = "versions"
    verbose_name = "Agent versions"

    def ready(self) -> None:
        from agents.catalog import set_version_resolver

        from .selectors import running_version

        set_version_resolver(running_version)
