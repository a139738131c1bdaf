"""Issue 25, item 6: files a user hands in get one message each, naming the file, what is
wrong with it and what to do: ``reid eval`` on an empty, truncated or text ``.npz`` and a
``run.lock`` that is a directory (no raw EOFError, BadZipFile, pickle or IsADirectoryError)."""

from __future__ import annotations

import numpy as np
import pytest

from reidcore.cli import main
from reidcore.engine.lock import RunLock


def _eval(capsys, query, gallery) -> str:
    code = main(["eval", "--query", str(query), "--gallery", str(gallery)])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    return err


@pytest.fixture
def gallery(tmp_path):
    path = tmp_path / "gallery.npz"
    np.savez(path, features=np.eye(3, dtype=np.float32), pids=np.arange(3))
    return path


def test_an_empty_npz_is_named_as_empty(tmp_path, capsys, gallery):
    query = tmp_path / "query.npz"
    query.write_bytes(b"")
    err = _eval(capsys, query, gallery)
    assert f"--query {query} is empty (0 bytes)" in err and "reid extract" in err


def test_a_truncated_npz_is_named_as_damaged(tmp_path, capsys, gallery):
    query = tmp_path / "query.npz"
    query.write_bytes(gallery.read_bytes()[:200])
    err = _eval(capsys, query, gallery)
    assert f"--query {query} is a damaged .npz archive (truncated or corrupted" in err
    assert "write it again" in err


def test_a_text_file_named_npz_is_named_as_text(tmp_path, capsys, gallery):
    query = tmp_path / "query.npz"
    query.write_text("path,pid\na.jpg,1\n")
    err = _eval(capsys, query, gallery)
    assert f"--query {query} is not a .npz file (a text file" in err
    assert "pickled" not in err


def test_a_run_lock_that_is_a_directory_is_named(tmp_path):
    (tmp_path / "run" / "run.lock").mkdir(parents=True)
    with pytest.raises(Exception) as info:
        RunLock(tmp_path / "run").acquire()
    assert not isinstance(info.value, IsADirectoryError)
    assert str(info.value).startswith(f"{tmp_path / 'run' / 'run.lock'} is a directory")
    assert "remove it" in str(info.value)
