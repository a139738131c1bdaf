"""The packaged recipes resolve and carry the paper's settings (notes B.2-B.5)."""

import pytest
from reidcore.api import RecipeError, load_recipe
from reidcore.plugins import get_plugins

REAL = {"flipreid-market1501": "market1501", "flipreid-dukemtmcreid": "dukemtmcreid",
        "flipreid-msmt17": "msmt17"}


def load(name, overrides=()):
    path, recipe = load_recipe(name, get_plugins(), overrides=list(overrides))
    assert path.parent.parent.name == "reid_plugin_flipreid"
    return recipe


@pytest.mark.parametrize("name", sorted(REAL))
def test_paper_recipes(name):
    recipe = load(name)
    method, loader, train = recipe.method.config, recipe.loader, recipe.train
    assert recipe.method.name == "flipreid" and method.variant == "flipreid"
    assert (method.region_num, method.gem_p, method.clip) == (2, 1.0, True)
    assert (method.frozen_epochs, method.warmup_epochs, method.drop_every) == (20, 10, 30)
    assert method.lr_floor == 0.01 and method.bn_momentum == 0.01 and method.adam_eps == 1e-7
    assert (recipe.backbone.name, recipe.backbone.config.model) == ("timm", "resnest50d")
    assert recipe.backbone.config.last_stride == 1
    # ResNeSt-50: base LR 3e-4, Keras L2 1e-3 -> coupled weight decay 2e-3; 20 + 200 epochs
    assert (train.lr, train.weight_decay, train.epochs) == (3e-4, 2e-3, 220)
    assert train.steps_per_epoch == 200  # the official fixed epoch (solution.py flag)
    losses = {s.name: (s.weight, s.config) for s in recipe.losses}
    assert losses["triplet"][1].soft_margin and losses["cross_entropy"][1].label_smoothing == 0
    assert set(losses) == {"triplet", "cross_entropy", "flipping"}
    assert all(weight == 1.0 for weight, _ in losses.values())
    assert (loader.height, loader.width, loader.identities, loader.instances) == (384, 128, 16, 4)
    assert (loader.flip, loader.grayscale_patch, loader.erasing) == (0.5, 0.8, 0.8)
    assert loader.erasing_sampler == "official"  # aspect uniform, 100 attempts
    assert recipe.evaluate.config.metric == "cosine" and not recipe.evaluate.config.flip
    assert [s.name for s in recipe.data.source] == [REAL[name]]
    assert [s.name for s in recipe.data.test] == [REAL[name]]


@pytest.mark.parametrize("variant", ["plain", "flip_tta", "flipreid"])
def test_synthetic_recipe_variants(variant):
    recipe = load("flipreid-synthetic", [f"method.variant={variant}"])
    assert recipe.method.config.variant == variant
    assert recipe.train.device == "cpu" and recipe.data.source[0].name == "synthetic"


def test_real_recipe_ablation_needs_the_flipping_loss_removed():
    with pytest.raises(RecipeError, match=r"\$\.losses\[2\]\.name: the flipping loss"):
        load("flipreid-market1501", ["method.variant=plain"])
