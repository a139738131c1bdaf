"""The baseline trains the class weights of ArcFace / CosFace heads in its main optimizer
(group ``losses``), keeps center losses on their own optimizer, and adds no group when no
loss has parameters; the contract check passes with such a head in the recipe."""

from __future__ import annotations

import attrs
import pytest

from reidcore.testing import check_method, installed_plugins

TINY = {"backbone": {"name": "timm", "model": "test_resnet"},
        "loader": {"height": 32, "width": 16, "identities": 4, "instances": 2}}


def baseline_spec(losses):
    spec = installed_plugins().registry.get("method", "baseline")
    return attrs.evolve(spec, example=lambda: dict(TINY, losses=losses))


def groups_of(losses):
    from reidcore.testing import build_method

    spec = baseline_spec(losses)
    method, _ = build_method(spec, dict(TINY, losses=losses))
    optimization = method.configure_optimizers()
    return {name: [g["name"] for g in opt.param_groups]
            for name, opt in optimization.optimizers.items()}, method


@pytest.mark.parametrize("head", ["arcface", "cosface"])
def test_head_weights_in_the_main_optimizer(head):
    losses = [{"name": "cross_entropy"}, {"name": head}, {"name": "triplet"}]
    groups, method = groups_of(losses)
    assert groups == {"main": ["backbone", "neck", "classifier", "losses"]}
    weight = method.losses.losses[1].weight
    assert weight.shape[0] == method.context.num_classes
    check_method(baseline_spec(losses))  # every parameter in an optimizer, with a gradient


def test_no_losses_group_without_loss_parameters():
    groups, _ = groups_of([{"name": "cross_entropy"}, {"name": "circle"}])
    assert groups == {"main": ["backbone", "neck", "classifier"]}
    groups, _ = groups_of([{"name": "cross_entropy"}, {"name": "center"},
                           {"name": "arcface"}])
    assert groups == {"main": ["backbone", "neck", "classifier", "losses"],
                      "center": ["center"]}
