"""A run made before a recipe key existed is still the same recipe: the key it lacks counts
as its default (a teacher trained before ``train.mechanism_samples`` is reused, a run
resumes), while a real difference is still found."""

from __future__ import annotations

import attrs

from reidcore.engine.rundir import RunDirectory
from reidcore.plugins import get_plugins
from reidcore.recipe import dumps
from reidcore.testing import resolve_recipe


def test_a_key_added_later_is_its_default_not_a_difference(tmp_path):
    recipe = resolve_recipe("quickstart")
    written = "\n".join(line for line in dumps(recipe).splitlines()
                        if not line.startswith(("mechanism_samples", "mlflow")))
    assert "mechanism_samples" not in written
    (tmp_path / "recipe.toml").write_text(written + "\n")
    run = RunDirectory(tmp_path)
    registry = get_plugins().registry

    assert run.differs_from(recipe, registry) == []
    assert {c["key"] for c in run.differs_from(recipe)} == {"train.mechanism_samples",
                                                            "train.mlflow"}
    changed = attrs.evolve(recipe, train=attrs.evolve(recipe.train, lr=0.5))
    assert [c["key"] for c in run.differs_from(changed, registry)] == ["train.lr"]
    samples = attrs.evolve(recipe, train=attrs.evolve(recipe.train, mechanism_samples=0))
    assert [c["key"] for c in run.differs_from(samples, registry)] == [
        "train.mechanism_samples"]
