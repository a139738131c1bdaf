"""Item 14 (evaluation side): feature extraction, ranking, re-ranking and ``reid data check``
show a progress bar on a terminal (``REID_PROGRESS=1`` stands in for one here) and stay
quiet otherwise (``REID_PROGRESS=0``, or stderr not a terminal, as under pytest)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidcore.data.check import check_dataset
from reidcore.engine.evaluate import extract_features
from reidcore.engine.extract import FeatureExtractor
from reidcore.evaluation.evaluator import evaluate_features
from reidcore.evaluation.rerank import k_reciprocal_rerank
from reidcore.records import DatasetSplits, ImageRecord


class _Embed:
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)[:, :4]


def _run_everything(tmp_path) -> None:
    batches = [{"images": torch.rand(2, 3, 4, 4)} for _ in range(3)]
    extract_features(_Embed(), batches, torch.device("cpu"), desc="market: query")
    extractor = FeatureExtractor.__new__(FeatureExtractor)
    extractor.method, extractor.batch_size, extractor.device = _Embed(), 2, torch.device("cpu")
    extractor.flip = False
    extractor(torch.rand(5, 3, 4, 4))
    rng = np.random.default_rng(0)
    q, g = rng.random((4, 3)), rng.random((6, 3))
    pids = np.array([1, 2, 1, 2]), np.array([1, 2, 1, 2, 3, 3])
    cams = np.zeros(4, int), np.ones(6, int)
    evaluate_features(q, g, *pids, *cams)
    k_reciprocal_rerank(rng.random((4, 6)), rng.random((4, 4)), rng.random((6, 6)), k1=3, k2=2)
    image = tmp_path / "0001_c1s1_000001_01.png"
    from PIL import Image

    Image.new("RGB", (4, 8)).save(image)

    class _Data:
        expected = None

        def load(self):
            return DatasetSplits((ImageRecord(str(image), 1, 0),), (), ())

    check_dataset("tiny", _Data())


@pytest.mark.parametrize("enabled", [True, False])
def test_long_loops_show_a_bar_only_when_enabled(tmp_path, capsys, monkeypatch, enabled):
    monkeypatch.setenv("REID_PROGRESS", "1" if enabled else "0")
    _run_everything(tmp_path)
    err = capsys.readouterr().err
    labels = ["market: query", "embedding images", "ranking", "re-ranking",
              "tiny: decoding images"]
    if enabled:
        for label in labels:
            assert f"{label}:" in err, label  # tqdm writes "<desc>: <percent>|<bar>|"
    else:
        assert err == ""


def test_quiet_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("REID_PROGRESS", raising=False)  # pytest's stderr is no terminal
    _run_everything(tmp_path)
    assert capsys.readouterr().err == ""
