from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents and runs"

    def ready(self) -> None:
        from spokestack import catalog

        from .catalog import AgentCatalog

        catalog.register(AgentCatalog())  # which agent types exist: one catalog, for every app
