from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "spokestack.webhooks"
    label = "webhooks"
    verbose_name = "Event webhooks"
    default_auto_field = "django.db.models.BigAutoField"
