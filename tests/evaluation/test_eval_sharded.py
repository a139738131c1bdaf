"""Exact metrics over a sharded gallery: 2 gloo processes against one process."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from reidcore.errors import ReidError
from reidcore.evaluation import evaluate_features
from reidcore.evaluation.config import RankingConfig
from reidcore.evaluation.ranking import GalleryIndex, combine
from reidcore.evaluation.sharded import (
    evaluate_sets_sharded,
    evaluate_sharded,
    merge_positives,
    metrics_from_counts,
    shard_bounds,
    shard_counts,
    shard_positives,
)
from tests.evaluation.test_eval_evaluator import make_sets

FIELDS = ("cmc", "ap", "inp", "first_match_rank", "num_positives", "skipped")


def problem(seed=5):
    query, gallery = make_sets(seed=seed, num_q=60, num_g=410, ids=12, dim=16, noise=1.5)
    # exact ties across the shard boundary: duplicated gallery features
    gallery.features[200:215] = gallery.features[190:205].clone()
    return query, gallery


def assert_identical(a, b):
    for name in FIELDS:
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    assert (a.mAP, a.mINP, a.num_valid_queries) == (b.mAP, b.mINP, b.num_valid_queries)


@pytest.mark.parametrize("protocol,shards", [("market", 3), ("no-camera", 4)])
def test_shard_functions_combine_to_the_one_process_result(protocol, shards):
    query, gallery = problem()
    cams = (query.camids, gallery.camids) if protocol == "market" else (None, None)
    self_index = np.arange(60) * 3 if protocol == "no-camera" else None
    expected = evaluate_features(query.features, gallery.features, query.pids,
                                 gallery.pids, *cams, protocol=protocol,
                                 query_gallery_index=self_index)
    from reidcore.evaluation import pairwise_distance

    full = pairwise_distance(query.features, gallery.features)
    bounds = [shard_bounds(410, shards, r) for r in range(shards)]
    indexes = [GalleryIndex.build(np.asarray(gallery.pids[a:b], np.int64),
                                  np.asarray(gallery.camids[a:b], np.int64)
                                  if cams[0] is not None else np.zeros(b - a, np.int64))
               for a, b in bounds]
    q_pids = np.asarray(query.pids, np.int64)
    q_cams = None if cams[0] is None else np.asarray(query.camids, np.int64)
    merged = merge_positives([
        shard_positives(full[:, a:b], q_pids, q_cams, index, offset=a, protocol=protocol,
                        query_gallery_index=self_index)
        for (a, b), index in zip(bounds, indexes, strict=True)])
    counts = sum(shard_counts(full[:, a:b], q_pids, index, merged, offset=a,
                              protocol=protocol, query_gallery_index=self_index)[0]
                 for (a, b), index in zip(bounds, indexes, strict=True))
    ours = combine([metrics_from_counts(merged[0], counts)], max_rank=50, protocol=protocol)
    assert_identical(ours, expected)


def _worker(rank, world, port, path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        query, gallery = problem()
        a, b = shard_bounds(len(gallery.pids), world, rank)
        result = evaluate_sharded(query.features, gallery.features[a:b], query.pids,
                                  gallery.pids[a:b], query.camids, gallery.camids[a:b],
                                  rows=17)
        np.savez(f"{path}_{rank}.npz", mAP=result.mAP, mINP=result.mINP,
                 tpr=np.array(list(result.tpr_at_fpr.values())),
                 **{name: getattr(result, name) for name in FIELDS})
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_processes_equal_one_process_bit_for_bit(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path / "r")), nprocs=2, join=True)
    query, gallery = problem()
    expected = evaluate_features(query.features, gallery.features, query.pids,
                                 gallery.pids, query.camids, gallery.camids)
    for rank in range(2):
        got = np.load(tmp_path / f"r_{rank}.npz")
        for name in FIELDS:
            assert np.array_equal(got[name], getattr(expected, name), equal_nan=True), name
        assert float(got["mAP"]) == expected.mAP and float(got["mINP"]) == expected.mINP
        assert got["tpr"].tolist() == list(expected.tpr_at_fpr.values())


def test_single_gallery_shot_is_refused():
    query, gallery = problem()
    with pytest.raises(ReidError, match="single-gallery-shot"):
        evaluate_sharded(query.features, gallery.features, query.pids, gallery.pids,
                         query.camids, gallery.camids, protocol="single-gallery-shot")


def test_what_needs_the_whole_gallery_is_refused_under_torchrun():
    query, gallery = problem()
    for option in ({"rerank": True}, {"query_expansion": 2},
                   {"protocol": "single-gallery-shot"}):
        with pytest.raises(ReidError, match="whole gallery in one process"):
            evaluate_sets_sharded(RankingConfig(**option), query, gallery)


def test_reid_eval_under_torchrun_prints_the_one_process_result(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    query, gallery = problem()
    for name, features in (("q", query), ("g", gallery)):
        np.savez(tmp_path / f"{name}.npz", features=features.features.numpy(),
                 pids=features.pids, camids=features.camids)
    bin_dir = Path(sys.executable).parent
    args = ["eval", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"),
            "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outputs = [subprocess.run(command, capture_output=True, text=True, env=env, check=True,
                              timeout=300).stdout
               for command in ([str(bin_dir / "reid"), *args],
                               [str(bin_dir / "torchrun"), "--nproc-per-node", "2",
                                "--master-port", str(port), str(bin_dir / "reid"), *args])]
    one, two = (json.loads(out.strip().splitlines()[-1]) for out in outputs)
    assert two == one and "tpr_at_fpr" in one


def test_demanding_a_sharded_gallery_with_what_needs_it_whole_is_refused_by_the_recipe():
    from reidcore.plugins import get_plugins
    from reidcore.recipe import RecipeError, resolve

    plugins = get_plugins()
    raw = {"name": "x", "method": {"name": "baseline"},
           "backbone": {"name": "timm", "model": "resnet10t"},
           "losses": [{"name": "cross_entropy"}],
           "data": {"source": [{"name": "synthetic"}], "test": [{"name": "synthetic"}]},
           "evaluate": {"name": "ranking", "rerank": True, "shard_gallery": "on"}}
    with pytest.raises(RecipeError, match=r"evaluate\.shard_gallery.*rerank"):
        resolve(raw, "<test recipe>", plugins.registry, plugins.hook)
    raw["evaluate"]["shard_gallery"] = "auto"  # gathers the gallery for re-ranking
    assert resolve(raw, "<test recipe>", plugins.registry, plugins.hook).evaluate.config.rerank
