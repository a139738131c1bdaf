"""No setting silently ignored: a recipe is checked against what its method's spec declares
it reads (MethodNeeds), once, by the core, with one wording for every method."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import torch

from reidcore.api import ComponentSpec, MethodNeeds, RecipeError, hookimpl
from reidcore.plugins import load_plugins
from reidcore.recipe import resolve
from reidcore.registry import OPTIMIZATION_KEYS
from reidcore.testing import build_method, installed_plugins, resolve_recipe


@attrs.define
class PickyConfig:
    pass


PICKY = MethodNeeds(train={"weight_decay"}, train_note="picky sets its LR in method.lr",
                    roles={"decoder": "picky_generator", "critic": None}, losses=False,
                    losses_note="picky's loss weights are method.w_*",
                    batch={"positives", "second", "target"},
                    flip_note="picky's embedding already flips")


class PickyPlugin:
    @hookimpl
    def reid_generators(self) -> list[ComponentSpec]:
        return [ComponentSpec(name="picky_generator", kind="generator", config=PickyConfig,
                              build="builtins:print")]

    @hookimpl
    def reid_methods(self) -> list[ComponentSpec]:
        return [ComponentSpec(name="picky", kind="method", config=PickyConfig,
                              build="builtins:print", needs=PICKY)]


def check(raw: dict[str, Any]) -> list[str]:
    plugins = load_plugins(extra=[("picky-test", PickyPlugin())])
    try:
        resolve(raw, "<test>", plugins.registry, plugins.hook)
    except RecipeError as exc:
        return [f"{p.path}: {p.message}" for p in exc.problems]
    return []


def test_every_need_is_checked_with_one_wording():
    problems = check({"method": {"name": "picky"},
                      "train": {"lr": 0.1, "weight_decay": 0.0, "epochs": 3},
                      "losses": [{"name": "triplet"}],
                      "generators": {"decodr": {"name": "picky_generator"}},
                      "evaluate": {"name": "ranking", "flip": True}})
    assert problems == [
        "$.train.lr: method 'picky' does not read train.lr (set to 0.1): picky sets its LR "
        "in method.lr; remove it",
        "$.losses: method 'picky' takes no [[losses]]: picky's loss weights are method.w_*; "
        "remove them",
        "$.generators.decodr: method 'picky' has no generator role 'decodr' (did you mean "
        "'decoder'?); its roles: decoder, critic",
        "$.generators.critic: method 'picky' needs [generators.critic] (no default "
        "component)",
        "$.loader.positive: method 'picky' reads batch[\"positives\"]: set loader.positive = "
        "true",
        "$.loader.second_batch: method 'picky' reads batch[\"second\"]: set "
        "loader.second_batch = true",
        "$.data.target: method 'picky' reads batch[\"target\"]: add a [[data.target]] dataset",
        "$.evaluate.flip: method 'picky': picky's embedding already flips: set the "
        "evaluator's flip = false"]


def test_a_recipe_that_gives_what_the_method_needs_passes():
    assert check({"method": {"name": "picky"},
                  "train": {"weight_decay": 0.0, "lr": 3.5e-4},  # lr at its default: unused
                  "generators": {"critic": {"name": "picky_generator"}},
                  "loader": {"positive": True, "second_batch": True},
                  "data": {"target": [{"name": "synthetic"}]},
                  "evaluate": {"name": "ranking", "flip": False}}) == []


def test_needs_refuse_unknown_keys_and_parts_at_registration():
    with pytest.raises(ValueError, match="not \\[train\\] optimization keys"):
        MethodNeeds(train={"learning_rate"})
    with pytest.raises(ValueError, match="not batch parts"):
        MethodNeeds(batch={"positive"})


# --- over every installed method: each [train] key is honoured or refused -------------------


def method_specs() -> list[ComponentSpec]:
    return list(installed_plugins().registry.specs("method"))


def learning_rates(spec: ComponentSpec, example: dict[str, Any]) -> list[float]:
    torch.manual_seed(0)
    method, _ = build_method(spec, example)
    optimization = method.configure_optimizers()
    return [group["initial_lr"] if "initial_lr" in group else group["lr"]
            for optimizer in optimization.optimizers.values()
            for group in optimizer.param_groups]


@pytest.mark.parametrize("spec", method_specs(), ids=lambda spec: spec.name)
def test_train_lr_is_honoured_or_refused(spec):
    """``--set train.lr=...`` either changes the method's learning rates or is refused
    naming the method's own keys (never accepted and ignored)."""
    from reidcore.registry import resolve_callable

    example = dict(resolve_callable(spec.example)())
    example.pop("reid:no_gradient", None)
    raw = {key: value for key, value in example.items() if not key.startswith("reid:")}
    raw["method"] = {"name": spec.name, **dict(raw.get("method", {}))}
    if "lr" not in spec.needs.train:
        with pytest.raises(RecipeError, match=r"\$\.train\.lr: method '.*' does not read "
                                              r"train\.lr"):
            resolve_recipe({**raw, "train": {**raw.get("train", {}), "lr": 0.123}})
        return
    base = learning_rates(spec, example)
    doubled = {**example, "train": {**example.get("train", {}),
                                    "lr": 2 * resolve_recipe(raw).train.lr}}
    assert [2 * lr for lr in base] == pytest.approx(learning_rates(spec, doubled))


def test_every_optimization_key_is_declared_somewhere_as_read():
    """The core's baseline reads them all (the default MethodNeeds)."""
    baseline = installed_plugins().registry.get("method", "baseline")
    assert set(baseline.needs.train) == set(OPTIMIZATION_KEYS)


def test_momentum_with_adam_is_refused_not_ignored():
    with pytest.raises(RecipeError, match=r"\$\.train\.momentum: train\.momentum = 0\.5 "
                                          r"applies to optimizer = \"sgd\" only"):
        resolve_recipe("quickstart", ["train.momentum=0.5"])
    assert resolve_recipe("quickstart", ["train.momentum=0.5",
                                         "train.optimizer=sgd"]).train.momentum == 0.5
