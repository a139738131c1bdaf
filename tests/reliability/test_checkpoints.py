"""Issue 16, item 1: a checkpoint damaged inside is detected (checksum), reported by path,
the previous good one is used on --resume, and pruning keeps the newest one that verifies."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
import torch

from reidcore import hookimpl
from reidcore.engine import checkpoint as ckpt
from reidcore.engine.runner import run_recipe
from reidcore.errors import ReidError
from reidcore.plugins import get_plugins
from tests.engine.conftest import fast_recipe_dict, resolve_dict


def damage_largest_tensor(path: Path) -> None:
    """Overwrite bytes in the middle of the largest tensor record of a checkpoint (the zip
    container stays valid: only the tensor's bytes change, as on a bad disk sector)."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename),
                   key=lambda i: i.file_size)
    with path.open("r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", handle.read(4))
        start = info.header_offset + 30 + name_length + extra_length
        handle.seek(start + info.file_size // 2)
        handle.write(bytes(range(0x40, 0x60)))


def payload(value: float) -> dict:
    return {"format": ckpt.FORMAT, "epoch": 1, "step": 1,
            "modules": {"net": {"weight": torch.full((4096,), value)}}}


def test_damaged_tensor_bytes_are_detected_by_the_digest(tmp_path):
    path = tmp_path / "epoch-0001.pt"
    ckpt.save(path, payload(1.5))
    damage_largest_tensor(path)
    # the container itself does not notice: torch.load reads the damaged values
    loaded = torch.load(path, weights_only=True)
    assert not torch.equal(loaded["modules"]["net"]["weight"], torch.full((4096,), 1.5))
    with pytest.raises(ReidError, match="epoch-0001.pt is damaged"):
        ckpt.read(path)


def test_prune_never_deletes_the_newest_checkpoint_that_verifies(tmp_path):
    for epoch in (1, 2, 3):
        ckpt.save(tmp_path / f"epoch-{epoch:04d}.pt", payload(float(epoch)))
    damage_largest_tensor(tmp_path / "epoch-0003.pt")
    deleted = ckpt.prune(tmp_path, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0002.pt", "epoch-0003.pt"]
    assert deleted == [tmp_path / "epoch-0001.pt"]
    assert not ckpt.verifies(tmp_path / "epoch-0003.pt")
    assert ckpt.newest_verified(tmp_path) == tmp_path / "epoch-0002.pt"


class StopAtStep:
    """Ends a run as a kill would, after ``step`` steps."""

    def __init__(self, step: int):
        self.step = step

    @hookimpl
    def reid_train_step_end(self, run, step, metrics):
        if step == self.step:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_resume_skips_a_damaged_checkpoint_and_says_so(cache, tmp_path, capsys):
    recipe = resolve_dict(fast_recipe_dict(cache, epochs=3, keep_last=3))
    run_dir = tmp_path / "run"
    plugins = get_plugins()
    plugins.manager.register(StopAtStep(3), name="stop-at-3")
    try:
        with pytest.raises(KeyboardInterrupt):  # killed in epoch 3, after epoch 2's save
            run_recipe(recipe, plugins, out=run_dir, quiet=True)
    finally:
        plugins.manager.unregister(name="stop-at-3")
    damaged = run_dir / "checkpoints" / "epoch-0002.pt"
    damage_largest_tensor(damaged)
    capsys.readouterr()

    summary = run_recipe(recipe, get_plugins(), out=run_dir, resume=True, quiet=False)
    out = capsys.readouterr().out
    assert f"{damaged} is damaged" in out
    assert "using the previous good checkpoint" in out and "epoch-0001.pt" in out
    assert "resumed from" in out and "(epoch 1, step 1)" in out
    assert summary["status"] == "completed" and summary["steps"] == 3
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "epoch-0002.pt.damaged" in names  # set aside, kept for inspection
    for name in ("epoch-0001.pt", "epoch-0002.pt", "epoch-0003.pt"):
        data = ckpt.read(run_dir / "checkpoints" / name)  # all written anew verify
        assert all(torch.isfinite(v).all() for v in data["modules"]["network"].values()
                   if v.is_floating_point())


def test_resume_with_only_damaged_checkpoints_is_refused(cache, tmp_path):
    recipe = resolve_dict(fast_recipe_dict(cache, epochs=1))
    run_dir = tmp_path / "run"
    run_recipe(recipe, get_plugins(), out=run_dir, quiet=True)
    damage_largest_tensor(run_dir / "checkpoints" / "epoch-0001.pt")
    with pytest.raises(ReidError, match="no checkpoint in .* can be loaded"):
        run_recipe(recipe, get_plugins(), out=run_dir, resume=True, quiet=True)
