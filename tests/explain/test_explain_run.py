"""``reid explain`` on a run directory (an untrained baseline's checkpoint, a gallery
folder), and the maps of every registered method's network (each built tiny from its
``example()``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reidcore.errors import ReidError
from reidcore.plugins import get_plugins
from reidcore.registry import Kind
from reidcore.testing import build_method, installed_plugins, reid_cli, spec_id, write_checkpoint

METHODS = list(installed_plugins().registry.specs(Kind.METHOD))


@pytest.mark.parametrize("spec", METHODS, ids=spec_id)
def test_every_method_gives_both_maps(spec):
    from reidcore.explain.maps import activation_maps, similarity_gradcam
    from reidcore.testing import _example

    torch.manual_seed(0)
    method, context = build_method(spec, _example(spec))
    for module in method.modules().values():
        module.eval()
    loader = context.recipe.loader
    images = torch.randn(2, 3, loader.height, loader.width)
    maps, module = activation_maps(method, images)
    first, second = similarity_gradcam(method, images[:1], images[1:])
    assert maps.shape[0] == 2 and maps.dim() == 3 and module
    for heat in (maps, first, second):
        assert torch.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1


def _write_run(root):
    from reidcore.engine.context import build_method as build_run_method
    from reidcore.recipe import write_resolved
    from reidcore.testing import resolve_recipe

    recipe = resolve_recipe({
        "name": "explain-test", "method": {"name": "baseline"},
        "backbone": {"name": "timm", "model": "test_resnet", "last_stride": 1},
        "losses": [{"name": "cross_entropy"}],
        "data": {"source": [{"name": "synthetic"}], "test": [{"name": "synthetic"}]},
        "loader": {"height": 32, "width": 16},
        "evaluate": {"name": "ranking", "flip": True}})
    root.mkdir()
    write_resolved(recipe, root / "recipe.toml")
    (root / "manifest.json").write_text('{"num_classes": 4}')  # no data needed to build
    method = build_run_method(recipe, installed_plugins().registry, 4, meta=False,
                              device=torch.device("cpu"))
    write_checkpoint(root / "checkpoints" / "best.pt", method.modules())
    return root


def test_explain_writes_one_labelled_picture_per_query(tmp_path, capsys):
    run = _write_run(tmp_path / "run")
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    colours = np.random.default_rng(0).integers(0, 255, (6, 3))
    for index, colour in enumerate(colours):
        image = np.zeros((32, 16, 3), np.uint8) + colour.astype(np.uint8)
        image[8:24, 4:12] = 255 - colour
        Image.fromarray(image).save(gallery / f"{index // 2 + 1:04d}_c{index % 2 + 1}s1_"
                                              f"000001_00.png")
    query = sorted(gallery.iterdir())[0]
    out = tmp_path / "out"
    assert reid_cli("explain", run, "--images", query, "--gallery", gallery, "--out", out,
                    "--top-k", "3") == 0
    written = out / f"explain_00_{query.stem}.png"
    assert f"wrote {written}" in capsys.readouterr().out
    picture = np.asarray(Image.open(written))
    # title + 3 rows of (caption + tile of at least 160 px), 4 columns of 80-px tiles
    assert picture.shape[0] > 3 * 160 and picture.shape[1] > 4 * 80
    assert picture.std() > 10  # images and maps, not a blank canvas


def test_explain_bad_input(tmp_path, capsys):
    run = _write_run(tmp_path / "run")
    for args, expected in [
            ((tmp_path / "nothing", "--images", tmp_path, "--out", tmp_path / "o"),
             "is not a run directory (no recipe.toml): it does not exist"),
            ((run, "--images", tmp_path / "missing.png", "--out", tmp_path / "o"),
             "--images " + str(tmp_path / "missing.png") + ": no such file or folder"),
            ((run, "--images", run / "recipe.toml", "--out", tmp_path / "o"),
             "recipe.toml: not an image")]:
        assert reid_cli("explain", *args) != 0
        assert expected in capsys.readouterr().err
    with pytest.raises(ReidError, match="--top-k must be at least 1"):
        from reidcore.explain.run_explain import explain_run
        explain_run(run, [tmp_path], tmp_path / "o", plugins=get_plugins(), top_k=0)
