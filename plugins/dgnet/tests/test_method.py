"""The dgnet method on a tiny network: gradient routing asserted on .grad, the frozen
copies, the optimizers and the step's updates, the embedding, and the teacher's errors."""

import pytest
import torch
from conftest import make_batch, make_context, make_dgnet, tiny_recipe
from reidcore.testing import step_optimizers

AFTER_WARMUP = 100_000  # every ramp at its maximum


def grads(module):
    """Sum of |grad| over the module's parameters (None counts as 0)."""
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def zero(dgnet):
    for module in (*dgnet.modules().values(), *(m for m in (dgnet._ea_frozen,
                                                            dgnet._es_frozen) if m)):
        for param in module.parameters():
            param.grad = None


def routed(dgnet, term, step=AFTER_WARMUP, batch=None):
    """Backward one generator-step term alone; return |grad| per network."""
    from reid_plugin_dgnet.schedule import loss_weights

    batch = batch or make_batch()
    for module in dgnet.modules().values():
        module.train()
    out = dgnet.forward(batch["images"], batch["second"]["images"], batch["positives"],
                        batch["second"]["positives"])
    with step_optimizers(dgnet, dgnet.context).frozen(dgnet.discriminator):
        terms = dgnet.generator_terms(out, batch["pids"], batch["second"]["pids"],
                                      loss_weights(dgnet.config, step))
        zero(dgnet)
        if terms[term].requires_grad:
            terms[term].backward()
    result = {name: grads(module) for name, module in dgnet.modules().items()}
    result["ea_heads"] = grads(dgnet.ea.primary) + grads(dgnet.ea.fine)
    result["ea_frozen"] = grads(dgnet._ea_frozen) if dgnet._ea_frozen else 0.0
    result["es_frozen"] = grads(dgnet._es_frozen) if dgnet._es_frozen else 0.0
    return result, terms[term]


@pytest.fixture(scope="module")
def dgnet(registry):
    return make_dgnet(registry)


def test_image_reconstruction_trains_es_and_g_not_ea_or_d(dgnet):
    for term in ("recon_x", "recon_xp", "adv"):
        g, _ = routed(dgnet, term)
        assert g["es"] > 0 and g["decoder"] > 0, term
        assert g["ea"] == 0 and g["discriminator"] == 0, term


def test_identity_on_real_images_trains_only_ea(dgnet):
    for term in ("id", "pid", "id_fine"):
        g, _ = routed(dgnet, term)
        assert g["ea"] > 0 and g["ea_heads"] > 0, term
        assert g["es"] == g["decoder"] == g["discriminator"] == 0, term


def test_identity_on_generated_images_trains_g_through_the_frozen_ea(dgnet):
    g, _ = routed(dgnet, "recon_id")
    assert g["decoder"] > 0 and g["es"] > 0
    assert g["ea"] == 0 and g["ea_frozen"] == 0  # the copy's weights never learn


def test_teacher_and_fine_terms_train_only_ea_on_detached_images(dgnet):
    for term in ("teacher", "fine"):
        g, value = routed(dgnet, term)
        assert value.item() > 0, term
        assert g["ea_heads"] > 0 and g["ea"] > 0, term
        assert g["es"] == g["decoder"] == g["discriminator"] == 0, term


def test_teacher_terms_are_off_during_the_warm_up(dgnet):
    _, value = routed(dgnet, "teacher", step=0)
    assert value.item() == 0 and not value.requires_grad


def test_appearance_code_reconstruction_carries_no_gradient(dgnet):
    g, value = routed(dgnet, "recon_f")
    assert value.item() > 0 and not value.requires_grad
    assert all(v == 0 for v in g.values())


def test_structure_reconstruction_routing_in_both_branches(registry):
    again = make_dgnet(registry, {"encoder_again": 1.0})  # Es on detached images
    g, _ = routed(again, "recon_s")
    assert g["es"] > 0 and g["decoder"] == 0 and g["ea"] == 0
    frozen = make_dgnet(registry, {"encoder_again": 0.0})  # frozen Es on live images
    g, _ = routed(frozen, "recon_s")
    assert g["decoder"] > 0 and g["es_frozen"] == 0 and g["ea"] == 0


def test_cycle_trains_g(registry):
    dgnet = make_dgnet(registry, {"encoder_again": 0.0})
    g, value = routed(dgnet, "cycle")
    assert value.item() > 0 and g["decoder"] > 0 and g["ea"] == 0


def test_discriminator_loss_trains_only_d(dgnet):
    batch = make_batch()
    out = dgnet.forward(batch["images"], batch["second"]["images"], batch["positives"],
                        batch["second"]["positives"])
    loss, r1 = dgnet.discriminator_loss(out)
    zero(dgnet)
    loss.backward()
    assert grads(dgnet.discriminator) > 0 and r1.item() > 0
    assert grads(dgnet.ea) == grads(dgnet.es) == grads(dgnet.decoder) == 0


def test_frozen_ea_is_one_copy_kept_in_sync_with_bn_on_batch_statistics(registry):
    dgnet = make_dgnet(registry)
    optim = step_optimizers(dgnet, dgnet.context)
    dgnet.training_step(make_batch(), 0, optim)
    copy = dgnet._ea_frozen
    dgnet.training_step(make_batch(seed=2), 1, optim)
    assert dgnet._ea_frozen is copy  # made once, not every iteration
    synced = dgnet.frozen_ea()
    for live, frozen in zip(dgnet.ea.parameters(), synced.parameters(), strict=True):
        assert torch.equal(live, frozen) and not frozen.requires_grad
    assert synced.primary.bn.training and not synced.primary.dropout.training
    assert not synced.training


def test_one_iteration_after_the_warm_up_updates_every_network(registry):
    dgnet = make_dgnet(registry)
    optim = step_optimizers(dgnet, dgnet.context)
    optim.track_gradients()
    before = {n: [p.detach().clone() for p in m.parameters()] for n, m in
              dgnet.modules().items()}
    metrics = dgnet.training_step(make_batch(), AFTER_WARMUP, optim)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in metrics.values())
    # losses stay on the device (no host sync per step); the ramped weights are floats
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad
               for k, v in metrics.items() if not k.startswith("weight/"))
    assert metrics["weight/prim"] == 2.0 and metrics["weight/fine"] == pytest.approx(0.4)
    for name, module in dgnet.modules().items():
        moved = any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters(),
                                                          strict=True))
        assert moved, name
    assert set(optim.optimizers) == {"ea", "generator", "discriminator"}
    assert optim.untrained() == {}  # every parameter had a gradient when it stepped
    assert all(p.requires_grad for p in dgnet.discriminator.parameters())  # unfrozen after


class Recorder:
    """Wraps a StepOptimizers: the optimizers stepped and, at each step, whether D's
    parameters could take a gradient."""

    def __init__(self, optim, discriminator):
        self.optim, self.discriminator, self.calls = optim, discriminator, []

    def update(self, names, loss, **kwargs):
        names = [names] if isinstance(names, str) else list(names)
        d_trainable = any(p.requires_grad for p in self.discriminator.parameters())
        self.calls.append((names, d_trainable))
        self.optim.update(names, loss, **kwargs)

    def frozen(self, *modules):
        return self.optim.frozen(*modules)


def test_step_updates_d_then_g_and_ea_with_d_frozen(registry):
    """Lightning's GAN order: D from the detached generations, then Es + G and Ea in one
    update (G steps first, as the code did before the step received its optimizers)."""
    dgnet = make_dgnet(registry)
    recorder = Recorder(step_optimizers(dgnet, dgnet.context), dgnet.discriminator)
    dgnet.training_step(make_batch(), 0, recorder)
    assert recorder.calls == [(["discriminator"], True), (["generator", "ea"], False)]


def test_optimizers_follow_the_official_settings(registry):
    dgnet = make_dgnet(registry)
    opt = dgnet.configure_optimizers().optimizers
    ea = opt["ea"]
    assert isinstance(ea, torch.optim.SGD) and ea.defaults["nesterov"]
    assert [g["name"] for g in ea.param_groups] == ["backbone", "heads"]
    assert [g["lr"] for g in ea.param_groups] == [pytest.approx(0.002), pytest.approx(0.02)]
    assert ea.defaults["momentum"] == 0.9 and ea.defaults["weight_decay"] == 5e-4
    for name in ("generator", "discriminator"):
        assert isinstance(opt[name], torch.optim.Adam)
        assert opt[name].defaults["betas"] == (0.0, 0.999)
        assert opt[name].param_groups[0]["lr"] == pytest.approx(1e-4)
    gen_params = {id(p) for p in opt["generator"].param_groups[0]["params"]}
    assert {id(p) for p in dgnet.es.parameters()} <= gen_params


def test_learning_rates_follow_the_engine_clock(registry):
    dgnet = make_dgnet(registry, {"milestones": [3, 5]})
    optimization = dgnet.configure_optimizers()
    clock = dgnet.context.clock
    for _ in range(3):
        clock.advance()
    for scheduler in optimization.schedulers.values():
        scheduler.step()
    assert optimization.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(1e-5)
    assert optimization.optimizers["ea"].param_groups[1]["lr"] == pytest.approx(2e-3)


def test_embedding_is_two_normalised_flip_summed_halves(dgnet):
    torch.manual_seed(0)
    for module in dgnet.modules().values():
        module.eval()
    images = torch.randn(3, 3, 64, 32)
    embedding = dgnet.embed(images)
    assert embedding.shape == (3, 1024)
    assert torch.allclose(embedding[:, :512].norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(embedding[:, 512:].norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(embedding, dgnet.embed(images.flip(3)), atol=1e-5)  # flip-invariant
    normalize = torch.nn.functional.normalize
    primary, _ = dgnet.ea.features(images)
    primary_f, _ = dgnet.ea.features(images.flip(3))
    expected = normalize(normalize(primary) + normalize(primary_f))
    assert torch.allclose(embedding[:, :512], expected, atol=1e-6)


def test_swap_grid_is_written_by_the_run_context(registry, tmp_path):
    from PIL import Image

    dgnet = make_dgnet(registry, {"log_images_every": 1, "swap_images": 3})
    dgnet.context.run_dir = tmp_path
    dgnet.training_step(make_batch(), 0, step_optimizers(dgnet, dgnet.context))
    [png] = (tmp_path / "images" / "swap").glob("*.png")
    width, height = Image.open(png).size
    assert (width, height) == (4 * 32 + 5 * 2, 4 * 64 + 5 * 2)  # (1 + 3) x (1 + 3) cells


def test_missing_teacher_says_how_to_train_it(registry, tmp_path):
    from reidcore.api import ReidError

    raw = tiny_recipe()
    raw["requires"] = {"teacher": {"recipe": "dgnet-teacher-synthetic"}}
    context = make_context(registry, raw)
    context.run_dir = tmp_path / "run"
    with pytest.raises(ReidError, match=r"reid run dgnet-teacher-synthetic"):
        registry.get("method", "dgnet").create(context.recipe.method.config, context=context)


def test_teacher_path_that_is_not_a_run(registry, tmp_path):
    from reidcore.api import ReidError

    context = make_context(registry, tiny_recipe({"teacher": str(tmp_path / "nothing")}))
    context.run_dir = tmp_path / "run"
    with pytest.raises(ReidError, match="DG-Net needs a trained teacher.*reid run"):
        registry.get("method", "dgnet").create(context.recipe.method.config, context=context)


class FakeRun:
    """What context.load_run returns, around a baseline-shaped network."""

    def __init__(self, registry, classes, height=64, method="baseline"):
        from reidcore.testing import method_context

        example = {"backbone": {"name": "timm", "model": "resnet18"},
                   "loader": {"height": height, "width": 32}}
        self.recipe = method_context(registry.get("method", "baseline"), example).recipe
        self.recipe.method.name = method
        backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(16))
        network = torch.nn.Module()
        network.backbone, network.embedding = backbone, None
        network.neck = torch.nn.BatchNorm1d(16)
        network.classifier = torch.nn.Module()
        network.classifier.fc = torch.nn.Linear(16, classes)
        network.classifier.forward = network.classifier.fc.forward
        self.networks = {"network": network}
        self.run_dir = "runs/teacher"

    def __getitem__(self, name):
        return self.networks[name]


def test_incompatible_teachers_are_clear_errors(registry):
    from reidcore.api import ReidError

    from reid_plugin_dgnet.teacher import load_teacher

    context = make_context(registry, tiny_recipe(), num_classes=3)
    context.load_run = lambda ref: FakeRun(registry, classes=5)
    with pytest.raises(ReidError, match="classifies 5 identities but this run trains on 3"):
        load_teacher(context, "teacher", "train")
    context.load_run = lambda ref: FakeRun(registry, classes=3, height=128)
    with pytest.raises(ReidError, match="loader.height = 128"):
        load_teacher(context, "teacher", "train")
    context.load_run = lambda ref: FakeRun(registry, classes=3, method="cut_reid")
    with pytest.raises(ReidError, match="'cut_reid' run"):
        load_teacher(context, "teacher", "train")
    context.load_run = lambda ref: FakeRun(registry, classes=3)
    teacher = load_teacher(context, "teacher", "train")
    logits = teacher.logits(torch.randn(4, 3, 64, 32))
    assert logits.shape == (4, 3) and not logits.requires_grad
    neck = teacher.networks[0].neck
    assert neck.training  # the official train_bn: batch statistics
