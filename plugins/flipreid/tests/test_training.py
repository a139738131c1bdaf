"""End to end: the packaged ``flipreid-synthetic`` recipe trains on CPU with the core's
engine; its losses fall and its final mAP ends well above the untrained model's."""

import json

import pytest


def untrained_metrics(run_dir, capsys):
    """The run's model untrained (built from the run's own recipe, seeded as the run),
    evaluated on the run's test sets by ``reid eval --run --checkpoint``."""
    import torch
    from reidcore.testing import installed_plugins, method_context, reid_cli, write_checkpoint

    manifest = json.loads((run_dir / "manifest.json").read_text())
    raw = manifest["recipe"]  # the run's resolved recipe
    spec = installed_plugins().registry.get("method", raw["method"]["name"])
    context = method_context(spec, {**raw, "reid:num_classes": manifest["num_classes"]})
    torch.manual_seed(raw.get("seed", 0))
    method = spec.create(context.recipe.method.config, context=context)
    checkpoint = write_checkpoint(run_dir / "untrained.pt", method.modules(), epoch=0)
    capsys.readouterr()
    assert reid_cli("eval", "--run", run_dir, "--checkpoint", checkpoint, "--json") == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_synthetic_recipe_learns(tmp_path_factory, monkeypatch, capsys):
    from reidcore.testing import run_recipe

    monkeypatch.setenv("REID_CACHE", str(tmp_path_factory.mktemp("reid-cache")))
    run_dir = tmp_path_factory.mktemp("flipreid-run")
    summary = run_recipe("flipreid-synthetic", run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    untrained = untrained_metrics(run_dir, capsys)

    first, last = epochs[0], epochs[-1]
    # first vs last epoch means; cross-entropy over 40 ids (3 heads, 3 ln 40 = 11.07 at the
    # start) falls slower in 6 short epochs than the triplet loss
    for key, factor in (("loss", 0.8), ("loss/triplet", 0.8), ("loss/cross_entropy", 0.95)):
        assert last[key] < factor * first[key], (key, first[key], last[key])
    assert "loss/flipping" in last
    final = summary["metrics"]["synthetic"]
    before = untrained["synthetic/mAP"]
    print(f"mAP untrained {before:.4f} -> trained {final['mAP']:.4f}; "
          f"loss {first['loss']:.3f} -> {last['loss']:.3f}")
    assert final["mAP"] > before + 0.15 and final["mAP"] > 1.5 * before
