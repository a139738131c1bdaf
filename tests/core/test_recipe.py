import copy

import pytest

from reidcore.compat import tomllib
from reidcore.errors import RecipeError
from reidcore.recipe import apply_overrides, dumps, parse_override_value, resolve

from .fakes import VALID_RECIPE, fake_registry


def problems_of(raw, overrides=()):
    with pytest.raises(RecipeError) as info:
        resolve(raw, "r.toml", fake_registry(), overrides=overrides)
    return {p.path: p.message for p in info.value.problems}, str(info.value)


def test_valid_recipe_resolves_each_component_config():
    recipe = resolve(copy.deepcopy(VALID_RECIPE), "r.toml", fake_registry())
    assert recipe.backbone.config.last_stride == 1
    assert recipe.backbone.config.depth == 50  # default filled in
    assert recipe.losses[0].weight == 0.5 and recipe.losses[0].config.margin == 0.2
    assert [s.name for s in recipe.data.test] == ["fake_market", "fake_duke"]
    assert recipe.train.epochs == 3 and recipe.seed == 0
    assert recipe.evaluate.name == "fake_ranking"


def test_four_kinds_of_problem_are_reported_together_with_paths():
    raw = copy.deepcopy(VALID_RECIPE)
    raw["trian"] = {"epochs": 2}                       # unknown top-level key
    raw["data"]["source"][0]["name"] = "fake_markt"         # misspelled component name
    raw["backbone"]["depth"] = "fifty"                 # wrong type
    raw["backbone"]["last_stride"] = 3                 # out of range
    problems, message = problems_of(raw)
    assert set(problems) == {"$.trian", "$.data.source[0].name", "$.backbone.depth",
                             "$.backbone.last_stride"}
    assert "did you mean 'train'" in problems["$.trian"]
    source_name = problems["$.data.source[0].name"]
    assert "unknown dataset 'fake_markt' (did you mean 'fake_market'?)" in source_name
    assert "installed datasets: fake_duke, fake_market" in problems["$.data.source[0].name"]
    assert problems["$.backbone.depth"] == "expected one of 18, 50, got 'fifty'"
    assert problems["$.backbone.last_stride"] == "expected one of 1, 2, got 3"
    assert message.startswith("recipe r.toml has 4 problem(s):")


def test_unknown_option_key_gets_path_and_suggestion():
    raw = copy.deepcopy(VALID_RECIPE)
    raw["backbone"]["last_strid"] = 1
    problems, _ = problems_of(raw)
    assert "did you mean 'last_stride'" in problems["$.backbone.last_strid"]
    assert "expected one of: depth, last_stride, dropout" in problems["$.backbone.last_strid"]


def test_every_invalid_value_in_one_table_is_reported():
    raw = copy.deepcopy(VALID_RECIPE)
    raw["backbone"].update(last_stride=5, dropout=1.5)
    raw["losses"][0]["margin"] = -1.0
    problems, _ = problems_of(raw)
    assert problems["$.backbone.dropout"] == "expected a value <= 1.0, got 1.5"
    assert problems["$.losses[0].margin"] == "expected a value >= 0.0, got -1.0"
    assert "$.backbone.last_stride" in problems


@pytest.mark.parametrize(("value", "expected"), [
    ("3", "expected a number, got string '3'"),
    (True, "expected a number, got boolean True"),
])
def test_types_are_strict(value, expected):
    raw = copy.deepcopy(VALID_RECIPE)
    raw["losses"][0]["margin"] = value
    problems, _ = problems_of(raw)
    assert problems["$.losses[0].margin"] == expected


def test_integers_are_not_truncated_from_floats():
    raw = copy.deepcopy(VALID_RECIPE)
    raw["train"]["epochs"] = 2.5
    problems, _ = problems_of(raw)
    assert problems["$.train.epochs"] == "expected an integer, got number 2.5"


def test_an_int_is_accepted_where_a_float_is_expected():
    raw = copy.deepcopy(VALID_RECIPE)
    raw["losses"][0]["margin"] = 1
    assert resolve(raw, "r", fake_registry()).losses[0].config.margin == 1.0


def test_missing_method_and_missing_name():
    raw = copy.deepcopy(VALID_RECIPE)
    del raw["method"]
    del raw["backbone"]["name"]
    problems, _ = problems_of(raw)
    assert problems["$.method"] == "required key is missing"
    assert problems["$.backbone"] == "missing key 'name' (the component to use)"


def test_loss_weight_must_be_a_number():
    raw = copy.deepcopy(VALID_RECIPE)
    raw["losses"][0]["weight"] = "heavy"
    problems, _ = problems_of(raw)
    assert problems["$.losses[0]"] == "expected a number, got string 'heavy'"


def test_section_that_is_not_a_table():
    raw = copy.deepcopy(VALID_RECIPE)
    raw["backbone"] = "fakenet"
    problems, _ = problems_of(raw)
    assert problems["$.backbone"].startswith("expected a table")


def test_overrides_set_values_create_tables_and_index_arrays():
    raw = copy.deepcopy(VALID_RECIPE)
    assert apply_overrides(raw, ["backbone.last_stride=2", "seed=7", "loader.height=64",
                                 "losses[0].margin=0.5", "data.test.1.root=/x",
                                 "name=plain words"]) == []
    assert raw["backbone"]["last_stride"] == 2 and raw["seed"] == 7
    assert raw["loader"] == {"height": 64}
    assert raw["losses"][0]["margin"] == 0.5
    assert raw["data"]["test"][1]["root"] == "/x"
    assert raw["name"] == "plain words"


def test_override_values_are_toml_and_errors_are_problems():
    assert parse_override_value("[1, 2]") == [1, 2]
    assert parse_override_value("true") is True
    assert parse_override_value("resnet50") == "resnet50"
    problems, _ = problems_of(copy.deepcopy(VALID_RECIPE),
                              overrides=["losses[4].margin=1", "nokey", "backbone.last_stride=9"])
    assert problems["$.losses[4]"].endswith("no such array item")
    assert problems["--set nokey"].startswith("expected KEY=VALUE")
    assert problems["$.backbone.last_stride"] == "expected one of 1, 2, got 9"


def test_resolved_recipe_round_trips_with_defaults_filled_in():
    recipe = resolve(copy.deepcopy(VALID_RECIPE), "r.toml", fake_registry())
    text = dumps(recipe)
    raw_again = tomllib.loads(text)
    assert raw_again["backbone"] == {"name": "fakenet", "depth": 50, "last_stride": 1,
                                     "dropout": 0.0}
    assert raw_again["losses"][0] == {"name": "fake_triplet", "weight": 0.5, "margin": 0.2,
                                      "soft": False}
    assert "cameras" not in raw_again["data"]["source"][0]  # None has no TOML form
    again = resolve(raw_again, "resolved.toml", fake_registry())
    assert dumps(again) == text


def test_cross_component_problems_come_from_the_validate_hook():
    from reidcore import hookimpl
    from reidcore.errors import RecipeProblem
    from reidcore.plugins import load_plugins

    from .fakes import FakePlugin, fake_specs

    class NeedsTestSet(FakePlugin):
        @hookimpl
        def reid_validate_recipe(self, recipe, registry):
            if not recipe.data.test:
                return [RecipeProblem("$.data.test", "fake_method needs a test set")]
            return []

    plugins = load_plugins(extra=[("fakes", NeedsTestSet(fake_specs()))])
    raw = copy.deepcopy(VALID_RECIPE)
    resolve(raw, "r", plugins.registry, plugins.hook)  # has test sets: fine
    raw["data"].pop("test")
    with pytest.raises(RecipeError) as info:
        resolve(raw, "r", plugins.registry, plugins.hook)
    assert [str(p) for p in info.value.problems] == ["$.data.test: fake_method needs a test set"]
