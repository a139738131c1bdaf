"""One run at a time in a run directory: ``run.lock``.

Two runs writing to one directory would interleave their files (a recipe from one, a
summary and ``best.pt`` from the other), so a run holds an exclusive ``flock`` on
``<run dir>/run.lock`` for as long as it owns the directory, and writes its owner there
(pid, host, start time, command) for the message a second run gets. The kernel drops the
``flock`` when the owner dies, however it dies (``kill -9`` included), so a lock file with
an owner but no ``flock`` is stale: the next run takes it over and says whose it was.
The file stays (emptied) when a run ends: deleting it would let a waiting opener lock a
file that is no longer the directory's. Where ``fcntl`` is missing (Windows), a lock
whose owner is a live process of this host, or of another host, counts as held.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from reidcore.engine.rundir import RunDirectory
from reidcore.errors import ReidError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


class RunDirLockedError(ReidError):
    """The run directory is owned by another run that is still running."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def describe_owner(owner: dict[str, Any]) -> str:
    command = " ".join(str(part) for part in owner.get("command", []))
    return (f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, started "
            f"{owner.get('started', '?')}" + (f" ({command})" if command else ""))


class RunLock:
    """The exclusive claim of one run on ``run_dir`` (see the module docstring)::

        with RunLock(run_dir) as lock:   # RunDirLockedError if another run owns it
            ...                          # lock.stale: the dead owner taken over, if any
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = RunDirectory(self.run_dir).lock_file
        self.stale: dict[str, Any] | None = None
        self._fd: int | None = None

    def _read(self, fd: int) -> dict[str, Any] | None:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = b""
        while chunk := os.read(fd, 65536):
            raw += chunk
        if not raw.strip():
            return None
        try:
            owner = json.loads(raw)
        except ValueError:
            return {"pid": "?", "host": "?", "started": "?"}
        return owner if isinstance(owner, dict) else None

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            raise ReidError(f"{self.path} is a directory, where the run's lock file belongs; "
                            f"remove it (nothing of the run is kept there) and start again")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    owner = self._read(fd) or {}
                    raise RunDirLockedError(
                        f"run directory {self.run_dir} is in use by another run: "
                        f"{describe_owner(owner)}; wait for it to end or choose another "
                        f"--out") from None
            previous = self._read(fd)
            if previous is not None and fcntl is None and (
                    previous.get("host") != socket.gethostname()
                    or _pid_alive(int(previous.get("pid", 0)))):
                raise RunDirLockedError(f"run directory {self.run_dir} is in use by another "
                                        f"run: {describe_owner(previous)}; if it has ended, "
                                        f"delete {self.path}")
            self.stale = previous
            owner = {"pid": os.getpid(), "host": socket.gethostname(),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": sys.argv}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def stale_message(self) -> str | None:
        """What to tell the user when a dead run's lock was taken over."""
        if self.stale is None:
            return None
        return (f"note: run directory {self.run_dir} was locked by a run that is no longer "
                f"running ({describe_owner(self.stale)}); its lock is taken over")

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
