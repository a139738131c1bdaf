"""Market-1501 (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015).

Layout (``root`` may be the folder itself or its parent)::

    Market-1501-v15.09.15/
        bounding_box_train/   0002_c1s1_000451_03.jpg   (pid _ c camera s sequence _ frame _ box)
        query/
        bounding_box_test/    also -1_c1s1_...jpg (junk, dropped) and 0000_c1s1_...jpg
                              (distractors, kept in the gallery with pid 0)
        images/               optional: the 500k distractor release (``distractors_500k``)

Published counts: 751 train ids / 12,936 train images; 3,368 query and 15,913 gallery
images (junk removed, distractors kept) of 750 test ids. The synthetic generator writes
this layout too, so ``market1501`` reads ``reid data synth`` output.
"""

from __future__ import annotations

import re

import attrs

from reidcore.data.datasets.base import (
    DatasetLayoutError,
    as_splits,
    default_data_root,
    find_dataset_dir,
    scan_folder,
)
from reidcore.records import DatasetSplits, SplitStats

PATTERN = re.compile(r"^(-?\d+)_c(\d+)s\d+_")
EXPECTED = SplitStats(train_ids=751, train_images=12936, query_images=3368,
                      gallery_images=15913, test_ids=750)
LAYOUT = """    Market-1501-v15.09.15/
        bounding_box_train/   0002_c1s1_000451_03.jpg ...  (12,936 images)
        query/                                              (3,368 images)
        bounding_box_test/                                  (19,732 files incl. junk -1_*)"""


@attrs.define
class Market1501Config:
    """Options of the ``market1501`` dataset."""

    root: str = attrs.field(factory=default_data_root)
    """The folder holding ``Market-1501-v15.09.15/`` (or that folder itself)."""
    distractors_500k: bool = False
    """Add the 500k distractor release (``images/``) to the gallery with pid 0."""


class MarketStyleDataset:
    """A dataset with Market-1501's three folders; subclasses set names and rules."""

    name = "market1501"
    folder_names: tuple[str, ...] = ("Market-1501-v15.09.15", "Market-1501", "market1501")
    pattern = PATTERN
    layout = LAYOUT
    train_dir, query_dir, gallery_dir = "bounding_box_train", "query", "bounding_box_test"
    min_pid = 1
    """Train/query pids below this are dropped (Market: 0 = distractor, -1 = junk)."""

    def __init__(self, root: str, expected: SplitStats | None = None, domain: str = ""):
        self.root = root
        self.expected = expected
        self.domain = domain or self.name

    def dataset_dir(self):
        return find_dataset_dir(self.root, self.folder_names,
                                (self.train_dir, self.query_dir, self.gallery_dir),
                                self.name, self.layout)

    def scan(self, folder, keep=lambda pid: pid >= 0, extras=None):
        return scan_folder(folder, self.pattern, self.domain, keep=keep, extras=extras)

    def load(self) -> DatasetSplits:
        base = self.dataset_dir()
        train = self.scan(base / self.train_dir, keep=lambda pid: pid >= self.min_pid)
        query = self.scan(base / self.query_dir, keep=lambda pid: pid >= self.min_pid)
        gallery = self.scan(base / self.gallery_dir)  # -1 junk dropped, 0 distractors kept
        return as_splits(train, query, gallery)


class Market1501(MarketStyleDataset):
    def __init__(self, config: Market1501Config):
        super().__init__(config.root, EXPECTED if not config.distractors_500k else None)
        self.config = config

    def load(self) -> DatasetSplits:
        splits = super().load()
        if not self.config.distractors_500k:
            return splits
        extra_dir = self.dataset_dir() / "images"
        if not extra_dir.is_dir():
            raise DatasetLayoutError(
                f"distractors_500k = true but {extra_dir} is missing: unpack the "
                "Market-1501 500k distractor release there (file names like "
                "0000_c1s1_000001_01.jpg)")
        extra = self.scan(extra_dir, keep=lambda pid: pid >= 0)
        return as_splits(splits.train, splits.query, splits.gallery + tuple(extra))


def build(config: Market1501Config) -> Market1501:
    return Market1501(config)
