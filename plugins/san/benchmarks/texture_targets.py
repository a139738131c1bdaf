"""Benchmark: SAN on the synthetic pedestrians with three kinds of texture supervision, at
equal budgets, 3 seeds each.

    no_decoder   SAN without SA-Dec (re-ID losses only: the baseline)
    true         SAN with the generator's true texture maps (``textures = "dataset"``)
    pseudo       SAN with SAN-PG pseudo textures (``textures = "san_pg"``), SAN-PG trained
                 on image / true-texture pairs of DISJOINT identities (``san-pg-synthetic``)

Every arm runs ``san-synthetic`` with the same SAN budget (``--epochs``, default 4 = 1
warm-up + 3 main epochs, milestone at main epoch 2: 60 steps of 32 images) and seed; only
the texture target differs. Each arm is a seed group of the core's multi-seed runner
(``reid run san-synthetic --seeds``: ``OUT/<arm>/seed-<N>`` and ``OUT/<arm>/seeds.json``);
the three arms of a seed run at once, one thread each.
SAN-PG is trained once (seed 0, ``san-pg-synthetic``) and shared by the three
seeds of the ``pseudo`` arm (its cost is not part of SAN's budget, as PIT pre-training is
not in the paper's; sharing it keeps the benchmark within 15 minutes, so the spread of
that arm does not include SAN-PG's own seed variance). Then a picture of image / true texture /
pseudo texture / decoder output rows (the ``pseudo`` arm, seed 0) is written to
``plugins/san/docs/textures.png``.

    python plugins/san/benchmarks/texture_targets.py --out runs/bench-san

Sized for a shared 2-core CPU (about 10 minutes when quiet); results go to ``<out>/results.json``.
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

ARMS = {
    "no_decoder": ["method.decoder=false"],
    "true": ["method.textures=dataset", "loader.textures=true"],
    "pseudo": [],
}
DOCS = Path(__file__).resolve().parents[1] / "docs"


def start(*args: str, threads: int = 0) -> subprocess.Popen:
    env = {**os.environ, "REID_PROGRESS": "0"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [str(Path(sys.executable).with_name("reid")), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
    _, err = process.communicate()
    if process.returncode:
        raise SystemExit(f"failed: {' '.join(process.args)}\n{err[-3000:]}")


def reid(*args: str) -> None:
    finish(start(*args))


def sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def run_seed(out: Path, seed: int, epochs: int, pg: Path) -> dict[str, dict]:
    """The three arms of one seed, concurrently, one thread each (the same work as one
    after the other with two threads on two cores; on a shared machine it keeps the arms
    under the same load)."""
    started = time.perf_counter()
    running = {}
    for arm in ARMS:
        if (out / arm / f"seed-{seed}" / "summary.json").is_file():
            continue
        running[arm] = start(*arm_command(out, arm, epochs, pg), "--seeds", str(seed),
                             threads=1)
    for process in running.values():
        finish(process)
    print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    return {arm: json.loads((out / arm / f"seed-{seed}" / "summary.json").read_text())
            ["metrics"]["synthetic"] for arm in ARMS}


def arm_command(out: Path, arm: str, epochs: int, pg: Path) -> list[str]:
    """``reid run`` of one arm's seed group (the seed comes with ``--seeds``)."""
    common = [f"train.epochs={epochs}", f"train.eval_every={epochs}",
              f"method.milestones=[{max(epochs - 2, 1)}]", "method.log_images_every=0",
              'requires.san_pg.recipe=""', f'requires.san_pg.run="{pg}"']
    return ["run", "san-synthetic", "--out", str(out / arm), *sets(common + ARMS[arm])]


def picture(run: Path, path: Path, count: int = 8) -> None:
    """Rows: person image, true texture, SAN-PG pseudo texture, SAN's decoder output."""
    import torch
    from reidcore.api import image_grid, load_run, save_png
    from reidcore.testing import installed_plugins

    from reid_plugin_san.common import pad_to
    from reid_plugin_san.networks import stage_maps
    from reid_plugin_san.textures import TextureFolder, read_images

    registry = installed_plugins().registry
    loaded = load_run(run, registry)
    recipe, method = loaded.recipe, loaded.method
    section = recipe.data.source[0]
    records = registry.get("dataset", section.name).create(section.config).load().train
    chosen, seen = [], set()
    for record in records:  # one image per identity
        if record.pid not in seen:
            seen.add(record.pid)
            chosen.append(record)
        if len(chosen) == count:
            break
    paths = [r.path for r in chosen]
    loader = recipe.loader
    size = (loader.texture_height, loader.texture_width)
    images = read_images(paths, (loader.height, loader.width), normalize=loader.normalize)
    with torch.no_grad():
        maps = stage_maps(method.encoder.trunk, images)  # eval mode: running BN statistics
        decoded = method.decoder(*maps, size=size)["texture"]
    true = torch.stack([read_images([r.extras["texture"]], size)[0] for r in chosen]) * 2 - 1
    pseudo = TextureFolder(run / "textures").load(paths, size)
    shown = torch.stack([read_images([p], (loader.height, loader.width))[0] for p in paths])
    rows = {"image": pad_to(shown * 2 - 1, size, -1.0), "true": true, "pseudo": pseudo,
            "decoded": decoded.clamp(-1, 1)}
    save_png(image_grid(rows, (-1.0, 1.0), count), path)
    print(f"picture: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-san"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    pg = args.out / "san_pg"
    if not (pg / "summary.json").is_file():
        reid("run", "san-pg-synthetic", "--out", str(pg), *sets(["method.log_images_every=0"]))
        print(f"san_pg: {time.perf_counter() - started:.0f} s", flush=True)
    for seed in args.seeds:
        for arm, metrics in run_seed(args.out, seed, args.epochs, pg.resolve()).items():
            results[arm].append(metrics)
    for arm in ARMS:  # every seed completed: the group's seeds.json
        reid(*arm_command(args.out, arm, args.epochs, pg.resolve()), "--seeds",
             *map(str, args.seeds))
    rows = {}
    for arm, metrics in results.items():
        row = {}
        for key in ("mAP", "rank1"):
            values = [100 * m[key] for m in metrics]
            row[key] = {"values": values, "mean": statistics.mean(values),
                        "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        rows[arm] = row
        print(f"{arm:12s} mAP {row['mAP']['mean']:5.2f} +- {row['mAP']['std']:4.2f}  "
              f"rank1 {row['rank1']['mean']:5.2f} +- {row['rank1']['std']:4.2f}  "
              f"({', '.join(f'{v:.2f}' for v in row['mAP']['values'])})")
    minutes = (time.perf_counter() - started) / 60
    (args.out / "results.json").write_text(json.dumps(
        {"seeds": args.seeds, "epochs": args.epochs, "arms": rows, "minutes": minutes},
        indent=2) + "\n")
    print(f"wall {minutes:.1f} min")
    picture(args.out / "pseudo" / f"seed-{args.seeds[0]}", DOCS / "textures.png")


if __name__ == "__main__":
    main()
