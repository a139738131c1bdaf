"""The cut_reid method: step order, joint training, optimizers and schedules (notes A.7),
the evaluation feature (A.8), recipe validation and the packaged recipes."""

from pathlib import Path

import pytest
import torch
from reidcore.api import RecipeError, ReidError
from reidcore.testing import (
    components_of,
    method_context,
    reid_cli,
    resolve_recipe,
    step_optimizers,
)

from reid_plugin_cut_reid.config import CutReidConfig
from reid_plugin_cut_reid.method import CutReid, recipe_example


def context():
    """The contract example's context: small networks, 4 identities, CPU."""
    (spec,) = components_of("reid-plugin-cut-reid", ["method"])
    return method_context(spec, recipe_example())


def make(**options):
    torch.manual_seed(0)
    return CutReid(CutReidConfig(num_patches=16, reid_layers=[1, 1, 1], reid_width=8,
                                 **options), context())


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"images": torch.rand(4, 3, 64, 32, generator=g) * 2 - 1,
            "pids": torch.tensor([0, 0, 1, 1]),
            "target": {"images": torch.rand(4, 3, 64, 32, generator=g) * 2 - 1}}


def train_step(method, data=None, step=0, optim=None):
    """One ``training_step`` with the ``optim`` the engine would hand it (built from
    ``method.configure_optimizers()`` when not given); returns (metrics, optim)."""
    optim = optim if optim is not None else step_optimizers(method, method.context)
    return method.training_step(batch() if data is None else data, step, optim), optim


def record_steps(method):
    """An ``optim`` for ``method`` whose optimizers record their steps in ``order``."""
    optim, order = step_optimizers(method, method.context), []
    for name, optimizer in optim.optimizers.items():
        original = optimizer.step

        def step(*args, _name=name, _original=original, **kwargs):
            order.append(_name)
            return _original(*args, **kwargs)

        optimizer.step = step
    return optim, order


def test_training_step_runs_g_step_then_d_step():
    method = make()
    optim, order = record_steps(method)
    metrics, _ = train_step(method, optim=optim)
    assert order == ["translator", "nce", "reid", "discriminator"]
    expected = {"loss", "loss/gen", "loss/sim", "loss/nce", "loss/reid_ce", "accuracy",
                "loss/generator", "loss/d_real", "loss/d_fake", "loss/d_sim",
                "loss/discriminator"}
    assert expected <= set(metrics)
    # 0-d tensors, detached (the engine sums them on the device: no host sync per step)
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad
               and torch.isfinite(v) for v in metrics.values())


def test_without_guide_the_reid_branch_steps_last_on_detached_features():
    method = make(guide_gen=False)
    optim, order = record_steps(method)
    train_step(method, optim=optim)
    assert order == ["translator", "nce", "discriminator", "reid"]


def test_every_parameter_of_every_optimizer_gets_a_gradient():
    # the contract's check, for both update orders (the contract example runs guide_gen)
    for guide in (True, False):
        method = make(guide_gen=guide)
        optim = step_optimizers(method, method.context)
        optim.track_gradients()
        train_step(method, optim=optim)
        assert optim.untrained() == {}, guide


@pytest.mark.parametrize("guide", [True, False])
def test_reid_loss_reaches_the_encoder_only_with_guide(guide):
    # every weight but the re-ID one is 0: the encoder's gradient is the re-ID loss's
    method = make(guide_gen=guide, weight_gen=0.0, weight_dis=0.0, weight_nce=0.0,
                  weight_sim=0.0)
    train_step(method)
    grads = [p.grad for p in method.translator.encoder.parameters()]
    norm = sum(float(g.abs().sum()) for g in grads if g is not None)
    assert (norm > 0) == guide


def test_without_translation_only_the_reid_loss_trains_encoder_and_branch():
    """translation = false (the clean ablation): only the translator's and the re-ID
    branch's optimizers step; the decoder, discriminator and NCE heads get no gradient and
    keep their weights; the encoder's gradient is the re-ID loss's, i.e. the one of a full
    step whose other loss weights are all 0 (same weights, same batch)."""
    method = make(translation=False)
    optim, order = record_steps(method)
    before = {name: [p.detach().clone() for p in module.parameters()]
              for name, module in (("decoder", method.translator.decoder),
                                   ("discriminator", method.discriminator),
                                   ("nce", method.nce), ("encoder", method.translator.encoder),
                                   ("reid", method.reid))}
    metrics, _ = train_step(method, optim=optim)
    assert order == ["translator", "reid"]
    assert set(metrics) == {"loss", "loss/reid_ce", "accuracy"}
    for name in ("decoder", "discriminator", "nce"):
        module = {"decoder": method.translator.decoder, "discriminator": method.discriminator,
                  "nce": method.nce}[name]
        assert all(p.grad is None for p in module.parameters()), name
        assert all(torch.equal(a, b) for a, b in zip(before[name], module.parameters(),
                                                      strict=True)), name
    for name, module in (("encoder", method.translator.encoder), ("reid", method.reid)):
        assert any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters(),
                                                          strict=True)), name
    # the decoder is frozen for the update only (not averaged over processes either)
    assert all(p.requires_grad for p in method.translator.decoder.parameters())
    reference = make(weight_gen=0.0, weight_dis=0.0, weight_nce=0.0, weight_sim=0.0)
    train_step(reference)
    for a, b in zip(method.translator.encoder.parameters(),
                    reference.translator.encoder.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-7)
    with pytest.raises(ReidError, match="guide_gen"):
        make(translation=False, guide_gen=False)


def test_discriminator_is_not_updated_by_the_generator_loss():
    method = make()
    optim = step_optimizers(method, method.context)
    d_opt = optim["discriminator"]
    seen = {}
    original = d_opt.zero_grad

    def zero_grad(*args, **kwargs):
        # just before the D step: the G step must have left no gradient on D
        seen["grads"] = [p.grad for p in method.discriminator.parameters()]
        return original(*args, **kwargs)

    d_opt.zero_grad = zero_grad
    train_step(method, optim=optim)
    assert all(g is None for g in seen["grads"])
    # and D is trainable again after the G step's freeze
    assert all(p.requires_grad for p in method.discriminator.parameters())


def test_identity_nce_option_adds_a_term():
    method = make(weight_idt=0.5)
    metrics, _ = train_step(method)
    assert "loss/idt" in metrics and metrics["loss/idt"] > 0


def test_optimizers_follow_the_notes():
    method = make()
    opt = method.configure_optimizers().optimizers
    assert set(opt) == {"translator", "discriminator", "nce", "reid"}
    for name in ("translator", "discriminator", "reid"):
        (group,) = opt[name].param_groups
        assert isinstance(opt[name], torch.optim.Adam)
        assert group["name"] == name and group["lr"] == 2e-4
        assert group["betas"] == (0.5, 0.999) and group["eps"] == 1e-8
        assert group["weight_decay"] == 5e-4 and not group["amsgrad"]
    (heads,) = opt["nce"].param_groups
    assert isinstance(opt["nce"], torch.optim.Adam) and heads["lr"] == 2e-4
    assert heads["betas"] == (0.5, 0.99) and heads["weight_decay"] == 5e-3
    # the BNNeck bias is frozen and left out
    reid_params = {id(p) for p in opt["reid"].param_groups[0]["params"]}
    assert id(method.reid.neck.bias) not in reid_params


@pytest.mark.parametrize("epoch, main, reid", [(0, 2e-4, 2e-4), (29, 2e-4, 2e-4),
                                               (30, 2e-4, 2e-5), (39, 2e-4, 2e-5),
                                               (40, 2e-5, 2e-6), (59, 2e-5, 2e-6)])
def test_schedules_step_per_epoch(epoch, main, reid):
    method = make()
    optimization = method.configure_optimizers()
    method.context.clock.start_epoch(epoch, 10)
    for scheduler in optimization.schedulers.values():
        scheduler.step()
    lrs = {n: o.param_groups[0]["lr"] for n, o in optimization.optimizers.items()}
    assert lrs["translator"] == pytest.approx(main)
    assert lrs["discriminator"] == pytest.approx(main)
    assert lrs["nce"] == pytest.approx(main)
    assert lrs["reid"] == pytest.approx(reid)


def test_embedding_adds_the_flipped_images_feature():
    method = make()
    for module in method.modules().values():
        module.eval()
    images = batch()["images"]
    summed = method.embed(images)
    method.config.eval_flip = False
    single = method.embed(images)
    flipped = method.embed(images.flip(3))
    assert summed.shape == (4, 8 * 4 * 4)
    assert torch.allclose(summed, single + flipped, atol=1e-5)


def test_translate_is_the_translator_in_the_inputs_tanh_space():
    """The proving ground's TranslatesStyle capability: the translator's output, same shape,
    in the loader's [-1, 1] (tanh) space the inputs come in, without gradients."""
    from reidcore.api import TranslatesStyle

    method = make()
    assert isinstance(method, TranslatesStyle)
    images = batch()["images"]
    out = method.translate(images)
    assert out.shape == images.shape and not out.requires_grad
    assert out.abs().max() <= 1.0
    with torch.no_grad():
        assert torch.equal(out, method.translator(images))
    assert not torch.allclose(out, images)


def test_translation_grid_is_logged_at_the_end_of_every_nth_epoch(tmp_path):
    import attrs
    from PIL import Image

    method = make(log_images_every=2)
    context = method.context
    context.run_dir = tmp_path
    context.recipe = attrs.evolve(context.recipe,
                                  train=attrs.evolve(context.recipe.train, epochs=3))
    optim = step_optimizers(method, context)
    step = 0
    for epoch in range(3):  # as the engine moves the clock: 2 steps per epoch
        context.clock.start_epoch(epoch, 2)
        for _ in range(2):
            train_step(method, batch(step), step, optim)
            context.clock.advance()
            step += 1
    grids = sorted(p.name for p in (tmp_path / "images" / "translations").glob("*.png"))
    assert grids == ["step-0000004.png", "step-0000006.png"]  # epoch 2, and the last (3)
    with Image.open(tmp_path / "images" / "translations" / grids[0]) as image:
        # 4 columns and 3 rows (source, translated, target) of 64x32 images, padding 2
        assert image.size == (4 * (32 + 2) + 2, 3 * (64 + 2) + 2)


def test_contract_example_recipe_passes_the_plugins_validation():
    raw = {**recipe_example(), "method": {"name": "cut_reid", **recipe_example()["method"]}}
    assert resolve(raw).method.name == "cut_reid"


# --- recipes ----------------------------------------------------------------------------------

RECIPES = Path(__file__).resolve().parents[1] / "reid_plugin_cut_reid" / "recipes"


def resolve(raw, overrides=()):
    return resolve_recipe(raw, overrides)


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.stem)
def test_packaged_recipes_are_valid(path):
    recipe = resolve_recipe(path)
    assert recipe.name == path.stem
    assert reid_cli("check", path) == 0


def test_baseline_recipe_evaluates_with_flip():
    """The authors' baseline config evaluates with flip TTA (eval_flip: True)."""
    recipe = resolve_recipe(RECIPES / "gta2market-baseline.toml")
    assert recipe.evaluate.config.flip is True and recipe.evaluate.config.metric == "euclidean"


def test_expected_recipes_are_packaged():
    assert {p.stem for p in RECIPES.glob("*.toml")} >= {
        "cut-reid-gta2market", "cut-reid-gta2duke", "cut-reid-gta2cuhk03",
        "gta2market-baseline", "cut-reid-synthetic"}


def test_validation_reports_every_cut_reid_problem():
    raw = {"method": {"name": "cut_reid"},
           "generators": {"translator": {"name": "patch_discriminator"},
                          "painter": {"name": "resnet_generator"}},
           "losses": [{"name": "lsgan"}],
           "data": {"source": [{"name": "synthetic"}]},
           "evaluate": {"name": "ranking", "flip": True}}
    with pytest.raises(RecipeError) as info:
        resolve(raw)
    paths = {p.path for p in info.value.problems}
    assert paths == {"$.data.target", "$.loader.normalize", "$.losses",
                     "$.generators.translator.name", "$.generators.painter",
                     "$.evaluate.flip"}
    # the evaluator's flip is refused only while the method adds the flip itself
    raw = {**recipe_example(), "method": {"name": "cut_reid", "eval_flip": False},
           "evaluate": {"name": "ranking", "flip": True}}
    assert resolve(raw).evaluate.config.flip is True


@pytest.mark.parametrize("key, value", [
    ("lr", "0.1"), ("optimizer", "sgd"), ("weight_decay", "0.01"), ("momentum", "0.5"),
    ("schedule", "cosine"), ("schedule_by", "step"), ("milestones", "[2]"), ("gamma", "0.5"),
    ("min_lr_factor", "0.1"), ("warmup_epochs", "1"), ("warmup_factor", "0.5")])
def test_train_optimization_keys_are_refused_naming_the_methods_own(key, value):
    """cut_reid builds its optimizers and schedules from [method]: every [train]
    optimization key is refused (never silently ignored), naming method.* instead."""
    raw = {**recipe_example(), "method": {"name": "cut_reid"}}
    with pytest.raises(RecipeError) as info:
        resolve(raw, [f"train.{key}={value}"])
    (problem,) = info.value.problems
    assert problem.path == f"$.train.{key}"
    assert "method.lr" in problem.message and "method.milestones" in problem.message


def test_train_settings_the_engine_applies_still_reach_the_optimizers():
    """train.lr_mult (per optimizer name) applies on top of method.lr."""
    context = method_context(components_of("reid-plugin-cut-reid", ["method"])[0],
                             {**recipe_example(), "train": {"lr_mult": {"nce": 0.5}}})
    method = CutReid(CutReidConfig(num_patches=16, reid_layers=[1, 1, 1], reid_width=8),
                     context)
    opt = method.configure_optimizers().optimizers
    assert opt["nce"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert opt["translator"].param_groups[0]["lr"] == 2e-4


def test_paper_recipe_builds_the_paper_networks(capsys):
    # `reid check --build` builds the method on the meta device: every count of the notes
    # (A.10 check 1) for the GTASynthReid recipe, 538 source identities
    import json

    assert reid_cli("check", "cut-reid-gta2market", "--build", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_classes"] == 538
    assert report["modules"] == {
        "translator": 11_375_235, "translator.encoder": 10_997_184,
        "translator.decoder": 378_051, "discriminator": 2_763_841,
        "discriminator.model": 2_763_841, "nce": 560_384, "nce.heads": 560_384,
        "reid": 24_389_146, "reid.stages": 23_282_688, "reid.neck": 4_096,
        "reid.classifier": 1_102_362}
    assert report["total"] - report["trainable"] == 2_048  # the frozen BNNeck bias


def test_benchmark_clean_arm_is_the_recipe_without_translation():
    """benchmarks/synthetic_transfer.py's ``no_translation`` arm is the cut-reid-synthetic
    recipe with ``method.translation = false`` and nothing else changed (but its name)."""
    import importlib.util

    import attrs

    path = RECIPES.parents[1] / "benchmarks" / "synthetic_transfer.py"
    spec = importlib.util.spec_from_file_location("synthetic_transfer", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    arms = bench.arms(bench.raw_recipe())
    cut, clean = (resolve(arms[name]) for name in ("cut_reid", "no_translation"))
    assert cut.method.config.translation is True and clean.method.config.translation is False
    assert attrs.evolve(clean.method.config, translation=True) == cut.method.config
    raw = {**arms["no_translation"], "name": arms["cut_reid"]["name"],
           "method": {k: v for k, v in arms["no_translation"]["method"].items()
                      if k != "translation"}}
    assert raw == arms["cut_reid"]
    assert attrs.evolve(clean, name=cut.name, method=cut.method) == cut


def test_translation_evidence_long_recipe_is_the_shipped_one_ten_times_longer():
    """benchmarks/translation_evidence.py's ``long`` budget changes recipe options only:
    10 -> 100 epochs with every milestone x10 (8 -> 80; 6, 8 -> 60, 80), evaluation and
    image logging less often; the networks, losses and optimiser settings stay the same."""
    import importlib.util

    import attrs

    path = RECIPES.parents[1] / "benchmarks" / "translation_evidence.py"
    spec = importlib.util.spec_from_file_location("translation_evidence", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.RECIPES["shipped"] == []
    shipped = resolve_recipe("cut-reid-synthetic")
    long = resolve_recipe("cut-reid-synthetic", bench.RECIPES["long"])
    assert (shipped.train.epochs, long.train.epochs) == (10, 100)
    s, lg = shipped.method.config, long.method.config
    assert (s.milestones, lg.milestones) == ([8], [80])
    assert (s.reid_milestones, lg.reid_milestones) == ([6, 8], [60, 80])
    assert attrs.evolve(lg, milestones=s.milestones, reid_milestones=s.reid_milestones,
                        log_images_every=s.log_images_every) == s
    assert attrs.evolve(long.train, epochs=10, eval_every=shipped.train.eval_every) \
        == shipped.train
    assert (long.generators, long.data, long.loader) == \
        (shipped.generators, shipped.data, shipped.loader)
