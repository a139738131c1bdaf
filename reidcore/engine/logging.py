"""Run logging: console progress with ETA, TensorBoard (tensorboardX), ``metrics.jsonl``,
the run manifest and ``summary.json``. Only rank 0 writes."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reidcore.engine.rundir import RunDirectory
from reidcore.fileio import atomic_write_text


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Elapsed time and ETA for ``total`` units of work."""

    def __init__(self, total: int, done: int = 0):
        self.total, self.start_done = total, done
        self.start = time.perf_counter()

    def eta(self, done: int) -> float:
        elapsed = time.perf_counter() - self.start
        rate = (done - self.start_done) / elapsed if elapsed > 0 else 0.0
        return (self.total - done) / rate if rate > 0 else float("nan")

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


class RunLogger:
    """Writes to the run directory; every method is a no-op when ``enabled`` is False."""

    def __init__(self, run_dir: Path, enabled: bool = True, quiet: bool = False,
                 tracker: Any = None):
        self.run_dir = run_dir
        self.enabled = enabled
        self.quiet = quiet
        self.tracker = tracker  # an optional experiment tracker (reidcore.tracking)
        self._writer: Any = None
        self._jsonl: Any = None
        if enabled:
            from tensorboardX import SummaryWriter

            files = RunDirectory(run_dir)
            self._writer = SummaryWriter(str(files.tensorboard_dir))
            self._jsonl = files.metrics_file.open("a", encoding="utf-8")

    def print(self, message: str) -> None:
        if self.enabled and not self.quiet:
            print(message, flush=True)

    def scalars(self, kind: str, step: int, epoch: int | float, values: Mapping[str, float],
                tb_prefix: str = "") -> None:
        if not self.enabled:
            return
        for key, value in values.items():
            self._writer.add_scalar(f"{tb_prefix}{key}", value, step)
        record = {"kind": kind, "step": step, "epoch": epoch, "time": round(time.time(), 3)}
        record.update({k: float(v) for k, v in values.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if self.tracker is not None:
            self.tracker.scalars({f"{tb_prefix}{k}": v for k, v in values.items()}, step)

    def image(self, tag: str, image: Any, step: int) -> None:
        """``image``: H x W x 3 uint8 array (or a PIL image)."""
        if not self.enabled:
            return
        import numpy as np

        self._writer.add_image(tag, np.asarray(image), step, dataformats="HWC")

    def finish(self, artifacts: Sequence[Path]) -> None:
        """The run completed: the tracker (if any) gets its files and is marked finished."""
        if self.tracker is not None:
            self.tracker.finish(artifacts)

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None


# --- manifest -----------------------------------------------------------------------------


def git_commit(directory: Path | None = None) -> str | None:
    """The commit of the source tree ``reidcore`` runs from, when it is a git checkout."""
    import reidcore

    where = directory or Path(reidcore.__file__).resolve().parent
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                                text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _file_size(path: str | Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # a record without a file of its own
        return -1


RELATIVE_FINGERPRINT = "rel:"
"""The prefix of a fingerprint over paths relative to the data's folder; manifests written
before it record absolute paths, without a prefix."""


def dataset_fingerprint(splits: Sequence[Any], relative: bool = True) -> str:
    """SHA-256 over every record (split, path, file size, pid, camid) of the given
    DatasetSplits.

    Paths are taken relative to the folder all the records share (``rel:`` prefix), so the
    same data moved or copied elsewhere keeps its fingerprint; the file's size tells apart
    data sets whose files are named alike (the synthetic generator's seeds). With
    ``relative=False``: the absolute-path form (no sizes) manifests recorded before, to
    compare with those."""
    records = [(index, split, record) for index, dataset in enumerate(splits)
               for split in ("train", "query", "gallery") for record in getattr(dataset, split)]
    root = ""
    if relative and records:  # the shared folder itself, its name included, is left out
        root = os.path.commonpath([os.path.dirname(str(r.path)) for _, _, r in records])
    digest = hashlib.sha256()
    for index, split, record in records:
        if relative:
            path = os.path.relpath(str(record.path), root).replace(os.sep, "/")
            path = f"{path}|{_file_size(record.path)}"
        else:
            path = record.path
        digest.update(f"{index}|{split}|{path}|{record.pid}|{record.camid}\n".encode())
    return (RELATIVE_FINGERPRINT if relative else "") + digest.hexdigest()


def manifest(recipe_dict: Mapping[str, Any], plugins: Any, fingerprints: Mapping[str, str],
             extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    import torch

    from reidcore import __version__

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "reidcore": __version__}
    try:
        import timm

        versions["timm"] = timm.__version__
    except ImportError:  # pragma: no cover
        pass
    plugin_list = [{"name": info.name, "distribution": info.distribution,
                    "version": info.version,
                    "status": "disabled" if info.disabled else "failed" if info.error else "ok"}
                   for info in getattr(plugins, "infos", [])]
    data = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": sys.argv, "versions": versions, "plugins": plugin_list,
            "git_commit": git_commit(), "platform": platform.platform(),
            "datasets": dict(fingerprints), "recipe": dict(recipe_dict)}
    if extra:
        data.update(extra)
    return data


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def summary_table(metrics: Mapping[str, float], names: Sequence[str]) -> str:
    """The final table: one row per test set with mAP, mINP and CMC ranks 1/5/10."""
    columns = ["mAP", "mINP", "rank1", "rank5", "rank10"]
    lines = [f"{'test set':24s} " + " ".join(f"{c:>7s}" for c in columns)]
    for name in names:
        cells = []
        for column in columns:
            value = metrics.get(f"{name}/{column}")
            cells.append(f"{100 * value:7.2f}" if value is not None else f"{'-':>7s}")
        lines.append(f"{name:24s} " + " ".join(cells))
    for name in names:  # the evaluator's extras, when it gives them
        extras = [f"{column} [{100 * metrics[f'{name}/{column}_ci_low']:.2f}, "
                  f"{100 * metrics[f'{name}/{column}_ci_high']:.2f}]" for column in columns
                  if f"{name}/{column}_ci_low" in metrics]
        if extras:
            lines.append(f"  {name}: bootstrap intervals " + "  ".join(extras))
        tprs = [f"{key.split('/', 1)[1].replace('tpr_at_fpr_', 'TPR@FPR=')} "
                f"{100 * value:.2f}" for key, value in metrics.items()
                if key.startswith(f"{name}/tpr_at_fpr_")]
        if tprs:
            lines.append(f"  {name}: " + "  ".join(tprs))
    return "\n".join(lines)
