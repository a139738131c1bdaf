"""The packaged recipes resolve and carry the paper's settings (notes B.2-B.5)."""

import pytest
from reidcore.api import RecipeError, load_recipe
from reidcore.testing import installed_plugins, reid_cli

REAL = {"flipreid-market1501": "market1501", "flipreid-dukemtmcreid": "dukemtmcreid",
        "flipreid-msmt17": "msmt17"}


def load(name, overrides=()):
    path, recipe = load_recipe(name, installed_plugins(), overrides=list(overrides))
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


@pytest.mark.parametrize("key", ["optimizer=sgd", "schedule=cosine", "milestones=[2]",
                                 "warmup_epochs=0", "momentum=0.5"])
def test_train_keys_it_does_not_read_are_refused(key, capsys):
    """Adam and the method's own schedule: another [train] optimizer or schedule setting
    is refused by `reid check`, naming the method's own keys."""
    assert reid_cli("check", "flipreid-synthetic", "--set", f"train.{key}") != 0
    err = capsys.readouterr().err
    assert f"does not read train.{key.split('=')[0]}" in err and "method.lr_floor" in err


def test_train_lr_and_weight_decay_are_read():
    """train.lr (times lr_mult) and train.weight_decay reach the optimizer's groups."""
    from reidcore.testing import tiny_context

    from reid_plugin_flipreid.method import FlipReID

    context = tiny_context("flipreid", train={"lr": 0.1, "weight_decay": 0.01,
                                              "lr_mult": {"heads": 2.0}})
    method = FlipReID(context.recipe.method.config, context=context)
    groups = {g["name"]: g for g in
              method.configure_optimizers().optimizers["main"].param_groups}
    # the schedule starts at lr_floor x lr (warm-up); its base is train.lr x lr_mult
    assert groups["backbone"]["initial_lr"] == 0.1 and groups["heads"]["initial_lr"] == 0.2
    assert groups["heads"]["lr"] == pytest.approx(0.2 * context.recipe.method.config.lr_floor)
    assert groups["backbone"]["weight_decay"] == 0.01 and groups["gem"]["weight_decay"] == 0.0
