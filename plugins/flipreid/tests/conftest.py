import pytest


@pytest.fixture(scope="session")
def registry():
    from reidcore.plugins import get_plugins

    return get_plugins().registry
