"""The dgnet-swap / dgnet-fid commands: parsing without torch, and their user errors.
(The swap grid of a trained run is checked in test_chain.py.)"""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def reid(*args, cwd):
    env = {**os.environ, "REID_PROGRESS": "0"}
    reid_cli = Path(sys.executable).with_name("reid")
    return subprocess.run([str(reid_cli), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_help_lists_the_commands(tmp_path):
    done = reid("--help", cwd=tmp_path)
    assert done.returncode == 0 and "dgnet-swap" in done.stdout and "dgnet-fid" in done.stdout


@pytest.mark.parametrize("args, message", [
    (["dgnet-swap", "nowhere", "--images", "a.jpg", "b.jpg", "--out", "g.png"],
     "--images: no file or folder a.jpg"),
    (["dgnet-fid", "nowhere", ".", "--weights", "missing.pth"], "missing.pth"),
])
def test_user_errors_are_one_line(tmp_path, args, message):
    done = reid(*args, cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr


def test_swap_needs_a_run(tmp_path):
    from PIL import Image

    for name in ("a.png", "b.png"):
        Image.new("RGB", (32, 64)).save(tmp_path / name)
    done = reid("dgnet-swap", "nowhere", "--images", "a.png", "b.png", "--out", "g.png",
                cwd=tmp_path)
    assert done.returncode != 0 and "no run directory or checkpoint at nowhere" in done.stderr
    assert "Traceback" not in done.stderr


def test_fid_generations_pair_every_image_with_another(registry):
    """dgnet-fid's generated set: one cross-identity image per real image, in [0, 1], each
    with another image's structure; scored by the core's FID (here on pixel features)."""
    import torch
    from conftest import make_dgnet
    from reidcore.api import frechet_distance_of_features

    from reid_plugin_dgnet.commands import generate_cross

    dgnet = make_dgnet(registry, teacher=False)
    images = torch.randn(5, 3, 64, 32)
    fake = generate_cross(dgnet.ea, dgnet.es, dgnet.decoder, images, "imagenet", seed=3,
                          batch_size=2)
    assert fake.shape == images.shape and 0 <= fake.min() and fake.max() <= 1
    own = generate_cross(dgnet.ea, dgnet.es, dgnet.decoder, images[:1].expand(2, -1, -1, -1),
                         "imagenet")
    assert torch.allclose(own[0], own[1], atol=1e-5)  # two copies: each the other's partner
    value = frechet_distance_of_features(fake.flatten(1)[:, :64], fake.flatten(1)[:, :64])
    assert abs(value) < 1e-6
