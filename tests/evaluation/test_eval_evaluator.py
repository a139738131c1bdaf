"""The builtin ``ranking`` evaluator, streaming evaluation, reports and pictures (the ``reid eval``
command's tests live with the engine's commands, in tests/engine/test_eval_command.py)."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from reidcore.errors import ReidError
from reidcore.evaluation import (
    average_query_expansion,
    evaluate_features,
    pairwise_distance,
    rank_metrics,
)
from reidcore.evaluation.components import evaluator_specs
from reidcore.evaluation.config import RankingConfig
from reidcore.evaluation.visualize import GREEN, RED, rank_top_k, save_ranked_results
from reidcore.records import FeatureSet
from reidcore.testing import check_evaluator


def make_sets(seed=0, num_q=30, num_g=120, ids=10, dim=8, noise=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids + 1, dim)) * 2
    q_pids = rng.integers(1, ids + 1, num_q)
    g_pids = np.concatenate([rng.integers(1, ids + 1, num_g - 10), np.zeros(5, int),
                             -np.ones(5, int)])
    qf = centres[q_pids] + noise * rng.standard_normal((num_q, dim))
    gf = centres[np.maximum(g_pids, 0)] + noise * rng.standard_normal((num_g, dim))
    query = FeatureSet(torch.tensor(qf, dtype=torch.float32), q_pids,
                       rng.integers(0, 4, num_q))
    gallery = FeatureSet(torch.tensor(gf, dtype=torch.float32), g_pids,
                         rng.integers(0, 4, num_g))
    return query, gallery


def ranking_spec():
    (spec,) = [spec for spec in evaluator_specs() if spec.name == "ranking"]
    return spec


def test_ranking_builds_with_defaults_and_passes_the_contract():
    spec = ranking_spec()
    assert spec.name == "ranking" and spec.kind.value == "evaluator"
    check_evaluator(spec)
    evaluator = spec.create()
    assert evaluator.config == RankingConfig()
    assert evaluator.config.flip is False  # read by the engine


def test_config_validation():
    with pytest.raises(ValueError):
        RankingConfig(ranks=[0, 5])
    with pytest.raises(ValueError):
        RankingConfig(lambda_value=1.5)
    assert RankingConfig(ranks=[1, 20]).ranks == (1, 20)


def test_evaluate_returns_flat_metrics_equal_to_rank_metrics():
    query, gallery = make_sets()
    evaluator = ranking_spec().create(RankingConfig(ranks=(1, 5), metric="cosine"))
    metrics = evaluator.evaluate(query, gallery)
    d = pairwise_distance(query.features, gallery.features, "cosine")
    expected = rank_metrics(d, query.pids, gallery.pids, query.camids, gallery.camids)
    assert metrics["mAP"] == pytest.approx(expected.mAP, rel=1e-9)
    assert metrics["rank1"] == pytest.approx(expected.cmc[0])
    assert set(metrics) == {"mAP", "mINP", "rank1", "rank5", "num_valid_queries",
                            "num_skipped_queries", "tpr_at_fpr_1e-4", "tpr_at_fpr_1e-3",
                            "tpr_at_fpr_1e-2"} | {f"{m}_ci_{end}" for m in
                                                  ("mAP", "mINP", "rank1", "rank5")
                                                  for end in ("low", "high")}
    assert all(isinstance(v, float) for v in metrics.values())


@pytest.mark.parametrize("protocol", ["market", "single-gallery-shot"])
def test_streaming_by_query_chunks_equals_the_full_matrix(protocol):
    query, gallery = make_sets(seed=1, num_q=37)
    args = (query.pids, gallery.pids, query.camids, gallery.camids)
    streamed = evaluate_features(query.features, gallery.features, *args, rows=5,
                                 protocol=protocol)
    d = pairwise_distance(query.features, gallery.features)
    full = rank_metrics(d, *args, protocol=protocol)
    np.testing.assert_array_equal(streamed.first_match_rank, full.first_match_rank)
    np.testing.assert_allclose(streamed.cmc, full.cmc, rtol=1e-12)
    assert streamed.mAP == pytest.approx(full.mAP, rel=1e-12)


def test_no_camera_feature_sets_use_paths_to_remove_the_query_itself():
    query, gallery = make_sets(seed=2, num_q=10, num_g=40)
    g_paths = tuple(f"g{i}.jpg" for i in range(40))
    # the queries are gallery images 0..9
    query = FeatureSet(gallery.features[:10], gallery.pids[:10], None, g_paths[:10])
    gallery = FeatureSet(gallery.features, gallery.pids, None, g_paths)
    evaluator = ranking_spec().create()
    metrics = evaluator.evaluate(query, gallery)
    assert evaluator.last_result.protocol == "no-camera"
    d = pairwise_distance(query.features, gallery.features)
    expected = rank_metrics(d, query.pids, gallery.pids, protocol="no-camera",
                            query_gallery_index=np.arange(10))
    assert metrics["mAP"] == pytest.approx(expected.mAP)
    assert metrics["rank1"] < 1.0  # itself (distance 0) is not counted


def test_average_query_expansion_by_hand():
    query = torch.tensor([[0.0, 0.0]])
    gallery = torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    # the two nearest gallery items are (1,0) and (0,2): mean of three = (1/3, 2/3)
    expanded = average_query_expansion(query, gallery, 2)
    np.testing.assert_allclose(expanded.numpy(), [[1 / 3, 2 / 3]], rtol=1e-6)
    normalised = average_query_expansion(query, gallery, 2, normalise=True)
    np.testing.assert_allclose(normalised.norm(dim=1).numpy(), [1.0], rtol=1e-6)


def test_query_expansion_and_rerank_options_run_from_the_recipe_config():
    query, gallery = make_sets(seed=3, noise=1.5)
    base = ranking_spec().create().evaluate(query, gallery)
    qe = ranking_spec().create(RankingConfig(query_expansion=2, normalisation="l2"))
    rr = ranking_spec().create(RankingConfig(rerank=True, k1=6, k2=3))
    for evaluator in (qe, rr):
        metrics = evaluator.evaluate(query, gallery)
        assert 0 < metrics["mAP"] <= 1 and metrics["mAP"] != base["mAP"]


def test_reports_per_query_csv_and_json(tmp_path):
    query, gallery = make_sets(seed=4)
    evaluator = ranking_spec().create()
    evaluator.evaluate(query, gallery)
    paths = evaluator.write_report(tmp_path, "market")
    data = json.loads(paths["metrics"].read_text())
    assert data["mAP"] == pytest.approx(evaluator.last_result.mAP)
    assert len(data["cmc"]) == 50 and "rank1" in data
    assert set(data["tpr_at_fpr"]) == {"TPR@FPR=1e-4", "TPR@FPR=1e-3", "TPR@FPR=1e-2"}
    assert data["confidence_intervals"]["resamples"] == 1000
    with np.load(paths["per_query"]) as per_query_npz:
        assert len(per_query_npz["ap"]) == len(query.pids)
    result = evaluator.last_result
    result.write_per_query(tmp_path / "q.csv")
    rows = list(csv.DictReader((tmp_path / "q.csv").open()))
    assert len(rows) == len(query.pids)
    assert float(rows[0]["ap"]) == pytest.approx(result.ap[0])
    assert int(rows[0]["first_match_rank"]) == result.first_match_rank[0]
    out = result.write_per_query(tmp_path / "q.json", [f"q{i}" for i in range(30)])
    per_query = json.loads(out.read_text())["per_query"]
    assert per_query[3]["path"] == "q3" and per_query[3]["inp"] == pytest.approx(result.inp[3])
    with pytest.raises(ReidError, match="csv or .json"):
        result.write_per_query(tmp_path / "q.txt")


def test_ranked_results_picture_has_green_and_red_borders(tmp_path):
    colours = [(200, 200, 0), (0, 0, 200), (100, 0, 100)]
    paths = []
    for i, colour in enumerate(colours):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (16, 32), colour).save(path)
        paths.append(str(path))
    query = FeatureSet(torch.tensor([[0.0]]), np.array([1]), np.array([0]), (paths[0],))
    gallery = FeatureSet(torch.tensor([[0.1], [0.2], [0.3]]), np.array([2, 1, 1]),
                         np.array([1, 1, 0]), tuple(paths))
    # gallery 2 is the same person on the query's camera: removed
    ranked, correct = rank_top_k(np.array([[0.1, 0.2, 0.3]]), [1], gallery.pids, [0],
                                 gallery.camids, k=3)
    assert ranked.tolist() == [[0, 1, -1]] and correct.tolist() == [[False, True, False]]
    out, array = save_ranked_results(tmp_path / "ranked.png", query, gallery, topk=2)
    assert out.is_file() and array.ndim == 3 and array.shape[2] == 3
    image = Image.open(out).convert("RGB")
    tile = 64 + 2
    assert image.getpixel((tile + 12 + 1, 1)) == RED      # rank 1: other person
    assert image.getpixel((2 * tile + 12 + 1, 1)) == GREEN  # rank 2: the same person


def test_importing_the_components_is_cheap():
    code = ("import sys, reidcore.evaluation.components as c; c.evaluator_specs(); "
            "import reidcore.evaluation; "
            "print(sorted(m for m in ('torch', 'numba', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_a_new_process_loads_the_kernels_from_the_cache():
    """Both kernel modules (split out of ranking.py) keep numba's on-disk cache working."""
    from reidcore.evaluation.ranking import warm_up

    warm_up()  # compiles into the cache if this is the first run
    code = ("import numpy as np; from reidcore.evaluation import ranking as r; "
            "d = np.array([[0.1, 0.2]], np.float32); "
            "r.rank_metrics(d, [1], [1, 2], [0], [1, 1]); "
            "r.rank_metrics(d, [1], [1, 2], [0], [1, 1], protocol='single-gallery-shot'); "
            "print(*(len(getattr(k.stats, s)) for k in (r._rank_kernel, r._sgs_kernel) "
            "for s in ('cache_misses', 'cache_hits')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    rank_misses, rank_hits, sgs_misses, sgs_hits = map(int, out)
    assert rank_misses == 0 and rank_hits >= 1
    assert sgs_misses == 0 and sgs_hits >= 1


def test_recipe_section_structures_with_paths_in_errors():
    from reidcore.converter import structure

    config, problems = structure({"ranks": [1, 20], "metric": "cosine", "flip": True},
                                 RankingConfig, "$.evaluate")
    assert problems == [] and config.ranks == (1, 20) and config.flip
    _, problems = structure({"protocol": "duke", "metrc": "cosine"}, RankingConfig,
                            "$.evaluate")
    paths = sorted(problem.path for problem in problems)
    assert paths == ["$.evaluate.metrc", "$.evaluate.protocol"]
    assert any("did you mean 'metric'" in problem.message for problem in problems)
