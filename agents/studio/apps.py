from django.apps import AppConfig


class StudioConfig(AppConfig):
    name = "agents.studio"
    label = "studio"
    verbose_name = "Agent studio"

    def ready(self) -> None:
        from agents import registry

        from . import services  # noqa: F401 - registers the audit log's rollback of agent_definition entries
        from .specs import AgencySource

        registry.set_agency_source(AgencySource())  # agency-built agents join every lookup of an agent type
