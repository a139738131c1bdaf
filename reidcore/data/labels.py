"""Identity and camera labels of a folder of images, for ``reid extract`` (no torch).

``reid eval`` needs ``pids`` (and, for the market protocol, ``camids``) next to the
features. They come from the file names when every image follows one known naming rule
(Market-1501 / DukeMTMC-reID / the synthetic data: ``0002_c1s1_000451_03.jpg``; MSMT17:
``0000_000_01_0303morning_0015_0.jpg``; GTA-SynthReID: ``0001_sd01c03_...``) or from a CSV
with columns ``path,pid[,camid]`` (the ``folder`` dataset's convention: paths relative to
the CSV's folder or to the images folder, camera ids as written minus ``camera_base``).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np

from reidcore.errors import ReidError

NAMING_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("market1501", re.compile(r"^(-?\d+)_c(\d+)(?:s\d+)?_")),
    ("msmt17", re.compile(r"^(\d+)_\d+_(\d{2})_\d+(?:morning|noon|afternoon)_")),
    ("gtasynthreid", re.compile(r"^(\d+)_s[dn]\d+c(\d{2})_")),
)
"""(name, pattern): groups 1 and 2 are the pid and the 1-based camera."""

WHAT_EVAL_NEEDS = (
    "reid eval needs 'pids' (N) and, for the market protocol, 'camids' (N) arrays next to "
    "'features': name the images like 0002_c1s1_000451_03.jpg (pid 2, camera 1), or give "
    "--labels FILE.csv with columns path,pid[,camid]")


@attrs.frozen
class Labels:
    """Per-image labels in the images' order; ``camids`` are 0-based, or None."""

    pids: np.ndarray
    camids: np.ndarray | None
    source: str
    warnings: tuple[str, ...] = ()
    """What looks wrong but is used as given (e.g. a camid below the camera base)."""


def labels_from_names(paths: Sequence[Path]) -> tuple[Labels | None, str]:
    """Labels from the first naming rule every file name follows, else ``(None, why)``."""
    names = [Path(p).name for p in paths]
    best: tuple[str, list[str]] | None = None
    for rule, pattern in NAMING_RULES:
        matches = [pattern.match(name) for name in names]
        misses = [name for name, match in zip(names, matches, strict=True) if match is None]
        if not misses:
            found = [m for m in matches if m is not None]
            pids = np.array([int(m.group(1)) for m in found], np.int64)
            camids = np.array([int(m.group(2)) - 1 for m in found], np.int64)
            return Labels(pids, camids, f"file names ({rule} naming rule)"), ""
        if len(misses) < len(names) and (best is None or len(misses) < len(best[1])):
            best = (rule, misses)
    if best is None:
        return None, "the file names follow no known naming rule"
    rule, misses = best
    shown = ", ".join(misses[:3]) + (f" and {len(misses) - 3} more" if len(misses) > 3 else "")
    return None, (f"{len(misses)} of {len(names)} file names do not follow the {rule} naming "
                  f"rule ({shown})")


def labels_from_csv(csv_path: Path, paths: Sequence[Path], images_root: Path,
                    camera_base: int = 1) -> Labels:
    """Labels of ``paths`` from a CSV with columns ``path,pid[,camid]``; every image needs a
    row (a missing one is an error naming it, so is an image listed twice), extra rows are
    ignored; a byte-order mark and spaces after the commas are accepted."""
    csv_path = Path(csv_path).expanduser()
    if not csv_path.is_file():
        raise ReidError(f"labels file not found: {csv_path}")
    rows: dict[Path, tuple[int, int | None]] = {}
    first_line: dict[Path, int] = {}  # a row's image (as written) -> its line
    below_base: list[str] = []
    # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        reader.fieldnames = [name.strip() for name in reader.fieldnames or ()]
        columns = set(reader.fieldnames)
        if not {"path", "pid"} <= columns:
            raise ReidError(f"{csv_path}: needs columns path,pid (and optionally camid); found "
                            f"{', '.join(sorted(columns)) or 'no header'}")
        for line, row in enumerate(reader, start=2):
            try:
                pid = int(row["pid"])
                camid_text = (row.get("camid") or "").strip()
                camid = int(camid_text) - camera_base if camid_text else None
            except (TypeError, ValueError) as exc:
                raise ReidError(f"{csv_path}:{line}: {exc}") from None
            if camid is not None and camid < 0 and len(below_base) < 3:
                below_base.append(f"line {line}: camid {camid_text}")
            path = Path(row["path"].strip()).expanduser()
            written = Path(os.path.normpath(path))
            if written in first_line:
                raise ReidError(f"{csv_path}: image {row['path'].strip()} is listed twice, on "
                                f"line {first_line[written]} and line {line}; keep one row "
                                f"per image")
            first_line[written] = line
            candidates = ([path] if path.is_absolute()
                          else [csv_path.parent / path, Path(images_root) / path])
            for candidate in candidates:
                rows[candidate.resolve()] = (pid, camid)
    found = [rows.get(Path(p).resolve()) for p in paths]
    missing = [str(p) for p, row in zip(paths, found, strict=True) if row is None]
    if missing:
        raise ReidError(f"{csv_path} has no row for {len(missing)} of {len(paths)} images "
                        f"(e.g. {', '.join(missing[:3])}); paths are relative to the CSV's "
                        f"folder or to {images_root}")
    camids = [camid for _, camid in found]  # type: ignore[misc]
    if any(c is None for c in camids) and any(c is not None for c in camids):
        raise ReidError(f"{csv_path}: some images have a camid and others not; give all or none")
    warnings = () if not below_base else (
        f"{csv_path}: camera ids are counted from --camera-base {camera_base}, but "
        f"{', '.join(below_base)} {'is' if len(below_base) == 1 else 'are'} below it "
        f"(stored as a negative camid); pass "
        f"--camera-base 0 if your cameras are numbered from 0",)
    return Labels(np.array([pid for pid, _ in found], np.int64),  # type: ignore[misc]
                  None if camids[0] is None else np.array(camids, np.int64),
                  f"{csv_path}", warnings)
