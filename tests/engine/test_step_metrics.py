"""Step metrics summed without a sync per step, equal to summing Python floats."""

from __future__ import annotations

import torch

from reidcore.engine.step_metrics import StepMetrics, to_floats


def test_tensor_metrics_give_the_same_means_as_floats_bit_for_bit():
    generator = torch.Generator().manual_seed(0)
    steps = [{"loss": torch.rand((), generator=generator) * 7,
              "accuracy": (torch.rand(16, generator=generator) > 0.5).float().mean()}
             for _ in range(25)]
    as_tensors, as_floats = StepMetrics(), StepMetrics()
    reference: dict[str, float] = {}
    for step in steps:
        as_tensors.add(step)
        floats = {k: float(v) for k, v in step.items()}
        as_floats.add(floats)
        for key, value in floats.items():  # the engine's loop before StepMetrics
            reference[key] = reference.get(key, 0.0) + value
    expected = {k: v / 25 for k, v in reference.items()}
    assert as_tensors.means() == expected == as_floats.means()
    assert as_tensors.latest() == {k: float(v) for k, v in steps[-1].items()}
    assert isinstance(as_tensors.sums["loss"], torch.Tensor)  # kept as a tensor until read


def test_mixed_values_keep_their_keys_and_order():
    values = {"b": torch.tensor(0.25), "a": 2, "c": torch.tensor([1.5])}
    assert to_floats(values) == {"b": 0.25, "a": 2.0, "c": 1.5}
    assert list(to_floats(values)) == ["b", "a", "c"]
    empty = StepMetrics()
    assert empty.means() == {} and empty.latest() == {}
