"""Issue 25, item 7: ``--resume`` with ``train.epochs`` below the epochs already trained is
refused (it used to evaluate the later weights as the earlier epoch), and the temporary
files of an atomic write that a kill left behind (``.epoch-0001.pt.*.tmp``) are removed at
the next start."""

from __future__ import annotations

import pytest

from reidcore.engine.runner import run_recipe
from reidcore.errors import ReidError
from reidcore.plugins import get_plugins
from tests.engine.conftest import fast_recipe_dict, resolve_dict


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run directory after 2 epochs, and the raw recipe."""
    root = tmp_path_factory.mktemp("resume")
    raw = fast_recipe_dict(root / "data", epochs=2, steps=1)
    run_recipe(resolve_dict(raw), get_plugins(), out=root / "run", quiet=True)
    return root / "run", raw


@pytest.mark.parametrize("allow", [False, True])
def test_resuming_with_fewer_epochs_than_trained_is_refused(trained, allow):
    run_dir, raw = trained
    shorter = resolve_dict({**raw, "train": {**raw["train"], "epochs": 1}})
    with pytest.raises(ReidError) as info:
        run_recipe(shorter, get_plugins(), out=run_dir, resume=True, quiet=True,
                   allow_recipe_change=allow)
    if allow:  # the change is allowed, the shortening is not
        assert str(info.value) == (
            f"--resume: {run_dir} has already trained 2 epochs "
            f"({run_dir / 'checkpoints' / 'epoch-0002.pt'}), more than train.epochs = 1; a "
            f"run cannot be shortened. Give train.epochs >= 2, or evaluate an earlier "
            f"checkpoint with `reid eval --run {run_dir} --checkpoint FILE`")
    else:
        assert "train.epochs (2 -> 1)" in str(info.value)


def test_leftover_temporary_files_of_a_kill_are_removed_at_the_next_start(trained, capsys):
    run_dir, raw = trained
    leftovers = [run_dir / "checkpoints" / ".epoch-0003.pt.k2j3h4.tmp",
                 run_dir / ".summary.json.x8y9.tmp"]
    for path in leftovers:
        path.write_bytes(b"\0" * 1000)
    keep = run_dir / "checkpoints" / "notes.tmp"  # not a temporary file of ours
    keep.write_text("mine")
    longer = resolve_dict({**raw, "train": {**raw["train"], "epochs": 3}})
    summary = run_recipe(longer, get_plugins(), out=run_dir, resume=True, quiet=False,
                         allow_recipe_change=True)
    assert summary["status"] == "completed"
    assert not any(path.exists() for path in leftovers) and keep.exists()
    out = capsys.readouterr().out
    assert f"removed {leftovers[0]}, left by an interrupted write" in out
