"""Issue 16, item 5: a full disk while writing a checkpoint says so (disk full, where, the
previous checkpoint intact, how to continue), never a raw ``inline_container`` traceback."""

from __future__ import annotations

import errno
import io
import os
import subprocess
from pathlib import Path

import pytest
import torch

from reidcore.engine import checkpoint as ckpt
from reidcore.engine.runner import run_recipe
from reidcore.errors import ReidError
from reidcore.plugins import get_plugins
from tests.engine.conftest import fast_recipe_dict, resolve_dict


class FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does (ENOSPC)."""

    def __init__(self, handle, room: int):
        self.handle, self.room = handle, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.handle.write(data)


def fill_disk_at_epoch(monkeypatch, epoch: int) -> None:
    real_save = torch.save

    def save(obj, handle, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("epoch") == epoch:
            handle = FullDisk(handle, room=4096)
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_disk_full_during_a_checkpoint_says_so_and_keeps_the_previous(tmp_path, monkeypatch):
    fill_disk_at_epoch(monkeypatch, 2)
    run_dir = tmp_path / "run"
    recipe = resolve_dict(fast_recipe_dict(tmp_path / "data", epochs=2))
    with pytest.raises(ReidError) as info:
        run_recipe(recipe, get_plugins(), out=run_dir, quiet=True)
    message = str(info.value)
    checkpoints = run_dir / "checkpoints"
    assert message.startswith(f"disk full: cannot write checkpoint {checkpoints / 'epoch-0002.pt'}")
    assert f"no space left on the file system of {checkpoints}" in message
    assert f"the last checkpoint, {checkpoints / 'epoch-0001.pt'}, is intact" in message
    assert f"--out {run_dir} --resume" in message
    assert "inline_container" not in message
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.pt", "epoch-0001.pt"]
    assert ckpt.read(checkpoints / "epoch-0001.pt")["epoch"] == 1  # and it verifies


@pytest.fixture
def small_filesystem(tmp_path):
    """A 256 KiB tmpfs, where mounting is allowed (root in a container); skipped elsewhere."""
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot run mount here")
    if result.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=10)


def test_a_really_full_filesystem(small_filesystem: Path):
    path = small_filesystem / "checkpoints" / "epoch-0001.pt"
    small = {"format": ckpt.FORMAT, "epoch": 1, "step": 1,
             "modules": {"net": {"weight": torch.ones(1000)}}}
    ckpt.save(path, small)
    large = {**small, "epoch": 2, "modules": {"net": {"weight": torch.ones(200_000)}}}
    with pytest.raises(ReidError, match="disk full: cannot write checkpoint"):
        ckpt.save(path, large)
    assert ckpt.read(path)["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["epoch-0001.pt"]  # no temporary file
