from django.apps import AppConfig


class VersionsConfig(AppConfig):
    """The per-instance half of versions (tenant schemas); versions.catalog is the public half."""

    name = "versions"
    verbose_name = "Agent versions"
