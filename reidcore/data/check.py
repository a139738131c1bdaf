"""``reid data check``: compare a local copy of a dataset with its declared statistics.

Reports a missing root with the expected layout (the dataset's own error), every count
that differs (declared vs found, per split), and every image that cannot be decoded
(by path), texture maps included. It checks what is on disk: a dataset that generates its
data on first use (``synthetic``) provides ``load_existing()``, which never writes. No
torch is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs
from PIL import Image

from reidcore.data.datasets.base import split_stats
from reidcore.data.imageio import to_rgb
from reidcore.progress import progress as bar
from reidcore.records import DatasetSplits, ImageRecord, SplitStats

_LABELS = {
    "train_ids": "train identities",
    "train_images": "train images",
    "query_images": "query images",
    "gallery_images": "gallery images",
    "test_ids": "test identities (in the query)",
}


@attrs.define
class CheckReport:
    """What ``reid data check`` found; ``ok`` when nothing differs and all images decode."""

    name: str
    found: SplitStats
    expected: SplitStats | None
    differences: list[str] = attrs.field(factory=list)
    bad_images: list[str] = attrs.field(factory=list)
    checked_images: int = 0
    notes: list[str] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences and not self.bad_images

    def lines(self) -> list[str]:
        out = [f"{self.name}: {note}" for note in self.notes]
        out += [f"{self.name}: found " + ", ".join(
            f"{getattr(self.found, key)} {label}" for key, label in _LABELS.items())]
        if self.expected is None:
            out.append(f"{self.name}: declares no image counts; only identity counts, if "
                       "declared, are compared")
        for line in self.differences:
            out.append(f"{self.name}: {line}")
        for line in self.bad_images:
            out.append(f"{self.name}: corrupt image: {line}")
        if self.checked_images:
            out.append(f"{self.name}: decoded {self.checked_images} images, "
                       f"{len(self.bad_images)} unreadable")
        out.append(f"{self.name}: {'OK' if self.ok else 'MISMATCH'}")
        return out


def compare(found: SplitStats, expected: SplitStats | None) -> list[str]:
    """One line per count that differs: ``train images: expected 12936, found 12935 (-1)``."""
    if expected is None:
        return []
    lines = []
    for key, label in _LABELS.items():
        want, got = getattr(expected, key), getattr(found, key)
        if want is not None and want != got:
            lines.append(f"{label}: expected {want}, found {got} ({got - want:+d})")
    return lines


def check_image(path: str, decode: bool = True) -> str | None:
    """``None`` if the image reads as training would read it (8-bit RGB), else the reason.
    Without ``decode`` only the header and the pixel mode are checked."""
    try:
        with Image.open(path) as image:
            if decode:
                to_rgb(image, path)
            else:
                mode = image.mode
                image.verify()
                to_rgb(Image.new(mode, (1, 1)), path)  # refuses a mode it cannot convert
    except Exception as exc:  # PIL raises many kinds for broken files
        return f"{path}: {type(exc).__name__}: {exc}"
    return None


def check_dataset(name: str, dataset, images: bool = True, decode: bool = True,
                  progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Load ``dataset`` (a ``Dataset``), compare its counts and (optionally) read every
    image. Layout errors propagate as the dataset raises them (with the layout)."""
    load_existing = getattr(dataset, "load_existing", None)
    splits: DatasetSplits = load_existing() if load_existing is not None else dataset.load()
    found = split_stats(splits)
    report = CheckReport(name, found, dataset.expected, compare(found, dataset.expected),
                         notes=list(getattr(dataset, "check_notes", ())))
    partial = getattr(dataset, "expected_ids", None)  # datasets declaring identities only
    if dataset.expected is None and partial:
        for key, want in partial.items():
            got = getattr(found, key)
            if got != want:
                report.differences.append(f"{_LABELS[key]}: expected {want}, found {got} "
                                          f"({got - want:+d})")
    if images:
        paths = _unique_paths(splits.train + splits.query + splits.gallery)
        shown = bar(paths, total=len(paths), unit="img",
                    desc=f"{name}: {'decoding' if decode else 'reading headers of'} images")
        for i, path in enumerate(shown):
            problem = check_image(path, decode)
            if problem:
                report.bad_images.append(problem)
            if progress is not None:
                progress(i + 1, len(paths))
        report.checked_images = len(paths)
    return report


def _unique_paths(records: Iterable[ImageRecord]) -> list[str]:
    """Every image the records read: their own and their texture maps (SAN, PIT)."""
    seen: dict[str, None] = {}
    for record in records:
        seen.setdefault(record.path, None)
        texture = record.extras.get("texture") if record.extras else None
        if texture:
            seen.setdefault(str(texture), None)
    return list(seen)
