"""Contract checks any plugin runs over its own components (the core runs them too).

In a plugin's test suite::

    import pytest
    from reidcore.testing import check_component, components_of, spec_id

    @pytest.mark.parametrize("spec", components_of("reid-plugin-mine"), ids=spec_id)
    def test_contract(spec):
        check_component(spec)

What is checked, per kind (everything on the CPU, with tiny inputs):

* every kind: the default config round-trips through the recipe converter, and the
  component builds from it (``spec.create()``);
* backbone: ``forward_features`` gives ``B x C x H x W``, ``forward`` gives
  ``B x feature_dim``, outputs are finite, gradients reach the parameters, and a
  ``state_dict`` loaded into a second instance reproduces the outputs;
* generator, loss: the spec's ``example()`` returns the positional arguments of a forward
  call; outputs are finite, a backward pass works, and the state_dict round-trips;
* evaluator: ``evaluate`` on random query/gallery features (or ``example()``'s pair)
  returns finite floats;
* dataset: the built object has ``load`` and ``expected`` (loading may need files);
* method: ``example()`` returns a small recipe for it as TOML-like data, e.g.
  ``{"backbone": {"name": "timm", "model": "resnet18"}}`` (the ``method`` table may be
  left out or give options), and may add ``"num_classes"`` (default 4) beside the recipe's
  keys under ``"reid:num_classes"``; the check resolves it with the installed registry,
  builds the method with a CPU :class:`~reidcore.engine.context.MethodContext`, and
  checks that it names its modules and that ``embed`` gives ``B x D`` finite embeddings.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
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
    from reidcore.plugins import get_plugins

    plugins = get_plugins()
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
    params = [p for p in module.parameters() if p.requires_grad]
    if params and all(p.grad is None for p in params):
        raise ContractError(f"{spec.kind.value} '{spec.name}': no gradient reached any parameter")


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


def method_context(spec: ComponentSpec, example: Mapping[str, Any]) -> Any:
    """The CPU :class:`~reidcore.engine.context.MethodContext` a method's ``example()``
    recipe describes (see the module docstring), resolved with the installed plugins."""
    from reidcore.engine.context import MethodContext
    from reidcore.plugins import get_plugins
    from reidcore.recipe import resolve

    raw = {key: value for key, value in example.items() if key != NUM_CLASSES_KEY}
    raw["method"] = {"name": spec.name, **dict(raw.get("method", {}))}
    registry = get_plugins().registry
    recipe = resolve(raw, f"<{spec.name} contract example>", registry)
    return MethodContext(recipe=recipe, registry=registry,
                         num_classes=int(example.get(NUM_CLASSES_KEY, 4)), steps_per_epoch=2)


def check_method(spec: ComponentSpec) -> None:
    import torch

    torch.manual_seed(0)
    example = _example(spec)
    if not isinstance(example, Mapping):
        raise ContractError(f"method '{spec.name}': example() must return a recipe mapping, "
                            f"got {type(example).__name__}")
    context = method_context(spec, example)
    method = spec.create(context.recipe.method.config, context=context)
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
