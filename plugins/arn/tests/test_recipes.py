"""Every packaged recipe resolves and builds offline (reid check --build), and bad input
is a clear recipe problem."""

import subprocess
import sys
from pathlib import Path

import pytest
from reidcore.api import RecipeError
from reidcore.testing import resolve_recipe

RECIPES = sorted(p.stem for p in (Path(__file__).parents[1] / "reid_plugin_arn" /
                                  "recipes").glob("*.toml"))


def test_the_recipes_the_readme_lists():
    assert set(RECIPES) == {"arn-synthetic", "arn-synthetic-pretrain", "arn-duke2market",
                            "arn-duke2market-pretrain", "arn-market2duke",
                            "arn-market2duke-pretrain", "arn-identity-pose-duke2market",
                            "arn-identity-pose-duke2market-pretrain"}


def test_check_build_every_recipe():
    # `reid check <recipe> --build` for each, in one fresh process (torch imported once)
    code = ("import sys; from reidcore.testing import reid_cli; "
            "sys.exit(max(reid_cli('check', name, '--build') for name in sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, *RECIPES], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("trainable") == len(RECIPES)


def test_adaptation_recipes_require_their_pretraining_stage():
    for name in RECIPES:
        if name.endswith("-pretrain"):
            continue
        recipe = resolve_recipe(name)
        assert recipe.requires["pretrained"].recipe == f"{name}-pretrain"
        assert recipe.method.config.pretrained == "pretrained"
        stage = resolve_recipe(f"{name}-pretrain")
        assert stage.method.config.source_only
        assert stage.generators["network"].config == recipe.generators["network"].config


def test_problems_are_reported_with_their_keys():
    with pytest.raises(RecipeError) as info:
        resolve_recipe("arn-synthetic", ["loader.normalize='imagenet'",
                                         "generators.decoder.name='arn_network'"])
    text = str(info.value)
    assert "$.loader.normalize" in text and "$.generators.decoder" in text
    with pytest.raises(RecipeError, match=r"\$.data.target"):
        resolve_recipe("arn-synthetic", ["data.target=[]"])
    with pytest.raises(RecipeError, match=r"\$.method.difference: .*did you mean 'dsn'"):
        resolve_recipe("arn-synthetic", ["method.difference='dsnn'"])
    with pytest.raises(RecipeError, match=r"\$.method.private_init: .*identity_pose_network"):
        resolve_recipe("arn-identity-pose-duke2market", ["method.private_init='shared'"])


def test_what_the_method_declares_is_checked_by_the_core():
    # [[losses]]: arn sets its loss weights in [method]
    with pytest.raises(RecipeError, match=r"\$.losses: .*w_cls, w_rec"):
        resolve_recipe("arn-synthetic", ["losses=[{name='cross_entropy'}]"])
    # every [train] optimization key is read (one optimizer from [train], its schedule)
    recipe = resolve_recipe("arn-synthetic", ["train.lr=0.1", "train.schedule='cosine'"])
    assert (recipe.train.lr, recipe.train.schedule) == (0.1, "cosine")
    # the pretraining stage reads no target batch: it needs no [[data.target]]
    assert not resolve_recipe("arn-synthetic-pretrain").data.target
