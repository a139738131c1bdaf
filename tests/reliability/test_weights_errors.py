"""Item 13 (weights): a damaged or mislabelled ``.safetensors`` file is a clear error naming
the file, never a traceback from the safetensors library."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from reidcore.errors import ReidError
from reidcore.models.weights import read_state_dict


def test_a_good_safetensors_file_reads(tmp_path):
    path = tmp_path / "good.safetensors"
    save_file({"w": torch.arange(6.0).reshape(2, 3)}, str(path))
    assert torch.equal(read_state_dict(path)["w"], torch.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickle", "upper-case suffix"])
def test_a_bad_safetensors_file_is_a_reid_error_naming_it(tmp_path, damage):
    path = tmp_path / ("bad.SAFETENSORS" if damage == "upper-case suffix" else "bad.safetensors")
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.ones(64, 64)}, str(good))
    data = good.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\xff" * 200)
    elif damage == "pickle":
        torch.save({"w": torch.ones(2)}, path)  # a .pth saved under the wrong suffix
    else:
        path.write_bytes(data[:40])
    with pytest.raises(ReidError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert str(path) in message
    assert "not a valid .safetensors file" in message
