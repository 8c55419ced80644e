from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents and runs"

    def ready(self) -> None:
        from tuning.assembly import set_platform_catalog

        from .catalog import AgentCatalog

        set_platform_catalog(AgentCatalog())
