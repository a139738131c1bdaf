"""The cut_reid method: step order, joint training, optimizers and schedules (notes A.7),
the evaluation feature (A.8), recipe validation and the packaged recipes."""

from pathlib import Path

import pytest
import torch
from reidcore.api import RecipeError, ReidError
from reidcore.testing import components_of, method_context

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


def record_steps(method):
    order = []
    for name, optimizer in method.configure_optimizers().optimizers.items():
        original = optimizer.step

        def step(*args, _name=name, _original=original, **kwargs):
            order.append(_name)
            return _original(*args, **kwargs)

        optimizer.step = step
    return order


def test_training_step_runs_g_step_then_d_step():
    method = make()
    order = record_steps(method)
    metrics = method.training_step(batch(), 0)
    assert order == ["translator", "nce", "reid", "discriminator"]
    expected = {"loss", "loss/gen", "loss/sim", "loss/nce", "loss/reid_ce", "accuracy",
                "loss/generator", "loss/d_real", "loss/d_fake", "loss/d_sim",
                "loss/discriminator"}
    assert expected <= set(metrics)
    assert all(isinstance(v, float) and v == v for v in metrics.values())


def test_without_guide_the_reid_branch_steps_last_on_detached_features():
    method = make(guide_gen=False)
    order = record_steps(method)
    method.training_step(batch(), 0)
    assert order == ["translator", "nce", "discriminator", "reid"]


@pytest.mark.parametrize("guide", [True, False])
def test_reid_loss_reaches_the_encoder_only_with_guide(guide):
    # every weight but the re-ID one is 0: the encoder's gradient is the re-ID loss's
    method = make(guide_gen=guide, weight_gen=0.0, weight_dis=0.0, weight_nce=0.0,
                  weight_sim=0.0)
    method.configure_optimizers()
    method.training_step(batch(), 0)
    grads = [p.grad for p in method.translator.encoder.parameters()]
    norm = sum(float(g.abs().sum()) for g in grads if g is not None)
    assert (norm > 0) == guide


def test_without_translation_only_the_reid_loss_trains_encoder_and_branch():
    """translation = false (the clean ablation): only the translator's and the re-ID
    branch's optimizers step; the decoder, discriminator and NCE heads get no gradient and
    keep their weights; the encoder's gradient is the re-ID loss's, i.e. the one of a full
    step whose other loss weights are all 0 (same weights, same batch)."""
    method = make(translation=False)
    order = record_steps(method)
    before = {name: [p.detach().clone() for p in module.parameters()]
              for name, module in (("decoder", method.translator.decoder),
                                   ("discriminator", method.discriminator),
                                   ("nce", method.nce), ("encoder", method.translator.encoder),
                                   ("reid", method.reid))}
    metrics = method.training_step(batch(), 0)
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
    reference = make(weight_gen=0.0, weight_dis=0.0, weight_nce=0.0, weight_sim=0.0)
    reference.configure_optimizers()
    reference.training_step(batch(), 0)
    for a, b in zip(method.translator.encoder.parameters(),
                    reference.translator.encoder.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-7)
    with pytest.raises(ReidError, match="guide_gen"):
        make(translation=False, guide_gen=False)


def test_discriminator_is_not_updated_by_the_generator_loss():
    method = make()
    method.configure_optimizers()
    d_opt = method._optimization.optimizers["discriminator"]  # noqa: SLF001
    seen = {}
    original = d_opt.zero_grad

    def zero_grad(*args, **kwargs):
        # just before the D step: the G step must have left no gradient on D
        seen["grads"] = [p.grad for p in method.discriminator.parameters()]
        return original(*args, **kwargs)

    d_opt.zero_grad = zero_grad
    method.training_step(batch(), 0)
    assert all(g is None for g in seen["grads"])


def test_identity_nce_option_adds_a_term():
    method = make(weight_idt=0.5)
    metrics = method.training_step(batch(), 0)
    assert "loss/idt" in metrics and metrics["loss/idt"] > 0


def test_optimizers_follow_the_notes():
    method = make()
    opt = method.configure_optimizers().optimizers
    assert set(opt) == {"translator", "discriminator", "nce", "reid"}
    for name in ("translator", "discriminator", "reid"):
        group = opt[name].param_groups[0]
        assert isinstance(opt[name], torch.optim.Adam)
        assert group["lr"] == 2e-4 and group["betas"] == (0.5, 0.999)
        assert group["weight_decay"] == 5e-4
    heads = opt["nce"].param_groups[0]
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


def test_translation_grid_is_logged_at_the_end_of_every_nth_epoch(tmp_path):
    import attrs
    from PIL import Image

    method = make(log_images_every=2)
    context = method.context
    context.run_dir = tmp_path
    context.recipe = attrs.evolve(context.recipe,
                                  train=attrs.evolve(context.recipe.train, epochs=3))
    method.configure_optimizers()
    step = 0
    for epoch in range(3):  # as the engine moves the clock: 2 steps per epoch
        context.clock.start_epoch(epoch, 2)
        for _ in range(2):
            method.training_step(batch(step), step)
            context.clock.advance()
            step += 1
    grids = sorted(p.name for p in (tmp_path / "images" / "translations").glob("*.png"))
    assert grids == ["step-0000004.png", "step-0000006.png"]  # epoch 2, and the last (3)
    with Image.open(tmp_path / "images" / "translations" / grids[0]) as image:
        # 4 columns and 3 rows (source, translated, target) of 64x32 images, padding 2
        assert image.size == (4 * (32 + 2) + 2, 3 * (64 + 2) + 2)


def test_contract_example_recipe_passes_the_plugins_validation():
    from reidcore.plugins import get_plugins

    plugins = get_plugins()
    raw = {**recipe_example(), "method": {"name": "cut_reid", **recipe_example()["method"]}}
    assert resolve(raw, plugins).method.name == "cut_reid"


# --- recipes ----------------------------------------------------------------------------------

RECIPES = Path(__file__).resolve().parents[1] / "reid_plugin_cut_reid" / "recipes"


def resolve(raw, plugins=None):
    from reidcore.plugins import get_plugins
    from reidcore.recipe import resolve as resolve_recipe

    plugins = plugins or get_plugins()
    return resolve_recipe(raw, "test.toml", plugins.registry, plugins.hook)


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.stem)
def test_packaged_recipes_are_valid(path):
    from reidcore.api import load_recipe
    from reidcore.plugins import get_plugins

    _, recipe = load_recipe(path, get_plugins())
    assert recipe.name == path.stem


def test_baseline_recipe_evaluates_with_flip():
    """The authors' baseline config evaluates with flip TTA (eval_flip: True)."""
    from reidcore.api import load_recipe
    from reidcore.plugins import get_plugins

    _, recipe = load_recipe(RECIPES / "gta2market-baseline.toml", get_plugins())
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


def test_paper_recipe_builds_the_paper_networks(capsys):
    # `reid check --build` builds the method on the meta device: every count of the notes
    # (A.10 check 1) for the GTASynthReid recipe, 538 source identities
    import json

    from reidcore.cli import main

    assert main(["check", "cut-reid-gta2market", "--build", "--json"]) == 0
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

    from reidcore.plugins import get_plugins
    from reidcore.recipe import read_toml, to_dict

    path = RECIPES.parents[1] / "benchmarks" / "synthetic_transfer.py"
    spec = importlib.util.spec_from_file_location("synthetic_transfer", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    arms = bench.arms(read_toml(bench.RECIPE))
    plugins = get_plugins()
    cut, clean = (to_dict(resolve(arms[name], plugins)) for name in ("cut_reid", "no_translation"))
    assert cut["method"]["translation"] is True and clean["method"]["translation"] is False
    for recipe in (cut, clean):
        del recipe["name"], recipe["method"]["translation"]
    assert cut == clean
