"""CUHK03 (Li et al., "DeepReID: Deep Filter Pairing Neural Network for Person
Re-identification", CVPR 2014), with the new 767/700 protocol of Zhong et al.,
"Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017.

Layout (``root`` may be the folder itself or its parent)::

    cuhk03/
        cuhk03_release/cuhk-03.mat                     (MATLAB v7.3 = HDF5)
        cuhk03_new_protocol_config_labeled.mat         (new protocol splits)
        cuhk03_new_protocol_config_detected.mat

``cuhk-03.mat`` holds, for ``labeled`` and ``detected``, five camera pairs, each a
10 x identities cell of images (1-5 from the first camera, 6-10 from the second; empty
cells are missing images), plus ``testsets``: the 20 classic test splits of 100
(camera pair, identity) rows. On first use the images are extracted as
``images_labeled/1_001_1_01.png`` (pair _ identity _ camera _ image, the names the split
files use) next to the release or, if that is read-only, under ``$REID_CACHE/cuhk03``.

``protocol = "new"`` (default): 767 train identities and 700 test identities; labeled:
7,368 train / 1,400 query / 5,328 gallery images; detected: 7,365 / 1,400 / 5,332.
``protocol = "classic"``: split ``split`` (0-19) of the 20 classic splits: 100 test
identities, whose images are both query and gallery (evaluation drops same-camera matches),
the other 1,367 train; image counts vary by split (no statistics declared).

Needs h5py and scipy: ``pip install 'reidcore[cuhk03]'``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import attrs

from reidcore.data.datasets.base import (
    DatasetLayoutError,
    as_splits,
    default_data_root,
    find_dataset_dir,
)
from reidcore.errors import ReidError
from reidcore.records import DatasetSplits, ImageRecord, SplitStats

RELEASE = "cuhk03_release/cuhk-03.mat"
LAYOUT = """    cuhk03/
        cuhk03_release/cuhk-03.mat
        cuhk03_new_protocol_config_labeled.mat
        cuhk03_new_protocol_config_detected.mat"""
EXPECTED = {
    "labeled": SplitStats(train_ids=767, train_images=7368, query_images=1400,
                          gallery_images=5328, test_ids=700),
    "detected": SplitStats(train_ids=767, train_images=7365, query_images=1400,
                           gallery_images=5332, test_ids=700),
}


@attrs.define
class CUHK03Config:
    """Options of the ``cuhk03`` dataset."""

    root: str = attrs.field(factory=default_data_root)
    """The folder holding ``cuhk03/`` (or that folder itself)."""
    images: Literal["labeled", "detected"] = "labeled"
    """Hand-labelled boxes or the DPM-detected ones."""
    protocol: Literal["new", "classic"] = "new"
    split: int = attrs.field(default=0, validator=[attrs.validators.ge(0),
                                                   attrs.validators.le(19)])
    """Which of the 20 classic splits (``protocol = "classic"`` only)."""


def _optional_imports():
    try:
        import h5py
        import scipy.io
    except ImportError as exc:
        raise ReidError(f"the cuhk03 dataset needs h5py and scipy ({exc.name} is missing): "
                        "pip install 'reidcore[cuhk03]'") from None
    return h5py, scipy.io


def _refs(array) -> list:
    import numpy as np

    return list(np.asarray(array).ravel(order="F"))


def image_name(pair: int, identity: int, index: int) -> str:
    """The extracted name of image ``index`` (0-9) of ``identity`` in camera ``pair``
    (all 0-based): ``{pair+1}_{identity+1:03d}_{camera}_{index+1:02d}.png``."""
    camera = 1 if index < 5 else 2
    return f"{pair + 1}_{identity + 1:03d}_{camera}_{index + 1:02d}.png"


def extract_images(mat_path: Path, kind: str, out: Path) -> None:
    """Write every non-empty image of ``kind`` as a PNG into ``out`` (atomically)."""
    h5py, _ = _optional_imports()
    from PIL import Image

    if (out / ".complete").exists():
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with h5py.File(mat_path, "r") as mat:
            if kind not in mat:
                raise DatasetLayoutError(f"{mat_path} has no '{kind}' images "
                                         f"(keys: {', '.join(mat.keys())})")
            for pair, pair_ref in enumerate(_refs(mat[kind])):
                cells = mat[pair_ref][()].T  # identities x 10
                for identity in range(cells.shape[0]):
                    for index, ref in enumerate(cells[identity]):
                        image = mat[ref][()]
                        if image.size == 0 or image.ndim < 3:
                            continue  # a missing image
                        Image.fromarray(image.T).save(tmp / image_name(pair, identity, index))
        (tmp / ".complete").write_text("")
        try:
            os.replace(tmp, out)
        except OSError:
            if not (out / ".complete").exists():
                raise
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)) and not mat_path.exists():
            raise DatasetLayoutError(f"cannot read {mat_path}: {exc}") from None
        if isinstance(exc, PermissionError):
            raise
        raise DatasetLayoutError(f"cannot read {mat_path} (expected the MATLAB v7.3/HDF5 "
                                 f"release of CUHK03): {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class CUHK03:
    def __init__(self, config: CUHK03Config):
        self.config = config
        self.expected = EXPECTED[config.images] if config.protocol == "new" else None
        self.domain = "cuhk03"

    def dataset_dir(self) -> Path:
        markers = [RELEASE]
        if self.config.protocol == "new":
            markers.append(f"cuhk03_new_protocol_config_{self.config.images}.mat")
        return find_dataset_dir(self.config.root, ("cuhk03", "CUHK03"), markers, "cuhk03",
                                LAYOUT)

    def images_dir(self, base: Path) -> Path:
        """Extracted images (extracted now if needed): beside the release, or in the cache."""
        name = f"images_{self.config.images}"
        local = base / name
        if (local / ".complete").exists():
            return local
        try:
            extract_images(base / RELEASE, self.config.images, local)
            return local
        except PermissionError:
            from reidcore.data.synth import default_cache_root

            key = hashlib.sha1(str(base.resolve()).encode()).hexdigest()[:16]
            cached = default_cache_root() / "cuhk03" / key / name
            extract_images(base / RELEASE, self.config.images, cached)
            return cached

    def load(self) -> DatasetSplits:
        base = self.dataset_dir()
        _optional_imports()
        images = self.images_dir(base)
        if self.config.protocol == "new":
            return self._new_protocol(base, images)
        return self._classic(base, images)

    def _new_protocol(self, base: Path, images: Path) -> DatasetSplits:
        import numpy as np

        _, sio = _optional_imports()
        path = base / f"cuhk03_new_protocol_config_{self.config.images}.mat"
        try:
            split = sio.loadmat(str(path))
            filelist = split["filelist"].ravel()
            labels = split["labels"].ravel()
            sets = {k: split[f"{k}_idx"].ravel().astype(int) - 1
                    for k in ("train", "query", "gallery")}
        except (KeyError, ValueError, OSError) as exc:
            raise DatasetLayoutError(f"{path} is not a CUHK03 new-protocol split file "
                                     f"(needs filelist, labels, train_idx, query_idx, "
                                     f"gallery_idx): {exc}") from None

        prefix = str(images)

        def records(indices) -> list[ImageRecord]:
            out = []
            for i in indices:
                name = filelist[i]
                while isinstance(name, np.ndarray):  # MATLAB cells nest strings in arrays
                    name = name.ravel()[0]
                name = str(name)
                camera = int(name.split("_")[2]) - 1
                out.append(ImageRecord(f"{prefix}/{name}", int(labels[i]), camera, self.domain))
            return out

        return as_splits(records(sets["train"]), records(sets["query"]),
                         records(sets["gallery"]))

    def _classic(self, base: Path, images: Path) -> DatasetSplits:
        h5py, _ = _optional_imports()
        with h5py.File(base / RELEASE, "r") as mat:
            refs = _refs(mat["testsets"])
            if self.config.split >= len(refs):
                raise DatasetLayoutError(f"{base / RELEASE} has {len(refs)} classic test sets; "
                                         f"split = {self.config.split} does not exist")
            rows = mat[refs[self.config.split]][()].T  # MATLAB is column-major: 100 x 2
        test = {(int(pair), int(identity)) for pair, identity in rows}
        train: list[ImageRecord] = []
        query: list[ImageRecord] = []
        for path in sorted(images.glob("*.png")):
            pair, identity, camera, _ = (int(x) for x in path.stem.split("_"))
            record = ImageRecord(str(path), pair * 1000 + identity, camera - 1, self.domain)
            (query if (pair, identity) in test else train).append(record)
        return as_splits(train, query, query)


def build(config: CUHK03Config) -> CUHK03:
    return CUHK03(config)
