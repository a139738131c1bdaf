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
