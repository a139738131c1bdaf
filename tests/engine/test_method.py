"""The baseline method through the engine's MethodContext, and ``reid check --build``."""

from __future__ import annotations

import json

import pytest
import torch

from reidcore.cli import main
from reidcore.engine.build import count_parameters, expected_num_classes
from reidcore.engine.context import MethodContext, build_method
from reidcore.engine.step import StepOptimizers
from reidcore.plugins import get_plugins
from reidcore.recipe import resolve


def make_recipe(**sections):
    raw = {"method": {"name": "baseline"},
           "backbone": {"name": "timm", "model": "resnet10t", "last_stride": 1}}
    raw.update(sections)
    return resolve(raw, "<test>", get_plugins().registry)


def make_method(recipe, num_classes=3):
    context = MethodContext(recipe=recipe, registry=get_plugins().registry,
                            num_classes=num_classes, steps_per_epoch=10)
    spec = get_plugins().registry.get("method", recipe.method.name)
    return spec.create(recipe.method.config, context=context)


def batch(n_ids=3, k=2):
    torch.manual_seed(0)
    pids = torch.arange(n_ids).repeat_interleave(k)
    # each identity is a distinct colour: easy to separate
    colours = torch.rand(n_ids, 3, 1, 1)
    images = colours[pids] + 0.05 * torch.randn(len(pids), 3, 32, 16)
    return {"images": images, "pids": pids}


def test_baseline_modules_groups_and_default_losses():
    method = make_method(make_recipe(train={"lr_mult": {"classifier": 10.0}}))
    assert set(method.modules()) == {"network", "losses"}
    assert method.losses.names == ["cross_entropy", "triplet"]
    optimization = method.configure_optimizers()
    assert set(optimization.optimizers) == {"main"} and set(optimization.schedulers) == {"main"}
    groups = {g["name"]: g for g in optimization.optimizers["main"].param_groups}
    assert set(groups) == {"backbone", "neck", "classifier"}
    # warm-up starts at warmup_factor (0.1) x lr; the classifier at x10
    assert groups["backbone"]["lr"] == pytest.approx(3.5e-5)
    assert groups["classifier"]["lr"] == pytest.approx(3.5e-4)
    assert len(groups["neck"]["params"]) == 1  # the BNNeck bias is frozen


def test_baseline_training_step_learns_a_fixed_batch():
    recipe = make_recipe(train={"lr": 1e-3, "warmup_epochs": 0.0},
                         losses=[{"name": "cross_entropy", "label_smoothing": 0.1},
                                 {"name": "triplet", "margin": 0.3, "weight": 1.0}])
    torch.manual_seed(0)
    method = make_method(recipe)
    optim = StepOptimizers(method.configure_optimizers(), method.context.precision)
    for module in method.modules().values():
        module.train()
    data = batch()
    first = method.training_step(data, 0, optim)
    assert set(first) == {"loss", "loss/cross_entropy", "loss/triplet", "accuracy"}
    assert all(value.dim() == 0 for value in first.values())  # 0-d tensors: no host sync
    for step in range(1, 15):
        last = method.training_step(data, step, optim)
    assert last["loss"] < 0.7 * first["loss"]
    for module in method.modules().values():
        module.eval()
    embeddings = method.embed(data["images"])
    assert embeddings.shape == (6, 512) and torch.isfinite(embeddings).all()


def test_baseline_with_center_loss_and_embedding_layer():
    recipe = make_recipe(method={"name": "baseline", "embedding_dim": 16,
                                 "retrieval": "before_neck"},
                         losses=[{"name": "cross_entropy"},
                                 {"name": "center", "weight": 0.0005, "lr": 0.5}])
    method = make_method(recipe)
    centers = method.losses.losses[1].centers
    assert centers.shape == (3, 16)  # sized from the context: 3 classes, 16-d embedding
    optimization = method.configure_optimizers()
    assert set(optimization.optimizers) == {"main", "center"}
    assert optimization.optimizers["center"].param_groups[0]["lr"] == 0.5
    for module in method.modules().values():
        module.train()
    before = centers.detach().clone()
    metrics = method.training_step(batch(), 0, StepOptimizers(optimization,
                                                              method.context.precision))
    assert "loss/center" in metrics
    # the gradient is divided by the weight: the centers move at their own rate (SGD at lr
    # 0.5 with the unweighted center loss's gradient, whatever the weight 0.0005)
    assert (centers.detach() - before).abs().max() > 1e-3
    method.network.eval()
    assert method.embed(batch()["images"]).shape == (6, 16)


def test_meta_build_of_paper_size_baseline():
    recipe = make_recipe(backbone={"name": "resnet_ibn_a"})
    method = build_method(recipe, get_plugins().registry, num_classes=751)
    counts = count_parameters(method.modules())
    # ResNet-50 trunk 23,508,032 + BNNeck 2 x 2048 + classifier 2048 x 751 (no bias)
    assert counts["modules"]["network.backbone"] == 23_508_032
    assert counts["modules"]["network.classifier"] == 2048 * 751
    assert counts["total"] == 23_508_032 + 4096 + 2048 * 751
    assert counts["trainable"] == counts["total"] - 2048  # frozen BNNeck bias
    assert next(method.network.parameters()).device.type == "meta"


def test_expected_num_classes_from_declared_counts():
    recipe = make_recipe(data={"source": [{"name": "synthetic", "ids": 12}]})
    assert expected_num_classes(recipe, get_plugins().registry) == (12, "")


def test_check_build_json(capsys):
    code = main(["check", "quickstart", "--build", "--json",
                 "--set", "data.source[0].ids=10"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["num_classes"] == 10
    assert data["modules"]["network.backbone"] == 4_922_488  # timm resnet10t without its fc
    assert data["modules"]["network.classifier"] == 512 * 10  # bias-free, 10 identities
    assert data["total"] == sum(v for k, v in data["modules"].items() if k.count(".") == 0)
