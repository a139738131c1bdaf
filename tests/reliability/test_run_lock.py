"""Issue 16, item 2: a run directory belongs to one run at a time; a second run fails at
once naming the owner (pid, host, start time); a dead owner's lock is taken over."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from reidcore import hookimpl
from reidcore.engine.runner import run_recipe
from reidcore.errors import ReidError
from reidcore.plugins import get_plugins
from tests.engine.conftest import fast_recipe_dict, resolve_dict


class SecondRun:
    """While the first run trains, starts a second run into the same directory."""

    def __init__(self, recipe, run_dir):
        self.recipe, self.run_dir = recipe, run_dir
        self.errors: list[str] = []

    @hookimpl
    def reid_train_step_end(self, run, step, metrics):
        if step == 1:
            try:
                run_recipe(self.recipe, get_plugins(), out=self.run_dir, quiet=True)
            except ReidError as exc:
                self.errors.append(str(exc))


def test_a_second_run_into_a_busy_directory_fails_naming_the_owner(tmp_path):
    recipe = resolve_dict(fast_recipe_dict(tmp_path / "data", epochs=1))
    run_dir = tmp_path / "run"
    second = SecondRun(recipe, run_dir)
    plugins = get_plugins()
    plugins.manager.register(second, name="second-run")
    try:
        summary = run_recipe(recipe, plugins, out=run_dir, quiet=True)
    finally:
        plugins.manager.unregister(name="second-run")
    assert summary["status"] == "completed"  # the owner is not disturbed
    assert len(second.errors) == 1
    message = second.errors[0]
    assert f"run directory {run_dir} is in use by another run" in message
    assert f"pid {os.getpid()} on host {socket.gethostname()}, started 20" in message
    # released at the end: the directory can be resumed
    run_recipe(recipe, get_plugins(), out=run_dir, resume=True, quiet=True)


HOLDER = """
import sys, time
from pathlib import Path
from reidcore.engine.lock import RunLock
lock = RunLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_killed_owner_leaves_a_stale_lock_that_is_taken_over(tmp_path):
    from reidcore.engine.lock import RunDirLockedError, RunLock

    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirLockedError, match=f"pid {holder.pid} on host "
                                                    f"{socket.gethostname()}"):
            RunLock(run_dir).acquire()
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # as a crash or kill -9 would end it
        holder.wait()
    with RunLock(run_dir) as lock:
        assert lock.stale is not None and lock.stale["pid"] == holder.pid
        assert f"pid {holder.pid}" in lock.stale_message()
        assert "no longer running" in lock.stale_message()
    with RunLock(run_dir) as lock:  # released cleanly: nothing stale next time
        assert lock.stale is None
