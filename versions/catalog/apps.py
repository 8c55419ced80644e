from django.apps import AppConfig


class VersionCatalogConfig(AppConfig):
    """The public-schema half of versions: the release catalog and skill submissions (DESIGN §3, §8)."""

    name = "versions.catalog"
    label = "version_catalog"
    verbose_name = "Agent version catalog"
