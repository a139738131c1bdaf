"""The san method without the engine: which losses reach which parameters, the two
updates of one step (checked against Adam's first-step rule), the warm-up switch,
inference without SA-Dec, and the texture targets."""

import pytest
import torch
from conftest import make_batch, make_san, train_step
from reidcore.api import ReidError
from reidcore.testing import step_optimizers


def named(method):
    enc, dec = method.encoder, method.decoder
    return {"trunk": list(enc.backbone.parameters()),
            "head": list(enc.fc.parameters()) + list(enc.classifier.parameters()),
            "decoder": list(dec.parameters())}


def reached(loss, params, retain=True):
    grads = torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)
    return any(g is not None and bool(g.abs().sum() > 0) for g in grads)


def test_which_losses_reach_which_parameters(registry):
    method = make_san(registry)
    reid_total, dec_total, info = method.forward_losses(make_batch())
    groups = named(method)
    # the re-ID loss: trunk, fc, classifier; never SA-Dec
    assert reached(reid_total, groups["trunk"]) and reached(reid_total, groups["head"])
    assert not reached(reid_total, groups["decoder"])
    # the decoder-side losses (L_Rec and L_TR each): trunk and SA-Dec; never fc / classifier
    for name in ("loss/rec", "loss/tr"):
        assert reached(info[name], groups["trunk"]) and reached(info[name], groups["decoder"])
        assert not reached(info[name], groups["head"])
    # what the method's two backward halves differentiate: the warm-up / main optimizer's
    # parameters (L_reID) and encoder_texture's + decoder's (L_dec)
    optim = step_optimizers(method, method.context)
    ids = {name: {id(p) for p in ps} for name, ps in groups.items()}
    assert {id(p) for p in optim.parameters("warmup")} == ids["trunk"] | ids["head"]
    assert {id(p) for p in optim.parameters("encoder_texture")
            + optim.parameters("decoder")} == ids["trunk"] | ids["decoder"]


def gradients(method, batch):
    """The two gradients of one forward, before any step, as the step takes them: L_reID
    w.r.t. SA-Enc; L_dec w.r.t. the trunk and SA-Dec."""
    reid_total, dec_total, _ = method.forward_losses(batch)
    reid_params = list(method.encoder.parameters())
    dec_params = [*method.encoder.trunk_parameters(), *method.decoder.parameters()]
    reid = torch.autograd.grad(reid_total, reid_params, retain_graph=True, allow_unused=True)
    texture = torch.autograd.grad(dec_total, dec_params, allow_unused=True)
    return dict(zip(reid_params, reid, strict=True)), dict(zip(dec_params, texture,
                                                               strict=True))


def test_optimizer_parameter_sets(registry):
    method = make_san(registry)
    opt = method.configure_optimizers().optimizers
    groups = {name: {id(p) for p in ps} for name, ps in named(method).items()}

    def params(name):
        return {id(p) for g in opt[name].param_groups for p in g["params"]}

    assert params("main") == params("warmup") == groups["trunk"] | groups["head"]
    assert params("encoder_texture") == groups["trunk"]  # fc + classifier frozen
    assert params("decoder") == groups["decoder"]


def test_one_step_applies_both_updates(registry):
    """Adam's first step moves each weight by lr * g / (|g| + eps) ~ lr * sign(g). With
    the warm-up off, one step must move fc/classifier by the main LR along the re-ID
    gradient (+ weight decay) only, SA-Dec by the decoder LR along the decoder-side
    gradient only, and the trunk by the sum of both, each gradient taken at the weights
    of the forward (no graph reused after an in-place update)."""
    method = make_san(registry, {"warmup_epochs": 0, "lr": 1e-3, "decoder_lr": 1e-4})
    batch = make_batch()
    before = {id(p): p.detach().clone() for m in method.modules().values()
              for p in m.parameters()}
    reid, texture = gradients(method, batch)
    wd = method.config.weight_decay
    method2 = make_san(registry, {"warmup_epochs": 0, "lr": 1e-3, "decoder_lr": 1e-4})
    train_step(method2, batch)  # the same initial weights (seeded), one real step
    params = {id(p): p for p in method.encoder.parameters()} | {
        id(p): p for p in method.decoder.parameters()}
    twins = dict(zip([id(p) for p in (*method.encoder.parameters(),
                                      *method.decoder.parameters())],
                     [*method2.encoder.parameters(), *method2.decoder.parameters()],
                     strict=True))

    def expected_move(pid):
        param = params[pid]
        move = torch.zeros_like(param)
        if param in reid:
            g = reid[param] + wd * before[pid]
            move -= 1e-3 * g / (g.abs() + 1e-8)
        if param in texture:
            g = texture[param]
            move -= 1e-4 * g / (g.abs() + 1e-8)
        return move

    checked = 0
    for pid, twin in twins.items():
        actual = twin.detach() - before[pid]
        assert torch.allclose(actual, expected_move(pid), atol=2e-6), "wrong update"
        checked += 1
    assert checked == len(params)
    # fc and classifier moved by ~1e-3, SA-Dec by ~1e-4 (where gradients are non-zero)
    fc = method2.encoder.fc[0].weight.detach() - before[id(method.encoder.fc[0].weight)]
    assert fc.abs().max().item() == pytest.approx(1e-3, rel=1e-3)
    up = method2.decoder.final[1].weight.detach() - before[id(method.decoder.final[1].weight)]
    assert up.abs().max().item() == pytest.approx(1e-4, rel=1e-3)


@pytest.mark.parametrize("warmup_epochs", [0, 1])
def test_step_is_both_gradients_then_the_steps_bit_for_bit(registry, warmup_epochs):
    """The step through ``optim``'s halves equals, bit for bit, the two gradients taken at
    the forward's weights by two autograd calls, then the re-ID optimizer's step (warm-up
    or main), then encoder_texture's and decoder's steps."""
    options = {"warmup_epochs": warmup_epochs}
    batch = make_batch()
    method, reference = make_san(registry, options), make_san(registry, options)
    train_step(method, batch)
    opt = reference.configure_optimizers().optimizers
    reid, texture = gradients(reference, batch)
    main = "warmup" if warmup_epochs else "main"
    for name, grads in ((main, reid), ("encoder_texture", texture), ("decoder", texture)):
        params = [p for group in opt[name].param_groups for p in group["params"]]
        for param in params:
            param.grad = grads.get(param)
        opt[name].step()
        for param in params:
            param.grad = None
    pairs = [(a, b) for name in ("encoder", "decoder")
             for a, b in zip(method.modules()[name].state_dict().values(),
                             reference.modules()[name].state_dict().values(), strict=True)]
    assert pairs and all(torch.equal(a, b) for a, b in pairs)


def test_warmup_then_main_optimizer(registry):
    method = make_san(registry, {"warmup_epochs": 1})
    clock = method.context.clock
    clock.start_epoch(0, 2)
    _, optim = train_step(method, make_batch())
    opt = optim.optimizers
    assert opt["warmup"].state and not opt["main"].state
    clock.start_epoch(1, 2)
    metrics, _ = train_step(method, make_batch(seed=2), 1, optim)
    assert opt["main"].state  # fresh amsgrad state from the end of the warm-up
    assert all(v.dim() == 0 and torch.isfinite(v) for v in metrics.values())
    assert {"loss/cross_entropy", "loss/triplet", "loss/rec", "loss/tr"} <= set(metrics)
    # every gradient the halves kept aside went into a step and was cleared after it
    assert all(p.grad is None for m in method.modules().values() for p in m.parameters())


def test_without_decoder(registry):
    method = make_san(registry, {"decoder": False}, {"textures": False})
    assert set(method.modules()) == {"encoder"}
    opt = method.configure_optimizers().optimizers
    assert set(opt) == {"main", "warmup"}
    metrics, _ = train_step(method, {k: v for k, v in make_batch().items()
                                     if k != "textures"})
    assert "loss/rec" not in metrics and metrics["loss"] > 0


def test_embed_is_v_without_the_decoder(registry):
    """Inference: v (embedding_dim), eval-mode BN + ReLU, no flip, SA-Dec never run."""
    method = make_san(registry)

    def fail(*_args):
        raise AssertionError("SA-Dec ran at inference")

    method.decoder.register_forward_pre_hook(fail)
    for module in method.modules().values():
        module.eval()
    images = make_batch()["images"]
    v = method.embed(images)
    assert tuple(v.shape) == (8, 24) and bool((v >= 0).all())
    assert torch.equal(v, method.inference_network()(images))
    assert not any(k.startswith("decoder") for k in method.inference_network().state_dict())
    assert not torch.allclose(v, method.embed(images.flip(3)))  # no flip averaging inside


def test_dataset_textures_need_the_loader_option(registry):
    method = make_san(registry)
    batch = {k: v for k, v in make_batch().items() if k != "textures"}
    with pytest.raises(ReidError, match="loader.textures = true"):
        train_step(method, batch)


def test_folder_textures_name_the_missing_image_and_the_command(registry, tmp_path):
    import json

    from PIL import Image

    from reid_plugin_san.textures import file_digest

    root = tmp_path / "images"
    root.mkdir()
    folder = tmp_path / "textures"
    folder.mkdir()
    batch = make_batch()
    batch.pop("textures")
    batch["paths"] = [str(root / f"{i:04d}_c1s1_000001_00.jpg") for i in range(8)]
    for i in range(8):
        Image.new("RGB", (16, 16), (255, 0, 0) if i < 7 else (0, 0, 255)).save(
            folder / f"{i:04d}_c1s1_000001_00.png")
    digests = {p.name: file_digest(p) for p in folder.glob("*.png")}
    (folder / "0007_c1s1_000001_00.png").unlink()
    (folder / "manifest.json").write_text(json.dumps({
        "format": 2, "complete": True, "image_root": str(root), "san_pg_run": "runs/pg",
        "san_pg_sha256": "0" * 64, "san_pg_checkpoint": "runs/pg/checkpoints/epoch-0001.pt",
        "dataset": "market1501", "dataset_options": {"root": "data"},
        "textures": digests}))
    method = make_san(registry, {"textures": "folder", "texture_root": str(folder)},
                      {"textures": False})
    with pytest.raises(ReidError, match=r"no pseudo texture for .*0007_c1s1_000001_00\.jpg.*"
                                        r"reid san-textures runs/pg --dataset market1501 "
                                        r"--option root=data --out /"):
        train_step(method, batch)
    Image.new("RGB", (16, 16), (0, 0, 255)).save(folder / "0007_c1s1_000001_00.png")
    target = method.targets(batch)
    assert tuple(target.shape) == (8, 3, 32, 32)  # resized to the decoder's texture size
    assert target[0, 0].mean().item() == pytest.approx(1.0)  # red -> +1 in [-1, 1]
    assert target[7, 2].mean().item() == pytest.approx(1.0)
    assert target[7, 0].mean().item() == pytest.approx(-1.0)


def has_texture_capability(method) -> bool:
    """The core's check (isinstance of the runtime Protocol) once reidcore.api has it."""
    import reidcore.api

    protocol = getattr(reidcore.api, "EstimatesTexture", None)
    if protocol is not None:
        return isinstance(method, protocol)
    return callable(getattr(method, "estimate_texture", None))


def test_estimate_texture_is_sa_dec_in_eval_mode_mapped_to_rgb(registry):
    """EstimatesTexture: B x 3 x texture size, RGB = output / 2 + 1/2 in [0, 1], eval-mode
    BN (the same images alone or in a batch give the same texture), modes restored."""
    method = make_san(registry)
    assert has_texture_capability(method)
    images = make_batch()["images"]
    method.encoder.train()
    texture = method.estimate_texture(images)
    assert tuple(texture.shape) == (8, 3, 32, 32)
    assert method.encoder.training and method.decoder.training
    assert torch.allclose(texture[:1], method.estimate_texture(images[:1]), atol=1e-6)
    # a final conv with zero weights and biases (0.6, -0.2, 3.0) outputs those values
    # everywhere: RGB 0.8, 0.4 and 1.0 (2.0 clamped)
    final = method.decoder.final[1]
    with torch.no_grad():
        final.weight.zero_()
        final.bias.copy_(torch.tensor([0.6, -0.2, 3.0]))
    texture = method.estimate_texture(images)
    for channel, value in enumerate((0.8, 0.4, 1.0)):
        assert torch.allclose(texture[:, channel], torch.full_like(texture[:, channel], value))


def test_no_decoder_no_texture_capability(registry):
    method = make_san(registry, {"decoder": False}, {"textures": False})
    assert not has_texture_capability(method)
