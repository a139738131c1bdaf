"""The san_pg method: L_Rec alone trains the trunk and SA-Dec; decode gives textures at the
recipe's texture size; its runs are refused where a SAN-PG is not what is needed."""

import pytest
import torch
from conftest import make_batch, make_san, train_step
from reidcore.testing import step_optimizers


def test_training_step_fits_the_textures(registry):
    method = make_san(registry, name="san_pg", method={"lr": 1e-3})
    assert set(method.modules()) == {"backbone", "decoder"}
    batch = make_batch()
    before = {n: p.detach().clone() for m in method.modules().values()
              for n, p in m.named_parameters()}
    optim = step_optimizers(method, method.context)
    losses = [train_step(method, batch, step, optim)[0]["loss/rec"] for step in range(5)]
    assert losses[-1] < losses[0]
    moved = {n for m in method.modules().values() for n, p in m.named_parameters()
             if not torch.equal(p.detach(), before[n])}
    assert any(n.startswith("conv1") for n in moved) and any(n.startswith("final") for n in moved)


def test_decode_and_embed(registry):
    method = make_san(registry, name="san_pg")
    for module in method.modules().values():
        module.eval()
    images = make_batch()["images"]
    with torch.no_grad():
        assert tuple(method.decode(images).shape) == (8, 3, 32, 32)
        assert tuple(method.decode(images, (16, 24)).shape) == (8, 3, 16, 24)
    assert tuple(method.embed(images).shape) == (8, 128)  # pooled layer4 (128 channels)


def test_a_san_run_is_not_a_texture_generator(registry):
    from types import SimpleNamespace

    from reidcore.api import ReidError

    from reid_plugin_san.textures import san_pg_decoder

    loaded = SimpleNamespace(recipe=SimpleNamespace(method=SimpleNamespace(name="san")),
                             run_dir="runs/x")
    with pytest.raises(ReidError, match="'san' run; pseudo textures need a san_pg run"):
        san_pg_decoder(loaded)
