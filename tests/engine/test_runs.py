"""End-to-end runs on tiny synthetic data: run directory contents, hooks, kill-and-resume
equivalence, errors. Marked slow (each well under two minutes on 2 CPU cores)."""

from __future__ import annotations

import json

import pytest
import torch

from reidcore import hookimpl
from reidcore.engine import checkpoint as ckpt
from reidcore.engine.runner import run_recipe
from reidcore.errors import ReidError
from reidcore.plugins import get_plugins
from reidcore.recipe import read_toml, resolve
from tests.engine.conftest import resolve_dict, tiny_recipe_dict


class Recorder:
    def __init__(self, kill_at: int | None = None):
        self.kill_at = kill_at
        self.events: list[tuple[str, object]] = []

    @hookimpl
    def reid_run_start(self, run):
        self.events.append(("start", run.resumed))

    @hookimpl
    def reid_train_step_end(self, run, step, metrics):
        self.events.append(("step", step))
        if step == self.kill_at:
            raise KeyboardInterrupt  # as if the process were killed here

    @hookimpl
    def reid_evaluate_end(self, run, step, metrics):
        self.events.append(("eval", dict(metrics)))

    @hookimpl
    def reid_run_end(self, run, summary):
        self.events.append(("end", summary["status"]))


def run_with(recorder, recipe, out, resume=False):
    plugins = get_plugins()
    plugins.manager.register(recorder, name="test-recorder")
    try:
        return run_recipe(recipe, plugins, out=out, resume=resume, recipe_name="tiny",
                          quiet=True)
    finally:
        plugins.manager.unregister(name="test-recorder")


def final_weights(run_dir):
    return ckpt.read(ckpt.latest(run_dir / "checkpoints"))["modules"]


@pytest.mark.slow
def test_kill_and_resume_matches_an_uninterrupted_run(engine_cache, tmp_path):
    recipe = resolve_dict(tiny_recipe_dict(engine_cache, epochs=3))
    full = Recorder()
    summary = run_with(full, recipe, tmp_path / "full")
    steps = summary["steps"]
    per_epoch = steps // 3
    assert [e for e in full.events if e[0] == "start"] == [("start", False)]
    assert full.events[-1] == ("end", "completed")

    # kill in the middle of the second epoch, after the first epoch's checkpoint
    killed = Recorder(kill_at=per_epoch + 2)
    with pytest.raises(KeyboardInterrupt):
        run_with(killed, recipe, tmp_path / "resumed")
    assert killed.events[-1] == ("end", "failed")
    assert ckpt.latest(tmp_path / "resumed" / "checkpoints").name == "epoch-0001.pt"
    with pytest.raises(ReidError, match="--resume"):
        run_with(Recorder(), recipe, tmp_path / "resumed")

    resumed = Recorder()
    again = run_with(resumed, recipe, tmp_path / "resumed", resume=True)
    assert resumed.events[0] == ("start", True)
    assert [e[1] for e in resumed.events if e[0] == "step"][0] == per_epoch + 1
    assert again["steps"] == steps
    assert again["metrics"] == summary["metrics"]
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "resumed")
    for module in a:
        for key in a[module]:
            assert torch.equal(a[module][key], b[module][key]), f"{module}.{key} differs"


@pytest.mark.slow
def test_run_directory_contents(engine_cache, tmp_path):
    recipe = resolve_dict(tiny_recipe_dict(engine_cache, epochs=2, eval_every=1, keep_last=1))
    recorder = Recorder()
    summary = run_with(recorder, recipe, tmp_path / "run")
    run_dir = tmp_path / "run"
    names = {p.name for p in run_dir.iterdir()}
    assert {"recipe.toml", "manifest.json", "metrics.jsonl", "summary.json", "tb",
            "checkpoints", "ranked_synthetic.png"} <= names
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt",
                                                                          "epoch-0002.pt"]
    written = json.loads((run_dir / "summary.json").read_text())
    assert written["status"] == "completed" and set(written["metrics"]) == {"synthetic"}
    assert {"mAP", "mINP", "rank1", "rank5", "rank10"} <= set(written["metrics"]["synthetic"])
    assert written["metrics"] == summary["metrics"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert set(manifest["versions"]) >= {"python", "torch", "reidcore"}
    assert manifest["torch_threads"] == torch.get_num_threads()
    fingerprint = manifest["datasets"]["source[0] synthetic"]
    assert fingerprint.startswith("rel:") and len(fingerprint) == 4 + 64  # sha256 hex
    assert any(p["name"] == "reidcore" for p in manifest["plugins"])
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {line["kind"] for line in lines} == {"train", "epoch", "eval"}
    assert sum(line["kind"] == "eval" for line in lines) == 2  # eval_every = 1
    assert any("lr/main" in line for line in lines if line["kind"] == "train")
    assert list((run_dir / "tb").iterdir())
    evals = [e for e in recorder.events if e[0] == "eval"]
    assert len(evals) == 2 and "synthetic/mAP" in evals[0][1]
    # the resolved recipe runs again as is
    plugins = get_plugins()
    again = resolve(read_toml(run_dir / "recipe.toml"), "recipe.toml", plugins.registry)
    assert again.train == recipe.train and again.loader == recipe.loader


@pytest.mark.slow
def test_cli_errors_for_resume_and_device(engine_cache, tmp_path):
    from reidcore.engine.runner import prepare_run_dir, resolve_device

    with pytest.raises(ReidError, match="--resume needs --out"):
        prepare_run_dir(None, True, "x")
    if not torch.cuda.is_available():
        with pytest.raises(ReidError, match="no CUDA device"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.slow
def test_extract_command_and_api_on_a_trained_run(engine_cache, tmp_path):
    import numpy as np

    from reidcore.cli import main
    from reidcore.engine.extract import FeatureExtractor

    recipe = resolve_dict(tiny_recipe_dict(engine_cache, epochs=1))
    run_with(Recorder(), recipe, tmp_path / "run")
    data = get_plugins().registry.get("dataset", "synthetic").create(
        recipe.data.test[0].config).load()
    folder = tmp_path / "images"
    folder.mkdir()
    for record in data.query[:5]:
        (folder / record.path.split("/")[-1]).write_bytes(open(record.path, "rb").read())
    assert main(["extract", str(tmp_path / "run"), "--images", str(folder),
                 "--out", str(tmp_path / "feats.npz")]) == 0
    saved = np.load(tmp_path / "feats.npz")
    assert saved["features"].shape == (5, 512) and len(saved["paths"]) == 5
    extractor = FeatureExtractor(tmp_path / "run", plugins=get_plugins())
    assert extractor.checkpoint.name == "best.pt"
    features = extractor(sorted(folder.iterdir()))
    assert np.allclose(features.numpy(), saved["features"], atol=1e-5)
    assert main(["extract", str(tmp_path / "run"), "--images", str(tmp_path / "none"),
                 "--out", str(tmp_path / "x.npz")]) == 1


def test_eval_command_on_a_trained_run_reproduces_its_final_metrics(engine_cache, tmp_path,
                                                                    capsys):
    from reidcore.cli import main

    recipe = resolve_dict(tiny_recipe_dict(engine_cache, epochs=1))
    run_with(Recorder(), recipe, tmp_path / "run")
    final = json.loads((tmp_path / "run" / "summary.json").read_text())["metrics"]["synthetic"]
    capsys.readouterr()
    assert main(["eval", "--run", str(tmp_path / "run"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for key in ("mAP", "mINP", "rank1", "rank5"):
        assert metrics[f"synthetic/{key}"] == pytest.approx(final[key], abs=1e-6)
    assert main(["eval", "--run", str(tmp_path / "run"), "--json",
                 "--set", "evaluate.rerank=true"]) == 0
    reranked = json.loads(capsys.readouterr().out)
    assert reranked["synthetic/mAP"] != pytest.approx(final["mAP"], abs=1e-9)
    assert main(["eval", "--run", str(tmp_path / "nowhere")]) == 2
    assert f"not found: {tmp_path / 'nowhere'}" in capsys.readouterr().err
    assert main(["eval"]) == 1
    assert "needs --query and --gallery" in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_recipe_learns(tmp_path, monkeypatch, engine_cache):
    """The packaged quickstart, shortened to 6 of its 15 epochs: mAP on the synthetic test set
    must end far above the untrained network's (same data, same evaluation)."""
    from reidcore.engine.distributed import DistInfo
    from reidcore.engine.runner import Trainer
    from reidcore.recipe import find_recipe

    monkeypatch.setenv("REID_CACHE", str(engine_cache))
    plugins = get_plugins()
    path = find_recipe("quickstart", plugins.recipe_dirs())
    recipe = resolve(read_toml(path), str(path), plugins.registry, plugins.hook,
                     overrides=["train.epochs=6", "train.eval_every=6"])
    trainer = Trainer(recipe, plugins, tmp_path / "run", False, DistInfo(), quiet=True)
    try:
        trainer.setup()
        trainer.evaluate(0)
        untrained = trainer.last_metrics["synthetic/mAP"]
        summary = trainer.fit()
    finally:
        trainer.close()
    trained = summary["metrics"]["synthetic"]["mAP"]
    print(f"quickstart (6 epochs): untrained mAP {untrained:.4f}, trained mAP {trained:.4f}")
    assert trained > 2.5 * untrained and trained > 0.08
