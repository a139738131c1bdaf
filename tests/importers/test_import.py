"""reid import: torchreid / fast-reid checkpoints written in their key layouts (by
tests/importers/layouts.py, from the frameworks' naming) become run directories; every key
is accounted for and bad input is refused with a message that says what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reidcore.cli import main
from reidcore.errors import ReidError
from reidcore.importers.write import import_checkpoint
from reidcore.plugins import load_plugins
from tests.importers import layouts


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """One checkpoint per layout, in each framework's container."""
    root = tmp_path_factory.mktemp("foreign")
    osnet = layouts.tensors(layouts.torchreid_osnet())
    paths = {"osnet": root / "model.pth.tar-60", "agw_ibn": root / "agw_ibn.pth",
             "bot": root / "bot.pth"}
    # torchreid: DataParallel keys, rank1 as a NumPy float (torchreid's evaluation gives one)
    torch.save({"state_dict": {f"module.{k}": v for k, v in osnet.items()}, "epoch": 60,
                "rank1": np.float64(0.87), "optimizer": {"state": {}}}, paths["osnet"])
    torch.save({"model": layouts.tensors(layouts.fastreid_r50(True, True, False)),
                "iteration": 100}, paths["agw_ibn"])
    torch.save({"model": layouts.tensors(layouts.fastreid_r50(False, False, False))},
               paths["bot"])
    return paths


def test_torchreid_osnet_every_key_loaded_and_run_embeds(files, plugins, tmp_path):
    from reidcore.engine.extract import FeatureExtractor

    out = tmp_path / "run"
    record = import_checkpoint("torchreid", files["osnet"], "osnet_x0_25", out, plugins=plugins)
    source = layouts.torchreid_osnet()
    assert set(record["loaded"]) == set(source)  # every key loaded, none only checked
    assert record["checked_not_loaded"] == {} and record["set_from_architecture"] == {}
    assert record["loaded"]["conv2.0.conv2b.1.conv1.weight"] == \
        "network.backbone.trunk.conv2.0.conv2b.1.conv1.weight"
    assert record["loaded"]["fc.1.running_var"] == "network.embedding.bn.running_var"
    assert record["loaded"]["classifier.bias"] == "network.classifier.fc.bias"
    assert json.loads((out / "manifest.json").read_text())["num_classes"] == 5
    extractor = FeatureExtractor(out, plugins=plugins)
    state = extractor.method.modules()["network"].state_dict()
    saved = torch.load(files["osnet"], weights_only=False)["state_dict"]
    assert torch.equal(state["embedding.linear.weight"], saved["module.fc.0.weight"])
    features = extractor(torch.randn(2, 3, 256, 128))
    # torchreid's eval output: the fc's ReLU, 512-d; no flip (its test default)
    assert features.shape == (2, 512) and bool((features >= 0).all())
    assert extractor.flip is False


def test_fastreid_agw_ibn_accounts_for_every_key(files, plugins, tmp_path):
    record = import_checkpoint("fastreid", files["agw_ibn"], "AGW_R50-ibn", tmp_path / "run",
                               plugins=plugins)
    assert set(record["loaded"]) == set(layouts.fastreid_r50(True, True, False))
    assert record["loaded"]["heads.bottleneck.0.running_mean"] == "network.neck.bn.running_mean"
    assert record["loaded"]["backbone.NL_3.2.W.1.weight"] == \
        "network.backbone.trunk.NL_3.2.W.1.weight"
    assert record["loaded"]["heads.weight"] == "network.classifier.fc.weight"
    # AGW's GeM has p fixed at 3 and no key: reid's trainable p is set, and says so
    assert list(record["set_from_architecture"]) == ["network.backbone.pool.p"]
    recipe = (tmp_path / "run" / "recipe.toml").read_text()
    assert 'metric = "cosine"' in recipe and 'interpolation = "bicubic"' in recipe


def test_renamed_bnneck_keys_are_refused_not_dropped(files, plugins, tmp_path):
    """fast-reid issue #396: BNNeck keys under another name, silently not loaded."""
    state = torch.load(files["bot"], weights_only=True)["model"]
    renamed = {k.replace("heads.bottleneck.0.", "heads.bnneck."): v for k, v in state.items()}
    path = tmp_path / "renamed.pth"
    torch.save({"model": renamed}, path)
    with pytest.raises(ReidError) as error:
        import_checkpoint("fastreid", path, "bagtricks_R50", tmp_path / "run", plugins=plugins)
    message = str(error.value)
    assert "lacks: heads.bottleneck.0.bias" in message
    assert "does not have (they would be dropped): heads.bnneck.bias" in message
    assert not (tmp_path / "run").exists()


def test_checkpoint_of_another_architecture_names_the_keys_and_the_match(files, plugins,
                                                                         tmp_path):
    with pytest.raises(ReidError) as error:
        import_checkpoint("fastreid", files["bot"], "AGW_R50", tmp_path / "run",
                          plugins=plugins)
    message = str(error.value)
    assert "is not a fastreid AGW_R50 checkpoint" in message
    assert "backbone.NL_2.0.W.0.bias" in message  # AGW's non-local keys, absent from BoT
    assert "--arch bagtricks_R50" in message


def test_truncated_missing_and_unknown_arch(files, plugins, tmp_path):
    truncated = tmp_path / "truncated.pth"
    data = files["bot"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReidError, match="cannot load weights from .*truncated.pth"):
        import_checkpoint("fastreid", truncated, "bagtricks_R50", tmp_path / "a", plugins=plugins)
    with pytest.raises(ReidError, match="weights file not found: .*absent.pth"):
        import_checkpoint("fastreid", tmp_path / "absent.pth", "bagtricks_R50", tmp_path / "b",
                          plugins=plugins)
    with pytest.raises(ReidError, match="unknown torchreid --arch 'osnet_x1'.*did you mean "
                                        "'osnet_x1_0'"):
        import_checkpoint("torchreid", files["osnet"], "osnet_x1", tmp_path / "c",
                          plugins=plugins)


def test_cli_import_refuses_to_overwrite_a_run(files, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("results")
    code = main(["import", "torchreid", str(files["osnet"]), "--arch", "osnet_x0_25",
                 "--out", str(out)])
    assert code != 0 and "exists and is not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "results"


def test_osnet_width_is_named_by_shapes(files, plugins, tmp_path):
    """OSNet's widths share key names; the shapes tell x0_25 from x1_0."""
    with pytest.raises(ReidError) as error:
        import_checkpoint("torchreid", files["osnet"], "resnet50", tmp_path / "run",
                          plugins=plugins)
    message = str(error.value)
    assert "shapes differ: classifier.weight (file (5, 512), resnet50 (5, 2048))" in message
    assert "--arch osnet_x0_25" in message
