"""Test settings and helpers: one intra-op thread by default (the CI box has 2 cores shared
by several jobs; override with REID_TEST_THREADS), the registry, and a tiny SAN: a narrow
ResNet-style backbone (timm's ResNet class, channels 16-128, one basic block per stage,
last stride 1) with a narrow SA-Dec, so the method's logic is tested at a small cost."""

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("REID_TEST_THREADS", "1")))

TINY_CHANNELS = [16, 32, 64, 128]
TINY_DECODER = {"name": "sa_decoder", "encoder_channels": TINY_CHANNELS,
                "widths": [16, 8, 8, 4, 4]}


@pytest.fixture(scope="session")
def registry():
    from reidcore.testing import installed_plugins

    return installed_plugins().registry


def tiny_resnet():
    from timm.models.resnet import BasicBlock, ResNet

    network = ResNet(BasicBlock, [1, 1, 1, 1], channels=tuple(TINY_CHANNELS), num_classes=0)
    block = network.layer4[0]  # last stride 1, as SAN's encoder
    block.conv1.stride = (1, 1)
    block.downsample[0].stride = (1, 1)
    network.feature_dim = TINY_CHANNELS[-1]
    return network


def make_context(registry, raw, num_classes=3, steps_per_epoch=2, tiny=True):
    """A CPU MethodContext for the recipe ``raw`` (TOML-like; ``method.name`` required)."""
    from reidcore.api import MethodContext
    from reidcore.testing import method_context

    name = raw["method"]["name"]
    raw = {**raw, "method": {k: v for k, v in raw["method"].items() if k != "name"}}
    recipe = method_context(registry.get("method", name), raw).recipe

    class Context(MethodContext):
        def build_backbone(self, default="timm"):
            return tiny_resnet() if tiny else super().build_backbone(default)

    return Context(recipe=recipe, registry=registry, num_classes=num_classes,
                   steps_per_epoch=steps_per_epoch)


def tiny_recipe(method=None, loader=None, name="san"):
    return {"method": {"name": name, "embedding_dim": 24, **(method or {})}
            if name == "san" else {"name": name, **(method or {})},
            "generators": {"decoder": dict(TINY_DECODER)},
            "data": {"source": [{"name": "synthetic", "size": "64x32"}]},
            "loader": {"height": 64, "width": 32, "identities": 2, "instances": 4,
                       "textures": True, "texture_height": 32, "texture_width": 32,
                       **(loader or {})}}


def make_san(registry, method=None, loader=None, num_classes=3, name="san"):
    context = make_context(registry, tiny_recipe(method, loader, name), num_classes)
    torch.manual_seed(0)
    return registry.get("method", name).create(context.recipe.method.config, context=context)


def train_step(method, batch, step=0, optim=None):
    """One ``training_step`` with the ``optim`` the engine would hand it (built from
    ``method.configure_optimizers()`` when not given); returns (metrics, optim)."""
    from reidcore.testing import step_optimizers

    optim = optim if optim is not None else step_optimizers(method, method.context)
    return method.training_step(batch, step, optim), optim


def make_batch(batch_size=8, instances=4, texture=32, seed=1):
    generator = torch.Generator().manual_seed(seed)
    pids = torch.arange(batch_size // instances).repeat_interleave(instances)
    return {"images": torch.randn(batch_size, 3, 64, 32, generator=generator),
            "pids": pids,
            "textures": torch.rand(batch_size, 3, texture, texture, generator=generator) * 2 - 1,
            "paths": [f"img{i}.jpg" for i in range(batch_size)]}
