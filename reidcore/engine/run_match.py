"""Whether a run loaded by another belongs with it: the same training data.

A teacher's classes are the identities of the data it trained on, in the order the loader
relabelled them; a student trained on other data with the same identity count would take
its soft labels for its own identities. manifest.json records a fingerprint per dataset
(:func:`~reidcore.engine.logging.dataset_fingerprint`: every record's path below the data's
folder, pid and camid, so moved or copied data keeps it),
so equal fingerprints mean the same images under the same labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reidcore.engine.rundir import RunDirectory
from reidcore.errors import ReidError


def source_fingerprints(datasets: Mapping[str, str]) -> dict[str, str]:
    """The ``source[i] <name>`` entries of a manifest's ``datasets``."""
    return {key: value for key, value in datasets.items() if key.startswith("source[")}


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}.{key}"
                                                                          ).items()}
    if isinstance(value, list):
        return {k: v for index, item in enumerate(value)
                for k, v in _flatten(item, f"{prefix}[{index}]").items()}
    return {prefix: value}


def _settings_difference(theirs: Any, ours: Any) -> str:
    """The ``data.source`` recipe keys that differ, as ``key: theirs there, ours here``."""
    mine = _flatten(ours or [], "data.source")
    other = _flatten(theirs or [], "data.source")
    keys = [key for key in sorted(set(mine) | set(other)) if mine.get(key) != other.get(key)]
    return "; ".join(f"{key} = {other.get(key, '(unset)')!r} there, "
                     f"{mine.get(key, '(unset)')!r} here" for key in keys[:6])


def check_same_source(role: str, run_dir: Path, ours: Mapping[str, str], recipe: Any,
                      legacy: Mapping[str, str] | None = None) -> None:
    """Refuse the run at ``run_dir`` (loaded as ``role``) unless its manifest records the
    same source datasets as ``ours``. A run without fingerprints (made before they were
    recorded) is accepted as it is; one whose fingerprints are of the older absolute-path
    form is compared with ``legacy`` (ours in that form) when given."""
    from reidcore.engine.logging import RELATIVE_FINGERPRINT
    from reidcore.recipe import to_dict

    manifest = RunDirectory(run_dir).manifest() or {}
    theirs = source_fingerprints(manifest.get("datasets") or {})
    old_form = any(not value.startswith(RELATIVE_FINGERPRINT) for value in theirs.values())
    mine = source_fingerprints(legacy if old_form and legacy is not None else ours)
    if not theirs or theirs == mine:
        return
    difference = _settings_difference((manifest.get("recipe") or {}).get("data", {})
                                      .get("source"), to_dict(recipe)["data"].get("source"))

    def named(prints: Mapping[str, str]) -> str:
        return ", ".join(f"{key} ({value.removeprefix(RELATIVE_FINGERPRINT)[:12]})"
                         for key, value in prints.items()) or "none"

    raise ReidError(
        f"the run loaded as '{role}' ({run_dir}) was trained on other data than this run: "
        f"it trained on {named(theirs)}, this run on {named(mine)} (dataset fingerprints "
        f"of manifest.json: images, pids, camids)"
        + (f"; the recipes differ in {difference}" if difference
           else "; the recipes agree, so the files on disk differ")
        + f". Its classes are not this run's identities: train '{role}' on this run's "
        f"[[data.source]] data (remove {run_dir} and `reid run` again)")
