"""Benchmark (issue 21): does SAN's decoder learn the texture, and is SAN's re-ID gain the
texture's or the decoder-side update's?

The synthetic generator knows every identity's true UV texture (``textures/NNNN.png``), so
SA-Dec's output can be scored against the truth. Arms, each the recipe's SAN with the
same budget and seed (its SAN-PG stage trained once, seed 0, shared as in
texture_targets.py):

    san                 the recipe: SAN-PG pseudo textures, L_Rec + L_TR
    no_decoder          SAN without SA-Dec (re-ID losses only)
    no_texture_target   SA-Dec and its extra update of the trunk (encoder_texture Adam), but
                        no texture target (weight_rec = 0: L_TR alone drives the update) -
                        the confound the decoder arms had
    no_texture_triplet  SA-Dec trained by L_Rec alone (weight_tr = 0): the diagnosis of
                        whether L_TR on the shared decoder maps holds the texture back

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
    nice -n 10 python plugins/san/benchmarks/mechanism.py --recipe evidence --jobs 1

``--recipe``: ``synthetic`` (default) is ``san-synthetic`` / ``san-pg-synthetic`` cut to
``--epochs`` (4: 60 steps, SA-Dec stays at its init); ``evidence`` is
``san-evidence-synthetic`` / ``san-pg-evidence-synthetic`` at their own budgets (600 SAN
steps, SA-Dec trained out of its init; SAN-PG 1,480 steps on 400 identities). SAN-PG is
scored like the arms (its ``estimate_texture``; the core's figures with its recipe's test
data set to the arms' so all rows see the same identities).

Results (updated after every seed; a seed whose runs exist is scored again, not retrained)
go to ``results-mechanism[-evidence].json`` beside this script and the picture (image,
truth, SAN-PG, SAN's decoder, the no-target and no-triplet decoders, the mean texture) to
``plugins/san/docs/mechanism[-evidence].png``. ``--jobs`` arms of a seed run at once, one
thread each (default: all of them).
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
RECIPES = {  # --recipe: (SAN recipe, its SAN-PG stage, default --out, file suffix)
    "synthetic": ("san-synthetic", "san-pg-synthetic", "runs/bench-san-mechanism", ""),
    "evidence": ("san-evidence-synthetic", "san-pg-evidence-synthetic",
                 "runs/bench-san-mechanism-evidence", "-evidence"),
}
ARMS = {
    "san": [],
    "no_decoder": ["method.decoder=false"],
    "no_texture_target": ["method.weight_rec=0"],
    "no_texture_triplet": ["method.weight_tr=0"],
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


def run_seed(recipe: str, out: Path, seed: int, epochs: int | None, pg: Path,
             jobs: int) -> None:
    """Train the arms of ``seed`` that have no ``summary.json`` yet, ``jobs`` at a time."""
    waiting = [arm for arm in ARMS if not (out / arm / f"seed-{seed}" / "summary.json").is_file()]
    while waiting:
        batch, waiting = waiting[:jobs], waiting[jobs:]
        running = [start(*arm_command(recipe, out, arm, epochs, pg), "--seeds", str(seed))
                   for arm in batch]
        for process in running:
            finish(process)


def arm_command(recipe: str, out: Path, arm: str, epochs: int | None, pg: Path) -> list[str]:
    """``reid run`` of one arm's seed group (``OUT/<arm>/seed-<N>``; the seed comes with
    ``--seeds``); ``epochs`` cuts the recipe's budget (milestone two epochs before the
    end), None keeps it."""
    budget = [] if epochs is None else [
        f"train.epochs={epochs}", f"train.eval_every={epochs}",
        f"method.milestones=[{max(epochs - 2, 1)}]"]
    common = [*budget, "method.log_images_every=0",
              'requires.san_pg.recipe=""', f'requires.san_pg.run="{pg}"']
    return ["run", recipe, "--out", str(out / arm), *sets(common + ARMS[arm])]


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

    @staticmethod
    def spread(textures: torch.Tensor) -> float:
        """How much the textures depend on the image: the std across images, averaged over
        pixels and channels (0 for an image-independent output such as the mean texture)."""
        return float(textures.float().std(dim=0).mean())


def last_epoch_losses(run: Path) -> dict[str, float]:
    """The decoder-side training losses (L_Rec in [-1, 1] against the run's texture
    targets, L_TR) averaged over the steps logged in the run's last epoch."""
    epochs = json.loads((run / "summary.json").read_text())["epochs"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if r.get("kind") == "train" and r["epoch"] >= epochs - 1]
    return {f"train_{key}_last_epoch": statistics.mean(r[f"loss/{key}"] for r in last)
            for key in ("rec", "tr") if last and f"loss/{key}" in last[0]}


def core_texture_fidelity(run: Path, samples: int = 64,
                          overrides: tuple[str, ...] = ()) -> dict[str, float]:
    """The core's texture-fidelity report of ``run`` (method and mean texture, L1 / SSIM;
    ``overrides`` of the run's recipe, e.g. its test data)."""
    from reidcore.api import measure_mechanism
    from reidcore.testing import installed_plugins

    report, _ = measure_mechanism(run, plugins=installed_plugins(), samples=samples,
                                  overrides=overrides)
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
                    "rank1": 100 * summary["metrics"]["synthetic"]["rank1"],
                    "train_minutes": summary["train_seconds"] / 60}
        loaded = load_run(run, registry)
        scorer = scorer or TextureScorer(loaded.recipe, registry)
        estimate = getattr(loaded.method, "estimate_texture", None)
        if estimate is not None:
            textures = estimate(scorer.images)
            row[arm].update(texture_l1=scorer.error(textures),
                            texture_spread=scorer.spread(textures))
            row[arm].update(core_texture_fidelity(run))
            row[arm].update(last_epoch_losses(run))
    assert scorer is not None
    row["mean_texture"] = {"texture_l1": scorer.error(scorer.mean.expand_as(scorer.truth))}
    row["truth"] = {"texture_spread": scorer.spread(scorer.truth)}
    teacher = load_run(pg, registry)
    pseudo = teacher.method.estimate_texture(scorer.images)
    row["san_pg"] = {"texture_l1": scorer.error(pseudo), "texture_spread": scorer.spread(pseudo),
                     **last_epoch_losses(pg)}
    # the core's figures on the arms' test identities (SAN-PG's own test data is disjoint)
    row["san_pg"].update(core_texture_fidelity(pg, overrides=(test_data_override(run),)))
    return row


def test_data_override(run: Path) -> str:
    """``data.test=[...]``: the run's resolved test sections (its ``recipe.toml``) as one
    recipe override, to score another run on the same identities."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    def inline(value: Any) -> str:  # TOML inline values (JSON's scalars are TOML's)
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k} = {inline(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(inline(v) for v in value) + "]"
        return json.dumps(value)

    sections = tomllib.loads((run / "recipe.toml").read_text())["data"]["test"]
    return f"data.test={inline(sections)}"


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
    no_triplet = load_run(out / "no_texture_triplet" / f"seed-{seed}", registry)
    pg = load_run(out / "san_pg", registry)
    images = scorer.images[:count]
    pseudo = pg.method.estimate_texture(images)
    shown = read_images(scorer.paths[:count], (loader.height, loader.width))
    rows = {"image": pad_to(shown, scorer.size, 0.0), "truth": scorer.truth[:count],
            "san_pg": pseudo, "san": san.method.estimate_texture(images),
            "no_target": no_target.method.estimate_texture(images),
            "no_triplet": no_triplet.method.estimate_texture(images),
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
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="synthetic",
                        help="synthetic: san-synthetic cut to --epochs (default); evidence: "
                             "san-evidence-synthetic at its own budget")
    parser.add_argument("--out", type=Path, help="default runs/bench-san-mechanism[-evidence]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int,
                        help="cut the SAN budget to this (synthetic: 4; evidence: the recipe's)")
    parser.add_argument("--jobs", type=int, default=len(ARMS), help="arms trained at once")
    parser.add_argument("--results", type=Path,
                        help="default results-mechanism[-evidence].json beside this script")
    args = parser.parse_args()
    recipe, pg_recipe, out, suffix = RECIPES[args.recipe]
    out = args.out or Path(out)
    epochs = args.epochs if args.epochs or args.recipe != "synthetic" else 4
    results = args.results or HERE / f"results-mechanism{suffix}.json"
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")
    torch.set_num_threads(1)
    started = time.perf_counter()
    pg = (out / "san_pg").resolve()
    if not (pg / "summary.json").is_file():
        quiet = ["method.log_images_every=0"] if args.recipe == "synthetic" else []
        finish(start("run", pg_recipe, "--out", str(pg), *sets(quiet)))
        print(f"san_pg: {time.perf_counter() - started:.0f} s", flush=True)
    rows: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:
        run_seed(recipe, out, seed, epochs, pg, args.jobs)
        rows[seed] = score(out, seed, pg)
        minutes = (time.perf_counter() - started) / 60
        print(f"seed {seed} ({minutes:.1f} min): {json.dumps(rows[seed])}", flush=True)
        results.write_text(json.dumps(
            {"command": " ".join(["python", "plugins/san/benchmarks/mechanism.py", *sys.argv[1:]]),
             "recipe": recipe, "san_pg_recipe": pg_recipe, "seeds": list(rows),
             "epochs": epochs, "per_seed": rows, "arms": summarise(rows),
             "minutes": minutes}, indent=2) + "\n")
        if seed == args.seeds[0]:
            picture(out, seed, DOCS / f"mechanism{suffix}.png")
    for arm in ARMS:  # every seed completed: each arm's seeds.json
        finish(start(*arm_command(recipe, out, arm, epochs, pg), "--seeds",
                     *map(str, args.seeds)))

if __name__ == "__main__":
    main()
