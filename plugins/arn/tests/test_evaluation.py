"""ARN's recipes rank with the core's ``ranking`` evaluator and a true L1 distance (not the
official code's L1, which is scipy's 'hamming')."""

import numpy as np
import pytest
import torch
from reidcore.api import FeatureSet


def ranking(registry, **options):
    spec = registry.get("evaluator", "ranking")
    return spec.create(spec.config(**options))


def test_l1_ranks_differently_from_the_official_hamming(registry):
    # the query differs from gallery A slightly in every coordinate (hamming 1, L1 0.3)
    # and from gallery B a lot in one coordinate (hamming 1/3, L1 5): L1 ranks A first,
    # the official 'hamming' would rank B first
    query = FeatureSet(torch.tensor([[1.0, 1.0, 1.0]]), np.array([1]), np.array([0]))
    gallery = FeatureSet(torch.tensor([[1.1, 1.1, 1.1], [1.0, 1.0, 6.0]]), np.array([1, 2]),
                         np.array([1, 1]))
    metrics = ranking(registry, metric="l1", ranks=[1]).evaluate(query, gallery)
    assert metrics["rank1"] == 1.0 and metrics["mAP"] == pytest.approx(1.0)
    hamming = (query.features[:, None, :] != gallery.features[None]).float().mean(-1)
    assert hamming.argmin().item() == 1  # what the official evaluation would have matched


def test_every_packaged_recipe_ranks_with_l1():
    from pathlib import Path

    import tomllib

    import reid_plugin_arn

    folder = Path(reid_plugin_arn.__file__).parent / "recipes"
    recipes = sorted(folder.glob("*.toml"))
    assert recipes
    for path in recipes:
        evaluate = tomllib.loads(path.read_text())["evaluate"]
        assert (evaluate["name"], evaluate["metric"]) == ("ranking", "l1"), path.name
