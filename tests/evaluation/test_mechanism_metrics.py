"""The proving ground's metrics on values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from reidcore.evaluation.mechanism import (
    C1,
    C2,
    closest_camera_truth,
    identity_rank,
    masked_l1,
    masked_ssim,
)


def constant(value: float, shape: tuple[int, int] = (16, 8)) -> np.ndarray:
    return np.full((*shape, 3), value, dtype=np.float32)


def test_l1_of_constant_images_and_inside_a_mask():
    assert masked_l1(constant(0.2), constant(0.5)) == pytest.approx(0.3)
    a, b = constant(0.0), constant(0.0)
    b[:8] = 1.0  # the top half differs by 1
    mask = np.zeros((16, 8), dtype=bool)
    mask[:8, :4] = True
    assert masked_l1(a, b) == pytest.approx(0.5)
    assert masked_l1(a, b, mask) == pytest.approx(1.0)
    assert masked_l1(a, b, ~mask) == pytest.approx(8 * 4 / (128 - 32))


def test_ssim_equal_images_is_one_and_constants_follow_the_luminance_term():
    rng = np.random.default_rng(0)
    image = rng.random((16, 8, 3)).astype(np.float32)
    assert masked_ssim(image, image) == pytest.approx(1.0)
    # constant images: no variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = 0.2, 0.5
    expected = (2 * a * b + C1) / (a * a + b * b + C1)
    assert masked_ssim(constant(a), constant(b)) == pytest.approx(expected, rel=1e-6)
    assert C2 == pytest.approx(9e-4)


def test_ssim_falls_with_noise_and_the_mask_selects_pixels():
    rng = np.random.default_rng(1)
    image = rng.random((32, 16, 3))
    noisy = np.clip(image + rng.normal(0, 0.2, image.shape), 0, 1)
    assert masked_ssim(image, noisy) < 0.9
    half = noisy.copy()
    half[16:] = image[16:]  # bottom half exact
    mask = np.zeros((32, 16), dtype=bool)
    mask[24:] = True  # far from the noisy half (the window reaches 5 pixels)
    assert masked_ssim(image, half, mask) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="select a pixel"):
        masked_ssim(image, half, np.zeros((32, 16), dtype=bool))


def test_identity_rank_by_cosine():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    pids = np.array([5, 6, 7, 6])
    query = np.array([1.0, 0.1])
    # cosine order: item 0 (pid 5), item 2 (pid 7), item 1 (pid 6), item 3 (pid 6)
    assert identity_rank(query, gallery, pids, 5) == 1
    assert identity_rank(query, gallery, pids, 7) == 2
    assert identity_rank(query, gallery, pids, 6) == 3
    assert identity_rank(query, gallery, pids, 9) == 5  # absent: past the end


def test_closest_camera_truth_picks_one_camera_per_source_camera():
    # two images from source camera 1, one from camera 2; three target cameras rendering
    # every image as a constant grey of 0.1, 0.5 and 0.9
    candidate = np.stack([np.full((2, 2, 3), v) for v in (0.45, 0.85, 0.2)])
    truths = np.stack([np.full((3, 2, 2, 3), v) for v in (0.1, 0.5, 0.9)])
    groups = np.array([1, 1, 2])
    matched, chosen = closest_camera_truth(candidate, truths, groups)
    # camera 1's images: mean L1 to 0.1 is (0.35 + 0.75) / 2 = 0.55, to 0.5 is
    # (0.05 + 0.35) / 2 = 0.2, to 0.9 is (0.45 + 0.05) / 2 = 0.25 -> 0.5, for both images
    # (the 0.85 image alone would pick 0.9); camera 2's 0.2: 0.1 from 0.1, 0.3 from 0.5
    assert chosen == {1: 1, 2: 0}
    assert np.allclose(matched[:, 0, 0, 0], [0.5, 0.5, 0.1])
    with pytest.raises(ValueError, match="one label per image"):
        closest_camera_truth(candidate, truths, groups[:2])
    with pytest.raises(ValueError, match="are not C renders"):
        closest_camera_truth(candidate, truths[:, :2], groups)
