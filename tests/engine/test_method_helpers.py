"""What MethodContext and reidcore.api give a method beyond the builders: the step's
inputs, loss-weight ramps, image grids, losses by name, and offline meta builds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reidcore.api import (
    Clock,
    MethodContext,
    ReidError,
    image_grid,
    linear_ramp,
    step_ramp,
)
from reidcore.cli import main
from reidcore.plugins import get_plugins
from reidcore.recipe import resolve


def context(**train) -> MethodContext:
    registry = get_plugins().registry
    recipe = resolve({"method": {"name": "baseline"}, "train": train}, "<test>", registry)
    return MethodContext(recipe=recipe, registry=registry, num_classes=3)


def test_linear_ramp_values_by_hand():
    # 0 before the start, linear over the length, then the top value
    assert [linear_ramp(s, start=10, length=4, high=2.0) for s in (0, 10, 11, 13, 14, 99)] \
        == [0.0, 0.0, 0.5, 1.5, 2.0, 2.0]
    assert linear_ramp(5, start=5, length=0, high=3.0) == 3.0
    assert linear_ramp(2, start=0, length=4, high=1.0, low=0.5) == 0.75
    assert [step_ramp(s, start=3) for s in (2, 3)] == [0.0, 1.0]


def test_clock_step_counts_steps_over_epochs():
    clock = Clock(length=5)
    clock.start_epoch(2, 5)
    for _ in range(3):
        clock.advance()
    assert clock.step == 13


def test_inputs_puts_tensors_on_the_device_in_order_and_names_missing_keys():
    ctx = context(channels_last=True)
    batch = {"images": torch.rand(2, 3, 8, 4), "pids": [1, 2],
             "target": {"images": torch.rand(2, 3, 8, 4)}}
    images, pids, target = ctx.inputs(batch, "images", "pids", "target.images")
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert pids.tolist() == [1, 2] and pids.dtype == torch.int64
    assert torch.equal(target, batch["target"]["images"])
    with pytest.raises(ReidError, match=r"no 'positives' \(keys: images, pids, target\)"):
        ctx.inputs(batch, "positives")


def test_build_loss_by_name_with_options_and_bad_options():
    ctx = context()
    loss = ctx.build_loss("cross_entropy", label_smoothing=0.0)
    logits = torch.tensor([[0.0, 0.0, 0.0]])
    value = loss({"logits": logits}, {"pids": torch.tensor([0])})
    assert float(value) == pytest.approx(np.log(3.0))  # uniform over 3 classes
    with pytest.raises(ReidError, match="loss 'triplet': invalid options"):
        ctx.build_loss("triplet", margin="wide")
    losses = ctx.build_losses(8, [("cross_entropy", 1.0, {"label_smoothing": 0.0}),
                                  ("triplet", 0.5)])
    assert losses.names == ["cross_entropy", "triplet"] and losses.weights == [1.0, 0.5]


def test_image_grid_layout_and_values():
    black = -torch.ones(3, 3, 4, 2)  # tanh range: -1 is black
    white = torch.ones(5, 1, 4, 2)   # one channel, expanded to three
    grid = image_grid({"a": black, "b": white}, limit=8, padding=1)
    # 3 images per row (the smallest batch), 2 rows, 1-pixel padding around each image
    assert grid.shape == (2 * 4 + 3, 3 * 2 + 4, 3) and grid.dtype == np.uint8
    assert (grid[1:5, 1:3] == 0).all() and (grid[6:10, 1:3] == 255).all()
    with pytest.raises(ValueError, match="B x"):
        image_grid([torch.rand(3, 4, 4)])


def test_log_images_writes_a_png_inside_a_run_only(tmp_path):
    ctx = context()
    rows = {"source": torch.zeros(2, 3, 4, 2), "translated": torch.ones(2, 3, 4, 2)}
    assert ctx.log_images("translation", rows, step=7) is None  # no run: nothing written
    ctx.run_dir = tmp_path

    class Logger:
        calls: list = []

        def image(self, tag, image, step):
            self.calls.append((tag, image.shape, step))

    ctx.logger = Logger()
    path = ctx.log_images("translation", rows, step=7, value_range=(0.0, 1.0))
    assert path == tmp_path / "images" / "translation" / "step-0000007.png"
    assert np.asarray(Image.open(path)).shape == Logger.calls[0][1]
    assert Logger.calls[0][0::2] == ("images/translation", 7)


def test_sync_gradients_is_a_no_op_in_one_process():
    ctx = context()
    layer = torch.nn.Linear(2, 1)
    layer(torch.ones(1, 2)).sum().backward()
    before = layer.weight.grad.clone()
    ctx.sync_gradients(layer)
    assert torch.equal(layer.weight.grad, before)


def test_check_build_never_loads_or_downloads_weights(tmp_path, monkeypatch, capsys):
    import timm

    created = []
    real = timm.create_model

    def spy(name, pretrained=False, **kwargs):
        created.append(pretrained)
        if pretrained:
            raise AssertionError("reid check --build tried to download weights")
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", spy)
    recipe = tmp_path / "hub.toml"
    recipe.write_text('[method]\nname = "baseline"\n[backbone]\nname = "timm"\n'
                      'model = "resnet50"\npretrained = "hub"\n')
    assert main(["check", str(recipe), "--build"]) == 0
    assert created == [False]
    local = tmp_path / "local.toml"  # a weights file that is not there is not read either
    local.write_text('[method]\nname = "baseline"\n[backbone]\nname = "resnet_ibn_a"\n'
                     f'pretrained = "{tmp_path / "absent.pth"}"\n')
    assert main(["check", str(local), "--build"]) == 0
    assert "23,5" in capsys.readouterr().out  # ResNet-50-IBN-a trunk parameters were built
