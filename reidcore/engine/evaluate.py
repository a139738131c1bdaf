"""Evaluating a method on test sets: features in order (flip-averaged if asked), the
evaluator's metrics, with the training state left as it was (RNGs and thread count)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from reidcore.engine.context import Precision
from reidcore.engine.distributed import (
    DistInfo,
    all_gather_rows,
    gather_rows,
)
from reidcore.interfaces import ShardsGallery
from reidcore.progress import progress
from reidcore.records import FeatureSet


def set_train_mode(modules: Mapping[str, torch.nn.Module], training: bool) -> None:
    for module in modules.values():
        module.train(training)


@contextlib.contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Restore torch's intra-op thread count after the block. The numba ranking kernels
    run on the same OpenMP runtime as torch and set its thread count to numba's own when
    they launch, so a run started with one torch thread would train on two after its
    first evaluation: results then depended on when (and whether) it evaluated."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@contextlib.contextmanager
def keep_rng_states() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's global RNGs (CPU and every initialised CUDA
    device) after the block: whatever an evaluation draws (a method's embed, a picture's
    query choice, a loader without its own generator) must not shift the training's
    random stream, or adding evaluations would change the trained weights."""
    python, numpy_state = random.getstate(), np.random.get_state()
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def describe_evaluation(evaluator: Any, test_sets: Sequence[Any]) -> dict[str, dict]:
    """How each test set is scored (protocol, distance, ...), for ``summary.json`` and
    ``reid eval --run``: an evaluator's ``describe(query_has_camids, gallery_has_camids)``
    when it has one (the builtin ``ranking`` does), else its class name."""
    described: dict[str, dict] = {}
    for test in test_sets:
        describe = getattr(evaluator, "describe", None)
        if describe is None:
            described[test.name] = {"evaluator": type(evaluator).__name__}
            continue
        described[test.name] = dict(describe(getattr(test, "query_camids", None) is not None,
                                             getattr(test, "gallery_camids", None) is not None))
    return described


@torch.no_grad()
def extract_features(method: Any, loader: Any, device: torch.device, flip: bool = False,
                     precision: Precision | None = None,
                     channels_last: bool = False, desc: str = "embedding") -> torch.Tensor:
    """Embeddings of every image of ``loader`` (in order), float32 on the CPU.
    With ``flip``, the mean of the embeddings of each image and its horizontal flip.
    A progress bar (``desc``) shows on a terminal: MSMT17's 93k images take minutes."""
    precision = precision or Precision()
    parts = []
    try:
        total = len(loader)
    except TypeError:
        total = None
    for batch in progress(loader, total=total, desc=desc, unit="batch"):
        images = batch["images"].to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with precision.autocast():
            features = method.embed(images).float()
            if flip:
                features = (features + method.embed(images.flip(3)).float()) / 2
        parts.append(features.cpu())
    return torch.cat(parts) if parts else torch.empty(0)


def evaluate_test_sets(method: Any, evaluator: Any, test_sets: Sequence[Any],
                       device: torch.device, flip: bool, precision: Precision | None = None,
                       channels_last: bool = False, dist: DistInfo | None = None,
                       per_query: Callable[[str], Any] | None = None,
                       keep_gallery: bool = True
                       ) -> tuple[dict[str, float], dict[str, tuple[FeatureSet, FeatureSet]]]:
    """Metrics ``<testset>/<metric>`` for every test set, and the feature sets.
    ``per_query(name)`` gives the file where an evaluator with ``write_per_query`` (the
    builtin ``ranking``) writes each test set's per-query results.

    Under DDP (``dist``) every rank embeds its contiguous block of each test set (its
    loaders were built with its rank). An evaluator that shards (:func:`gallery_sharding`)
    is given all the queries on every rank and only the rank's own block of the gallery:
    no rank ever holds the whole gallery, and the metrics are those of one process. Else
    rank 0 gathers the features in record order (as fast-reid does) and scores them. Only
    rank 0 returns results. The feature sets are returned on rank 0 when the gallery was
    gathered there, or ``keep_gallery`` asks for it (pictures). The global RNGs and
    torch's thread count are as they were afterwards."""
    with keep_rng_states(), keep_torch_threads():
        return _evaluate_test_sets(method, evaluator, test_sets, device, flip, precision,
                                   channels_last, dist or DistInfo(), per_query, keep_gallery)


def gallery_sharding(evaluator: Any, dist: DistInfo) -> str | None:
    """None when this DDP evaluation shards the gallery over the ranks, else why rank 0
    gathers it (``evaluate.shard_gallery``; what the evaluator's configuration needs)."""
    if not dist.enabled:
        return "one process"
    setting = getattr(getattr(evaluator, "config", None), "shard_gallery", "auto")
    if setting == "off":
        return "evaluate.shard_gallery = \"off\""
    if not isinstance(evaluator, ShardsGallery):
        return f"the evaluator {type(evaluator).__name__} does not shard (no evaluate_shard)"
    return evaluator.shard_refusal()


def _evaluate_test_sets(method: Any, evaluator: Any, test_sets: Sequence[Any],
                        device: torch.device, flip: bool, precision: Precision | None,
                        channels_last: bool, dist: DistInfo,
                        per_query: Callable[[str], Any] | None, keep_gallery: bool
                        ) -> tuple[dict[str, float], dict[str, tuple[FeatureSet, FeatureSet]]]:
    set_train_mode(method.modules(), False)
    sharded = gallery_sharding(evaluator, dist) is None
    metrics: dict[str, float] = {}
    features: dict[str, tuple[FeatureSet, FeatureSet]] = {}
    for test in test_sets:
        query_rows = extract_features(method, test.query, device, flip, precision,
                                      channels_last, desc=f"{test.name}: query")
        gallery_rows = extract_features(method, test.gallery, device, flip, precision,
                                        channels_last, desc=f"{test.name}: gallery")
        query: FeatureSet | None = None
        gallery: FeatureSet | None = None
        if sharded:
            query = FeatureSet(all_gather_rows(dist, query_rows), test.query_pids,
                               test.query_camids, tuple(r.path for r in test.query_records))
            if gallery_rows.dim() == 1:  # a rank without gallery images
                gallery_rows = gallery_rows.reshape(0, query.features.shape[1])
            scores = evaluator.evaluate_shard(query, _gallery_block(test, gallery_rows, dist))
            gathered = gather_rows(dist, gallery_rows) if keep_gallery else None
            if not dist.is_main:
                continue
            if gathered is not None:
                gallery = _gallery_set(test, gathered)
        else:
            gathered_query, gathered = gather_rows(dist, query_rows), gather_rows(dist,
                                                                                  gallery_rows)
            if gathered_query is None or gathered is None:
                continue  # not rank 0: the features went to rank 0
            query = FeatureSet(gathered_query, test.query_pids, test.query_camids,
                               tuple(r.path for r in test.query_records))
            gallery = _gallery_set(test, gathered)
            scores = evaluator.evaluate(query, gallery)
        write_per_query = getattr(evaluator, "write_per_query", None)
        if per_query is not None and write_per_query is not None:
            write_per_query(per_query(test.name), query.paths)
        for key, value in scores.items():
            metrics[f"{test.name}/{key}"] = float(value)
        if gallery is not None:
            features[test.name] = (query, gallery)
    return metrics, features


def _gallery_set(test: Any, rows: torch.Tensor) -> FeatureSet:
    return FeatureSet(rows, test.gallery_pids, test.gallery_camids,
                      tuple(r.path for r in test.gallery_records))


def _gallery_block(test: Any, rows: torch.Tensor, dist: DistInfo) -> FeatureSet:
    """This rank's block of the gallery: the rows it embedded, with their labels (the
    test loaders give each rank a contiguous block, in rank order)."""
    from reidcore.evaluation.sharded import all_shard_sizes

    start = sum(all_shard_sizes(rows.shape[0])[:dist.rank])
    stop = start + rows.shape[0]
    camids = test.gallery_camids
    return FeatureSet(rows, test.gallery_pids[start:stop],
                      None if camids is None else camids[start:stop],
                      tuple(r.path for r in test.gallery_records[start:stop]))
