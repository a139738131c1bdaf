"""Contract checks and test helpers for plugins and the core (``reidcore.testing``).

A plugin's tests and benchmarks import ``reidcore``, ``reidcore.api`` and this module,
nothing else of the core. The core's registry-wide contract test runs
:func:`check_component` over every component of every installed plugin (as timm tests
every model), so a plugin's own suite keeps only its "registers what my README lists"
test; to run the checks on one plugin alone::

    import pytest
    from reidcore.testing import check_component, components_of, spec_id

    @pytest.mark.parametrize("spec", components_of("reid-plugin-mine"), ids=spec_id)
    def test_contract(spec):
        check_component(spec)

What is checked, per kind (everything on the CPU, with tiny inputs):

* every kind: the default config round-trips through the recipe converter, and the
  component builds from it (``spec.create()``);
* backbone: ``forward_features`` gives ``B x C x H x W``, ``forward`` gives
  ``B x feature_dim``, outputs are finite, a gradient reaches every parameter, and a
  ``state_dict`` loaded into a second instance reproduces the outputs;
* generator, loss: the spec's ``example()`` returns the positional arguments of a forward
  call; outputs are finite, a gradient reaches every parameter, and the state_dict
  round-trips;
* evaluator: ``evaluate`` on random query/gallery features (or ``example()``'s pair)
  returns finite floats;
* dataset: the built object has ``load`` and ``expected`` (loading may need files);
* method: ``example()`` returns a small recipe for it as TOML-like data, e.g.
  ``{"backbone": {"name": "timm", "model": "resnet18"}}`` (the ``method`` table may be
  left out or give options), with optional keys beside the recipe's:
  ``"reid:num_classes"`` (default 4) and ``"reid:no_gradient"`` (``{label prefix:
  reason}``, parameters that legitimately get no gradient on the checked step, e.g.
  ``{"main": "phase A steps the 'frozen' optimizer only"}``). The check builds the method
  with a CPU context, checks ``embed``, runs ``configure_optimizers`` and one
  ``training_step`` on :func:`fake_batch`, and asks that every trainable parameter is in
  an optimizer and that every optimizer's parameters had a gradient when it stepped.

Helpers: :func:`installed_plugins`, :func:`resolve_recipe`, :func:`run_recipe` (train and
evaluate a recipe as ``reid run`` does), :func:`reid_cli` (the command line in-process),
:func:`write_checkpoint`, :func:`fake_batch`, :func:`method_context` /
:func:`tiny_context` / :func:`build_method` (a method or its context on the CPU),
:func:`step_optimizers` (the ``optim`` a training step receives).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reidcore.converter import structure, unstructure
from reidcore.registry import ComponentSpec, Kind, resolve_callable

IMAGE_SHAPE = (2, 3, 64, 32)


class ContractError(AssertionError):
    """A component that breaks its kind's contract."""


def spec_id(spec: ComponentSpec) -> str:
    """A readable pytest id: ``backbone-tiny_cnn``."""
    return f"{spec.kind.value}-{spec.name}"


def components_of(plugin: str, kinds: Iterable[Kind | str] | None = None) -> list[ComponentSpec]:
    """The installed components provided by ``plugin`` (plugin or distribution name)."""
    plugins = installed_plugins()
    info = next((i for i in plugins.infos if plugin in (i.name, i.distribution)), None)
    if info is None:
        names = ", ".join(i.distribution for i in plugins.infos)
        raise LookupError(f"no installed plugin named {plugin!r}; installed: {names}")
    if info.error:
        raise ContractError(f"plugin {info.label} failed to load: {info.error}")
    wanted = None if kinds is None else {Kind(k) for k in kinds}
    return [spec for spec in plugins.registry.specs()
            if spec.provider == info.label and (wanted is None or spec.kind in wanted)]


def check_component(spec: ComponentSpec) -> None:
    """Run every contract check that applies to ``spec``; raise ContractError on failure."""
    check_config_round_trip(spec)
    checks = {
        Kind.BACKBONE: check_backbone,
        Kind.GENERATOR: check_module_example,
        Kind.LOSS: check_module_example,
        Kind.EVALUATOR: check_evaluator,
        Kind.DATASET: check_dataset,
        Kind.METHOD: check_method,
    }
    checks[spec.kind](spec)


def check_config_round_trip(spec: ComponentSpec) -> None:
    config = spec.default_config()
    data = unstructure(config)
    again, problems = structure(copy.deepcopy(data), spec.config, f"$.{spec.name}")
    if problems:
        raise ContractError(f"{spec.kind.value} '{spec.name}': default config does not "
                            f"round-trip: {'; '.join(map(str, problems))}")
    if again != config:
        raise ContractError(f"{spec.kind.value} '{spec.name}': config changed in the round "
                            f"trip: {config!r} -> {again!r}")


def _example(spec: ComponentSpec) -> Any:
    if spec.example is None:
        raise ContractError(f"{spec.kind.value} '{spec.name}' needs an `example` in its "
                            f"ComponentSpec for the contract checks (see reidcore.testing)")
    return resolve_callable(spec.example)()


def _assert_finite(name: str, value: Any) -> None:
    import torch

    tensors = _tensors(value)
    if not tensors:
        raise ContractError(f"{name}: produced no tensor")
    for tensor in tensors:
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ContractError(f"{name}: output has non-finite values")


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _check_state_dict_round_trip(spec: ComponentSpec, module: Any, run: Any) -> None:
    import torch

    twin = spec.create()
    twin.load_state_dict(module.state_dict(), strict=True)
    module.eval()
    twin.eval()
    with torch.no_grad():
        first, second = _tensors(run(module)), _tensors(run(twin))
    for a, b in zip(first, second, strict=True):
        if not torch.allclose(a, b, atol=1e-6):
            raise ContractError(f"{spec.kind.value} '{spec.name}': state_dict round trip "
                                f"changes the output")


def _backward(spec: ComponentSpec, module: Any, output: Any) -> None:
    floats = [t for t in _tensors(output) if t.is_floating_point() and t.requires_grad]
    if not floats:
        return  # e.g. a loss with no parameters on inputs without grad
    sum(t.float().mean() for t in floats).backward()
    missing = [name for name, p in module.named_parameters()
               if p.requires_grad and p.grad is None]
    if missing:
        raise ContractError(f"{spec.kind.value} '{spec.name}': no gradient reached "
                            f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''} "
                            f"(a part of the network that never learns)")


def check_backbone(spec: ComponentSpec) -> None:
    import torch

    torch.manual_seed(0)
    backbone = spec.create()
    for attribute in ("feature_dim", "forward_features"):
        if not hasattr(backbone, attribute):
            raise ContractError(f"backbone '{spec.name}' has no `{attribute}`")
    images = resolve_callable(spec.example)() if spec.example else torch.randn(*IMAGE_SHAPE)
    backbone.train()
    maps = backbone.forward_features(images)
    if maps.dim() != 4 or maps.shape[0] != images.shape[0]:
        raise ContractError(f"backbone '{spec.name}': forward_features gave "
                            f"{tuple(maps.shape)}, expected B x C x H x W")
    vectors = backbone(images)
    if tuple(vectors.shape) != (images.shape[0], backbone.feature_dim):
        raise ContractError(f"backbone '{spec.name}': forward gave {tuple(vectors.shape)}, "
                            f"expected ({images.shape[0]}, feature_dim={backbone.feature_dim})")
    _assert_finite(f"backbone '{spec.name}'", vectors)
    _backward(spec, backbone, vectors)
    _check_state_dict_round_trip(spec, backbone, lambda m: m(images))


def check_module_example(spec: ComponentSpec) -> None:
    import torch

    torch.manual_seed(0)
    module = spec.create()
    args = _example(spec)
    args = args if isinstance(args, tuple) else (args,)
    output = module(*args)
    _assert_finite(f"{spec.kind.value} '{spec.name}'", output)
    if spec.kind is Kind.LOSS:
        loss = output if isinstance(output, torch.Tensor) else None
        if loss is None or loss.dim() != 0:
            raise ContractError(f"loss '{spec.name}' must return a scalar tensor, got "
                                f"{type(output).__name__}")
    _backward(spec, module, output)
    _check_state_dict_round_trip(spec, module, lambda m: m(*args))


def _random_feature_sets() -> tuple[Any, Any]:
    import numpy as np
    import torch

    from reidcore.records import FeatureSet

    generator = torch.Generator().manual_seed(0)
    pids = np.array([1, 1, 2, 2, 3, 3, 4, 4])
    camids = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    features = torch.randn(8, 16, generator=generator)
    query = FeatureSet(features[::2], pids[::2], camids[::2])
    gallery = FeatureSet(features[1::2] + 0.1 * features[::2], pids[1::2], camids[1::2])
    return query, gallery


def check_evaluator(spec: ComponentSpec) -> None:
    evaluator = spec.create()
    query, gallery = _example(spec) if spec.example else _random_feature_sets()
    metrics = evaluator.evaluate(query, gallery)
    if not isinstance(metrics, Mapping) or not metrics:
        raise ContractError(f"evaluator '{spec.name}' must return a non-empty mapping")
    for key, value in metrics.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ContractError(f"evaluator '{spec.name}': metric {key!r} = {value!r} is not "
                                f"a finite number")


def check_dataset(spec: ComponentSpec) -> None:
    dataset = spec.create()
    for attribute in ("load", "expected"):
        if not hasattr(dataset, attribute):
            raise ContractError(f"dataset '{spec.name}' has no `{attribute}`")


NUM_CLASSES_KEY = "reid:num_classes"
NO_GRADIENT_KEY = "reid:no_gradient"
_EXAMPLE_KEYS = (NUM_CLASSES_KEY, NO_GRADIENT_KEY)


def installed_plugins() -> Any:
    """The installed plugins (entry points, read once per process), as ``reid`` sees them:
    ``.registry``, ``.hook``, ``.infos``."""
    from reidcore.plugins import get_plugins

    return get_plugins()


def resolve_recipe(recipe: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> Any:
    """A resolved :class:`~reidcore.recipe.Recipe` from a packaged name, a file or a raw
    TOML-like mapping, with ``--set`` style overrides, checked as ``reid check`` does."""
    from reidcore.recipe import load_recipe, resolve

    plugins = installed_plugins()
    if isinstance(recipe, Mapping):
        return resolve(dict(recipe), "<test recipe>", plugins.registry, plugins.hook,
                       overrides=list(overrides))
    return load_recipe(recipe, plugins, overrides)[1]


def run_recipe(recipe: Any, out: Path, *, overrides: Sequence[str] = (), resume: bool = False,
               nproc: int = 1, quiet: bool = True, name: str | None = None) -> dict[str, Any]:
    """Train and evaluate ``recipe`` (a resolved recipe, a name, a file or a mapping) into
    ``out``, as ``reid run`` does; returns ``summary.json``'s content."""
    from reidcore.engine.runner import run_recipe as engine_run

    if not hasattr(recipe, "method"):
        recipe = resolve_recipe(recipe, overrides)
    return engine_run(recipe, installed_plugins(), out=Path(out), resume=resume,
                      recipe_name=name or recipe.name or "recipe", nproc=nproc, quiet=quiet)


def run_seeds(recipe: Any, out: Path, seeds: Sequence[int], *, overrides: Sequence[str] = (),
              quiet: bool = True, name: str | None = None) -> dict[str, Any]:
    """``recipe`` once per seed into ``out/seed-<N>``, as ``reid run --seeds`` does (completed
    seeds are kept, a killed one resumes; ``{seed}`` in an override becomes each run's
    seed); returns ``seeds.json``'s content: per test set and metric the mean, sd, min, max
    and per-seed values."""
    from reidcore.engine.seed_group import run_seeds as engine_run_seeds
    from reidcore.engine.seed_group import seeded_overrides

    if hasattr(recipe, "method"):
        resolved = recipe
    else:
        resolved = resolve_recipe(recipe, seeded_overrides(overrides, 0))

    def recipe_of(seed: int) -> Any:
        return resolve_recipe(recipe, seeded_overrides(overrides, seed))

    per_seed = not hasattr(recipe, "method") and any("{seed}" in o for o in overrides)
    return engine_run_seeds(recipe_of if per_seed else resolved, installed_plugins(),
                            list(seeds), Path(out),
                            recipe_name=name or resolved.name or "recipe", quiet=quiet)


def compare_runs(paths: Sequence[Path], metrics: Sequence[str] | None = None,
                 test_set: str | None = None) -> tuple[dict[str, Any], str]:
    """``reid compare`` as data and as its printed table: runs and seed groups side by
    side, each later arm paired with the first over their common seeds."""
    from reidcore.engine.compare import compare, format_comparison

    result = compare([Path(p) for p in paths], test_set, list(metrics) if metrics else None)
    return result, format_comparison(result)


def reid_cli(*args: str | Path) -> int:
    """Run the ``reid`` command line in this process; returns its exit code (read its
    output with pytest's ``capsys``)."""
    from reidcore.cli import main

    return main([str(arg) for arg in args])


def write_checkpoint(path: Path, modules: Mapping[str, Any], epoch: int = 1) -> Path:
    """A checkpoint of ``modules`` (name -> nn.Module or state_dict) as a run writes it
    (verified format, digest included): for testing commands that read one."""
    from reidcore.engine import checkpoint

    states = {name: m.state_dict() if hasattr(m, "state_dict") else dict(m)
              for name, m in modules.items()}
    checkpoint.save(Path(path), {"format": checkpoint.FORMAT, "epoch": epoch, "step": 0,
                                 "modules": states})
    return Path(path)


def fake_batch(recipe: Any, num_classes: int, seed: int = 0) -> dict[str, Any]:
    """A training batch as the recipe's loader would give it (:class:`~reidcore.interfaces.
    Batch`): ``loader.identities x loader.instances`` images laid out identity by identity,
    with the parts the loader is asked for (positives, textures, second, target)."""
    import torch

    loader = recipe.loader
    generator = torch.Generator().manual_seed(seed)
    size = loader.identities * loader.instances

    def images(count: int, height: int, width: int) -> torch.Tensor:
        return torch.randn(count, 3, height, width, generator=generator)

    def labelled() -> dict[str, Any]:
        pids = torch.arange(loader.identities).repeat_interleave(loader.instances)
        batch: dict[str, Any] = {
            "images": images(size, loader.height, loader.width),
            "pids": pids % max(num_classes, 1), "camids": torch.arange(size) % 2,
            "domains": torch.zeros(size, dtype=torch.int64), "indices": torch.arange(size),
            "paths": [f"fake/{i}.png" for i in range(size)], "extras": [{}] * size}
        if loader.positive:
            batch["positives"] = images(size, loader.height, loader.width)
        if loader.textures:
            batch["textures"] = images(size, loader.texture_height,
                                       loader.texture_width).tanh()
        return batch

    batch = labelled()
    if loader.second_batch:
        batch["second"] = labelled()
    if recipe.data.target:
        count = loader.target_batch_size or size
        batch["target"] = {"images": images(count, loader.height, loader.width),
                           "camids": torch.arange(count) % 2,
                           "domains": torch.zeros(count, dtype=torch.int64),
                           "indices": torch.arange(count),
                           "paths": [f"fake/target/{i}.png" for i in range(count)],
                           "extras": [{}] * count}
    return batch


def method_context(spec: ComponentSpec, example: Mapping[str, Any],
                   run_dir: Path | None = None) -> Any:
    """The CPU :class:`~reidcore.engine.context.MethodContext` a method's ``example()``
    recipe describes (see the module docstring), resolved with the installed plugins;
    ``run_dir`` as inside a run (where ``load_run`` finds requirements, images are
    written)."""
    from reidcore.engine.context import MethodContext

    raw = {key: value for key, value in example.items() if key not in _EXAMPLE_KEYS}
    raw["method"] = {"name": spec.name, **dict(raw.get("method", {}))}
    recipe = resolve_recipe(raw)
    return MethodContext(recipe=recipe, registry=installed_plugins().registry,
                         num_classes=int(example.get(NUM_CLASSES_KEY, 4)), steps_per_epoch=2,
                         run_dir=None if run_dir is None else Path(run_dir))


def step_optimizers(method: Any, context: Any) -> Any:
    """What the engine hands ``method.training_step`` as ``optim``: a
    :class:`~reidcore.engine.step.StepOptimizers` over ``method.configure_optimizers()``,
    with the context's precision and gradient sync."""
    from reidcore.engine.step import StepOptimizers

    return StepOptimizers(method.configure_optimizers(), context.precision,
                          sync=context.sync_gradients)


def tiny_context(method: str = "baseline", **recipe: Any) -> Any:
    """A CPU context for ``method`` with a tiny backbone (a 2-block ResNet at 64 x 32, 8
    images a batch) and ``recipe``'s sections on top: for tests of a method's parts."""
    spec = installed_plugins().registry.get(Kind.METHOD, method)
    raw: dict[str, Any] = {"backbone": {"name": "timm", "model": "resnet10t"},
                           "loader": {"height": 64, "width": 32, "identities": 2,
                                      "instances": 4}}
    for key, value in recipe.items():
        raw[key] = ({**raw[key], **value} if isinstance(value, Mapping)
                    and isinstance(raw.get(key), Mapping) else value)
    return method_context(spec, raw)


def build_method(spec: ComponentSpec, example: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(method, context)``: the method an ``example()`` recipe describes, on the CPU."""
    context = method_context(spec, example)
    return spec.create(context.recipe.method.config, context=context), context


def check_method(spec: ComponentSpec) -> None:
    """Build the method from its example, embed, then ``configure_optimizers`` and one
    ``training_step`` on a :func:`fake_batch`: every trainable parameter of its modules
    is in an optimizer, and every parameter of every optimizer received a gradient, except
    those the example lists under ``"reid:no_gradient"`` (label prefix -> reason)."""
    import torch

    from reidcore.engine.optim import Optimization
    from reidcore.engine.step import StepOptimizers

    torch.manual_seed(0)
    example = _example(spec)
    if not isinstance(example, Mapping):
        raise ContractError(f"method '{spec.name}': example() must return a recipe mapping, "
                            f"got {type(example).__name__}")
    exempt = dict(example.get(NO_GRADIENT_KEY, {}))
    for label, reason in exempt.items():
        if not str(reason).strip():
            raise ContractError(f"method '{spec.name}': {NO_GRADIENT_KEY} entry '{label}' "
                                f"needs its reason")
    method, context = build_method(spec, example)
    modules = method.modules()
    if not modules or not all(isinstance(m, torch.nn.Module) for m in modules.values()):
        raise ContractError(f"method '{spec.name}': modules() must name nn.Module objects")
    for module in modules.values():
        module.eval()
    with torch.no_grad():
        embeddings = method.embed(torch.randn(*IMAGE_SHAPE))
    if embeddings.dim() != 2 or embeddings.shape[0] != IMAGE_SHAPE[0]:
        raise ContractError(f"method '{spec.name}': embed gave {tuple(embeddings.shape)}, "
                            f"expected B x D")
    _assert_finite(f"method '{spec.name}'", embeddings)

    optimization = method.configure_optimizers()
    if not isinstance(optimization, Optimization):
        raise ContractError(f"method '{spec.name}': configure_optimizers() must return "
                            f"reidcore.api.Optimization, got {type(optimization).__name__}")
    unknown = set(optimization.schedulers) - set(optimization.optimizers)
    if unknown:
        raise ContractError(f"method '{spec.name}': schedulers {sorted(unknown)} step no "
                            f"optimizer")
    optimized = {id(p) for o in optimization.optimizers.values()
                 for g in o.param_groups for p in g["params"]}
    outside = [f"{name}.{pname}" for name, module in modules.items()
               for pname, p in module.named_parameters()
               if p.requires_grad and id(p) not in optimized]
    optim = StepOptimizers(optimization, context.precision)
    optim.track_gradients()
    for module in modules.values():
        module.train()
    metrics = method.training_step(fake_batch(context.recipe, context.num_classes), 0, optim)
    if not isinstance(metrics, Mapping) or not metrics:
        raise ContractError(f"method '{spec.name}': training_step must return its metrics "
                            f"(a mapping of name -> 0-d tensor or float)")
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.dim() != 0:
            raise ContractError(f"method '{spec.name}': metric {key!r} is not a 0-d tensor")
        if key.startswith("loss") and not math.isfinite(float(value)):
            raise ContractError(f"method '{spec.name}': metric {key!r} = {float(value)}")
    untrained = [f"{name}.{label}" for name, labels in optim.untrained().items()
                 for label in labels]

    def exempted(label: str) -> bool:
        return any(label == key or label.startswith((f"{key}.", f"{key}[")) for key in exempt)

    problems = [f"{label} (trainable, in no optimizer)" for label in outside
                if not exempted(label)]
    problems += [f"{label} (no gradient when its optimizer stepped)" for label in untrained
                 if not exempted(label)]
    if problems:
        shown = "; ".join(problems[:12]) + (f"; ... {len(problems) - 12} more"
                                            if len(problems) > 12 else "")
        raise ContractError(f"method '{spec.name}': one training_step left parameters "
                            f"untrained: {shown}. A parameter that legitimately gets no "
                            f"gradient on that step is listed, with the reason, in the "
                            f"example's {NO_GRADIENT_KEY!r}")
