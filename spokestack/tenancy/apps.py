from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "spokestack.tenancy"
    label = "tenancy"
    verbose_name = "Instances"
