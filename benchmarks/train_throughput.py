"""Training throughput of the engine against a minimal hand-written PyTorch loop.

Both train the same model (the recipe's baseline: backbone + BNNeck + classifier), with the
same loader (``reidcore.data.build_train_loader``: same images, batches, augmentation),
the same losses (cross-entropy with label smoothing + batch-hard triplet) and Adam, for
the same number of epochs; evaluation is left out of both. Prints images/s and the
engine's overhead. On CUDA it also times the engine with bf16 mixed precision.

    python benchmarks/train_throughput.py [RECIPE] [--epochs N] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from reidcore.engine.distributed import DistInfo  # noqa: E402
from reidcore.engine.runner import Trainer, seed_everything  # noqa: E402
from reidcore.losses.losses import batch_hard_triplet  # noqa: E402
from reidcore.plugins import get_plugins  # noqa: E402
from reidcore.recipe import find_recipe, read_toml, resolve  # noqa: E402


def load(recipe_ref: str, overrides: list[str]):
    plugins = get_plugins()
    path = find_recipe(recipe_ref, plugins.recipe_dirs())
    return plugins, resolve(read_toml(path), str(path), plugins.registry, plugins.hook,
                            overrides=overrides)


def engine_run(plugins, recipe, out: Path) -> tuple[float, int]:
    trainer = Trainer(recipe, plugins, out, False, DistInfo(), quiet=True)
    trainer.setup()
    trainer.evaluate = lambda *args, **kwargs: False  # time training only
    images = 0
    start = time.perf_counter()
    summary = trainer.fit()
    seconds = time.perf_counter() - start
    images = summary["steps"] * recipe.loader.identities * recipe.loader.instances
    trainer.close()
    return seconds, images


def hand_run(plugins, recipe) -> tuple[float, int]:
    """What a user would write by hand: no hooks, no logging, no checkpoints."""
    from reidcore.data.loaders import build_train_loader
    from reidcore.models.heads import BNNeck, Classifier

    seed_everything(recipe.seed)
    registry = plugins.registry
    datasets = [registry.get("dataset", s.name).create(s.config).load()
                for s in recipe.data.source]
    loader = build_train_loader(datasets, [], recipe.loader, seed=recipe.seed)
    backbone = registry.get("backbone", recipe.backbone.name).create(recipe.backbone.config)
    neck, classifier = BNNeck(backbone.feature_dim), Classifier(backbone.feature_dim,
                                                                loader.num_classes)
    model = torch.nn.ModuleDict({"backbone": backbone, "neck": neck, "classifier": classifier})
    from reidcore.engine.runner import resolve_device

    device = resolve_device(recipe.train.device)
    model.to(device).train()
    cfg = recipe.train
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    images = 0
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        loader.set_epoch(epoch)
        for batch in loader:
            x = batch["images"].to(device, non_blocking=True)
            y = batch["pids"].to(device, non_blocking=True)
            features = backbone(x)
            logits = classifier(neck(features))
            loss = F.cross_entropy(logits, y, label_smoothing=0.1) + batch_hard_triplet(
                features, y, margin=0.3)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            images += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - start, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default="quickstart")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats")
    args = parser.parse_args()
    overrides = [f"train.epochs={args.epochs}", *args.overrides]
    plugins, recipe = load(args.recipe, overrides)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cuda {torch.cuda.is_available()}; recipe {args.recipe} {overrides}")
    results: dict[str, list[float]] = {"hand": [], "engine": []}
    print(f"device {recipe.train.device}")
    for repeat in range(args.repeats):
        for name in ("hand", "engine"):
            if name == "hand":
                seconds, images = hand_run(plugins, recipe)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    seconds, images = engine_run(plugins, recipe, Path(tmp) / "run")
            results[name].append(images / seconds)
            print(f"  {name:6s} repeat {repeat}: {images} images in {seconds:.1f}s = "
                  f"{images / seconds:.1f} images/s", flush=True)
    hand, engine = max(results["hand"]), max(results["engine"])
    print(f"best of {args.repeats}: hand-written {hand:.1f} images/s, engine {engine:.1f} "
          f"images/s, engine overhead {100 * (hand - engine) / hand:+.1f} %")
    if torch.cuda.is_available():
        for precision in ("fp32", "bf16"):
            _, r = load(args.recipe, overrides + ["train.device=\"cuda\"",
                                                   f"train.precision=\"{precision}\""])
            with tempfile.TemporaryDirectory() as tmp:
                seconds, images = engine_run(plugins, r, Path(tmp) / "run")
            print(f"  GPU engine {precision}: {images / seconds:.1f} images/s")


if __name__ == "__main__":
    main()
