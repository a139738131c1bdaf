"""Shared pieces of the dataset components: roots, folder scanning, layout errors.

Nothing here imports torch: datasets only index files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from reidcore.errors import ReidError, did_you_mean
from reidcore.records import DatasetSplits, ImageRecord, SplitStats

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DATA_ENV_VAR = "REID_DATA"


def find_images(directory: Path, what: str = "image folder") -> list[Path]:
    """Every image under ``directory`` (recursively, sorted); a missing folder or one with
    no image is a :class:`ReidError` naming ``what`` the user gave (e.g. ``--images``)."""
    if not directory.is_dir():
        raise ReidError(f"{what} not found: {directory} is not a directory")
    found = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ReidError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {directory}")
    return found


def default_data_root() -> str:
    """``$REID_DATA`` if set, else ``~/.cache/reid/datasets`` (a missing folder only fails
    when the dataset is loaded)."""
    return os.environ.get(DATA_ENV_VAR) or "~/.cache/reid/datasets"


class DatasetLayoutError(ReidError):
    """A dataset folder that is missing or does not have the expected layout."""


def find_dataset_dir(root: str, folder_names: Sequence[str], markers: Sequence[str],
                     dataset: str, layout: str) -> Path:
    """The dataset folder: ``root`` itself if it holds ``markers``, else the first of
    ``root/<folder_name>`` that does. Raises with the expected layout otherwise."""
    base = Path(root).expanduser()
    candidates = [base] + [base / name for name in folder_names]
    for candidate in candidates:
        if all((candidate / marker).exists() for marker in markers):
            return candidate
    if not base.exists():
        problem = f"the data root {base} does not exist"
    else:
        present = [c for c in candidates if c.is_dir()]
        missing_in = present[-1] if len(present) > 1 else base
        missing = [m for m in markers if not (missing_in / m).exists()]
        found = sorted(p.name for p in base.iterdir())[:20]
        hint = ""
        for name in found:
            hint = hint or did_you_mean(name, list(folder_names))
        problem = (f"{missing_in} lacks {', '.join(missing)} "
                   f"(found in {base}: {', '.join(found) if found else 'nothing'}){hint}")
    raise DatasetLayoutError(
        f"dataset '{dataset}' not found: {problem}.\n"
        f"Expected layout under root = {base} (set it with `root = \"...\"` in the recipe, "
        f"--root, or ${DATA_ENV_VAR}):\n{layout}")


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder`` (not recursive), sorted by name."""
    return [folder / name for name in _image_names(folder)]


def _image_names(folder: Path) -> list[str]:
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        raise DatasetLayoutError(f"expected a folder of images at {folder}, but it is missing"
                                 ) from None
    return sorted(n for n in names if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES)


def scan_folder(folder: Path, pattern: re.Pattern[str], domain: str,
                keep: Callable[[int], bool] = lambda pid: True,
                camera_base: int = 1, extras: Callable[[Path, int], dict] | None = None,
                ) -> list[ImageRecord]:
    """Records for the images of ``folder`` whose names match ``pattern`` (groups 1 and 2:
    pid and 1-based camera). Camera ids become 0-based. A name that does not match is an
    error naming the file and the rule, since a wrong rule would silently drop data."""
    records = []
    prefix = str(folder)
    search = pattern.search
    for name in _image_names(folder):
        match = search(name)
        if match is None:
            raise DatasetLayoutError(
                f"{folder / name}: file name does not follow the naming rule "
                f"{pattern.pattern!r}")
        pid, camid = int(match.group(1)), int(match.group(2)) - camera_base
        if not keep(pid):
            continue
        path = os.path.join(prefix, name)
        record_extras = extras(Path(path), pid) if extras is not None else {}
        records.append(ImageRecord(path, pid, camid, domain, record_extras))
    return records


def split_stats(splits: DatasetSplits) -> SplitStats:
    """The counts of loaded splits, in the form datasets declare (test ids = query ids)."""
    return SplitStats(
        train_ids=len({r.pid for r in splits.train}),
        train_images=len(splits.train),
        query_images=len(splits.query),
        gallery_images=len(splits.gallery),
        test_ids=len({r.pid for r in splits.query}),
    )


def as_splits(train: Iterable[ImageRecord], query: Iterable[ImageRecord],
              gallery: Iterable[ImageRecord]) -> DatasetSplits:
    return DatasetSplits(tuple(train), tuple(query), tuple(gallery))
