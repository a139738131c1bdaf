"""``reid cut-reid-translate``: a folder of images through a saved translator, and
``reid cut-reid-fid`` (the core's FID)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from reidcore.testing import installed_plugins, reid_cli, resolve_recipe, write_checkpoint

from reid_plugin_cut_reid.commands import _load_translator, translate_folder

RECIPE = Path(__file__).resolve().parents[1] / "reid_plugin_cut_reid" / "recipes" / (
    "cut-reid-synthetic.toml")


@pytest.fixture
def run_dir(tmp_path):
    """A run directory as the engine writes one: recipe, manifest, a checkpoint."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(RECIPE, run / "recipe.toml")
    (run / "manifest.json").write_text(json.dumps({"num_classes": 40}))
    recipe = resolve_recipe(RECIPE)
    section = recipe.generators["translator"]
    torch.manual_seed(0)
    translator = installed_plugins().registry.get("generator", section.name).create(
        section.config)
    write_checkpoint(run / "checkpoints" / "epoch-0001.pt", {"translator": translator})
    return run, translator


def images(folder, count=3, size=(40, 20)):
    (folder / "sub").mkdir(parents=True)
    for i in range(count):
        where = folder / "sub" if i == 0 else folder
        Image.new("RGB", size, (40 * i, 100, 200)).save(where / f"img{i}.jpg")


def test_translate_command_writes_every_image(run_dir, tmp_path, capsys):
    run, translator = run_dir
    images(tmp_path / "in")
    code = reid_cli("cut-reid-translate", str(run / "checkpoints" / "epoch-0001.pt"),
                    str(tmp_path / "in"), str(tmp_path / "out"))
    assert code == 0
    assert "translated 3 image(s)" in capsys.readouterr().out
    outs = sorted(p.relative_to(tmp_path / "out").as_posix()
                  for p in (tmp_path / "out").rglob("*.png"))
    assert outs == ["img1.png", "img2.png", "sub/img0.png"]
    with Image.open(tmp_path / "out" / "img1.png") as image:
        assert image.size == (32, 64)  # the recipe's 64x32 (H x W)
    # the command loads the checkpoint's weights into the recipe's translator, from the
    # checkpoint or from the run directory (its last checkpoint)
    theirs = translator.state_dict()
    for ref in (run / "checkpoints" / "epoch-0001.pt", run):
        loaded, recipe = _load_translator(ref, installed_plugins())
        assert recipe.method.name == "cut_reid" and not loaded.training
        assert all(torch.equal(v, theirs[k]) for k, v in loaded.state_dict().items())
    assert reid_cli("cut-reid-translate", str(run), str(tmp_path / "in"),
                    str(tmp_path / "out2")) == 0
    with Image.open(tmp_path / "out2" / "img1.png") as a, \
            Image.open(tmp_path / "out" / "img1.png") as b:
        assert a.tobytes() == b.tobytes()


def test_translate_errors(run_dir, tmp_path, capsys):
    run, _ = run_dir
    checkpoint = str(run / "checkpoints" / "epoch-0001.pt")
    assert reid_cli("cut-reid-translate", checkpoint, str(tmp_path / "none"),
                    str(tmp_path / "o")) == 1
    assert "input folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert reid_cli("cut-reid-translate", checkpoint, str(tmp_path / "empty"),
                    str(tmp_path / "o")) == 1
    assert "no images" in capsys.readouterr().err
    assert reid_cli("cut-reid-translate", str(tmp_path / "x.pt"), str(tmp_path / "empty"),
                    str(tmp_path / "o")) == 1
    assert "no run directory or checkpoint" in capsys.readouterr().err
    assert reid_cli("cut-reid-translate", str(run), str(tmp_path / "empty"), str(tmp_path / "o"),
                    "--which", "best") == 1
    assert "no best checkpoint" in capsys.readouterr().err
    (run / "recipe.toml").unlink()
    assert reid_cli("cut-reid-translate", checkpoint, str(tmp_path / "empty"),
                    str(tmp_path / "o")) == 1
    assert "has no recipe.toml" in capsys.readouterr().err
    shutil.copy(RECIPE, run / "recipe.toml")
    assert reid_cli("cut-reid-translate", checkpoint, str(tmp_path / "empty"),
                    str(tmp_path / "o"), "--size", "big") == 1
    assert "--size" in capsys.readouterr().err


def test_translate_folder_size_option(run_dir, tmp_path):
    _, translator = run_dir
    images(tmp_path / "in", count=1)
    written = translate_folder(translator.eval(), tmp_path / "in", tmp_path / "out", (32, 16))
    with Image.open(written[0]) as image:
        assert image.size == (16, 32)


def test_fid_command(tmp_path, capsys):
    from torchvision.models import inception_v3

    weights = tmp_path / "inception.pth"
    torch.manual_seed(0)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(),
               weights)
    images(tmp_path / "a", count=3)
    assert reid_cli("cut-reid-fid", str(tmp_path / "a"), str(tmp_path / "a"), "--weights",
                    str(weights), "--size", "32x16") == 0
    out = capsys.readouterr().out
    assert out.startswith("FID 0.0000") and "3 vs 3 images" in out
    assert reid_cli("cut-reid-fid", str(tmp_path / "a"), str(tmp_path / "a"), "--weights",
                    str(tmp_path / "missing.pth")) == 1
    assert "weights file not found" in capsys.readouterr().err
