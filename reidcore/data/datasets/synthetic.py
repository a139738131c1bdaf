"""``synthetic``: the built-in procedural pedestrians (see :mod:`reidcore.data.synth`).

On ``load()`` the data set is generated once into a cache folder keyed by its parameters
(``$REID_CACHE/synthetic/<key>``, default ``~/.cache/reid/synthetic``; ``root`` overrides
the folder holding the keyed data sets) and then read with the Market-1501 rules. Every
record of a train or test identity carries ``extras["texture"]``, the path of its
256x256 texture map. The defaults (40 train ids, 40 test ids, 10 distractors, 4 cameras,
128x64) generate about a thousand images in a few seconds.

``reid data check synthetic --root DIR`` never generates: it checks the data that is there
(``load_existing``), either a folder written by ``reid data synth --out DIR`` (its
``manifest.json`` gives the parameters, hence the expected counts) or the keyed folder
under ``root`` that ``load()`` would use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import attrs

from reidcore.data.datasets.base import DatasetLayoutError
from reidcore.data.datasets.market1501 import MarketStyleDataset
from reidcore.records import DatasetSplits, SplitStats


def _size(_instance, _attribute, value: str) -> None:
    from reidcore.data.synth import parse_size

    parse_size(value)


@attrs.define
class SyntheticConfig:
    """Options of the ``synthetic`` dataset (all are part of the cache key)."""

    ids: int = attrs.field(default=40, validator=attrs.validators.ge(1))
    """Training identities."""
    test_ids: int = attrs.field(default=40, validator=attrs.validators.ge(1))
    """Test identities (query/gallery), disjoint from the training ones."""
    distractors: int = attrs.field(default=10, validator=attrs.validators.ge(0))
    """Gallery-only identities (pid 0)."""
    cameras: int = attrs.field(default=4, validator=[attrs.validators.ge(2),
                                                     attrs.validators.le(99)])
    images_per_camera: int = attrs.field(default=4, validator=attrs.validators.ge(2))
    style: Literal["synthetic", "real"] = "synthetic"
    """``synthetic``: flat game-like rendering; ``real``: clutter, colour shifts, noise, blur,
    JPEG artefacts. The two styles have disjoint identities (a domain gap)."""
    size: str = attrs.field(default="128x64", validator=_size)
    """Image height x width, e.g. ``"128x64"`` or ``"256x128"``."""
    seed: int = 0
    root: str = ""
    """Folder for the generated data sets; empty = ``$REID_CACHE/synthetic``."""


class SyntheticDataset(MarketStyleDataset):
    name = "synthetic"
    folder_names = ()
    layout = "    (generated automatically on first use)"

    def __init__(self, config: SyntheticConfig):
        from reidcore.data.synth import SynthParams, parse_size

        height, width = parse_size(config.size)
        self.params = SynthParams(ids=config.ids, test_ids=config.test_ids,
                                  distractors=config.distractors, cameras=config.cameras,
                                  images_per_camera=config.images_per_camera,
                                  style=config.style, height=height, width=width,
                                  seed=config.seed)
        self.config = config
        super().__init__(config.root, self._expected(), domain=f"synthetic-{config.style}")

    def _expected(self) -> SplitStats:
        from reidcore.data.synth import plan

        jobs = plan(self.params)
        count = {s: sum(1 for j in jobs if j.split == s)
                 for s in ("bounding_box_train", "query", "bounding_box_test")}
        return SplitStats(train_ids=self.params.ids, train_images=count["bounding_box_train"],
                          query_images=count["query"], gallery_images=count["bounding_box_test"],
                          test_ids=self.params.test_ids)

    def dataset_dir(self):
        from reidcore.data.synth import ensure_dataset

        return ensure_dataset(self.params, self.config.root or None)

    def load(self) -> DatasetSplits:
        return self._scan_all(self.dataset_dir())

    def load_existing(self) -> DatasetSplits:
        """The records of the data already on disk; nothing is generated. ``expected``
        becomes the counts of the parameters that data was generated with."""
        from reidcore.data.synth import SynthParams, default_cache_root

        base = Path(self.config.root).expanduser() if self.config.root else None
        if base is not None and (base / "manifest.json").is_file():
            found = base  # written by `reid data synth --out DIR`
        else:
            found = (base or default_cache_root() / "synthetic") / self.params.key()
            if not (found / "manifest.json").is_file():
                where = base if base is not None else found.parent
                raise DatasetLayoutError(
                    f"no synthetic data set to check at {where}: neither {where}/manifest.json "
                    f"(a folder written by `reid data synth --out`) nor {found}/manifest.json "
                    "(the cached data set of these options) exists; nothing was generated")
        manifest = found / "manifest.json"
        try:
            params = json.loads(manifest.read_text())["parameters"]
            self.params = SynthParams(**params)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetLayoutError(f"{manifest} is not a synthetic data set manifest: "
                                     f"{type(exc).__name__}: {exc}") from None
        self.expected = self._expected()
        self.check_notes = [f"checking {found} as it is (parameters from {manifest}: "
                            + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"]
        return self._scan_all(found)

    def _scan_all(self, base: Path) -> DatasetSplits:
        textures = base / "textures"

        def texture(path, pid):
            return {"texture": str(textures / f"{pid:04d}.png")} if pid > 0 else {}

        train = self.scan(base / self.train_dir, keep=lambda pid: pid > 0, extras=texture)
        query = self.scan(base / self.query_dir, keep=lambda pid: pid > 0, extras=texture)
        gallery = self.scan(base / self.gallery_dir, extras=texture)
        return DatasetSplits(tuple(train), tuple(query), tuple(gallery))


def build(config: SyntheticConfig) -> SyntheticDataset:
    return SyntheticDataset(config)
