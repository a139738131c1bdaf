"""Multi-stage runs: a recipe declares the runs its method loads (``[requires.<role>]``),
``reid run`` trains what is missing first, and the method gets it frozen with
``context.load_run`` — exercised the way DG-Net uses its teacher."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import tomli_w
import torch
from torch import nn

from reidcore.api import (
    ComponentSpec,
    MethodContext,
    Optimization,
    ReidError,
    StepOptimizers,
    hookimpl,
)
from reidcore.engine import checkpoint as ckpt
from reidcore.engine.chain import run_chain
from reidcore.engine.rundir import RunDirectory
from reidcore.engine.runs import MissingRunError
from reidcore.plugins import load_plugins
from reidcore.recipe import load_recipe
from tests.engine.conftest import tiny_recipe_dict


@attrs.define
class DistillConfig:
    pass


class Distill:
    """A student backbone regressed onto a frozen teacher run's embeddings."""

    def __init__(self, config: DistillConfig, context: MethodContext):
        self.context = context
        self.student = context.build_backbone()
        self.teacher = None if context.meta else context.load_run("teacher", ["network"])

    def modules(self) -> Mapping[str, nn.Module]:
        return {"student": self.student}

    def configure_optimizers(self) -> Optimization:
        return Optimization({"main": self.context.make_optimizer(
            {"student": self.student.parameters()})})

    def training_step(self, batch: Mapping[str, Any], step: int,
                      optim: StepOptimizers) -> dict[str, torch.Tensor]:
        (images,) = self.context.inputs(batch, "images")
        target = self.teacher.embed(images)
        loss = nn.functional.mse_loss(self.student(images), target)
        optim.update("main", loss)
        return {"loss": loss.detach()}

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.student(images)


class DistillPlugin:
    @hookimpl
    def reid_methods(self) -> list[ComponentSpec]:
        return [ComponentSpec(name="distill", kind="method", config=DistillConfig,
                              build=Distill)]


@pytest.fixture
def plugins() -> Any:
    return load_plugins(extra=[("distill-test", DistillPlugin())])


def write_recipes(folder: Path, cache: Path) -> Path:
    teacher = tiny_recipe_dict(cache, epochs=2, eval_every=2)
    teacher["name"] = "teacher"
    (folder / "teacher.toml").write_text(tomli_w.dumps(teacher))
    student = tiny_recipe_dict(cache, epochs=1)
    student.update(name="student", method={"name": "distill"}, losses=[],
                   requires={"teacher": {"recipe": "teacher.toml"}})
    student["train"]["ranked_pictures"] = 0
    (folder / "student.toml").write_text(tomli_w.dumps(student))
    return folder / "student.toml"


def teacher_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return ckpt.read(ckpt.latest(run_dir / "checkpoints"))["modules"]["network"]


def test_a_chain_trains_the_teacher_first_then_resumes_a_killed_one(engine_cache, tmp_path,
                                                                  plugins):
    path, recipe = load_recipe(write_recipes(tmp_path, engine_cache), plugins)
    run_dir = tmp_path / "runs" / "student"
    summary = run_chain(recipe, plugins, run_dir, recipe_name="student", source=path,
                        quiet=True)
    teacher = RunDirectory(run_dir).requirement("teacher")
    teacher_dir = teacher.path
    assert teacher_dir == tmp_path / "runs" / "student-teacher"
    assert teacher.completed and RunDirectory(run_dir).completed
    assert summary["status"] == "completed"
    reference = teacher_weights(teacher_dir)

    # a chain killed after the teacher's first epoch: the teacher resumes, then the student
    (teacher_dir / "checkpoints" / "epoch-0002.pt").unlink()
    (teacher_dir / "summary.json").unlink()
    shutil.rmtree(run_dir)
    run_chain(recipe, plugins, run_dir, recipe_name="student", source=path, quiet=True)
    again = teacher_weights(teacher_dir)
    assert ckpt.latest(teacher_dir / "checkpoints").name == "epoch-0002.pt"
    for key, value in reference.items():
        assert torch.equal(value, again[key]), f"resumed teacher differs at {key}"

    # the frozen teacher: eval mode, no gradients, its run's weights
    context = MethodContext(recipe=recipe, registry=plugins.registry, num_classes=8,
                            run_dir=run_dir)
    teacher = context.load_run("teacher", ["network"])
    network = teacher["network"]
    assert not network.training
    assert not any(p.requires_grad for p in network.parameters())
    for key, value in network.state_dict().items():
        assert torch.equal(value, again[key])

    # a teacher directory made from another recipe is never reused
    _, changed = load_recipe(path, plugins)
    changed.requires["teacher"].set = ["train.lr=0.5"]
    with pytest.raises(ReidError, match=r"different recipe \(differing keys: train.lr\)"):
        run_chain(changed, plugins, run_dir, recipe_name="student", source=path, quiet=True)


def test_a_missing_teacher_says_which_recipe_to_run(engine_cache, tmp_path, plugins):
    path, recipe = load_recipe(write_recipes(tmp_path, engine_cache), plugins)
    context = MethodContext(recipe=recipe, registry=plugins.registry, num_classes=8,
                            run_dir=tmp_path / "runs" / "student")
    with pytest.raises(MissingRunError) as error:
        context.load_run("teacher")
    message = str(error.value)
    assert "required run 'teacher' is missing" in message
    assert f"reid run teacher.toml --out {tmp_path / 'runs' / 'student-teacher'}" in message
    with pytest.raises(MissingRunError, match="no run directory or checkpoint at"):
        context.load_run(tmp_path / "nowhere")


def test_requirements_that_require_each_other_are_refused(tmp_path, plugins):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('[method]\nname = "baseline"\n[requires.b]\nrecipe = "b.toml"\n')
    b.write_text('[method]\nname = "baseline"\n[requires.a]\nrecipe = "a.toml"\n')
    path, recipe = load_recipe(a, plugins)
    with pytest.raises(ReidError, match="recipes require each other in a circle"):
        run_chain(recipe, plugins, tmp_path / "run", source=path, quiet=True)


def test_a_bad_requirement_is_a_recipe_error(plugins, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[method]\nname = "baseline"\n[requires.teacher]\nrecipee = "x"\n')
    with pytest.raises(ReidError, match=r"\$.requires\[teacher\].recipee: unknown key "
                                        r"\(did you mean 'recipe'\?\)"):
        load_recipe(bad, plugins)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
