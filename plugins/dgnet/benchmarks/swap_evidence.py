"""Does DG-Net's generator transfer appearance? The evidence recipe, seeds 0 1 2.

Each seed is one ``reid run dgnet-evidence-synthetic`` (its teacher first: the ablation arm
"teacher alone", same iterations), at most two at once, one torch thread each, niced.
Completed seeds are reused. Then, on the run's own synthetic test split, for a seeded
sample of (appearance a, structure s) pairs of different identities:

* swap identity: ``swap(a, s)`` as a query against the gallery (a's and s's own images
  left out), ranked by an embedding: the teacher's (an independent judge that never saw a
  generated image) and DG-Net's own Ea. Reported: the share of queries whose first match
  is a's identity (``a_top1``), the mean rank of a's identity, and the share whose first
  match is s's identity (``s_top1``); beside the baselines "copy s" (the query is s) and
  "copy a" (the query is a);
* whether the appearance reaches the decoder: mean |change| of the output (in [0, 1]
  pixels) when a is replaced by another image, against when s is; and the spread of the
  AdaIN scales over the batch (what the appearance code changes in the decoder); whether
  the code carries colour at all (``code_colour_r2``: a ridge probe from the code to the
  stripe colours, held-out R^2); and the output's stripe colours' L1 distance to a's and
  to s's (``colour_l1_to_a`` / ``_to_s``, a truth-free proxy of "follows a"); and the
  auto-encoder itself: L1 of G(Es(a), Ea(a)) to a beside that of the mean test image;
* loss curves of every generator term (from the run's ``metrics.jsonl``), the mAP of both
  arms, and a swap grid of test images of six identities (``grid-seed<N>.png``).

And the core's measurement against the generator's ground truth (``truth/...``, see
:func:`truth`), with its grid ``truth-grid-seed<N>.png`` (rows: a, s, swap, truth).

    python plugins/dgnet/benchmarks/swap_evidence.py --out /tmp/dgnet-evidence [--seeds 0 1 2]
    python plugins/dgnet/benchmarks/swap_evidence.py --recipe x10 --out /tmp/dgnet-x10 \
        --teachers /tmp/dgnet-evidence --seeds 0        # ten times longer, same teacher
    python plugins/dgnet/benchmarks/swap_evidence.py --curve --out /tmp/dgnet-x10 --seeds 0
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

RECIPE = "dgnet-evidence-synthetic"
BUDGETS = {
    # the recipe as shipped: 400 iterations
    "evidence": [],
    # three and ten times longer: every iteration-valued key scaled with the budget
    # (teacher terms from 30 %, lambda_prim 0 -> 2 over 20 %, LR x0.1 at 80 %); the
    # teacher stage stays dgnet-teacher-evidence-synthetic's 400 iterations
    "x3": ["train.epochs=12", "train.eval_every=12", "train.keep_last=12",
           "method.warm_iter=360", "method.warm_teacher_iter=360",
           "method.warm_scale=0.00833", "method.milestones=[960]"],
    "x10": ["train.epochs=10", "train.steps_per_epoch=400", "train.eval_every=10",
            "train.keep_last=10", "method.warm_iter=1200", "method.warm_teacher_iter=1200",
            "method.warm_scale=0.0025", "method.milestones=[3200]",
            "method.log_images_every=400"],
    # probes at the shipped budget (ablations of the method, for the diagnosis only):
    # no adversarial and no identity term on generated images, and the teacher terms
    # never start (auto-encoding and cross-reconstruction only) ...
    "probe_reconstruction_only": ["method.gan_w=0", "method.recon_id_w=0",
                                  "method.warm_iter=100000",
                                  "method.warm_teacher_iter=100000"],
    # ... and the paper's generator widths (Es 16, G 128; mlp 256 for the 2048-d code)
    "probe_paper_widths": ["generators.structure.dim=16", "generators.decoder.dim=128",
                           "generators.decoder.mlp_dim=256"],
}
CURVES = ("loss", "loss_d", "loss/recon_x", "loss/recon_xp", "loss/adv", "loss/id",
          "loss/recon_id", "loss/teacher", "loss/fine", "loss/recon_s", "loss/cycle")


def train(out: Path, seeds: list[int], parallel: int, budget: str,
          teachers: Path) -> None:
    """Run the seeds not yet completed, ``parallel`` at a time, at ``budget``, each with
    ``teachers/seed<N>-teacher`` as its teacher when that run exists."""
    reid = str(Path(sys.executable).with_name("reid"))
    env = {**os.environ, "REID_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    todo = [s for s in seeds if not (out / f"seed{s}" / "summary.json").exists()]
    running: dict[int, subprocess.Popen[bytes]] = {}
    while todo or running:
        while todo and len(running) < parallel:
            seed = todo.pop(0)
            log = (out / f"seed{seed}.log").open("w")
            teacher = teachers / f"seed{seed}-teacher"
            requires = (f"requires.teacher={{run={json.dumps(str(teacher))}}}"
                        if (teacher / "summary.json").exists()  # kept across core versions
                        else f'requires.teacher.set=["seed={seed}"]')
            running[seed] = subprocess.Popen(
                ["nice", "-n", "10", reid, "run", RECIPE, "--out", str(out / f"seed{seed}"),
                 "--set", f"seed={seed}", "--set", requires,
                 *(a for item in BUDGETS[budget] for a in ("--set", item))],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        time.sleep(5)
        for seed, proc in list(running.items()):
            if proc.poll() is not None:
                del running[seed]
                if proc.returncode:
                    raise SystemExit(f"seed {seed} failed: see {out}/seed{seed}.log")


def curves(run: Path, points: int = 20) -> dict[str, list[list[float]]]:
    """[step, value] of each logged term, thinned to about ``points`` points."""
    rows = [json.loads(line) for line in
            (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r.get("kind") == "train"]
    every = max(1, len(rows) // points)
    return {k: [[r["step"], round(float(r[k]), 4)] for r in rows[::every] if k in r]
            for k in CURVES}


def summary_map(run: Path) -> float:
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    return 100 * float(summary["metrics"]["synthetic"]["mAP"])


def test_split(loaded: Any, plugins: Any) -> tuple[list[Any], list[Any]]:
    section = loaded.recipe.data.test[0]
    dataset = plugins.registry.get("dataset", section.name).create(section.config)
    splits = dataset.load() if hasattr(dataset, "load") else dataset
    return list(splits.query), list(splits.gallery)


def load_images(records: list[Any], recipe: Any) -> Any:
    from reid_plugin_dgnet.commands import read_images
    from reid_plugin_dgnet.swap import normalize_images

    size = (recipe.loader.height, recipe.loader.width)
    return normalize_images(read_images([Path(r.path) for r in records], size),
                            recipe.loader.normalize)


def ranks(query: Any, gallery: Any, gallery_pids: Any, exclude: Any, target: Any) -> Any:
    """1-based rank of the first gallery image of ``target`` pid for each query (cosine),
    gallery images in ``exclude`` (B x G bool) left out (G + 1 when none is left)."""
    from torch.nn import functional as F

    sim = F.normalize(query) @ F.normalize(gallery).T
    sim = sim.masked_fill(exclude, -float("inf"))
    order = sim.argsort(1, descending=True)
    hits = gallery_pids[order] == target[:, None]
    hits &= ~exclude.gather(1, order)
    first = hits.float().argmax(1) + 1
    return first.masked_fill(~hits.any(1), hits.shape[1] + 1)


def truth(out: Path, seed: int, samples: int, plugins: Any,
          checkpoint: str | None = None) -> dict[str, Any]:
    """The core's swap measurement against the synthetic ground truth
    (``reidcore.api.measure_mechanism``): L1 / SSIM in the person mask of swap(a, s), copy s
    and copy a against the true render of a's identity in s's scene, and the rank of a's
    identity with the run's own embedding; its grid (a, s, swap, truth) as a PNG."""
    from reidcore.api import measure_mechanism, save_png

    run = out / f"seed{seed}"
    report, grids = measure_mechanism(run, plugins=plugins, samples=samples,
                                      checkpoint=run / "checkpoints" / checkpoint
                                      if checkpoint else None)
    save_png(grids["swap"], out / f"truth-grid-seed{seed}{tag(checkpoint)}.png")
    swap = report["swap"]
    return {"pairs": swap["pairs"],
            **{f"{c}/{m}": v["mean"] for c, ms in swap["fidelity"].items()
               for m, v in ms.items()},
            **{f"{c}/identity_{m}": v["mean"] for c, ms in swap["identity"].items()
               for m, v in ms.items()}}


def curve(out: Path, seeds: list[int], samples: int, plugins: Any) -> dict[str, Any]:
    """The core's swap measurement (:func:`truth`) of every kept epoch checkpoint of each
    seed's run: the swap's fidelity and identity against both copies as training goes."""
    points: dict[str, Any] = {}
    for seed in seeds:
        run = out / f"seed{seed}"
        manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
        steps = int(manifest["recipe"]["train"]["steps_per_epoch"])
        for checkpoint in sorted((run / "checkpoints").glob("epoch-*.pt")):
            epoch = int(checkpoint.stem.split("-")[1])
            row = truth(out, seed, samples, plugins, checkpoint.name)
            points.setdefault(str(seed), []).append({"iteration": epoch * steps, **row})
            print(f"seed {seed} iteration {epoch * steps:5d}: swap L1 "
                  f"{row['method/l1']:.4f} (copy s {row['copy_s/l1']:.4f}, copy a "
                  f"{row['copy_a/l1']:.4f}), a's rank {row['method/identity_rank']:.1f}",
                  flush=True)
    return points


def tag(checkpoint: str | None) -> str:
    return f"-{Path(checkpoint).stem}" if checkpoint else ""


def mechanism(out: Path, seed: int, pairs: int, plugins: Any,
              checkpoint: str | None = None, teachers: Path | None = None) -> dict[str, Any]:
    import torch
    from reidcore.api import image_grid, load_run, save_png

    from reid_plugin_dgnet.swap import denormalize, swap_rows

    run = out / f"seed{seed}"
    dgnet = load_run(run / "checkpoints" / checkpoint if checkpoint else run, plugins.registry)
    teacher = load_run((teachers or out) / f"seed{seed}-teacher", plugins.registry)
    recipe = dgnet.recipe
    ea, es, decoder = dgnet["ea"], dgnet["es"], dgnet["decoder"]
    query, gallery = test_split(dgnet, plugins)
    records = query + gallery
    images = load_images(records, recipe)
    pids = torch.tensor([r.pid for r in records])
    generator = torch.Generator().manual_seed(1000 + seed)
    a = torch.randint(0, len(records), (pairs,), generator=generator)
    s = torch.randint(0, len(records), (pairs,), generator=generator)
    keep = pids[a] != pids[s]
    a, s = a[keep], s[keep]
    other = torch.randint(0, len(records), (len(a),), generator=generator)

    def swap(app: Any, struct: Any) -> Any:
        from reid_plugin_dgnet.networks import to_gray

        with torch.no_grad():
            return decoder(es(to_gray(images[struct])), ea.encode(images[app]))

    swapped = swap(a, s)
    net = teacher["network"]

    def teacher_embed(x: Any) -> Any:
        with torch.no_grad():
            return net.neck(net.embedding(net.backbone(x)))

    def dgnet_embed(x: Any) -> Any:
        with torch.no_grad():
            primary, fine = ea.features(x)
            return torch.cat([torch.nn.functional.normalize(primary),
                              torch.nn.functional.normalize(fine)], 1)

    index = torch.arange(len(records))
    exclude = (index[None, :] == a[:, None]) | (index[None, :] == s[:, None])
    result: dict[str, Any] = {"pairs": len(a)}
    for judge, embed in (("teacher", teacher_embed), ("dgnet", dgnet_embed)):
        bank = torch.cat([embed(images[i:i + 256]) for i in range(0, len(records), 256)])
        arms = {"swap": embed(swapped), "copy_s": bank[s], "copy_a": bank[a]}
        for arm, feats in arms.items():
            rank_a = ranks(feats, bank, pids, exclude, pids[a]).float()
            rank_s = ranks(feats, bank, pids, exclude, pids[s]).float()
            result[f"{judge}/{arm}"] = {"a_top1": float((rank_a == 1).float().mean()),
                                        "a_mean_rank": float(rank_a.mean()),
                                        "s_top1": float((rank_s == 1).float().mean())}
    with torch.no_grad():  # does the appearance code reach the output?
        base = denormalize(swapped, recipe.loader.normalize)
        new_a = denormalize(swap(other, s), recipe.loader.normalize)
        new_s = denormalize(swap(a, other), recipe.loader.normalize)
        scales, _ = decoder.adain_parameters(ea.encode(images[a]))
        own = denormalize(swap(a, a), recipe.loader.normalize)
        real = denormalize(images[a], recipe.loader.normalize)
        mean_image = denormalize(images, recipe.loader.normalize).mean(0, keepdim=True)
    result["change_when_a_changes"] = float((base - new_a).abs().mean())
    result["change_when_s_changes"] = float((base - new_s).abs().mean())
    result["self_recon_l1"] = float((own - real).abs().mean())  # G(Es(a), Ea(a)) vs a
    result["mean_image_l1"] = float((mean_image - real).abs().mean())  # the trivial one
    result["adain_scale_spread"] = float(scales.std(0).mean() / scales.abs().mean())
    result["code_colour_r2"] = colour_probe(ea, images)
    colours = [stripe_colours(x) for x in (base, denormalize(images[a], recipe.loader.normalize),
                                            denormalize(images[s], recipe.loader.normalize))]
    result["colour_l1_to_a"] = float((colours[0] - colours[1]).abs().mean())
    result["colour_l1_to_s"] = float((colours[0] - colours[2]).abs().mean())
    # a grid of six identities' test images: rows appearance, columns structure
    first: dict[int, int] = {}
    for i, r in enumerate(gallery):
        first.setdefault(r.pid, len(query) + i)
    shown = images[list(first.values())[:6]]
    rows = swap_rows(ea, es, decoder, shown, recipe.loader.normalize)
    save_png(image_grid(rows, (0.0, 1.0), limit=shown.shape[0] + 1),
             out / f"grid-seed{seed}{tag(checkpoint)}.png")
    return result


def stripe_colours(images: Any, stripes: int = 4) -> Any:
    """Mean RGB of each horizontal stripe: B x (3 * stripes)."""
    from torch.nn import functional as F

    return F.adaptive_avg_pool2d(images, (stripes, 1)).flatten(1)


def colour_probe(ea: Any, images: Any) -> float:
    """R^2 of a ridge regression from the appearance code to the image's stripe colours
    (fitted on even-indexed test images, scored on the odd ones): does the code that the
    decoder receives carry the colours at all?"""
    import torch

    with torch.no_grad():
        codes = torch.cat([ea.encode(images[i:i + 256]) for i in range(0, len(images), 256)])
    target = stripe_colours(images)
    x = torch.cat([codes, torch.ones(len(codes), 1)], 1).double()
    fit, test = slice(0, None, 2), slice(1, None, 2)
    ridge = 1e-2 * x[fit].pow(2).sum(0).mean()
    weights = torch.linalg.solve(x[fit].T @ x[fit] + ridge * torch.eye(x.shape[1]).double(),
                                 x[fit].T @ target[fit].double())
    residual = (x[test] @ weights - target[test].double()).pow(2).sum()
    total = (target[test].double() - target[test].double().mean(0)).pow(2).sum()
    return float(1 - residual / total)


def mean_sd(values: list[float]) -> dict[str, Any]:
    return {"mean": statistics.mean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0, "values": values}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--recipe", choices=sorted(BUDGETS), default="evidence",
                        help="the budget: the recipe as shipped (400 iterations), three or "
                        "ten times longer, or a diagnostic probe (use another --out for each)")
    parser.add_argument("--teachers", type=Path,
                        help="where the seed<N>-teacher runs are (default: --out); a longer "
                        "budget can reuse the evidence budget's teachers")
    parser.add_argument("--curve", action="store_true",
                        help="only the core's swap measurement of every kept epoch "
                        "checkpoint (results-curve.json); no training")
    parser.add_argument("--checkpoint", help="measure this checkpoint of each seed's run "
                        "(e.g. epoch-0002.pt), trained or still training; no training")
    parser.add_argument("--pairs", type=int, default=400,
                        help="pairs of the plugin's own truth-free measurements")
    parser.add_argument("--samples", type=int, default=64,
                        help="pairs of the core's ground-truth swap measurement")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if not args.checkpoint and not args.curve:
        train(args.out, args.seeds, args.parallel, args.recipe, args.teachers or args.out)
    import torch
    from reidcore.testing import installed_plugins

    torch.set_num_threads(1)
    plugins = installed_plugins()
    if args.curve:
        points = curve(args.out, args.seeds, args.samples, plugins)
        (args.out / "results-curve.json").write_text(json.dumps(
            {"recipe": RECIPE, "budget": args.recipe, "overrides": BUDGETS[args.recipe],
             "samples": args.samples, "seeds": args.seeds, "points": points,
             "wall_seconds": round(time.perf_counter() - started, 1)}, indent=2),
            encoding="utf-8")
        return 0
    runs = {}
    for seed in args.seeds:
        run = args.out / f"seed{seed}"
        dgnet_map = summary_map(run) if (run / "summary.json").exists() else None
        teacher = (args.teachers or args.out) / f"seed{seed}-teacher"
        runs[seed] = {"mAP": {"teacher": summary_map(teacher),
                              "dgnet": dgnet_map},
                      "mechanism": mechanism(args.out, seed, args.pairs, plugins,
                                             args.checkpoint, args.teachers),
                      "truth": truth(args.out, seed, args.samples, plugins, args.checkpoint),
                      "curves": curves(run)}
    keys = [("mAP", "teacher"), ("mAP", "dgnet")]
    table = {f"{a}/{b}": mean_sd([runs[s][a][b] for s in args.seeds]) for a, b in keys
             if all(runs[s][a][b] is not None for s in args.seeds)}  # DG-Net: when finished
    for judge in ("teacher", "dgnet"):
        for arm in ("swap", "copy_s", "copy_a"):
            for key in ("a_top1", "a_mean_rank", "s_top1"):
                table[f"{judge}/{arm}/{key}"] = mean_sd(
                    [runs[s]["mechanism"][f"{judge}/{arm}"][key] for s in args.seeds])
    for key in runs[args.seeds[0]]["truth"]:
        table[f"truth/{key}"] = mean_sd([runs[s]["truth"][key] for s in args.seeds])
    for key in ("self_recon_l1", "mean_image_l1", "change_when_a_changes",
                "change_when_s_changes", "adain_scale_spread",
                "code_colour_r2", "colour_l1_to_a", "colour_l1_to_s"):
        table[key] = mean_sd([runs[s]["mechanism"][key] for s in args.seeds])
    result = {"recipe": RECIPE, "budget": args.recipe, "overrides": BUDGETS[args.recipe],
              "checkpoint": args.checkpoint or "last", "seeds": args.seeds,
              "pairs": args.pairs, "samples": args.samples, "summary": table,
              "runs": {str(s): v for s, v in runs.items()},
              "wall_seconds": round(time.perf_counter() - started, 1)}
    (args.out / f"results{tag(args.checkpoint)}.json").write_text(json.dumps(result, indent=2),
                                                                 encoding="utf-8")
    for name, value in table.items():
        print(f"{name:38s} {value['mean']:8.3f} +- {value['sd']:6.3f}  "
              f"({', '.join(f'{v:.3f}' for v in value['values'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
