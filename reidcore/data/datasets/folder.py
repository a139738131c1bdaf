"""``folder``: any dataset without writing code.

Either image folders per split whose file names carry the labels, read with a regular
expression with named groups ``pid`` and (optionally) ``camid``::

    root/
        train/     0001_c1_anything.jpg ...       (default regex: (?P<pid>-?\\d+)_c(?P<camid>\\d+))
        query/
        gallery/

or a CSV ``manifest`` (relative paths are relative to the manifest's folder)::

    path,pid,camid,split
    images/a.jpg,3,1,train
    images/b.jpg,3,,query          # an empty camid: no camera id

Camera ids are optional. A dataset without them (no ``camid`` group, or an empty column)
gets ``camid = None`` on every record, and evaluation then uses the explicit "no camera"
protocol (only the query image itself is excluded) instead of silently discarding every
same-camera match. Mixing records with and without camera ids is an error. Camera ids are
taken as written minus ``camera_base`` (default 1: ``c1`` becomes 0). Negative pids are
dropped as junk (``drop_junk``). A missing split folder is an empty split.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import attrs

from reidcore.data.datasets.base import DatasetLayoutError, as_splits, list_images
from reidcore.errors import ReidError
from reidcore.records import DatasetSplits, ImageRecord

SPLITS = ("train", "query", "gallery")


def _regex(_instance, _attribute, value: str) -> None:
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    if "pid" not in compiled.groupindex:
        raise ValueError("the regex needs a named group (?P<pid>...)")


@attrs.define
class FolderConfig:
    """Options of the ``folder`` dataset."""

    root: str = "."
    """The dataset folder (holding the split folders, or the manifest)."""
    manifest: str = ""
    """A CSV file with columns path,pid,camid,split; when set, ``regex`` is not used."""
    regex: str = attrs.field(default=r"(?P<pid>-?\d+)_c(?P<camid>\d+)", validator=_regex)
    """Applied to each file name (re.search); named groups pid and optional camid."""
    train_dir: str = "train"
    query_dir: str = "query"
    gallery_dir: str = "gallery"
    camera_base: int = 1
    drop_junk: bool = True
    domain: str = "folder"


class FolderDataset:
    expected = None

    def __init__(self, config: FolderConfig):
        self.config = config
        self.expected = None

    def load(self) -> DatasetSplits:
        splits = self._from_manifest() if self.config.manifest else self._from_folders()
        records = [r for split in splits for r in split]
        with_cams = {r.camid is not None for r in records}
        if len(with_cams) > 1:
            missing = next(r for r in records if r.camid is None)
            raise DatasetLayoutError(f"some images have camera ids and some do not (e.g. "
                                     f"{missing.path}); give all of them or none")
        return as_splits(*splits)

    def _keep(self, pid: int) -> bool:
        return pid >= 0 or not self.config.drop_junk

    def _from_folders(self) -> list[list[ImageRecord]]:
        base = Path(self.config.root).expanduser()
        pattern = re.compile(self.config.regex)
        dirs = [self.config.train_dir, self.config.query_dir, self.config.gallery_dir]
        if not base.is_dir() or not any((base / d).is_dir() for d in dirs):
            raise DatasetLayoutError(
                f"dataset 'folder' not found: {base} has none of the split folders "
                f"{', '.join(dirs)}.\nExpected layout:\n    {base}/\n"
                + "".join(f"        {d}/   images named like 0001_c1_x.jpg (regex "
                          f"{self.config.regex!r})\n" for d in dirs)
                + "or set `manifest` to a CSV file with columns path,pid,camid,split")
        out = []
        for folder in dirs:
            records = []
            if (base / folder).is_dir():
                for path in list_images(base / folder):
                    match = pattern.search(path.name)
                    if match is None:
                        raise DatasetLayoutError(f"{path}: file name does not match the regex "
                                                 f"{self.config.regex!r}")
                    pid = int(match.group("pid"))
                    camid = None
                    if "camid" in pattern.groupindex and match.group("camid") is not None:
                        camid = int(match.group("camid")) - self.config.camera_base
                    if self._keep(pid):
                        records.append(ImageRecord(str(path), pid, camid, self.config.domain))
            out.append(records)
        return out

    def _from_manifest(self) -> list[list[ImageRecord]]:
        manifest = Path(self.config.manifest).expanduser()
        if not manifest.is_absolute():
            manifest = Path(self.config.root).expanduser() / manifest
        if not manifest.is_file():
            raise DatasetLayoutError(f"manifest {manifest} not found (expected a CSV file with "
                                     "columns path,pid,camid,split)")
        out: dict[str, list[ImageRecord]] = {s: [] for s in SPLITS}
        with manifest.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or ())
            if not {"path", "pid", "split"} <= columns:
                raise DatasetLayoutError(f"{manifest}: needs columns path,pid,split (and "
                                         f"optionally camid); found {', '.join(sorted(columns))}")
            for line, row in enumerate(reader, start=2):
                try:
                    pid = int(row["pid"])
                    camid_text = (row.get("camid") or "").strip()
                    camid = int(camid_text) - self.config.camera_base if camid_text else None
                except ValueError as exc:
                    raise ReidError(f"{manifest}:{line}: {exc}") from None
                split = row["split"].strip()
                if split not in out:
                    raise ReidError(f"{manifest}:{line}: split {split!r} is not one of "
                                    f"{', '.join(SPLITS)}")
                path = Path(row["path"])
                if not path.is_absolute():
                    path = manifest.parent / path
                if self._keep(pid):
                    out[split].append(ImageRecord(str(path), pid, camid, self.config.domain))
        return [out[s] for s in SPLITS]


def build(config: FolderConfig) -> FolderDataset:
    return FolderDataset(config)
