import pytest


@pytest.fixture(scope="session")
def registry():
    from reidcore.testing import installed_plugins

    return installed_plugins().registry
