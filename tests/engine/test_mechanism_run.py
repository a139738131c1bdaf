"""The proving ground inside a run: a method with the three capabilities is measured after
its final evaluation. The method's outputs are chosen so that each metric's value is known:
its swap returns the structure image (so it must score exactly as "copy s"), its
translation returns the input (exactly "no translation"), its texture is the mean texture
the core computes (exactly the baseline)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from reidcore.api import ComponentSpec, hookimpl
from reidcore.engine.runner import run_recipe
from reidcore.methods.baseline import build as build_baseline
from reidcore.methods.config import BaselineConfig
from reidcore.plugins import load_plugins
from tests.engine.conftest import fast_recipe_dict, resolve_dict


class Mimic:
    """The core's baseline plus capabilities whose outputs copy the trivial baselines."""

    texture: torch.Tensor | None = None

    def __init__(self, config: BaselineConfig, *, context: Any):
        self.inner = build_baseline(config, context=context)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def swap(self, appearance: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        return structure.clone()

    def translate(self, images: torch.Tensor) -> torch.Tensor:
        return images.clone()

    def estimate_texture(self, images: torch.Tensor) -> torch.Tensor:
        return torch.full((images.shape[0], 3, 32, 32), 0.5)


class MimicPlugin:
    @hookimpl
    def reid_methods(self) -> list[ComponentSpec]:
        return [ComponentSpec(name="mimic", kind="method", config=BaselineConfig, build=Mimic)]


def test_a_capable_method_is_measured_against_the_truth(engine_cache, tmp_path):
    plugins = load_plugins(extra=[("mimic-test", MimicPlugin())])
    raw = fast_recipe_dict(engine_cache, epochs=1)
    raw["method"] = {"name": "mimic"}
    raw["train"]["mechanism_samples"] = 4
    from reidcore.recipe import resolve

    recipe = resolve(raw, "<test>", plugins.registry, plugins.hook)
    summary = run_recipe(recipe, plugins, out=tmp_path / "run", quiet=True)
    report = summary["mechanism"]
    assert report == json.loads((tmp_path / "run" / "summary.json").read_text())["mechanism"]

    swap = report["swap"]
    assert swap["pairs"] == 4
    assert swap["fidelity"]["method"] == swap["fidelity"]["copy_s"]
    assert swap["identity"]["method"] == swap["identity"]["copy_s"]
    # copying the appearance image finds its identity at once; the structure image does not
    assert swap["identity"]["copy_a"]["rank"]["mean"] < swap["identity"]["copy_s"]["rank"]["mean"]
    assert 0 < swap["fidelity"]["copy_s"]["ssim"]["mean"] < 1

    translation = report["translation"]
    assert translation["from_style"] == "synthetic" and translation["to_style"] == "real"
    assert translation["fidelity"]["method"] == translation["fidelity"]["no_translation"]
    closest = translation["fidelity_closest_camera"]
    assert closest["method"] == closest["no_translation"]
    picked = translation["closest_camera"]
    assert picked["method"] == picked["no_translation"]
    # a camera chosen for it is at least as close as its own index's
    assert closest["method"]["l1"]["mean"] <= translation["fidelity"]["method"]["l1"]["mean"]

    texture = report["texture"]["fidelity"]
    assert texture["method"]["l1"]["mean"] > 0 and texture["mean_texture"]["l1"]["mean"] > 0
    for capability in ("swap", "translation", "texture"):
        assert (tmp_path / "run" / f"mechanism_{capability}.png").is_file()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    logged = next(r for r in rows if r["kind"] == "mechanism")
    assert logged["swap/l1/method"] == pytest.approx(swap["fidelity"]["method"]["l1"]["mean"])

    # measured again from the run directory (reid mechanism): the same seeded sample
    from reidcore.engine.mechanism_command import measure_mechanism

    again, grids = measure_mechanism(tmp_path / "run", plugins=plugins, samples=4)
    assert again == report and set(grids) == {"swap", "translation", "texture"}


def test_no_capability_or_no_samples_gives_no_report(engine_cache):
    from reidcore.engine.mechanism import mechanism_report

    recipe = resolve_dict(fast_recipe_dict(engine_cache))
    plain = object()  # no swap, translate or estimate_texture
    assert mechanism_report(plain, recipe, {}, [], {}, torch.device("cpu"), False, 8) == ({}, {})
    assert mechanism_report(Mimic.__new__(Mimic), recipe, {}, [], {}, torch.device("cpu"),
                            False, 0) == ({}, {})


def test_reid_mechanism_refuses_what_is_not_a_run(tmp_path, capsys):
    from reidcore.testing import reid_cli

    assert reid_cli("mechanism", tmp_path / "missing") != 0
    assert "is not a run directory" in capsys.readouterr().err
    assert reid_cli("mechanism", tmp_path, "--samples", "0") != 0
    assert "--samples must be at least 1" in capsys.readouterr().err
