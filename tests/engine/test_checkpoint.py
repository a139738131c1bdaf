"""Checkpoints: atomic writes (a kill during a save keeps the previous one), weights_only
loading, key-mismatch reports, RNG round trips, rotation."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from reidcore.engine import checkpoint as ckpt
from reidcore.errors import ReidError


def payload(value: float, size: int = 4) -> dict:
    return {"format": ckpt.FORMAT, "epoch": 1, "step": 10,
            "modules": {"net": {"weight": torch.full((size,), value)}}}


def test_failed_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "epoch-0001.pt"
    ckpt.save(path, payload(1.0))

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        ckpt.save(path, payload(2.0))
    monkeypatch.undo()
    assert ckpt.read(path)["modules"]["net"]["weight"][0].item() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001.pt"]  # no temp file left


KILLED_WRITER = """
import sys, torch
from reidcore.engine import checkpoint as ckpt
print("saving", flush=True)
ckpt.save(__import__("pathlib").Path(sys.argv[1]), {"format": 1, "epoch": 2, "step": 2,
          "modules": {"net": {"weight": torch.full((25_000_000,), 2.0)}}})
print("saved", flush=True)
"""


def test_kill_during_save_keeps_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "epoch-0001.pt"
    ckpt.save(path, payload(1.0))
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "saving"
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
        time.sleep(0.01)
    temp_seen = any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert temp_seen, "the writer never started its temporary file"
    data = ckpt.read(path)  # the previous checkpoint, complete
    assert data["epoch"] == 1 and data["modules"]["net"]["weight"].tolist() == [1.0] * 4
    assert ckpt.latest(tmp_path) == path  # temp files are never taken for checkpoints


def test_read_refuses_pickled_code_and_foreign_files(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "modules": {}, "hook": torch.nn.ReLU()}, evil)
    with pytest.raises(ReidError, match="never pickled code"):
        ckpt.read(evil)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(1)}, other)
    with pytest.raises(ReidError, match="not a reid checkpoint"):
        ckpt.read(other)
    with pytest.raises(ReidError, match="not found"):
        ckpt.read(tmp_path / "missing.pt")


def test_load_modules_reports_missing_and_unexpected_keys():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    del state["1.running_mean"]
    state["2.weight"] = torch.zeros(1)
    with pytest.raises(ReidError) as info:
        ckpt.load_modules({"net": net}, {"net": state, "extra": {}}, "run/best.pt")
    message = str(info.value)
    assert "run/best.pt" in message and "unexpected module 'extra'" in message
    assert "'net' missing keys: 1.running_mean" in message
    assert "'net' unexpected keys: 2.weight" in message
    good = {k: v + 1 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    fresh = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ckpt.load_modules({"net": fresh}, {"net": good}, "x")
    assert torch.equal(fresh[0].weight, good["0.weight"])
    with pytest.raises(ReidError, match="missing module 'net'"):
        ckpt.load_modules({"net": fresh}, {}, "x")


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    ckpt.save(tmp_path / "epoch-0001.pt", {**payload(0.0), "rng": ckpt.rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(ckpt.read(tmp_path / "epoch-0001.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_prune_keeps_last_n(tmp_path):
    for epoch in (1, 2, 3, 10):
        ckpt.save(tmp_path / f"epoch-{epoch:04d}.pt", payload(float(epoch)))
    (tmp_path / "best.pt").write_bytes(b"")
    ckpt.prune(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "epoch-0003.pt",
                                                          "epoch-0010.pt"]
    assert ckpt.latest(tmp_path) == tmp_path / "epoch-0010.pt"
    assert ckpt.latest(Path(tmp_path / "none")) is None
