"""GTASynthReid (synthetic pedestrians rendered in GTA V; the CUT-reID release: 538
identities, 94,312 boxes, 19 camera positions, day and night sequences).

Layout (``root`` may be the folder itself or its parent)::

    GTASynthReid/
        bounding_box_train/   12_sd3c05_000141.jpeg   (PID _ s{d|n}SEQ c CC _ FRAME)
        query/                (one box per test identity and camera, also in the gallery)
        bounding_box_test/

438 identities train and 100 test. ``combine_all = true`` (the synth-to-real recipes) makes
one labelled source of train + gallery (538 identities; the query boxes are copies of
gallery boxes and are left out) and empties query/gallery. ``max_per_id`` caps the images
per identity of train and gallery (a deterministic random subset, ``seed``); with it,
``combine_all`` declares 538 x ``max_per_id`` images (every identity has >= 29 boxes).
The image counts of the plain split are not published, so only the identity counts are
declared there (as ``expected = None`` plus :attr:`expected_ids`).
"""

from __future__ import annotations

import re

import attrs

from reidcore.data.datasets.base import default_data_root
from reidcore.data.datasets.market1501 import MarketStyleDataset
from reidcore.records import DatasetSplits, SplitStats


@attrs.define
class GTASynthReidConfig:
    """Options of the ``gtasynthreid`` dataset."""

    root: str = attrs.field(factory=default_data_root)
    """The folder holding ``GTASynthReid/`` (or that folder itself)."""
    combine_all: bool = False
    """One labelled split of train + gallery (538 identities); query/gallery empty."""
    max_per_id: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """At most this many images per identity in train and gallery (0 = all); 20 in the
    synth-to-real recipes."""
    seed: int = 0
    """Seed of the ``max_per_id`` subset."""


class GTASynthReid(MarketStyleDataset):
    name = "gtasynthreid"
    folder_names = ("GTASynthReid", "gtasynthreid", "GTA_synthReid")
    pattern = re.compile(r"^(\d+)_s[dn]\d+c(\d{2})_")
    min_pid = 0
    layout = """    GTASynthReid/
        bounding_box_train/   12_sd3c05_000141.jpeg ...   (438 identities)
        query/                                            (100 identities)
        bounding_box_test/"""

    def __init__(self, config: GTASynthReidConfig):
        expected = None
        if config.combine_all and 0 < config.max_per_id <= 29:
            expected = SplitStats(train_ids=538, train_images=538 * config.max_per_id,
                                  query_images=0, gallery_images=0, test_ids=0)
        super().__init__(config.root, expected)
        self.config = config
        self.expected_ids = {"train_ids": 538} if config.combine_all else {
            "train_ids": 438, "test_ids": 100}

    def _cap(self, records: tuple, salt: int) -> tuple:
        cap = self.config.max_per_id
        if cap <= 0:
            return records
        import numpy as np

        rng = np.random.default_rng([self.config.seed, salt])
        by_pid: dict[int, list] = {}
        for record in records:
            by_pid.setdefault(record.pid, []).append(record)
        keep = []
        for pid in sorted(by_pid):
            group = by_pid[pid]
            if len(group) > cap:
                chosen = sorted(rng.choice(len(group), size=cap, replace=False))
                group = [group[i] for i in chosen]
            keep += group
        return tuple(keep)

    def load(self) -> DatasetSplits:
        splits = super().load()
        if self.config.combine_all:
            return DatasetSplits(self._cap(splits.train + splits.gallery, 0))
        return DatasetSplits(self._cap(splits.train, 1), splits.query,
                             self._cap(splits.gallery, 2))


def build(config: GTASynthReidConfig) -> GTASynthReid:
    return GTASynthReid(config)
