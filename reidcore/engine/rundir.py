"""The run directory: its layout, and what it says about the run it holds.

One place knows where a run keeps each file and answers the questions the engine asks of a
directory (:class:`RunDirectory`)::

    runs/quickstart-20260101-120000/
      recipe.toml          the resolved recipe, runnable as is
      manifest.json        versions, plugins, data fingerprints, num_classes, recipe changes
      metrics.jsonl        one JSON record per logged step, epoch and evaluation
      tb/                  TensorBoard
      checkpoints/         epoch-0005.pt (the last ``keep_last``) and best.pt
      ranked_<testset>.png ranked results of the last evaluation
      per_query_<testset>.npz  AP, first-match rank, INP per query of the last evaluation
      images/<tag>/        pictures a method logs (step-0000100.png)
      summary.json         written at the end: "status" is "completed" or "failed"
      run.lock             held while a run owns the directory (:mod:`reidcore.engine.lock`)

and ``<run dir>-<role>`` beside it for each run the recipe requires (``[requires.<role>]``,
trained first by ``reid run``: :mod:`reidcore.engine.chain`).

The questions: is the run :attr:`~RunDirectory.completed`? Which recipe keys
:meth:`~RunDirectory.differs_from` a recipe, and may a ``--resume`` go on with that recipe
(:meth:`~RunDirectory.resume_changes`, the keys of :data:`SAFE_RESUME_CHANGES` only)? Which
is the newest epoch checkpoint that reads and verifies
(:meth:`~RunDirectory.latest_good_checkpoint`, damaged ones set aside as ``*.damaged``)?
The contents of a checkpoint are :mod:`reidcore.engine.checkpoint`'s.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Literal

import attrs

from reidcore.engine import checkpoint as ckpt
from reidcore.errors import ReidError

RECIPE_FILE = "recipe.toml"
MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = "run.lock"
TENSORBOARD_DIR = "tb"
CHECKPOINT_DIR = "checkpoints"
IMAGES_DIR = "images"
BEST_CHECKPOINT = "best.pt"

SAFE_RESUME_CHANGES = ("name", "description", "train.epochs", "train.eval_every",
                       "train.log_every", "train.checkpoint_every", "train.keep_last",
                       "train.ranked_pictures", "train.nonfinite", "train.mlflow",
                       "train.mechanism_samples")
"""Recipe keys ``--allow-recipe-change`` lets a resumed run change: they change how long or
how visibly the run goes on, not what its checkpoints mean."""

Which = Literal["last", "best"]


@attrs.frozen
class RunDirectory:
    """A run directory (see the module docstring); ``RunDirectory(path)`` reads nothing."""

    path: Path = attrs.field(converter=Path)

    def __str__(self) -> str:
        return str(self.path)

    # -- layout --------------------------------------------------------------------------

    @property
    def recipe_file(self) -> Path:
        return self.path / RECIPE_FILE

    @property
    def manifest_file(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoint_dir / BEST_CHECKPOINT

    def epoch_checkpoint(self, epoch: int) -> Path:
        """The checkpoint written after ``epoch`` epochs."""
        return self.checkpoint_dir / f"epoch-{epoch:04d}.pt"

    def ranked_picture(self, test_set: str) -> Path:
        return self.path / f"ranked_{test_set}.png"

    def mechanism_picture(self, capability: str) -> Path:
        """The proving ground's grid of one capability (inputs, output, truth)."""
        return self.path / f"mechanism_{capability}.png"

    def per_query_file(self, test_set: str) -> Path:
        """Per-query results of the last evaluation on ``test_set`` (compact ``.npz``)."""
        return self.path / f"per_query_{test_set}.npz"

    def image_file(self, tag: str, step: int) -> Path:
        """Where a picture a method logs as ``tag`` at ``step`` is written."""
        return self.path / IMAGES_DIR / tag / f"step-{step:07d}.png"

    def requirement(self, role: str) -> RunDirectory:
        """Where ``reid run`` trains the requirement ``role`` of this run: the sibling
        directory ``<run dir>-<role>``."""
        return RunDirectory(self.path.parent / f"{self.path.name}-{role}")

    # -- what it holds -------------------------------------------------------------------

    @property
    def completed(self) -> bool:
        """True when the directory holds a run that finished (its summary says so)."""
        summary = self.summary()
        return summary is not None and summary.get("status") == "completed"

    def summary(self) -> dict[str, Any] | None:
        """The run's ``summary.json`` (None when there is none, or it does not read)."""
        try:
            summary = json.loads(self.summary_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    def manifest(self) -> dict[str, Any] | None:
        """The run's ``manifest.json`` (None when there is none)."""
        if not self.manifest_file.is_file():
            return None
        data: dict[str, Any] = json.loads(self.manifest_file.read_text(encoding="utf-8"))
        return data

    def num_classes(self) -> int:
        """The number of training identities the run's method was built for (its manifest);
        a ReidError when the manifest does not say."""
        path = self.manifest_file
        try:
            return int(json.loads(path.read_text(encoding="utf-8"))["num_classes"])
        except (OSError, ValueError, KeyError, TypeError):
            raise ReidError(f"cannot read the number of training identities from {path}: is "
                            f"{self.path} a reid run directory?") from None

    def recipe_changes(self) -> list[dict[str, Any]]:
        """The recipe changes its manifest records (``--resume --allow-recipe-change``)."""
        try:
            old = json.loads(self.manifest_file.read_text(encoding="utf-8"))
            return list(old.get("recipe_changes") or [])
        except (OSError, ValueError, AttributeError):
            return []

    def written_recipe_file(self) -> Path:
        """The resolved ``recipe.toml`` (a ReidError when absent)."""
        if not self.recipe_file.is_file():
            raise ReidError(f"{self.path} has no recipe.toml: is it a reid run directory?")
        return self.recipe_file

    def differs_from(self, recipe: Any, registry: Any = None) -> list[dict[str, Any]]:
        """The keys where ``recipe`` differs from the recipe the directory was trained with,
        as ``{"key", "old", "new"}`` records; none when it holds no ``recipe.toml``. With
        the ``registry``, the written recipe is resolved again first, so a key added to
        reid after the run was made counts as its default, not as a difference (a run
        written before ``train.mechanism_samples`` existed stays the same recipe)."""
        from reidcore.errors import RecipeError
        from reidcore.recipe import differences, read_toml, resolve, to_dict, value_at

        if not self.recipe_file.is_file():
            return []
        new, old = to_dict(recipe), read_toml(self.recipe_file)
        if registry is not None:
            try:
                old = to_dict(resolve(old, str(self.recipe_file), registry))
            except RecipeError:
                pass  # no longer a valid recipe: compare as written
        return [{"key": key, "old": value_at(old, key), "new": value_at(new, key)}
                for key in differences(new, old)]

    def resume_changes(self, recipe: Any, allow_change: bool = False,
                       registry: Any = None) -> list[dict[str, Any]]:
        """May a ``--resume`` go on with ``recipe``? Its differences
        (:meth:`differs_from`), or a :class:`ReidError` listing them unless ``allow_change``
        and all are :data:`SAFE_RESUME_CHANGES`."""
        changes = self.differs_from(recipe, registry)
        unsafe = [c for c in changes if c["key"] not in SAFE_RESUME_CHANGES]
        if not changes or (allow_change and not unsafe):
            return changes

        def listing(items: list[dict[str, Any]]) -> str:
            shown = [f"{c['key']} ({c['old']!r} -> {c['new']!r})" for c in items[:12]]
            return ", ".join(shown) + (f" and {len(items) - 12} more" if len(items) > 12 else "")

        safe = ", ".join(SAFE_RESUME_CHANGES)
        if allow_change:
            raise ReidError(f"--resume: {self.path} was trained with another recipe, and "
                            f"--allow-recipe-change allows only {safe}; these keys differ "
                            f"too: {listing(unsafe)}")
        raise ReidError(f"--resume: the recipe differs from the one {self.path} was trained "
                        f"with ({self.recipe_file}): {listing(changes)}. Resume with that "
                        f"recipe (`reid run {self.recipe_file} --out {self.path} --resume`) or "
                        f"start a new run; --allow-recipe-change allows changes to {safe} and "
                        f"records them in manifest.json")

    def check_epochs(self, epochs: int) -> None:
        """Refuse to resume with ``train.epochs`` below the epochs already trained: the
        run cannot be shortened, and its later weights would be evaluated as an earlier
        epoch's."""
        found = ckpt.epoch_checkpoints(self.checkpoint_dir)
        if not found or found[-1][0] <= epochs:
            return
        done, path = found[-1]
        raise ReidError(f"--resume: {self.path} has already trained {done} epochs ({path}), "
                        f"more than train.epochs = {epochs}; a run cannot be shortened. Give "
                        f"train.epochs >= {done}, or evaluate an earlier checkpoint with "
                        f"`reid eval --run {self.path} --checkpoint FILE`")

    def remove_leftovers(self) -> list[Path]:
        """Delete the temporary files of atomic writes (``.NAME.XXXX.tmp``) that a killed
        run left in the run directory and its checkpoints; return them. Called with the
        run's lock held, so no writer of this run is alive."""
        removed = []
        for folder in (self.path, self.checkpoint_dir):
            for path in sorted(folder.glob(".*.tmp")) if folder.is_dir() else ():
                if path.is_file():
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed.append(path)
        return removed

    # -- checkpoints ---------------------------------------------------------------------

    def latest_checkpoint(self) -> Path | None:
        """The newest epoch checkpoint, read or not (None when there is none)."""
        return ckpt.latest(self.checkpoint_dir)

    @property
    def started(self) -> bool:
        """True when a run has written an epoch checkpoint here."""
        return self.latest_checkpoint() is not None

    def checkpoint(self, which: Which = "last") -> Path | None:
        """``best.pt`` or the last epoch checkpoint, when there is one."""
        if which == "best":
            return self.best_checkpoint if self.best_checkpoint.is_file() else None
        return self.latest_checkpoint()

    def best_or_latest_checkpoint(self) -> Path | None:
        """``best.pt`` when there is one, else the last epoch checkpoint."""
        return self.checkpoint("best") or self.latest_checkpoint()

    def latest_good_checkpoint(self, set_aside: bool = True
                               ) -> tuple[Path, dict[str, Any]] | None:
        """The newest epoch checkpoint that reads and verifies, with its contents; None when
        there is none. Damaged ones on the way are reported by path and, with ``set_aside``
        (the first process of a run), renamed ``*.damaged``; when every one is damaged, a
        :class:`ReidError`."""
        damaged: list[str] = []
        for _, path in reversed(ckpt.epoch_checkpoints(self.checkpoint_dir)):
            try:
                data = ckpt.read(path)
            except ReidError as exc:
                damaged.append(str(path))
                if set_aside:
                    aside = path.with_name(path.name + ".damaged")
                    with contextlib.suppress(OSError):
                        path.rename(aside)
                    print(f"warning: {exc}; set aside as {aside}", flush=True)
                continue
            if damaged and set_aside:
                print(f"--resume: using the previous good checkpoint {path} instead of the "
                      f"damaged {', '.join(damaged)}", flush=True)
            return path, data
        if damaged:
            raise ReidError(f"--resume: no checkpoint in {self.checkpoint_dir} can be loaded "
                            f"(damaged: {', '.join(damaged)}); start a new run")
        return None

    def save_checkpoint(self, epoch: int, payload: dict[str, Any], *, best: bool,
                        keep_last: int, previous: Path | None) -> Path:
        """Write the checkpoint of ``epoch`` (and ``best.pt`` when ``best``), keep the last
        ``keep_last``, and return its path. A full disk is a
        :class:`~reidcore.engine.checkpoint.DiskFullError` that names ``previous`` (the
        last checkpoint written, still intact) and how to resume."""
        path = self.epoch_checkpoint(epoch)
        written = previous
        try:
            ckpt.save(path, payload)
            written = path
            ckpt.prune(self.checkpoint_dir, keep_last)
            if best:
                ckpt.save(self.best_checkpoint, payload)
        except ckpt.DiskFullError as exc:
            intact = (f"the last checkpoint, {written}, is intact" if written is not None
                      else "no checkpoint was saved yet")
            raise ckpt.DiskFullError(
                f"{exc}. {intact}: free some space and continue with `reid run "
                f"{self.recipe_file} --out {self.path} --resume`") from None
        return path
