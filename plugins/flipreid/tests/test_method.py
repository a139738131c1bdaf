"""The flipreid method without the engine: its training step in each variant, the frozen
first phase, the LR the schedulers set, weight decay groups, embeddings and recipe checks."""

import pytest
import torch
from reidcore.api import MethodContext, RecipeError, ReidError, StepOptimizers
from reidcore.testing import method_context, resolve_recipe


class TinyResNetContext(MethodContext):
    """A run whose backbone is a narrow ResNet-style network (timm's ResNet class with
    channels 16-128, one basic block per stage): the method's logic at a tiny cost."""

    def build_backbone(self, default="timm"):
        from timm.models.resnet import BasicBlock, ResNet

        network = ResNet(BasicBlock, [1, 1, 1, 1], channels=(16, 32, 64, 128), num_classes=0)
        network.feature_dim = 128
        return network


def resolved(registry, raw):
    """The recipe ``raw`` (TOML-like data; the method is flipreid) resolved."""
    return method_context(registry.get("method", "flipreid"), raw).recipe


def validated(tmp_path, text):
    """A recipe file (TOML ``text``) read as ``reid run`` does: with the plugins' checks."""
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return resolve_recipe(path)


def make_method(registry, method=None, losses=None, train=None, num_classes=3,
                steps_per_epoch=2):
    raw = {"method": {"frozen_epochs": 0, **(method or {})},
           "train": {"lr": 1e-3, "weight_decay": 1e-3, **(train or {})}}
    if losses is not None:
        raw["losses"] = losses
    recipe = resolved(registry, raw)
    torch.manual_seed(0)
    context = TinyResNetContext(recipe=recipe, registry=registry, num_classes=num_classes,
                                steps_per_epoch=steps_per_epoch)
    spec = registry.get("method", "flipreid")
    torch.manual_seed(0)
    return spec.create(recipe.method.config, context=context)


def batch():
    generator = torch.Generator().manual_seed(1)
    return {"images": torch.randn(6, 3, 64, 32, generator=generator),
            "pids": torch.tensor([0, 0, 1, 1, 2, 2])}


def step_optimizers(method, optimization):
    """What the engine hands ``training_step``: the optimizers under the run's precision."""
    return StepOptimizers(optimization, method.context.precision)


def run_steps(method, steps):
    """``steps`` training steps as the engine runs them: (optimization, the optimizers as
    the step sees them, each step's metrics as floats)."""
    optimization = method.configure_optimizers()
    optim = step_optimizers(method, optimization)
    clock = method.context.clock
    metrics = []
    for step in range(steps):
        if clock.index == 0:
            clock.start_epoch(clock.epoch, method.context.steps_per_epoch)
        for module in method.modules().values():
            module.train()
        values = method.training_step(batch(), step, optim)
        assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in values.values())
        metrics.append({k: float(v) for k, v in values.items()})
        clock.advance()
        for scheduler in optimization.schedulers.values():
            scheduler.step()
    return optimization, optim, metrics


@pytest.mark.parametrize("variant,flip_loss", [("flipreid", True), ("flip_tta", False),
                                                ("plain", False)])
def test_training_step_variants(registry, variant, flip_loss):
    method = make_method(registry, {"variant": variant})
    _, _, metrics = run_steps(method, 1)
    m = metrics[0]
    assert ("loss/flipping" in m) is flip_loss
    assert {"loss", "loss/triplet", "loss/cross_entropy", "accuracy", "gem_p/global",
            "gem_p/region1", "gem_p/region2"} <= set(m)
    parts = sum(v for k, v in m.items() if k.startswith("loss/"))
    assert m["loss"] == pytest.approx(parts, rel=1e-5)
    # untrained heads (weights ~ N(0, 0.001)): CE per head ~ ln 3, three heads
    assert m["loss/cross_entropy"] == pytest.approx(3 * torch.log(torch.tensor(3.0)).item(),
                                                    abs=0.05)


def test_flip_structure_merges_views(registry):
    """With the flip structure the triplet and CE see the mean of both views: a batch of
    horizontally symmetric images has equal views (up to float error), a flipping loss of
    ~0 and merged == original."""
    method = make_method(registry)
    net = method.network.eval()
    images = torch.randn(4, 3, 64, 16)
    images = torch.cat([images, images.flip(3)], dim=3)  # symmetric about the vertical axis
    with torch.no_grad():
        out = net(images, flip=True, classify=True)
    for a, b, m in zip(out["original"], out["flipped"], out["merged"], strict=True):
        assert torch.allclose(a, b, atol=1e-5) and torch.allclose(m, (a + b) / 2)
    assert len(out["logits"]) == 3


def test_frozen_phase_then_carried_optimizer(registry):
    """frozen_epochs = 1 with 2 steps per epoch: steps 0-1 train only the new layers
    (optimizer 'frozen'); step 2 starts 'main' with the Adam state the official code's
    re-compiled Keras Adam has: the new layers' moments and the shared step count carried
    over, the backbone's parameters with zero moments but the same step."""
    method = make_method(registry, {"frozen_epochs": 1}, train={"weight_decay": 0.0})
    net = method.network
    trunk_before = net.trunk[0].weight.detach().clone()
    stage4_before = next(net.regional_stage4.parameters()).detach().clone()
    conv_before = net.regional_convs[0][0].weight.detach().clone()
    running = net.trunk[1].running_mean.clone()
    optimization, optim, _ = run_steps(method, 2)
    assert torch.equal(net.trunk[0].weight, trunk_before)
    assert torch.equal(next(net.regional_stage4.parameters()), stage4_before)
    assert torch.equal(net.trunk[1].running_mean, running)  # BN in inference mode
    assert not torch.equal(net.regional_convs[0][0].weight, conv_before)
    frozen, main = optimization.optimizers["frozen"], optimization.optimizers["main"]
    assert not main.state
    conv, trunk = net.regional_convs[0][0].weight, net.trunk[0].weight
    end_of_a = {k: v.clone() for k, v in frozen.state[conv].items()}
    assert float(end_of_a["step"]) == 2
    method.training_step(batch(), 2, optim)
    method.context.clock.advance()
    assert not torch.equal(net.trunk[0].weight, trunk_before)
    # one Adam update after the switch (no weight decay here): m = 0.9 m_A + 0.1 g,
    # v = 0.999 v_A + 0.001 g^2, step = 2 + 1 for the new layers (a fresh optimizer: 1)
    g = conv.grad
    state = main.state[conv]
    assert float(state["step"]) == 3
    torch.testing.assert_close(state["exp_avg"], 0.9 * end_of_a["exp_avg"] + 0.1 * g)
    torch.testing.assert_close(state["exp_avg_sq"], 0.999 * end_of_a["exp_avg_sq"] + 0.001 * g * g)
    # the backbone joins with zero moments but the shared step
    g = trunk.grad
    state = main.state[trunk]
    assert float(state["step"]) == 3
    torch.testing.assert_close(state["exp_avg"], 0.1 * g)
    torch.testing.assert_close(state["exp_avg_sq"], 0.001 * g * g)
    assert len(main.state) == sum(len(group["params"]) for group in main.param_groups)
    assert not frozen.state  # released once carried over


def test_each_phase_trains_all_of_its_optimizer(registry):
    """The contract check's question (every parameter of a stepped optimizer had a
    gradient) asked of both phases: phase A steps only 'frozen' (the new layers), phase B
    only 'main' (everything)."""
    method = make_method(registry, {"frozen_epochs": 1})
    optimization = method.configure_optimizers()
    optim = step_optimizers(method, optimization)
    for epoch, untouched in ((0, "main"), (1, "frozen")):
        method.context.clock.start_epoch(epoch, 2)
        for module in method.modules().values():
            module.train()
        optim.track_gradients()
        method.training_step(batch(), 2 * epoch, optim)
        assert set(optim.untrained()) == {untouched}
        assert set(optim.received) == {"main", "frozen"} - {untouched}


def _steps(method, optimization, start, stop):
    optim = step_optimizers(method, optimization)
    clock = method.context.clock
    for step in range(start, stop):
        clock.start_epoch(step // 2, 2)
        clock.index = step % 2
        for scheduler in optimization.schedulers.values():
            scheduler.sync()
        for module in method.modules().values():
            module.train()
        method.training_step(batch(), step, optim)
        clock.advance()


@pytest.mark.parametrize("saved_after", [2, 3])
def test_resume_across_the_phase_switch_is_exact(registry, saved_after):
    """A run checkpointed (modules, optimizers and schedulers by name, as the engine does)
    at the end of phase A (after step 2 of 2-step epochs, frozen_epochs = 1) or inside
    phase B (after step 3), then resumed, ends with the same weights as an uninterrupted
    run of 4 steps."""
    options = {"frozen_epochs": 1}
    straight = make_method(registry, options)
    _steps(straight, straight.configure_optimizers(), 0, 4)

    first = make_method(registry, options)
    optimization = first.configure_optimizers()
    _steps(first, optimization, 0, saved_after)
    saved = {"modules": {n: m.state_dict() for n, m in first.modules().items()},
             "optimizers": {n: o.state_dict() for n, o in optimization.optimizers.items()}}
    resumed = make_method(registry, options)
    optimization = resumed.configure_optimizers()
    for name, module in resumed.modules().items():
        module.load_state_dict(saved["modules"][name])
    for name, optimizer in optimization.optimizers.items():
        optimizer.load_state_dict(saved["optimizers"][name])
    _steps(resumed, optimization, saved_after, 4)
    for (name, a), b in zip(straight.network.state_dict().items(),
                            resumed.network.state_dict().values(), strict=True):
        assert torch.equal(a, b), name



def test_schedulers_follow_the_flipreid_schedule(registry):
    """lr 1e-3, floor 1e-5, warm-up 3 epochs: epoch 0 -> 1e-5, 1 -> 1e-5 + (1e-3 - 1e-5)/2,
    2 -> 1e-3; drop /10 every 2 epochs after warm-up; phase 2 restarts at frozen_epochs."""
    method = make_method(registry, {"frozen_epochs": 2, "warmup_epochs": 3, "drop_every": 2})
    optimization = method.configure_optimizers()
    clock = method.context.clock
    expected_main = {0: 1e-5, 1: 1e-5, 2: 1e-5, 3: 5.05e-4, 4: 1e-3, 5: 1e-3, 6: 1e-3, 7: 1e-4}
    expected_frozen = {0: 1e-5, 1: 5.05e-4}
    for epoch in range(8):
        clock.start_epoch(epoch, 2)
        for scheduler in optimization.schedulers.values():
            scheduler.sync()
        assert optimization.optimizers["main"].param_groups[0]["lr"] == pytest.approx(
            expected_main[epoch])
        if epoch in expected_frozen:
            assert optimization.optimizers["frozen"].param_groups[0]["lr"] == pytest.approx(
                expected_frozen[epoch])


def test_weight_decay_groups(registry):
    """Coupled weight decay (train.weight_decay = 2 x Keras L2) on every weight, BN gamma and
    beta and bias included; none on the GeM exponents; Adam eps as Keras (1e-7)."""
    method = make_method(registry)
    optimizer = method.configure_optimizers().optimizers["main"]
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"backbone", "regional", "heads", "gem"}
    assert groups["gem"]["weight_decay"] == 0.0 and len(groups["gem"]["params"]) == 3
    assert all(groups[n]["weight_decay"] == 1e-3 for n in ("backbone", "regional", "heads"))
    assert optimizer.defaults["eps"] == 1e-7
    counted = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    assert counted == sum(p.numel() for p in method.network.parameters())


@pytest.mark.parametrize("variant", ["plain", "flip_tta", "flipreid"])
def test_embed(registry, variant):
    """128 (stage 4) + 2 x 64 = 256-d; flip-averaged except for plain; the flip of an
    image gets the same flip-averaged embedding."""
    method = make_method(registry, {"variant": variant})
    method.network.eval()
    images = torch.rand(3, 3, 64, 32)
    emb = method.embed(images)
    assert emb.shape == (3, 256)
    direct = torch.cat(method.network.embeddings(images), 1)
    flipped = torch.cat(method.network.embeddings(images.flip(3)), 1)
    if variant == "plain":
        assert torch.allclose(emb, direct)
    else:
        assert torch.allclose(emb, (direct + flipped) / 2, atol=1e-6)
        assert torch.allclose(method.embed(images.flip(3)), emb, atol=1e-6)


def test_recipe_losses_are_used(registry):
    losses = [{"name": "triplet", "soft_margin": True}, {"name": "flipping", "weight": 0.5}]
    method = make_method(registry, losses=losses)
    assert method.losses.names == ["triplet", "flipping"] and method.losses.weights == [1.0, 0.5]


def test_flipping_loss_without_flip_structure_is_refused(registry, tmp_path):
    with pytest.raises(RecipeError, match=r"\$\.losses\[1\]\.name: the flipping loss needs"):
        validated(tmp_path, '[method]\nname = "flipreid"\nvariant = "plain"\n'
                            '[[losses]]\nname = "triplet"\n[[losses]]\nname = "flipping"\n')
    with pytest.raises(ReidError, match="flipping loss needs the flip structure"):
        make_method(registry, {"variant": "flip_tta"}, losses=[{"name": "flipping"}])


def test_engine_freeze_is_refused(tmp_path):
    with pytest.raises(RecipeError, match=r"\$\.train\.freeze_epochs: flipreid freezes"):
        validated(tmp_path, '[method]\nname = "flipreid"\n[train]\nfreeze_epochs = 3\n')


def test_not_a_resnet_backbone(registry):
    class TinyCNNContext(MethodContext):
        def build_backbone(self, default="timm"):
            net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3))
            net.feature_dim = 8
            return net

    recipe = resolved(registry, {})
    context = TinyCNNContext(recipe=recipe, registry=registry, num_classes=2)
    with pytest.raises(ReidError, match="ResNet-style backbone with stages layer1..layer4"):
        registry.get("method", "flipreid").create(recipe.method.config, context=context)
