"""Test settings and helpers: one intra-op thread by default (the CI box has 2 cores shared
by several jobs; override with REID_TEST_THREADS), the registry, and a tiny DG-Net: a
narrow ResNet-style trunk (timm's ResNet class, channels 8-64, one basic block per stage,
last stride 1), Es dim 4, decoder 32 channels, D dim 4, so the method's logic is tested at
a small cost."""

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("REID_TEST_THREADS", "1")))

TINY_CHANNELS = (8, 16, 32, 64)


@pytest.fixture(scope="session")
def registry():
    """The installed registry (through reidcore.testing: tests use public modules only)."""
    from reidcore.testing import components_of, method_context

    from reid_plugin_dgnet.method import recipe_example

    spec = next(s for s in components_of("reid-plugin-dgnet") if s.name == "dgnet")
    return method_context(spec, recipe_example()).registry


def tiny_trunk():
    from timm.models.resnet import BasicBlock, ResNet

    network = ResNet(BasicBlock, [1, 1, 1, 1], channels=TINY_CHANNELS, num_classes=0)
    block = network.layer4[0]  # last stride 1, as DG-Net's Ea
    block.conv1.stride = (1, 1)
    block.downsample[0].stride = (1, 1)
    network.feature_dim = TINY_CHANNELS[-1]
    return network


def tiny_recipe(method=None, loader=None):
    return {"method": {"name": "dgnet", **(method or {})},
            "generators": {"structure": {"name": "dgnet_structure_encoder", "dim": 4,
                                         "dilations": [1, 2, 3]},
                           "decoder": {"name": "dgnet_decoder", "dim": 32,
                                       "code_dim": 4 * TINY_CHANNELS[-1], "mlp_dim": 16},
                           "discriminator": {"name": "dgnet_discriminator", "dim": 4,
                                             "res_blocks": 1}},
            "data": {"source": [{"name": "synthetic", "size": "64x32"}]},
            "loader": {"height": 64, "width": 32, "identities": 4, "instances": 1,
                       "sampler": "random", "positive": True, "second_batch": True,
                       "erasing": 0.0, **(loader or {})},
            "evaluate": {"name": "ranking", "metric": "cosine", "flip": False}}


def make_context(registry, raw, num_classes=3, steps_per_epoch=2, tiny=True, epochs=None):
    """A CPU MethodContext for the recipe ``raw`` (TOML-like; ``method.name`` required)."""
    from reidcore.api import MethodContext
    from reidcore.testing import method_context

    raw = {**raw, "method": {k: v for k, v in raw["method"].items() if k != "name"}}
    if epochs is not None:
        raw["train"] = {"epochs": epochs}
    recipe = method_context(registry.get("method", "dgnet"), raw).recipe

    class Context(MethodContext):  # reidcore.testing.tiny_context's trunk is 8x wider
        def build_backbone(self, default="timm"):
            return tiny_trunk() if tiny else super().build_backbone(default)

    return Context(recipe=recipe, registry=registry, num_classes=num_classes,
                   steps_per_epoch=steps_per_epoch)  # the clock is the context's own


class LinearTeacher:
    """A teacher stand-in with fixed logits per image mean (a real network, frozen)."""

    def __init__(self, num_classes=3):
        torch.manual_seed(5)
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(num_classes))
        self.num_classes = num_classes

    def logits(self, images):
        with torch.no_grad():
            return self.net(images)


def make_dgnet(registry, method=None, num_classes=3, teacher=True, **kwargs):
    context = make_context(registry, tiny_recipe(method), num_classes, **kwargs)
    torch.manual_seed(0)
    dgnet = registry.get("method", "dgnet").create(context.recipe.method.config,
                                                   context=context)
    if teacher:
        dgnet.teacher = LinearTeacher(num_classes)
    return dgnet


def make_batch(batch_size=4, num_classes=3, seed=1, size=(64, 32)):
    generator = torch.Generator().manual_seed(seed)

    def part():
        return {"images": torch.randn(batch_size, 3, *size, generator=generator),
                "positives": torch.randn(batch_size, 3, *size, generator=generator),
                "pids": torch.randint(0, num_classes, (batch_size,), generator=generator)}

    return {**part(), "second": part()}
