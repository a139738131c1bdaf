"""MLflow as an optional experiment tracker beside TensorBoard (``train.mlflow``).

Labs that compare runs in MLflow get every reid run there without a server: ``"local"``
keeps an SQLite store (``mlflow.db``) and its artifacts (``mlartifacts/``) in the folder
that holds the run directory, so the runs of one project share one store. The MLflow run
id is kept in the run directory (``mlflow.json``), so a resumed run goes on recording into
the same MLflow run. The client API is used rather than MLflow's fluent one, whose global
"active run" would mix the runs of one process (seed groups, chains).
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reidcore.errors import RecipeProblem, ReidError
from reidcore.fileio import atomic_write_text

INSTALL_HINT = "pip install 'reidcore[mlflow]'"
RUN_ID_FILE = "mlflow.json"
LOCAL = "local"
_PARAM_LIMIT = 6000  # MLflow's longest param value
_BATCH = 100  # MLflow's most params per log_batch


def mlflow_problems(setting: str) -> list[RecipeProblem]:
    """``train.mlflow`` set while MLflow is not installed (checked at ``reid check``)."""
    if setting and importlib.util.find_spec("mlflow") is None:
        return [RecipeProblem("$.train.mlflow", f"train.mlflow = {setting!r} needs MLflow, "
                              f"which is not installed: {INSTALL_HINT}, or remove the key")]
    return []


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested recipe dict as MLflow params: dotted keys, values as TOML-like text."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                flat.update(flatten(item, f"{name}.{index}."))
        else:
            flat[name] = json.dumps(value)[:_PARAM_LIMIT] if not isinstance(value, str) \
                else value[:_PARAM_LIMIT]
    return flat


def _store(setting: str, run_dir: Path) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment or None: MLflow's default)."""
    if setting != LOCAL:
        return setting, None
    folder = run_dir.resolve().parent
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "mlartifacts").as_uri()


class MlflowTracker:
    """One reid run as one MLflow run (see the module docstring)."""

    def __init__(self, setting: str, run_dir: Path, experiment: str,
                 params: Mapping[str, Any]):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ReidError(f"train.mlflow = {setting!r} needs MLflow: {INSTALL_HINT}") from None
        self.run_dir = run_dir
        self.uri, artifacts = _store(setting, run_dir)
        self.client = MlflowClient(self.uri)
        resumed = self._resumed_run_id()
        if resumed is None:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = (found.experiment_id if found is not None else
                             self.client.create_experiment(experiment, artifact_location=artifacts))
            run = self.client.create_run(experiment_id, run_name=run_dir.name,
                                         tags={"reid.run_dir": str(run_dir.resolve())})
            self.run_id: str = run.info.run_id
            atomic_write_text(run_dir / RUN_ID_FILE,
                              json.dumps({"tracking_uri": self.uri, "run_id": self.run_id}))
            self._log_params(flatten(params))
        else:
            self.run_id = resumed
            self.client.update_run(self.run_id, status="RUNNING")
        self.finished = False

    def _resumed_run_id(self) -> str | None:
        path = self.run_dir / RUN_ID_FILE
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if recorded.get("tracking_uri") != self.uri:
            return None  # the store changed: start a new MLflow run there
        run_id: str = recorded["run_id"]
        return run_id

    def _log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[start:start + _BATCH])

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(key, float(value), stamp, step) for key, value in values.items()]
        for start in range(0, len(metrics), _BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + _BATCH])

    def finish(self, artifacts: Iterable[Path]) -> None:
        """Upload the run's files and mark the MLflow run finished."""
        for path in artifacts:
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, status="FINISHED")
        self.finished = True

    def close(self) -> None:
        """A run that ends without :meth:`finish` (an error, a kill) is marked failed."""
        if not self.finished:
            self.client.set_terminated(self.run_id, status="FAILED")
            self.finished = True
