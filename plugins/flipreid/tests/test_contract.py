"""The core's contract checks over every component of this plugin."""

import pytest
from reidcore.testing import check_component, components_of, spec_id


@pytest.mark.parametrize("spec", components_of("reid-plugin-flipreid"), ids=spec_id)
def test_contract(spec):
    check_component(spec)


def test_components_registered():
    names = {(spec.kind.value, spec.name) for spec in components_of("reid-plugin-flipreid")}
    assert names == {("loss", "flipping"), ("method", "flipreid")}
