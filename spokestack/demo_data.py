"""The demo's fixed data, importable without Django (the launcher prints it)."""

from __future__ import annotations

from dataclasses import dataclass

DEMO_PASSWORD = "spokestack-demo"  # noqa: S105 - the local demo's documented password
PLATFORM_HOST = "localhost"
PLATFORM_ADMIN = "platform@spokestack.localhost"


@dataclass(frozen=True)
class DemoInstance:
    schema: str
    name: str
    host: str
    tier: str
    region: str
    language: str
    timezone: str
    clients: tuple[tuple[str, str, str, str], ...]  # name, vertical, region, language

    @property
    def admin_email(self) -> str:
        return f"admin@{self.host}"


DEMO_INSTANCES = (
    DemoInstance("alpha", "Agency Alpha", "alpha.localhost", "enterprise", "GCC", "ar", "Asia/Dubai",
                 (("Desert Bloom Cosmetics", "beauty", "GCC", "ar"), ("Gulf Bank", "finance", "GCC", "en"))),
    DemoInstance("beta", "Agency Beta", "beta.localhost", "professional", "EU", "en", "Europe/London",
                 (("Thames Outfitters", "fashion", "EU", "en"), ("Covent Kitchen", "food", "EU", "en"))),
    DemoInstance("gamma", "Agency Gamma", "gamma.localhost", "professional", "US", "en", "America/New_York",
                 (("Hudson Cloud", "technology", "US", "en"), ("Brooklyn Health", "healthcare", "US", "en"))),
)
