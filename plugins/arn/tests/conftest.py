"""Test settings: one intra-op thread by default (the CI box has 2 cores shared by several
jobs; override with REID_TEST_THREADS) and the registry."""

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("REID_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def registry():
    from reidcore.testing import installed_plugins

    return installed_plugins().registry
