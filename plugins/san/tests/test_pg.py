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


def test_estimate_texture_is_the_decoders_output_in_rgb(registry):
    """EstimatesTexture (the core's proving ground scores SAN-PG with it): B x 3 x texture
    size, no graph, eval-mode BN (an image alone or in a batch gives the same texture),
    modes restored; RGB = output / 2 + 1/2, clamped to [0, 1]."""
    from reidcore.api import EstimatesTexture

    method = make_san(registry, name="san_pg")
    assert isinstance(method, EstimatesTexture)
    images = make_batch()["images"]
    texture = method.estimate_texture(images)
    assert tuple(texture.shape) == (8, 3, 32, 32) and not texture.requires_grad
    assert method.backbone.training and method.decoder.training
    assert torch.allclose(texture[:1], method.estimate_texture(images[:1]), atol=1e-6)
    # a final conv with zero weights and biases (0.6, -0.2, 3.0), then (-1.4, 0, 1): the
    # decoder outputs those values everywhere, RGB 0.8, 0.4, 1.0 (2.0 clamped), then
    # 0.0 (-0.2 clamped), 0.5, 1.0
    final = method.decoder.final[1]
    for biases, rgb in (((0.6, -0.2, 3.0), (0.8, 0.4, 1.0)), ((-1.4, 0.0, 1.0), (0.0, 0.5, 1.0))):
        with torch.no_grad():
            final.weight.zero_()
            final.bias.copy_(torch.tensor(biases))
        texture = method.estimate_texture(images)
        for channel, value in enumerate(rgb):
            assert torch.allclose(texture[:, channel], torch.full_like(texture[:, channel], value))
