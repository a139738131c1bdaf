"""Issue 25, item 1: a run killed after epoch k and resumed ends exactly where the same run
ends uninterrupted (same metrics, same weights bit for bit), for every method that ships
a ``*-synthetic`` recipe, requirements included.

Found through the installed plugins: each method's packaged ``<method>-synthetic`` recipe,
shrunk with ``--set`` overrides computed from the recipe itself (2 epochs of 2 steps,
2 identities per batch, a few synthetic identities at 32x16 or the recipe's size, in a
per-session data cache), the same overrides applied to every ``[requires.*]`` stage. The
uninterrupted run trains the chain; the killed run reuses a copy of its requirements (a
completed requirement is not trained again), is stopped at the first step of epoch 2 as a
kill would (KeyboardInterrupt from a step hook) and is resumed with ``--resume``.

SAN failed this before the fix: it writes its pseudo textures lazily at the first step,
and loading the SAN-PG run there built networks that drew from the global RNG, so a
resumed run drew one initialisation more than an uninterrupted one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from reidcore import hookimpl
from reidcore.engine import checkpoint as ckpt
from reidcore.recipe import packaged_recipes
from reidcore.testing import installed_plugins, reid_cli, resolve_recipe

EPOCHS, STEPS = 2, 2
KILL_AFTER_EPOCH = 1
BATCH = 8
TINY_BACKBONE = "test_resnet"  # timm's 0.5M-parameter ResNet: stages of 32, 48, 192, 96 channels
# what the generic shrinking cannot know: networks sized from the backbone's stages
NETWORKS = {name: ["generators.decoder.encoder_channels=[32, 48, 192, 96]",
                   "generators.decoder.widths=[16, 8, 8, 4, 4]"]
            for name in ("san-synthetic", "san-pg-synthetic")}
NETWORKS["dgnet-synthetic"] = ["generators.decoder.code_dim=384",  # 96 channels x 4 stripes
                               "generators.decoder.mlp_dim=16"]
DATA = {"ids": 6, "test_ids": 4, "distractors": 1, "cameras": 2, "images_per_camera": 2}


def synthetic_recipes() -> list[Any]:
    """One ``pytest.param`` per installed method: its ``<method>-synthetic`` recipe, or a
    skip naming the method when its plugin ships none."""
    plugins = installed_plugins()
    found = packaged_recipes(plugins.recipe_dirs())
    params = []
    for method in sorted(plugins.registry.names("method")):
        name = f"{method.replace('_', '-')}-synthetic"
        if name in found:
            params.append(pytest.param(name, id=method))
        elif method != "baseline":  # the core's own method: the engine tests cover it
            params.append(pytest.param(name, id=method, marks=pytest.mark.skip(
                reason=f"method '{method}' has no packaged {name} recipe")))
    return params


def shrink(recipe: str, root: Path) -> list[str]:
    """``--set`` overrides that make ``recipe`` (and its requirements, recursively) tiny."""
    resolved = resolve_recipe(recipe)
    sets = [f"train.epochs={EPOCHS}", f"train.steps_per_epoch={STEPS}",
            f"train.eval_every={EPOCHS}", "train.ranked_pictures=0",
            "train.mechanism_samples=0"]  # the proving ground measures after training
    if resolved.backbone is not None and resolved.backbone.name == "timm":
        sets.append(f'backbone.model="{TINY_BACKBONE}"')
    sets += NETWORKS.get(Path(recipe).stem, [])
    loader = resolved.loader
    sets.append(f"loader.identities={min(loader.identities, max(2, BATCH // loader.instances))}")
    if getattr(loader, "target_batch_size", None):
        sets.append(f"loader.target_batch_size={min(loader.target_batch_size, BATCH)}")
    for role in ("source", "target", "test"):
        for index, section in enumerate(getattr(resolved.data, role)):
            if section.name != "synthetic":
                continue
            sets += [f"data.{role}.{index}.{key}={value}" for key, value in DATA.items()]
            sets.append(f'data.{role}.{index}.root="{root}"')
    for role, requirement in resolved.requires.items():
        if requirement.recipe:
            inner = ", ".join(f"'{item}'" for item in (*shrink(requirement.recipe, root),
                                                        *requirement.set))
            sets.append(f"requires.{role}.set=[{inner}]")
    return sets


class KillAtStep:
    """Raise KeyboardInterrupt (as a kill would) after step ``step`` of the run in
    ``run_dir`` only (its requirements' runs go on)."""

    def __init__(self, run_dir: Path, step: int):
        self.run_dir, self.step = str(run_dir), step

    @hookimpl
    def reid_train_step_end(self, run, step, metrics):
        if str(run.run_dir) == self.run_dir and step == self.step:
            raise KeyboardInterrupt


def run(recipe: str, out: Path, sets: list[str], *extra: str) -> int:
    """``reid run`` in this process; its exit code (130: interrupted)."""
    args = [a for item in sets for a in ("--set", item)]
    return reid_cli("run", recipe, "--out", out, *args, *extra)


def final_weights(run_dir: Path) -> dict[str, Any]:
    latest = ckpt.latest(run_dir / "checkpoints")
    assert latest is not None, f"no checkpoint in {run_dir}"
    return ckpt.read(latest)["modules"]


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("resume-exact-data")


@pytest.mark.parametrize("recipe", synthetic_recipes())
def test_killed_and_resumed_equals_uninterrupted(recipe, data_cache, tmp_path, capsys):
    sets = shrink(recipe, data_cache)
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert run(recipe, full, sets) == 0
    # the killed run's completed requirements: the same runs, not trained again
    for required in tmp_path.glob("full-*"):
        shutil.copytree(required, tmp_path / f"killed{required.name[len('full'):]}")

    plugins = installed_plugins()
    plugins.manager.register(KillAtStep(killed, KILL_AFTER_EPOCH * STEPS + 1), name="kill")
    try:
        assert run(recipe, killed, sets) == 130  # interrupted
    finally:
        plugins.manager.unregister(name="kill")
    assert run(recipe, killed, sets, "--resume") == 0
    assert "resumed from" in capsys.readouterr().out

    summaries = [json.loads((d / "summary.json").read_text()) for d in (full, killed)]
    assert summaries[1]["status"] == "completed"
    assert summaries[1]["metrics"] == summaries[0]["metrics"], "resumed metrics differ"
    first, second = final_weights(full), final_weights(killed)
    assert first.keys() == second.keys()
    for module in first:
        for key in first[module]:
            assert torch.equal(first[module][key], second[module][key]), \
                f"{recipe}: {module}.{key} differs after resuming"
