"""The engine's commands: ``reid eval`` and ``reid extract`` (parsers here; torch loads
only when a command runs).

``reid eval`` with ``--query/--gallery`` reads two ``.npz`` files, each holding ``features``
(N x D), ``pids`` (N) and, optionally, ``camids`` (N; without them the no-camera protocol is
used) and ``paths`` (N strings; with the no-camera protocol a query whose path is also in
the gallery has that item removed). With ``--run``, the run's network embeds its recipe's
test sets first, which needs the engine: the command lives here, so that
``reidcore.evaluation`` stays free of the engine.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from reidcore.errors import ReidError


def add_eval_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reid eval``."""
    parser = subparsers.add_parser(
        "eval", help="CMC, mAP and mINP from saved query/gallery features",
        description="Evaluate saved features (--query/--gallery: each .npz holds `features` "
                    "(N x D), `pids` (N), optionally `camids` (N) and `paths` (N)), or a "
                    "trained run on its recipe's test sets (--run; the [evaluate] section "
                    "applies, change it with --set evaluate.rerank=true).")
    parser.add_argument("--query", type=Path, help="query features (.npz)")
    parser.add_argument("--gallery", type=Path, help="gallery features (.npz)")
    parser.add_argument("--run", metavar="RUN_DIR",
                        help="a run directory (its best, else latest, checkpoint) or a "
                             ".onnx file written by reid export")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="with --run: override the run's recipe")
    parser.add_argument("--checkpoint", type=Path, help="with --run: this checkpoint file")
    parser.add_argument("--device", default="cpu", help="with --run: cpu, cuda or auto")
    parser.add_argument("--metric", default=None,
                        choices=["euclidean", "sqeuclidean", "cosine", "l1"],
                        help="distance (euclidean when not given; use the one of the recipe "
                             "that trained the features: many use cosine)")
    parser.add_argument("--normalisation", default="none", choices=["none", "l2"],
                        help="l2-normalise features first (none)")
    parser.add_argument("--protocol", default="auto",
                        choices=["auto", "market", "single-gallery-shot", "no-camera"],
                        help="auto: market with camera ids, no-camera without (auto)")
    parser.add_argument("--average-precision", default="standard",
                        choices=["standard", "interpolated"],
                        help="standard (torchreid, fast-reid) or interpolated (official "
                             "Market-1501 code)")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--lambda", dest="lambda_value", type=float, default=0.3)
    parser.add_argument("--query-expansion", type=int, default=0, metavar="K",
                        help="average query expansion with the K nearest gallery items")
    parser.add_argument("--ranks", default="1,5,10", help="CMC ranks to print (1,5,10)")
    parser.add_argument("--max-rank", type=int, default=50, help="CMC length (50)")
    parser.add_argument("--sgs-repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-query", type=Path, metavar="FILE",
                        help="write per-query AP, first-match rank and INP (.npz, .csv or "
                             ".json)")
    parser.add_argument("--memory-gb", type=float, default=0.0, metavar="GB",
                        help="working memory for distance blocks and re-ranking beyond the "
                             "features (0: half the machine's); a request that cannot fit "
                             "is refused before it allocates")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples over queries for the 95%% intervals of "
                             "mAP, mINP and the ranks (1000; 0: none; seeded by --seed)")
    parser.add_argument("--no-verification", dest="verification", action="store_false",
                        help="skip TPR@FPR = 1e-4, 1e-3, 1e-2")
    parser.add_argument("--json", action="store_true",
                        help="print mAP, mINP, cmc and the query counts as JSON")
    parser.set_defaults(func=run_eval)


def _check_npz_header(path: Path, what: str) -> None:
    """Refuse a file that is not a zip archive before NumPy guesses at it (an empty file
    is an EOFError there, a text file "pickled data")."""
    with path.open("rb") as stream:
        head = stream.read(8)
    remedy = "write it with `reid extract` or numpy.savez (features, pids, camids)"
    if not head:
        raise ReidError(f"{what} {path} is empty (0 bytes): an interrupted write? {remedy}")
    if head.startswith(b"\x93NUMPY"):
        raise ReidError(f"{what} {path} is a single .npy array, not a .npz archive; {remedy}")
    if not head.startswith(b"PK"):
        kind = "a text file" if all(32 <= b < 127 or b in b"\t\r\n" for b in head) else \
            "not a zip archive"
        raise ReidError(f"{what} {path} is not a .npz file ({kind}, it starts with "
                        f"{head!r}); {remedy}")


def load_features(path: Path, what: str = "features") -> dict[str, Any]:
    """Read a features ``.npz`` (``features``, ``pids``, optional ``camids``/``paths``);
    ``what`` (``--query``) names the set in errors. An empty set is refused."""
    import numpy as np

    if not path.is_file():
        raise ReidError(f"no such features file: {path}")
    _check_npz_header(path, what)
    try:
        with np.load(path, allow_pickle=False) as data:
            content = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ReidError(f"{what} {path} is a damaged .npz archive (truncated or corrupted: "
                        f"{exc}); write it again with `reid extract` or numpy.savez") from None
    for key in ("features", "pids"):
        if key not in content:
            raise ReidError(f"{path} has no '{key}' array (it has: "
                            f"{', '.join(sorted(content)) or 'nothing'})")
    features = content["features"]
    if features.ndim != 2:
        raise ReidError(f"{path}: 'features' must be N x D, got shape {features.shape}")
    count = features.shape[0]
    if count == 0:
        raise ReidError(f"{what} {path} holds no features (0 rows): nothing to evaluate; "
                        "a query or gallery set needs at least one image")
    for key in ("pids", "camids", "paths"):
        if key in content and content[key].shape != (count,):
            raise ReidError(f"{path}: '{key}' must have shape ({count},), got "
                            f"{content[key].shape}")
    return {"features": features, "pids": content["pids"],
            "camids": content.get("camids"),
            "paths": tuple(str(p) for p in content["paths"]) if "paths" in content else ()}


def _parse_ranks(text: str) -> tuple[int, ...]:
    try:
        ranks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ReidError(f"--ranks must be comma-separated integers, got '{text}'") from None
    if not ranks or min(ranks) < 1:
        raise ReidError(f"--ranks must be positive, got '{text}'")
    return ranks


def run_eval(args: argparse.Namespace, plugins: Any) -> int:
    # no torch here: saved features are ranked with NumPy (torch's import is most of a new
    # process's start); re-ranking and query expansion import it when they run
    from reidcore.evaluation.config import RankingConfig
    from reidcore.evaluation.distance import check_finite
    from reidcore.evaluation.evaluator import RankingEvaluator
    from reidcore.evaluation.protocol import camera_ids_warning
    from reidcore.evaluation.sharded import (
        evaluate_sets_sharded,
        torchrun_group,
        torchrun_rank,
        torchrun_world_size,
    )
    from reidcore.records import FeatureSet

    if args.run is not None:
        return _eval_run(args, plugins)
    if args.query is None or args.gallery is None:
        raise ReidError("reid eval needs --query and --gallery feature files, or --run RUN_DIR")
    ranks = _parse_ranks(args.ranks)
    query = load_features(args.query, "--query")
    gallery = load_features(args.gallery, "--gallery")
    have_cams = query["camids"] is not None and gallery["camids"] is not None
    warning = camera_ids_warning(query["camids"] is not None, gallery["camids"] is not None,
                                 args.protocol)
    if warning:
        print(f"reid: warning: {warning}", file=sys.stderr)
    metric = args.metric or "euclidean"
    try:
        config = RankingConfig(
            metric=metric, normalisation=args.normalisation, rerank=args.rerank,  # type: ignore[arg-type]
            k1=args.k1, k2=args.k2, lambda_value=args.lambda_value,
            query_expansion=args.query_expansion, ranks=ranks,  # type: ignore[arg-type]
            max_rank=max(args.max_rank, *ranks), protocol=args.protocol,
            average_precision=args.average_precision, sgs_repeats=args.sgs_repeats,
            seed=args.seed, memory_gb=args.memory_gb, bootstrap=args.bootstrap,
            verification=args.verification)
    except ValueError as exc:
        raise ReidError(str(exc)) from None

    check_finite(query["features"], f"--query {args.query}: the features")
    check_finite(gallery["features"], f"--gallery {args.gallery}: the features")

    def feature_set(data: dict[str, Any]) -> FeatureSet:
        return FeatureSet(data["features"], data["pids"],
                          data["camids"] if have_cams else None, data["paths"])

    world = torchrun_world_size()
    if world > 1:  # each process ranks a contiguous gallery shard
        with torchrun_group():
            result = evaluate_sets_sharded(config, feature_set(query), feature_set(gallery))
        if torchrun_rank() != 0:
            return 0  # the same result on every process: rank 0 reports it
        metrics = result.summary(ranks)
    else:
        evaluator = RankingEvaluator(config)
        metrics = dict(evaluator.evaluate(feature_set(query), feature_set(gallery)))
        assert evaluator.last_result is not None  # set by evaluate()
        result = evaluator.last_result
    if args.per_query is not None:
        result.write_per_query(args.per_query, query["paths"] or None)
    if args.json:
        data = result.to_dict()
        data.update({k: v for k, v in metrics.items() if k.startswith("rank")})
        if warning:
            data["warnings"] = [warning]
        print(json.dumps(data))
        return 0
    out = sys.stdout
    print(f"protocol: {result.protocol}   distance: {config.metric}"
          f"{' (the default; --metric to change)' if args.metric is None else ''}"
          f"{'   l2-normalised' if config.normalisation == 'l2' else ''}"
          f"{'   re-ranked' if config.rerank else ''}"
          f"{f'   gallery sharded over {world} processes' if world > 1 else ''}", file=out)
    print(format_result_lines(result, ranks), file=out)
    print(f"valid queries: {result.num_valid_queries} of {result.num_queries}"
          + (f" ({result.num_skipped_queries} skipped: no valid match in the gallery)"
             if result.num_skipped_queries else ""), file=out)
    return 0


def format_result_lines(result: Any, ranks: tuple[int, ...]) -> str:
    """mAP, mINP and the ranks, each with its bootstrap interval when there is one, then
    TPR@FPR when computed."""
    from reidcore.evaluation.verification import label

    level = f"{100 * result.confidence:g}% CI"
    lines = []
    for name, text, value in [("mAP", "mAP:", result.mAP), ("mINP", "mINP:", result.mINP),
                              *((f"rank{k}", f"rank-{k}", result.rank(k)) for k in ranks)]:
        line = f"{text:9s}{100 * value:6.2f}%"
        if name in result.intervals:
            low, high = result.intervals[name]
            line += f"   {level} [{100 * low:.2f}, {100 * high:.2f}]"
        lines.append(line)
    for fpr, tpr in result.tpr_at_fpr.items():
        lines.append(f"{label(fpr)}: {100 * tpr:6.2f}%")
    if result.intervals:
        lines.append(f"({level}: percentile bootstrap over the valid queries, "
                     f"{result.resamples} resamples)")
    return "\n".join(lines)


def _eval_run(args: argparse.Namespace, plugins: Any) -> int:
    from reidcore.engine.extract import evaluate_run

    if args.query is not None or args.gallery is not None:
        raise ReidError("give either --run or --query/--gallery, not both")
    evaluation: dict[str, Any] = {}
    metrics = evaluate_run(args.run, plugins=plugins, overrides=args.overrides,
                           checkpoint=args.checkpoint, device=args.device,
                           evaluation=evaluation)
    if args.json:
        print(json.dumps({**metrics, "evaluation": evaluation}))
    else:
        for name, described in evaluation.items():
            print(f"{name}: " + "   ".join(f"{key}: {value}" for key, value in described.items()))
        for key, value in metrics.items():
            print(f"{key:32s} {value:.4f}")
    return 0


def _extract_labels(args: argparse.Namespace, images: list[Path]):
    """The images' labels for ``reid eval`` (``--labels``), or None with the reason."""
    from reidcore.data.labels import labels_from_csv, labels_from_names

    if args.labels == "none":
        return None, "--labels none"
    if args.labels == "auto":
        return labels_from_names(images)
    labels = labels_from_csv(Path(args.labels), images, args.images, args.camera_base)
    for warning in labels.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return labels, ""


def command_extract(args: argparse.Namespace, plugins: Any) -> int:
    import numpy as np

    from reidcore.data.datasets.base import find_images
    from reidcore.data.labels import WHAT_EVAL_NEEDS
    from reidcore.engine.extract import open_extractor
    from reidcore.fileio import atomic_open

    images = find_images(args.images, "--images")
    labels, why_not = _extract_labels(args, images)  # before the network: fail fast
    extractor = open_extractor(args.run, checkpoint=args.checkpoint, device=args.device,
                               plugins=plugins, batch_size=args.batch_size)
    features = extractor(images)
    arrays: dict[str, Any] = {
        "features": features.numpy(), "paths": np.array([str(p) for p in images])}
    if labels is not None:
        arrays["pids"] = labels.pids
        if labels.camids is not None:
            arrays["camids"] = labels.camids
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(args.out, "wb") as handle:
        np.savez(handle, **arrays)
    source = extractor.checkpoint or "untrained weights"
    print(f"wrote {len(images)} x {features.shape[1]} features to {args.out} (from {source})")
    if labels is not None:
        print(f"labels: pids{' and camids' if labels.camids is not None else ''} from "
              f"{labels.source}; the file can go into reid eval --query/--gallery")
    else:
        print(f"labels: none written ({why_not}); {WHAT_EVAL_NEEDS}", file=sys.stderr)
    return 0


def add_extract_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract", help="embed a folder of images with a trained run (or a recipe)")
    parser.add_argument("run", metavar="RECIPE_OR_RUN",
                        help="a run directory (uses checkpoints/best.pt, else the latest) or a "
                             "recipe file / packaged recipe name (untrained weights) or a .onnx "
                             "file written by reid export")
    parser.add_argument("--images", type=Path, required=True, help="folder of images (recursive)")
    parser.add_argument("--out", type=Path, required=True,
                        help="output .npz with 'features' (N x D), 'paths' and, when the "
                             "labels are known, 'pids' and 'camids' (what reid eval reads)")
    parser.add_argument("--labels", default="auto", metavar="auto|none|FILE.csv",
                        help="auto (default): pids and camids from the file names when every "
                             "image follows a known naming rule (0002_c1s1_000451_03.jpg); "
                             "FILE.csv: columns path,pid[,camid]; none: no labels")
    parser.add_argument("--camera-base", type=int, default=1,
                        help="with --labels FILE.csv: the number of the first camera (1)")
    parser.add_argument("--checkpoint", type=Path, help="a specific checkpoint file")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.set_defaults(func=command_extract)
