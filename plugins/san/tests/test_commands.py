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


def synthetic_images():
    from reidcore.api import Kind

    spec = installed_plugins().registry.get(Kind.DATASET, "synthetic")
    return [r.path for r in spec.create(spec.config(size="64x32", ids=6, test_ids=2))
            .load().train]


def pasted(message):
    """The command a message suggests, run as a user pasting it would."""
    import shlex

    command = re.search(r"`(reid san-textures [^`]+)`", message).group(1)
    words = shlex.split(command)
    assert words[0] == "reid"
    return reid_cli(*words[1:])


def test_a_damaged_texture_is_refused_on_use_and_the_suggested_command_rewrites_it(
        pg_run, tmp_path, capsys):
    from reidcore.api import ReidError

    from reid_plugin_san.textures import TextureFolder, file_digest

    out = tmp_path / "tex"
    assert reid_cli("san-textures", str(pg_run), *SYNTH, "--out", str(out)) == 0
    capsys.readouterr()
    image = synthetic_images()[2]
    texture = out / Path(image).with_suffix(".png").name
    texture.write_bytes(texture.read_bytes()[:100])  # truncated
    with pytest.raises(ReidError, match="is damaged: its SHA-256 differs") as info:
        TextureFolder(out).load([image], (32, 32))
    assert pasted(str(info.value)) == 0
    assert "1 texture(s) written (1 damaged, rewritten)" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["textures"][texture.name] == file_digest(texture)
    assert tuple(TextureFolder(out).load([image], (32, 32)).shape) == (1, 3, 32, 32)


def test_a_texture_of_another_san_pg_run_is_refused_naming_both_runs(pg_run, tmp_path,
                                                                     capsys):
    from reidcore.api import ReidError

    from reid_plugin_san.textures import TextureFolder

    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    other = save_run(tmp_path / "other", seed=1)
    for run, out in ((pg_run, ours), (other, theirs)):
        assert reid_cli("san-textures", str(run), *SYNTH, "--out", str(out)) == 0
    capsys.readouterr()
    image = synthetic_images()[0]
    name = Path(image).with_suffix(".png").name
    shutil.copy(theirs / name, ours / name)
    with pytest.raises(ReidError) as info:
        TextureFolder(ours).load([image], (32, 32))
    message = str(info.value)
    assert f"written by SAN-PG run {other.resolve()}" in message
    assert f"textures of SAN-PG run {pg_run.resolve()}" in message and "mixes two runs" in message
    assert pasted(message) == 0
    assert "1 texture(s) written (1 from another SAN-PG run, rewritten)" in capsys.readouterr().out
    TextureFolder(ours).load([image], (32, 32))


def test_a_full_disk_leaves_no_partial_texture_and_says_what_to_do(pg_run, tmp_path,
                                                                   capsys, monkeypatch):
    import errno

    from reid_plugin_san import textures

    replace = textures.os.replace

    def full(source, target):  # the disk fills while the first texture is written
        if str(target).endswith(".png"):
            assert Path(source).is_file() and not str(source).endswith(".png")
            raise OSError(errno.ENOSPC, "No space left on device")
        replace(source, target)

    monkeypatch.setattr(textures.os, "replace", full)
    out = tmp_path / "tex"
    assert reid_cli("san-textures", str(pg_run), *SYNTH, "--out", str(out)) != 0
    err = capsys.readouterr().err
    assert "No space left on device" in err and "run the same command again" in err
    assert "Traceback" not in err
    assert not list(out.rglob("*.png")) and not list(out.rglob("*.part"))
    assert not json.loads((out / "manifest.json").read_text())["complete"]


def test_the_san_methods_folder_is_repaired_by_its_printed_command(tmp_path):
    """The san method records a single dataset's options as the command does, so the
    repair command built from its manifest rebuilds the same data (same identity)."""
    import shlex

    from reid_plugin_san.commands import dataset_options, dataset_records
    from reid_plugin_san.textures import repair_command

    recipe = resolve_recipe("san-synthetic", ["data.source.0.ids=6", "data.source.0.test_ids=2",
                                              f'data.source.0.root="{tmp_path / "data"}"'])
    section = recipe.data.source[0]
    recorded = dataset_options(section.config)
    assert recorded == {"ids": "6", "test_ids": "2", "size": "64x32",
                        "root": str(tmp_path / "data")}
    manifest = {"san_pg_run": "/runs/pg", "dataset": section.name,
                "dataset_options": recorded, "san_pg_checkpoint": "/runs/pg/checkpoints/best.pt"}
    words = shlex.split(repair_command(manifest, tmp_path / "tex"))
    assert words[:5] == ["reid", "san-textures", "/runs/pg", "--dataset", "synthetic"]
    assert words[-4:] == ["--which", "best", "--out", str((tmp_path / "tex").resolve())]
    options = [words[i + 1] for i, word in enumerate(words) if word == "--option"]
    _, options_again = dataset_records(installed_plugins().registry, "synthetic", None, options)
    assert options_again == recorded
