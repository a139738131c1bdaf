"""Shared helpers of the evaluation benchmarks: synthetic but realistic labels and features."""

from __future__ import annotations

import os
import resource
import threading
import time

import numpy as np


def market_like_labels(rng: np.random.Generator, num_query: int = 3368,
                       num_gallery: int = 15913, num_ids: int = 750, num_cams: int = 6,
                       num_distractors: int = 2798, num_junk: int = 3819):
    """Market-1501-shaped test split: ids across cameras, distractors (0) and junk (-1)."""
    ids = np.arange(1, num_ids + 1)
    q_pids = np.sort(rng.choice(ids, num_query))
    q_pids[:num_ids] = ids  # every id queried at least once
    q_camids = rng.integers(0, num_cams, num_query)
    num_real = num_gallery - num_distractors - num_junk
    g_pids = np.concatenate([rng.choice(ids, num_real), np.zeros(num_distractors, int),
                             -np.ones(num_junk, int)])
    g_camids = rng.integers(0, num_cams, num_gallery)
    perm = rng.permutation(num_gallery)
    return q_pids, g_pids[perm], q_camids, g_camids[perm]


def id_features(rng: np.random.Generator, pids: np.ndarray, centres: np.ndarray,
                noise: float = 1.0, chunk: int = 8192) -> np.ndarray:
    """Features = per-id centre + noise (pid <= 0: pure noise), like a trained model's.

    Written chunk by chunk into one array, so making them costs little beyond their size.
    """
    feats = np.empty((len(pids), centres.shape[1]), np.float32)
    for start in range(0, len(pids), chunk):
        block = feats[start:start + chunk]
        rng.standard_normal(out=block, dtype=np.float32)
        block *= noise
        ids = pids[start:start + chunk]
        block[ids > 0] += centres[ids[ids > 0]]
    return feats


def id_centres(rng: np.random.Generator, num_ids: int, dim: int) -> np.ndarray:
    return rng.standard_normal((num_ids + 1, dim), dtype=np.float32)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux ru_maxrss is in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakSampler:
    """Samples the resident memory in a thread to get the peak of a code block."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self):
        self.base = current_rss_mb()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_mb())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_mb())

    @property
    def extra(self) -> float:
        return self.peak - self.base


def market_problem(seed: int = 0, dim: int = 256, noise: float = 1.1):
    """A Market-1501-sized float32 distance matrix with labels (mAP around 0.7-0.8)."""
    import torch

    from reidcore.evaluation import pairwise_distance

    rng = np.random.default_rng(seed)
    q_pids, g_pids, q_camids, g_camids = market_like_labels(rng)
    centres = id_centres(rng, int(max(q_pids.max(), g_pids.max())), dim) / np.sqrt(dim) * 4
    qf = id_features(rng, q_pids, centres, noise / np.sqrt(dim) * 4)
    gf = id_features(rng, g_pids, centres, noise / np.sqrt(dim) * 4)
    distmat = pairwise_distance(torch.from_numpy(qf), torch.from_numpy(gf))
    return distmat, q_pids, g_pids, q_camids, g_camids, qf, gf


def timed(fn, repeats: int = 1):
    """(best seconds, median seconds, last result) over ``repeats`` calls."""
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times)), result
