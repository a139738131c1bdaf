"""``reid san-textures``: a saved SAN-PG run over a dataset's training images (the
synthetic set, and a Market-1501-shaped folder): one texture per image at the decoder's
size, a manifest tying them to the run, resumable, never mixing two runs."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from reidcore.testing import installed_plugins, reid_cli, resolve_recipe, write_checkpoint

RECIPES = Path(__file__).resolve().parents[1] / "reid_plugin_san" / "recipes"
SYNTH = ["--dataset", "synthetic", "--option", "size=64x32", "--option", "ids=6",
         "--option", "test_ids=2"]


def save_run(run, seed=0):
    """A san_pg run directory as the engine writes one: recipe, manifest, a checkpoint."""
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(RECIPES / "san-pg-synthetic.toml", run / "recipe.toml")
    (run / "manifest.json").write_text(json.dumps({"num_classes": 40}))
    registry = installed_plugins().registry
    recipe = resolve_recipe(RECIPES / "san-pg-synthetic.toml")
    torch.manual_seed(seed)
    method = registry.get("method", "san_pg").create(recipe.method.config,
                                                     context=_context(recipe, registry))
    write_checkpoint(run / "checkpoints" / "epoch-0001.pt", method.modules(), epoch=1)
    return run


def _context(recipe, registry):
    from reidcore.api import MethodContext

    return MethodContext(recipe=recipe, registry=registry, num_classes=40)


@pytest.fixture(scope="module")
def pg_run(tmp_path_factory):
    return save_run(tmp_path_factory.mktemp("pg") / "run")


def pngs(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))


def test_synthetic_textures_resumable_with_manifest(pg_run, tmp_path, capsys):
    out = tmp_path / "tex"
    assert reid_cli("san-textures", str(pg_run), *SYNTH, "--out", str(out)) == 0
    first = capsys.readouterr().out
    written = pngs(out)
    assert f"{len(written)} texture(s) written, 0 already there" in first
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["images"] == len(written) > 0
    assert manifest["san_pg_run"] == str(pg_run.resolve())
    assert manifest["san_pg_checkpoint"].endswith("epoch-0001.pt")
    assert len(manifest["san_pg_sha256"]) == 64 and manifest["dataset"] == "synthetic"
    assert manifest["texture_size"] == [64, 64] and manifest["input_size"] == [64, 32]
    with Image.open(out / written[0]) as image:
        assert image.size == (64, 64)  # the decoder's own size, no 64x64 -> 256 round trip
    # resumable: nothing again; a lost texture is the only one written again
    (out / written[3]).unlink()
    assert reid_cli("san-textures", str(pg_run), *SYNTH, "--out", str(out)) == 0
    assert "1 texture(s) written, " in capsys.readouterr().out
    # another SAN-PG checkpoint never writes into this folder
    other = save_run(tmp_path / "other", seed=1)
    assert reid_cli("san-textures", str(other), *SYNTH, "--out", str(out)) != 0
    assert re.search("san_pg_run.*differ.*never mixed", capsys.readouterr().err)


def test_market_shaped_folder(pg_run, tmp_path, capsys):
    from reidcore.api import Kind

    registry = installed_plugins().registry
    spec = registry.get(Kind.DATASET, "synthetic")
    source = spec.create(spec.config(size="64x32", ids=6, test_ids=2)).load().train
    market = tmp_path / "data" / "Market-1501-v15.09.15"
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        (market / folder).mkdir(parents=True)
    for record in source[:5]:
        shutil.copy(record.path, market / "bounding_box_train" / Path(record.path).name)
    shutil.copy(source[0].path, market / "query" / Path(source[0].path).name)
    shutil.copy(source[1].path, market / "bounding_box_test" / Path(source[1].path).name)
    out = tmp_path / "tex"
    assert reid_cli("san-textures", str(pg_run), "--dataset", "market1501", "--root",
                    tmp_path / "data", "--out", out, "--batch-size", "2") == 0
    assert "5 texture(s) written" in capsys.readouterr().out
    assert pngs(out) == sorted(Path(r.path).with_suffix(".png").name for r in source[:5])
    # the san method finds them by image path
    from reid_plugin_san.textures import TextureFolder

    folder = TextureFolder(out)
    assert tuple(folder.load([str(market / "bounding_box_train" / Path(source[2].path).name)],
                             (32, 32)).shape) == (1, 3, 32, 32)


@pytest.mark.parametrize("args,message", [
    (["--dataset", "market", "--out", "X"], "unknown dataset 'market'.*market1501"),
    (["--dataset", "synthetic", "--option", "size", "--out", "X"], "KEY=VALUE"),
    (["--dataset", "synthetic", "--option", "sise=64x32", "--out", "X"], "invalid options"),
])
def test_bad_arguments(pg_run, tmp_path, capsys, args, message):
    args = [str(tmp_path / "out") if a == "X" else a for a in args]
    assert reid_cli("san-textures", str(pg_run), *args) != 0
    assert re.search(message, capsys.readouterr().err)


def test_not_a_san_pg_run(tmp_path, capsys):
    assert reid_cli("san-textures", tmp_path / "nope", *SYNTH, "--out", tmp_path) != 0
    assert "no run directory or checkpoint" in capsys.readouterr().err
