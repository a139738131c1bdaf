"""The packaged recipes carry the notes' settings (C.4) and the recipe checks catch what
the san methods cannot train with (the plugin's own checks and the core's, from the
methods' MethodNeeds)."""

import pytest
from reidcore.api import RecipeError
from reidcore.testing import reid_cli, resolve_recipe

PAPER = {"san-cuhk03": "cuhk03", "san-market1501": "market1501"}


def load(name, overrides=()):
    return resolve_recipe(name, overrides)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_recipes_carry_the_readme_command(name):
    recipe = load(name)
    c, loader, train = recipe.method.config, recipe.loader, recipe.train
    assert recipe.method.name == "san" and c.decoder and c.textures == "san_pg"
    assert recipe.requires["san_pg"].recipe == "san-pg-pit"
    assert (c.lr, c.weight_decay, c.amsgrad, c.gamma) == (8e-4, 5e-4, True, 0.5)
    assert c.milestones == [40, 80, 120, 160, 200, 240, 280]
    assert (c.warmup_epochs, c.warmup_lr, c.warmup_growth) == (20, 8e-6, 1.259)
    assert (c.decoder_lr, c.decoder_beta1, c.decoder_beta2) == (1e-5, 0.5, 0.999)
    assert (c.embedding_dim, c.weight_rec, c.weight_tr) == (512, 1.0, 1.0)
    assert train.epochs == 320 and train.eval_every == 80 and recipe.seed == 1
    assert (recipe.backbone.config.model, recipe.backbone.config.last_stride) == ("resnet50", 1)
    assert (loader.height, loader.width, loader.identities, loader.instances) == (256, 128, 16, 4)
    assert (loader.texture_height, loader.texture_width) == (256, 256)
    assert (loader.translate, loader.flip, loader.erasing, loader.pad) == (0.5, 0.5, 0.5, 0)
    assert loader.test_batch_size == 100 and not loader.textures
    losses = {s.name: (s.weight, s.config) for s in recipe.losses}
    assert losses["cross_entropy"][1].label_smoothing == 0.1 and losses["triplet"][1].margin == 0.3
    assert recipe.evaluate.config.metric == "euclidean" and not recipe.evaluate.config.flip
    assert [s.name for s in recipe.data.source] == [PAPER[name]]
    if name == "san-cuhk03":
        assert recipe.data.source[0].config.images == "labeled"
        assert recipe.data.source[0].config.protocol == "new"


def test_san_pg_pit():
    recipe = load("san-pg-pit")
    assert recipe.method.name == "san_pg" and recipe.data.source[0].name == "pit"
    assert recipe.loader.textures and recipe.loader.flip == 0 and recipe.loader.erasing == 0
    assert (recipe.loader.texture_height, recipe.loader.texture_width) == (256, 256)


def test_inference_options_flip_and_cosine():
    recipe = load("san-synthetic", ["evaluate.flip=true", "evaluate.metric=cosine"])
    assert recipe.evaluate.config.flip and recipe.evaluate.config.metric == "cosine"


@pytest.mark.parametrize("overrides,where", [
    (["backbone.last_stride=2"], r"\$\.backbone\.last_stride"),
    (["loader.instances=2"], r"\$\.loader: san's L_TR"),
    (["method.textures=dataset"], r"\$\.loader\.textures: san with textures = \"dataset\""),
    (["method.textures=folder"], r"\$\.method\.texture_root"),
    (["method.san_pg=pg"], r"\$\.method\.san_pg: 'pg' is neither"),
])
def test_recipe_checks(overrides, where):
    with pytest.raises(RecipeError, match=where):
        load("san-synthetic", overrides)


def test_benchmark_arms_resolve():
    assert not load("san-synthetic", ["method.decoder=false"]).method.config.decoder
    recipe = load("san-synthetic", ["method.textures=dataset", "loader.textures=true"])
    assert recipe.method.config.textures == "dataset"


@pytest.mark.parametrize("overrides,where", [
    (["loader.textures=false"], r"\$\.loader\.textures: method 'san_pg' reads "
                                r"batch\[\"textures\"\]"),
    (['losses=[{name = "triplet"}]'], r"\$\.losses: method 'san_pg' takes no \[\[losses\]\]: "
                                      r"san_pg trains with L_Rec only"),
    (['generators.encoder={name = "sa_decoder"}'],
     r"\$\.generators\.encoder: method 'san_pg' has no generator role 'encoder'"),
])
def test_san_pg_recipe_checks(overrides, where):
    with pytest.raises(RecipeError, match=where):
        load("san-pg-synthetic", overrides)


@pytest.mark.parametrize("name,method,keys", [
    ("san-synthetic", "san", "method.lr / weight_decay / beta1"),
    ("san-pg-synthetic", "san_pg", "method.lr / beta1 / beta2"),
])
@pytest.mark.parametrize("override", ["train.lr=0.1", "train.optimizer=sgd",
                                      "train.schedule=cosine", "train.warmup_epochs=2",
                                      "train.weight_decay=0.1"])
def test_train_optimization_keys_are_refused(name, method, keys, override):
    """Both methods set their own optimizers and schedules: a [train] optimization key is
    refused, naming the method's own keys, never silently ignored."""
    key = override.split("=")[0]
    with pytest.raises(RecipeError, match=rf"\$\.{key}: method '{method}' does not read "
                                          rf"{key} .*{keys}"):
        load(name, [override])


@pytest.mark.parametrize("name", ["san-pg-pit", "san-cuhk03", "san-market1501", "san-synthetic",
                                  "san-pg-synthetic", "san-evidence-synthetic",
                                  "san-pg-evidence-synthetic"])
def test_check_build_offline(name, capsys):
    """``reid check NAME --build`` builds every packaged recipe on the meta device (no
    weights read, no data): SAN on CUHK03 = SA-Enc 24,951,615 + SA-Dec 9,071,075."""
    assert reid_cli("check", name, "--build") == 0
    out = capsys.readouterr().out
    if name == "san-cuhk03":
        assert "34,022,690" in out


def test_evidence_recipes_change_only_their_documented_options():
    """The evidence recipes (benchmarks/mechanism.py --recipe evidence) are the -synthetic
    ones with the options their header comments name: 400 training identities, the
    budget, the milestones, SAN's decoder LR and SAN-PG stage; networks, loader and test
    data unchanged."""
    for name, base in (("san-evidence-synthetic", "san-synthetic"),
                       ("san-pg-evidence-synthetic", "san-pg-synthetic")):
        evidence, shipped = load(name), load(base)
        assert evidence.data.source[0].config.ids == 400
        assert shipped.data.source[0].config.ids == 40
        assert evidence.data.test == shipped.data.test and evidence.loader == shipped.loader
        assert evidence.backbone == shipped.backbone
        assert evidence.generators == shipped.generators
    san, pg = load("san-evidence-synthetic"), load("san-pg-evidence-synthetic")
    assert san.requires["san_pg"].recipe == "san-pg-evidence-synthetic"
    assert (san.train.epochs, san.method.config.milestones) == (4, [2])
    assert (san.method.config.decoder_lr, san.method.config.warmup_epochs) == (6e-4, 1)
    assert (pg.train.epochs, pg.method.config.milestones, pg.method.config.lr) == (10, [8], 1e-3)
