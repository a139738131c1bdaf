"""Benchmark (issue 21): does SAN's decoder learn the texture, and is SAN's re-ID gain the
texture's or the decoder-side update's?

The synthetic generator knows every identity's true UV texture (``textures/NNNN.png``), so
SA-Dec's output can be scored against the truth. Arms, each ``san-synthetic`` with the
same budget and seed (SAN-PG trained once, seed 0, shared as in texture_targets.py):

    san                 the recipe: SAN-PG pseudo textures, L_Rec + L_TR
    no_decoder          SAN without SA-Dec (re-ID losses only)
    no_texture_target   SA-Dec and its extra update of the trunk (encoder_texture Adam), but
                        no texture target (weight_rec = 0: L_TR alone drives the update) -
                        the confound the decoder arms had

Texture fidelity: mean absolute error (RGB in [0, 1], at the decoder's 64 x 64) between
``method.estimate_texture`` (the EstimatesTexture capability) of every query image of the
test identities (disjoint from training) and that identity's true texture, beside the
baseline "the mean texture" (mean of the training identities' true textures, the best
constant image-independent guess under L2) and SAN-PG's own output (the pseudo-texture
teacher). Images go through the eval transform (resize, [0, 1], the recipe's
normalisation). The core's proving ground measures the same thing its own way
(``reidcore.api.measure_mechanism``: 64 seeded samples, L1 and SSIM in the texture space,
beside its mean texture); both are recorded (``core_*`` keys).

    nice -n 10 python plugins/san/benchmarks/mechanism.py --out runs/bench-san-mechanism

Results (updated after every seed) go to ``results-mechanism.json`` beside this script and
the picture (image, truth, SAN-PG, SAN's decoder, the no-target decoder) to
``plugins/san/docs/mechanism.png``. Arms of a seed run at once, one thread each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
ARMS = {
    "san": [],
    "no_decoder": ["method.decoder=false"],
    "no_texture_target": ["method.weight_rec=0"],
}


def sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "REID_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    command = [str(Path(sys.executable).with_name("reid")), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
    _, err = process.communicate()
    if process.returncode:
        raise SystemExit(f"failed: {process.args!r}\n{err[-3000:]}")


def run_seed(out: Path, seed: int, epochs: int, pg: Path) -> None:
    running = []
    for arm in ARMS:
        if (out / arm / f"seed-{seed}" / "summary.json").is_file():
            continue
        running.append(start(*arm_command(out, arm, epochs, pg), "--seeds", str(seed)))
    for process in running:
        finish(process)


def arm_command(out: Path, arm: str, epochs: int, pg: Path) -> list[str]:
    """``reid run`` of one arm's seed group (``OUT/<arm>/seed-<N>``; the seed comes with
    ``--seeds``)."""
    common = [f"train.epochs={epochs}", f"train.eval_every={epochs}",
              f"method.milestones=[{max(epochs - 2, 1)}]", "method.log_images_every=0",
              'requires.san_pg.recipe=""', f'requires.san_pg.run="{pg}"']
    return ["run", "san-synthetic", "--out", str(out / arm), *sets(common + ARMS[arm])]


class TextureScorer:
    """The test identities' query images, their true textures and the mean texture."""

    def __init__(self, recipe: Any, registry: Any):
        from reid_plugin_san.textures import read_images

        loader = recipe.loader
        self.size = (loader.texture_height, loader.texture_width)
        section = recipe.data.test[0]
        data = registry.get("dataset", section.name).create(section.config).load()
        query = [r for r in data.query if "texture" in r.extras]
        self.paths = [r.path for r in query]
        self.images = read_images(self.paths, (loader.height, loader.width),
                                  loader.interpolation, loader.normalize)
        self.truth = read_images([r.extras["texture"] for r in query], self.size)
        train = {r.pid: r.extras["texture"] for r in data.train if "texture" in r.extras}
        self.mean = read_images(list(train.values()), self.size).mean(0, keepdim=True)

    def error(self, textures: torch.Tensor) -> float:
        """Mean absolute error against the truth, RGB in [0, 1]."""
        return float((textures.clamp(0, 1) - self.truth).abs().mean())


def core_texture_fidelity(run: Path, samples: int = 64) -> dict[str, float]:
    """The core's texture-fidelity report of ``run`` (method and mean texture, L1 / SSIM)."""
    from reidcore.api import measure_mechanism
    from reidcore.testing import installed_plugins

    report, _ = measure_mechanism(run, plugins=installed_plugins(), samples=samples)
    fidelity = report["texture"]["fidelity"]
    return {f"core_{who}_{metric}": fidelity[who][metric]["mean"]
            for who in ("method", "mean_texture") for metric in ("l1", "ssim")}


def score(out: Path, seed: int, pg: Path) -> dict[str, Any]:
    from reidcore.api import load_run
    from reidcore.testing import installed_plugins

    registry = installed_plugins().registry
    row: dict[str, Any] = {}
    scorer = None
    for arm in ARMS:
        run = out / arm / f"seed-{seed}"
        summary = json.loads((run / "summary.json").read_text())
        row[arm] = {"mAP": 100 * summary["metrics"]["synthetic"]["mAP"],
                    "rank1": 100 * summary["metrics"]["synthetic"]["rank1"]}
        loaded = load_run(run, registry)
        scorer = scorer or TextureScorer(loaded.recipe, registry)
        estimate = getattr(loaded.method, "estimate_texture", None)
        if estimate is not None:
            row[arm]["texture_l1"] = scorer.error(estimate(scorer.images))
            row[arm].update(core_texture_fidelity(run))
    assert scorer is not None
    row["mean_texture"] = {"texture_l1": scorer.error(scorer.mean.expand_as(scorer.truth))}
    teacher = load_run(pg, registry)
    with torch.no_grad():
        decoded = teacher.method.decode(scorer.images, scorer.size).float() * 0.5 + 0.5
    row["san_pg"] = {"texture_l1": scorer.error(decoded)}
    return row


def picture(out: Path, seed: int, path: Path, count: int = 8) -> None:
    from reidcore.api import image_grid, load_run, save_png
    from reidcore.testing import installed_plugins

    from reid_plugin_san.common import pad_to
    from reid_plugin_san.textures import read_images

    registry = installed_plugins().registry
    san = load_run(out / "san" / f"seed-{seed}", registry)
    loader = san.recipe.loader
    scorer = TextureScorer(san.recipe, registry)
    no_target = load_run(out / "no_texture_target" / f"seed-{seed}", registry)
    pg = load_run(out / "san_pg", registry)
    images = scorer.images[:count]
    with torch.no_grad():
        pseudo = pg.method.decode(images, scorer.size).float() * 0.5 + 0.5
    shown = read_images(scorer.paths[:count], (loader.height, loader.width))
    rows = {"image": pad_to(shown, scorer.size, 0.0), "truth": scorer.truth[:count],
            "san_pg": pseudo.clamp(0, 1), "san": san.method.estimate_texture(images),
            "no_target": no_target.method.estimate_texture(images),
            "mean": scorer.mean.expand(count, -1, -1, -1)}
    save_png(image_grid(rows, (0.0, 1.0), count), path)
    print(f"picture: {path}", flush=True)


def summarise(rows: dict[int, dict[str, Any]]) -> dict[str, Any]:
    arms: dict[str, Any] = {}
    for seed_row in rows.values():
        for arm, values in seed_row.items():
            for key, value in values.items():
                arms.setdefault(arm, {}).setdefault(key, []).append(value)
    return {arm: {key: {"values": v, "mean": statistics.mean(v),
                        "std": statistics.stdev(v) if len(v) > 1 else 0.0}
                  for key, v in metrics.items()} for arm, metrics in arms.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-san-mechanism"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--results", type=Path, default=HERE / "results-mechanism.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    pg = (args.out / "san_pg").resolve()
    if not (pg / "summary.json").is_file():
        finish(start("run", "san-pg-synthetic", "--out", str(pg),
                     *sets(["method.log_images_every=0"])))
        print(f"san_pg: {time.perf_counter() - started:.0f} s", flush=True)
    rows: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:
        run_seed(args.out, seed, args.epochs, pg)
        rows[seed] = score(args.out, seed, pg)
        minutes = (time.perf_counter() - started) / 60
        print(f"seed {seed} ({minutes:.1f} min): {json.dumps(rows[seed])}", flush=True)
        args.results.write_text(json.dumps(
            {"command": " ".join(["python", "plugins/san/benchmarks/mechanism.py", *sys.argv[1:]]),
             "seeds": list(rows), "epochs": args.epochs, "per_seed": rows,
             "arms": summarise(rows), "minutes": minutes}, indent=2) + "\n")
        if seed == args.seeds[0]:
            picture(args.out, seed, DOCS / "mechanism.png")
    for arm in ARMS:  # every seed completed: each arm's seeds.json
        finish(start(*arm_command(args.out, arm, args.epochs, pg), "--seeds",
                     *map(str, args.seeds)))


if __name__ == "__main__":
    main()
