"""Each of the new losses, alone in ``[[losses]]``, trains the quickstart recipe to a better
mAP than the untrained network's (same data, same evaluation, same initial weights).

The quickstart shortened to 2 epochs (30 steps), without flip at test time, LR 3e-3 without
warm-up, on one torch thread (fast and deterministic on a busy machine). ArcFace and CosFace
run at scale 16: at their default 64 a head trained from scratch needs far more than 30
steps to move the mAP (arcface at 64: 0.0232 after 30 steps, 0.0352 after 60, from 0.0212).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

QUICK = ["evaluate.flip=false", "train.epochs=2", "train.eval_every=2",
         "train.ranked_pictures=0", "train.lr=3e-3", "train.warmup_epochs=0"]


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loss-training-cache")


def train(loss: dict, out: Path, cache: Path, monkeypatch, untrained: bool = False
          ) -> tuple[float | None, float]:
    from reidcore.engine.distributed import DistInfo
    from reidcore.engine.runner import Trainer
    from reidcore.plugins import get_plugins
    from reidcore.recipe import find_recipe, read_toml, resolve

    monkeypatch.setenv("REID_CACHE", str(cache))
    plugins = get_plugins()
    path = find_recipe("quickstart", plugins.recipe_dirs())
    raw = read_toml(path)
    raw["losses"] = [dict(loss, weight=1.0)]
    recipe = resolve(raw, str(path), plugins.registry, plugins.hook, overrides=QUICK)
    trainer = Trainer(recipe, plugins, out, False, DistInfo(), quiet=True)
    try:
        trainer.setup()
        before = None
        if untrained:
            trainer.evaluate(0)
            before = trainer.last_metrics["synthetic/mAP"]
        summary = trainer.fit()
    finally:
        trainer.close()
    return before, summary["metrics"]["synthetic"]["mAP"]


@pytest.fixture(scope="module")
def untrained_map(one_thread) -> dict[str, float]:
    """Filled by the first test that runs: the network's initial weights do not depend on
    the loss (a loss's own parameters are made after the network), so neither does it."""
    return {}


@pytest.mark.slow
@pytest.mark.parametrize(("loss", "factor"), [
    ({"name": "circle"}, 2.0),                    # 0.0212 -> 0.0639
    ({"name": "weighted_triplet"}, 1.8),          # 0.0212 -> 0.0538
    ({"name": "arcface", "scale": 16.0}, 1.3),    # 0.0212 -> 0.0315
    ({"name": "cosface", "scale": 16.0}, 1.3),    # 0.0212 -> 0.0338
], ids=["circle", "weighted_triplet", "arcface", "cosface"])
def test_loss_trains_the_quickstart(loss, factor, tmp_path, cache, untrained_map, monkeypatch):
    before, trained = train(loss, tmp_path / "run", cache, monkeypatch,
                            untrained="mAP" not in untrained_map)
    if before is not None:
        untrained_map["mAP"] = before
    untrained = untrained_map["mAP"]
    print(f"{loss['name']}: untrained mAP {untrained:.4f}, trained {trained:.4f}")
    assert trained > factor * untrained
