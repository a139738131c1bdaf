"""What a training step receives: StepOptimizers (update, frozen, the backward/step halves),
the core's optimizer builder, and the contract check that runs a method's step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import pytest
import torch
from torch import nn

import reidcore.testing
from reidcore.api import ComponentSpec, MethodContext, Optimization, ReidError, hookimpl
from reidcore.engine.context import Precision
from reidcore.engine.optim import make_optimizer
from reidcore.engine.step import StepOptimizers
from reidcore.plugins import load_plugins
from reidcore.testing import ContractError, check_method
from reidcore.train_config import TrainConfig


def sgd(module: nn.Module, lr: float = 0.1) -> torch.optim.Optimizer:
    return make_optimizer({"all": module.parameters()}, TrainConfig(optimizer="sgd", lr=lr,
                                                                    momentum=0.0,
                                                                    weight_decay=0.0))


def two_layers() -> tuple[nn.Linear, nn.Linear]:
    torch.manual_seed(0)
    return nn.Linear(3, 2), nn.Linear(2, 1)


def test_update_is_zero_grad_backward_and_step():
    first, second = two_layers()
    optim = StepOptimizers(Optimization({"a": sgd(first), "b": sgd(second)}), Precision())
    x = torch.ones(1, 3)
    before = second.weight.detach().clone()
    first.weight.grad = torch.full_like(first.weight, 100.0)  # stale: must be cleared
    loss = second(first(x)).sum()
    (expected,) = torch.autograd.grad(loss, [first.weight], retain_graph=True)
    w0 = first.weight.detach().clone()
    optim.update("a", loss)
    assert torch.allclose(first.weight, w0 - 0.1 * expected)
    assert torch.equal(second.weight, before)  # "b" was not stepped


def test_frozen_keeps_gradients_out_and_restores_requires_grad():
    first, second = two_layers()
    second.bias.requires_grad_(False)
    optim = StepOptimizers(Optimization({"a": sgd(first)}), Precision())
    with optim.frozen(second):
        optim.update("a", second(first(torch.ones(1, 3))).sum())
        assert not any(p.requires_grad for p in second.parameters())
    assert second.weight.grad is None
    assert second.weight.requires_grad and not second.bias.requires_grad  # as before


def test_halves_step_each_optimizer_with_the_gradients_at_the_same_weights():
    """Two losses' gradients taken before any step (SAN's two updates): each optimizer
    steps with its own loss's gradient, even where the two share parameters."""
    first, second = two_layers()
    shared_lr = 0.5
    a = make_optimizer({"first": first.parameters()}, TrainConfig(optimizer="sgd", lr=0.1,
                                                                  momentum=0.0,
                                                                  weight_decay=0.0))
    b = make_optimizer({"both": [*first.parameters(), *second.parameters()]},
                       TrainConfig(optimizer="sgd", lr=shared_lr, momentum=0.0,
                                   weight_decay=0.0))
    optim = StepOptimizers(Optimization({"a": a, "b": b}), Precision())
    x = torch.ones(1, 3)
    hidden = first(x)
    loss_a, loss_b = hidden.pow(2).sum(), second(hidden).sum()
    grad_a = torch.autograd.grad(loss_a, first.weight, retain_graph=True)[0]
    grad_b = torch.autograd.grad(loss_b, first.weight, retain_graph=True)[0]
    w0 = first.weight.detach().clone()
    optim.backward("a", loss_a, retain_graph=True)
    optim.backward("b", loss_b)
    assert first.weight.grad is None  # kept aside, not accumulated
    optim.step("a")
    optim.step("b")
    assert torch.allclose(first.weight, w0 - 0.1 * grad_a - shared_lr * grad_b)
    assert all(p.grad is None for p in [*first.parameters(), *second.parameters()])


def test_unknown_optimizer_names_the_known_ones():
    first, _ = two_layers()
    optim = StepOptimizers(Optimization({"main": sgd(first)}), Precision())
    with pytest.raises(ReidError, match=r"no optimizer 'mian' \(did you mean 'main'\?\)"):
        optim.update("mian", first(torch.ones(1, 3)).sum())


def test_make_optimizer_group_options_and_kinds():
    first, second = two_layers()
    config = TrainConfig(lr=0.01, weight_decay=5e-4, lr_mult={"heads": 2.0})
    optimizer = make_optimizer({"trunk": first.parameters(),
                                "heads": {"params": second.parameters(), "lr_mult": 10.0,
                                          "weight_decay": 0.0}},
                               config, kind="sgd", momentum=0.5, nesterov=True)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["trunk"]["lr"] == 0.01 and groups["trunk"]["weight_decay"] == 5e-4
    assert groups["heads"]["lr"] == pytest.approx(0.01 * 10.0 * 2.0)  # method's x recipe's
    assert groups["heads"]["weight_decay"] == 0.0
    assert isinstance(optimizer, torch.optim.SGD) and groups["trunk"]["nesterov"]
    assert groups["trunk"]["momentum"] == 0.5
    adam = make_optimizer({"all": first.parameters()}, config, kind="adam",
                          betas=(0.5, 0.999), eps=1e-7, amsgrad=True)
    group = adam.param_groups[0]
    assert (group["betas"], group["eps"], group["amsgrad"]) == ((0.5, 0.999), 1e-7, True)
    with pytest.raises(ValueError, match="unknown options"):
        make_optimizer({"all": {"params": first.parameters(), "momentum": 0.1}}, config)


# --- the contract check runs a training step -----------------------------------------------


@attrs.define
class TwoNetConfig:
    leave_out: str = ""
    """``optimizer``: the head is in no optimizer; ``gradient``: the head gets none."""


class TwoNet:
    """A backbone and a head, both meant to learn."""

    def __init__(self, config: TwoNetConfig, context: MethodContext):
        self.config, self.context = config, context
        self.backbone = context.build_backbone()
        self.head = nn.Linear(self.backbone.feature_dim, context.num_classes)

    def modules(self) -> Mapping[str, nn.Module]:
        return {"backbone": self.backbone, "head": self.head}

    def configure_optimizers(self) -> Optimization:
        groups: dict[str, Any] = {"backbone": self.backbone.parameters()}
        if self.config.leave_out != "optimizer":
            groups["head"] = self.head.parameters()
        return Optimization({"main": self.context.make_optimizer(groups)})

    def training_step(self, batch: Any, step: int, optim: StepOptimizers) -> dict[str, Any]:
        images, pids = self.context.inputs(batch, "images", "pids")
        features = self.backbone(images)
        logits = self.head(features.detach() if self.config.leave_out == "gradient"
                           else features)
        loss = nn.functional.cross_entropy(logits, pids)
        if self.config.leave_out == "gradient":
            loss = loss + 0.0 * logits.sum() + features.pow(2).mean()
            self.head.requires_grad_(False)
            optim.update("main", features.pow(2).mean())
            self.head.requires_grad_(True)
        else:
            optim.update("main", loss)
        return {"loss": loss.detach()}

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)


def two_net_example() -> dict[str, Any]:
    return {"backbone": {"name": "timm", "model": "resnet10t"},
            "loader": {"height": 32, "width": 16, "identities": 2, "instances": 2}}


class TwoNetPlugin:
    @hookimpl
    def reid_methods(self) -> list[ComponentSpec]:
        return [ComponentSpec(name="two_net", kind="method", config=TwoNetConfig,
                              build=TwoNet, example=two_net_example)]


@pytest.fixture
def two_net(monkeypatch):
    plugins = load_plugins(extra=[("two-net-test", TwoNetPlugin())])
    monkeypatch.setattr(reidcore.testing, "installed_plugins", lambda: plugins)
    return plugins.registry.get("method", "two_net")


def with_example(spec: ComponentSpec, **changes: Any) -> ComponentSpec:
    return attrs.evolve(spec, example=lambda: {**two_net_example(), **changes})


def test_contract_runs_a_step_of_a_complete_method(two_net):
    check_method(two_net)


def test_contract_fails_when_a_network_is_left_out_of_the_optimizer(two_net):
    spec = with_example(two_net, method={"leave_out": "optimizer"})
    with pytest.raises(ContractError, match=r"head\.weight \(trainable, in no optimizer\)"):
        check_method(spec)


def test_contract_fails_when_a_network_gets_no_gradient(two_net):
    spec = with_example(two_net, method={"leave_out": "gradient"})
    with pytest.raises(ContractError, match=r"main\.head\[0\] .* \(no gradient when its "
                                            r"optimizer stepped\)"):
        check_method(spec)
    exempted = with_example(two_net, method={"leave_out": "gradient"},
                            **{"reid:no_gradient": {"main.head": "the test's frozen head"}})
    check_method(exempted)
    unexplained = with_example(two_net, method={"leave_out": "gradient"},
                               **{"reid:no_gradient": {"main.head": " "}})
    with pytest.raises(ContractError, match="needs its reason"):
        check_method(unexplained)
