"""MSMT17 (Wei et al., "Person Transfer GAN to Bridge Domain Gap for Person
Re-Identification", CVPR 2018).

Layout (``root`` may be the folder itself or its parent)::

    MSMT17_V1/                         (or MSMT17_V2/ with mask_train_v2/, mask_test_v2/)
        train/0000/0000_000_01_0303morning_0015_0.jpg
        test/0000/0000_000_01_0303morning_0015_1.jpg
        list_train.txt   list_val.txt  list_query.txt  list_gallery.txt

Each list line is ``<path relative to train/ or test/> <pid>``; the camera is the third
``_`` field of the file name (01-15). The published 32,621 training images of 1,041
identities are list_train (30,248) + list_val (2,373): ``merge_val = true`` (the default,
as in fast-reid) reads both; ``false`` reads list_train only (30,248 images; the val
images belong to the same 1,041 identities). Test: 11,659 query and 82,161 gallery
images of 3,060 identities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs

from reidcore.data.datasets.base import (
    DatasetLayoutError,
    as_splits,
    default_data_root,
    find_dataset_dir,
)
from reidcore.records import DatasetSplits, ImageRecord, SplitStats

LISTS = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")
FOLDERS = {"v1": ("train", "test"), "v2": ("mask_train_v2", "mask_test_v2")}


@attrs.define
class MSMT17Config:
    """Options of the ``msmt17`` dataset."""

    root: str = attrs.field(factory=default_data_root)
    """The folder holding ``MSMT17_V1/`` or ``MSMT17_V2/`` (or that folder itself)."""
    version: Literal["v1", "v2"] = "v1"
    merge_val: bool = True
    """Add list_val.txt to the training split (the published 32,621 images)."""


class MSMT17:
    def __init__(self, config: MSMT17Config):
        self.config = config
        self.expected = SplitStats(train_ids=1041,
                                   train_images=32621 if config.merge_val else 30248,
                                   query_images=11659, gallery_images=82161, test_ids=3060)
        self.domain = "msmt17"

    def _layout(self) -> str:
        train, test = FOLDERS[self.config.version]
        return (f"    MSMT17_{self.config.version.upper()}/\n"
                f"        {train}/0000/0000_000_01_0303morning_0015_0.jpg ...\n"
                f"        {test}/0000/...\n"
                "        list_train.txt list_val.txt list_query.txt list_gallery.txt\n"
                "    (each list line: '<path relative to the image folder> <pid>')")

    def _read_list(self, base: Path, list_name: str, folder: str) -> list[ImageRecord]:
        list_path = base / list_name
        prefix = str(base / folder)
        domain = self.domain
        records = []
        for number, line in enumerate(list_path.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                relative, pid_text = parts
                pid = int(pid_text)
                camid = int(relative.rsplit("/", 1)[-1].split("_")[2]) - 1
            except (ValueError, IndexError):
                raise DatasetLayoutError(
                    f"{list_path}:{number}: expected '<relative path> <pid>' with a file name "
                    f"PID_INDEX_CAMERA_..., got {line!r}") from None
            records.append(ImageRecord(f"{prefix}/{relative}", pid, camid, domain))
        return records

    def load(self) -> DatasetSplits:
        version = self.config.version
        train_dir, test_dir = FOLDERS[version]
        base = find_dataset_dir(self.config.root, (f"MSMT17_{version.upper()}",
                                                   f"msmt17_{version}", "MSMT17"),
                                (train_dir, test_dir, *LISTS), "msmt17", self._layout())
        train = self._read_list(base, "list_train.txt", train_dir)
        if self.config.merge_val:
            train += self._read_list(base, "list_val.txt", train_dir)
        query = self._read_list(base, "list_query.txt", test_dir)
        gallery = self._read_list(base, "list_gallery.txt", test_dir)
        return as_splits(train, query, gallery)


def build(config: MSMT17Config) -> MSMT17:
    return MSMT17(config)
