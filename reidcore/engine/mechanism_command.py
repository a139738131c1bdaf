"""``reid mechanism RUN`` and :func:`measure_mechanism`: a trained run's mechanism measured
against the synthetic data's ground truth (:mod:`reidcore.engine.mechanism`, which the
trainer runs after its final evaluation; the parser imports no torch)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np



def measure_mechanism(run: str | Path, *, plugins: Any, samples: int = 16,
                      checkpoint: str | Path | None = None, device: str = "cpu",
                      overrides: Sequence[str] = ()
                      ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The mechanism report of a trained run (its best checkpoint, else the latest), as its
    final evaluation would have measured it; for runs made before it existed, or with
    another sample size."""
    from reidcore.data.loaders import build_test_loaders
    from reidcore.engine.evaluate import extract_features, set_train_mode
    from reidcore.engine.extract import FeatureExtractor
    from reidcore.engine.mechanism import mechanism_report
    from reidcore.engine.trainer import build_dataset, section_names

    extractor = FeatureExtractor(run, checkpoint=checkpoint, device=device, plugins=plugins,
                                 overrides=overrides)
    recipe = extractor.recipe
    splits = {role: [build_dataset(plugins.registry, section).load()
                     for section in getattr(recipe.data, role)] for role in ("source", "test")}
    test_sets = build_test_loaders(splits["test"], recipe.loader,
                                   names=section_names(recipe.data.test))
    set_train_mode(extractor.method.modules(), False)
    gallery = {test.name: extract_features(extractor.method, test.gallery, extractor.device,
                                           extractor.flip).numpy() for test in test_sets[:1]}
    return mechanism_report(extractor.method, recipe, splits, test_sets, gallery,
                            extractor.device, extractor.flip, samples)


def add_mechanism_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reid mechanism``."""
    parser = subparsers.add_parser(
        "mechanism", help="measure a run's swap / translation / texture against ground truth",
        description="Measure what a trained run's method does (swap, translate, "
                    "estimate_texture) against the built-in synthetic data's ground truth, "
                    "beside the trivial baselines, as the run's final evaluation does; writes "
                    "RUN/mechanism.json and RUN/mechanism_<capability>.png.")
    parser.add_argument("run", type=Path, metavar="RUN_DIR")
    parser.add_argument("--samples", type=int, default=16,
                        help="images (or pairs) sampled, seeded by the recipe (16)")
    parser.add_argument("--checkpoint", type=Path, help="this checkpoint file")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override the run's recipe")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=command_mechanism)


def command_mechanism(args: argparse.Namespace, plugins: Any) -> int:
    from reidcore.engine.images import save_png
    from reidcore.engine.logging import write_json
    from reidcore.engine.rundir import RunDirectory
    from reidcore.errors import ReidError

    if args.samples < 1:
        raise ReidError(f"--samples must be at least 1, got {args.samples}")
    if not args.run.is_dir():
        raise ReidError(f"{args.run} is not a run directory")
    report, grids = measure_mechanism(args.run, plugins=plugins, samples=args.samples,
                                checkpoint=args.checkpoint, device=args.device,
                                overrides=args.overrides)
    if not report:
        raise ReidError(f"{args.run}: nothing to measure - its method has no swap, translate "
                        f"or estimate_texture, or its data is not the built-in synthetic data")
    run = RunDirectory(args.run)
    write_json(run.path / "mechanism.json", report)
    for capability, picture in grids.items():
        save_png(picture, run.mechanism_picture(capability))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for capability, part in report.items():
        for name, metrics in part["fidelity"].items():
            print(f"{capability:12s} {name:15s} L1 {metrics['l1']['mean']:.4f} +- "
                  f"{metrics['l1']['sd']:.4f}  SSIM {metrics['ssim']['mean']:.3f} +- "
                  f"{metrics['ssim']['sd']:.3f}")
        for name, metrics in part.get("identity", {}).items():
            print(f"{capability:12s} {name:15s} identity rank {metrics['rank']['mean']:.1f}, "
                  f"top-1 {100 * metrics['top1']['mean']:.0f} %")
    print(f"written: {run.path / 'mechanism.json'}")
    return 0
