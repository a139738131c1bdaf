"""PIT, the Paired-Image-Texture data of SAN (Jin et al., "Semantics-Aligned
Representation Learning for Person Re-identification", AAAI 2020): person images
(256x128, rendered from SURREAL meshes over COCO backgrounds) paired with the UV texture
map (256x256) they were rendered from: 929 textures x 10 renderings = 9,290 pairs.

The release's internal layout is not documented; this component reads::

    PIT/
        images/     0001_01.jpg ...   TEXTURE _ RENDERING (any image extension)
        textures/   0001.jpg ...      one map per texture id

Every image becomes a training record whose pid is its texture id (camid ``None``) and
whose ``extras["texture"]`` is the path of its texture map; query/gallery are empty.
An image without its texture map is an error naming both. Other layouts: use ``folder``.
"""

from __future__ import annotations

import re

import attrs

from reidcore.data.datasets.base import (
    IMAGE_SUFFIXES,
    DatasetLayoutError,
    default_data_root,
    find_dataset_dir,
    list_images,
)
from reidcore.records import DatasetSplits, ImageRecord, SplitStats

PATTERN = re.compile(r"^(\d+)_(\d+)$")
EXPECTED = SplitStats(train_ids=929, train_images=9290, query_images=0, gallery_images=0,
                      test_ids=0)


@attrs.define
class PITConfig:
    """Options of the ``pit`` dataset."""

    root: str = attrs.field(factory=default_data_root)
    """The folder holding ``PIT/`` (or that folder itself)."""


class PIT:
    def __init__(self, config: PITConfig):
        self.config = config
        self.expected = EXPECTED
        self.domain = "pit"

    def load(self) -> DatasetSplits:
        base = find_dataset_dir(self.config.root, ("PIT", "pit"), ("images", "textures"), "pit",
                                __doc__.split("reads::\n\n")[1].split("\n\n")[0])
        textures = {p.stem: p for p in list_images(base / "textures")}
        records = []
        for path in list_images(base / "images"):
            match = PATTERN.match(path.stem)
            if match is None:
                raise DatasetLayoutError(f"{path}: file name does not follow "
                                         "TEXTURE_RENDERING (e.g. 0001_01.jpg)")
            texture = textures.get(match.group(1))
            if texture is None:
                raise DatasetLayoutError(
                    f"{path} has no texture map: expected {base / 'textures' / match.group(1)}"
                    f" with one of {', '.join(IMAGE_SUFFIXES)}")
            records.append(ImageRecord(str(path), int(match.group(1)), None, self.domain,
                                       {"texture": str(texture)}))
        return DatasetSplits(tuple(records))


def build(config: PITConfig) -> PIT:
    return PIT(config)
