"""Evaluation inside a DDP run with the gallery sharded over the ranks: each rank embeds
its block of the gallery and ranks all the queries against it; the metrics equal, bit for
bit, those of the same features gathered on rank 0 and of one process, and no rank is
given more than its block of the gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reidcore.data.config import LoaderConfig
from reidcore.data.loaders import build_test_loaders
from reidcore.engine import distributed
from reidcore.engine.evaluate import evaluate_test_sets, gallery_sharding
from reidcore.evaluation.config import RankingConfig
from reidcore.evaluation.evaluator import RankingEvaluator
from reidcore.records import DatasetSplits, ImageRecord

LOADER = LoaderConfig(height=16, width=16, test_batch_size=3, workers=0)


class PoolingMethod:
    """Embeds an image as its 4 x 2 grid of mean colours: the same rows in any batch."""

    def modules(self) -> dict[str, torch.nn.Module]:
        return {}

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(images, (4, 2)).flatten(1)


class RecordingEvaluator(RankingEvaluator):
    """Remembers how many gallery rows each call was given."""

    def __init__(self, config: RankingConfig):
        super().__init__(config)
        self.gallery_sizes: list[int] = []

    def evaluate(self, query, gallery):
        self.gallery_sizes.append(len(gallery.pids))
        return super().evaluate(query, gallery)

    def evaluate_shard(self, query, gallery_shard, group=None):
        self.gallery_sizes.append(len(gallery_shard.pids))
        return super().evaluate_shard(query, gallery_shard, group)


def write_splits(root: Path) -> DatasetSplits:
    """7 identities and distractors (pid 0) on 2 cameras, noisy colour blocks: 14 queries
    and 23 gallery images (not a multiple of 2 ranks)."""
    rng = np.random.default_rng(0)
    colours = rng.uniform(90, 160, size=(8, 4, 3))
    plan = {"query": {0: 1, 1: 1}, "gallery": {0: 2, 1: 1}}  # images per camera
    records: dict[str, list[ImageRecord]] = {"query": [], "gallery": []}
    for pid in range(8):
        for split in ("query", "gallery") if pid else ("gallery",):
            for camid, count in plan[split].items():
                for k in range(1 if pid == 0 else count):
                    blocks = np.repeat(colours[pid], 2, axis=0)[:, None, :].repeat(4, axis=1)
                    pixels = np.clip(blocks + rng.normal(0, 90, blocks.shape), 0, 255)
                    path = root / f"{split}_{pid}_{camid}_{k}.png"
                    Image.fromarray(pixels.astype(np.uint8)).save(path)
                    records[split].append(ImageRecord(str(path), pid, camid))
    return DatasetSplits((), tuple(records["query"]), tuple(records["gallery"]))


def without_cameras(splits: DatasetSplits) -> DatasetSplits:
    """The no-camera protocol's case: no camera ids, every query also in the gallery (its
    own image is left out of its ranking by path, wherever its shard is)."""
    gallery = tuple(ImageRecord(r.path, r.pid, None) for r in splits.gallery)
    return DatasetSplits((), gallery[1::3], gallery)


def evaluate(splits: DatasetSplits, dist: distributed.DistInfo, shard_gallery: str,
             keep_gallery: bool = False):
    tests = build_test_loaders([splits, without_cameras(splits)], LOADER,
                               names=["toy", "nocam"], rank=dist.rank,
                               world_size=dist.world_size)
    evaluator = RecordingEvaluator(RankingConfig(bootstrap=50, shard_gallery=shard_gallery))
    metrics, features = evaluate_test_sets(PoolingMethod(), evaluator, tests,
                                           torch.device("cpu"), flip=True, dist=dist,
                                           keep_gallery=keep_gallery)
    return metrics, {k: len(g.pids) for k, (_, g) in features.items()}, evaluator.gallery_sizes


def _in_each_rank(splits: DatasetSplits):
    torch.set_num_threads(1)
    info = distributed.from_environment()
    distributed.init_process_group(info, torch.device("cpu"))
    return {setting: evaluate(splits, info, setting, keep_gallery=setting == "on")
            for setting in ("auto", "on", "off")}


def test_a_single_process_never_shards():
    evaluator = RankingEvaluator(RankingConfig(shard_gallery="on"))
    assert gallery_sharding(evaluator, distributed.DistInfo()) == "one process"


@pytest.mark.slow
def test_two_ranks_rank_their_gallery_blocks_and_equal_one_process_bit_for_bit(tmp_path):
    splits = write_splits(tmp_path)
    assert len(splits.gallery) == 23
    one, _, one_sizes = evaluate(splits, distributed.DistInfo(), "auto")
    ranks = distributed.spawn(2, _in_each_rank, splits)
    assert one_sizes == [23, 23]
    for setting, (metrics, _, _) in ranks.items():
        assert metrics == one, setting  # every key, bit for bit (dict equality of floats)
    # rank 0 was given its block only (12 of 23) when sharding, the whole gallery else
    assert ranks["auto"][2] == ranks["on"][2] == [12, 12]
    assert ranks["off"][2] == [23, 23]
    # the gallery reaches rank 0 when asked for (pictures) or when it was gathered anyway
    assert ranks["auto"][1] == {} and ranks["on"][1] == {"toy": 23, "nocam": 23}
    assert ranks["off"][1] == {"toy": 23, "nocam": 23}
    assert 0 < one["toy/mAP"] < 1 and 0 < one["nocam/mAP"] < 1
    assert one["nocam/rank1"] < 1  # a query's own image (distance 0) is never its match
