"""Step metrics summed without a sync per step, equal to summing Python floats."""

from __future__ import annotations

import math

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


def test_the_first_nonfinite_step_is_found_without_a_sync_per_step():
    watched = StepMetrics()
    for step in range(10, 16):
        loss = torch.tensor(float("nan") if step in (13, 15) else 1.0)
        watched.add({"loss": loss, "loss/triplet": torch.tensor(0.5), "accuracy": 0.25},
                    step=step)
        assert isinstance(watched._first_device, torch.Tensor)  # kept on the device
    step, values = watched.nonfinite()
    assert step == 13 and math.isnan(values["loss"]) and values["loss/triplet"] == 0.5
    assert values["accuracy"] == 0.25


def test_float_metrics_are_checked_at_once_and_a_clean_check_forgets():
    watched = StepMetrics()
    watched.add({"loss": 1.0, "loss/ce": 2.0}, step=0)
    watched.add({"loss": torch.tensor(1.5)}, step=1)
    assert watched.nonfinite() is None and watched.pending == {}
    watched.add({"loss": 1.0, "loss/ce": float("inf")}, step=2)
    watched.add({"loss": torch.tensor(float("-inf"))}, step=3)
    assert watched.nonfinite() == (2, {"loss": 1.0, "loss/ce": float("inf")})
    unwatched = StepMetrics()
    unwatched.add({"loss": float("nan")})  # no step: not watched
    assert unwatched.nonfinite() is None
