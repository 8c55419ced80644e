from django.apps import AppConfig


class VersionsConfig(AppConfig):
    name = "versions"
