from ...skills.conftest import admin_a, client_a, scripted  # noqa: F401 - fixtures, by name
