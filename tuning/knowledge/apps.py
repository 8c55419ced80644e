from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "tuning.knowledge"
    label = "knowledge"
    verbose_name = "Knowledge"
