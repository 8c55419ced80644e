import pytest

from tuning.assembly import registered_platform_catalog, set_platform_catalog

from .catalog import CATALOG


@pytest.fixture(autouse=True)
def platform_catalog():
    """Tier 1 as the agents app would register it: a small real catalog of two agent types."""
    previous = registered_platform_catalog()
    set_platform_catalog(CATALOG)
    yield CATALOG
    set_platform_catalog(previous)


@pytest.fixture
def make_client():
    from tuning.services import client_create

    def make(name: str, **kwargs):
        return client_create(name=name, **kwargs)

    return make


