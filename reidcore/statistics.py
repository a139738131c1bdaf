"""Statistics over repeated runs: a metric's spread over seeds, and a paired test between arms.

Re-ID papers differ by less than their seed-to-seed spread, so a result is a distribution,
not a number. Two arms trained with the same seeds are compared *paired*: the per-seed
differences remove what the seeds share (the data order, the initialisation).

The paired test is the exact sign-flip (permutation) test: under "no difference" each
per-seed difference is as likely positive as negative, so the p-value is the share of the
2^n sign assignments whose mean difference is at least as far from zero as the observed
one. It needs no normality assumption and no SciPy, and is exact for the handful of seeds a
CPU budget allows (with n seeds the smallest two-sided p-value is 2 / 2^n: 0.25 for 3 seeds,
so three seeds can never reach p < 0.05, which is worth knowing before claiming a win).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import attrs


@attrs.frozen
class Spread:
    """A metric over seeds: mean, sample standard deviation (n - 1; 0 for one value), range."""

    n: int
    mean: float
    sd: float
    min: float
    max: float

    def to_dict(self) -> dict[str, float | int]:
        return attrs.asdict(self)


def spread(values: Sequence[float]) -> Spread:
    """The :class:`Spread` of ``values`` (at least one)."""
    if not values:
        raise ValueError("spread() of no values")
    n = len(values)
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return Spread(n=n, mean=mean, sd=sd, min=min(values), max=max(values))


@attrs.frozen
class PairedTest:
    """Arm B minus arm A over the seeds both ran: the mean difference, its sample standard
    deviation, and the exact two-sided sign-flip p-value."""

    seeds: tuple[int, ...]
    mean_difference: float
    sd_difference: float
    p_value: float

    def to_dict(self) -> dict[str, object]:
        return {**attrs.asdict(self), "seeds": list(self.seeds)}


def sign_flip_p_value(differences: Sequence[float]) -> float:
    """Exact two-sided p-value of the paired sign-flip test (see the module docstring).
    All 2^n sign patterns are enumerated: meant for the few seeds of real runs (n <= 20)."""
    n = len(differences)
    if n == 0:
        raise ValueError("a paired test needs at least one pair")
    if n > 20:
        raise ValueError(f"the exact sign-flip test enumerates 2^n patterns; {n} pairs is too many")
    observed = abs(math.fsum(differences))
    tolerance = 1e-12 * max(1.0, observed)
    extreme = sum(1 for signs in itertools.product((1.0, -1.0), repeat=n)
                  if abs(math.fsum(s * d for s, d in zip(signs, differences, strict=True)))
                  >= observed - tolerance)
    return extreme / 2 ** n


def paired_test(a: dict[int, float], b: dict[int, float]) -> PairedTest | None:
    """``b - a`` over the seeds present in both (None when fewer than two match)."""
    seeds = tuple(sorted(set(a) & set(b)))
    if len(seeds) < 2:
        return None
    differences = [b[seed] - a[seed] for seed in seeds]
    summary = spread(differences)
    return PairedTest(seeds=seeds, mean_difference=summary.mean, sd_difference=summary.sd,
                      p_value=sign_flip_p_value(differences))
