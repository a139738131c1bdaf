"""Progress bars for long loops (an epoch, feature extraction, re-ranking, a dataset check).

One place that decides how progress is shown: a tqdm bar on a terminal, nothing when stderr is
not a terminal (CI logs, files, pipes) or when ``REID_PROGRESS=0``. ``REID_PROGRESS=1`` forces
the bar on (e.g. under a job scheduler that captures a pty-less stream but shows it live).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """Whether bars are shown: ``REID_PROGRESS`` if set, else whether stderr is a terminal."""
    forced = os.environ.get("REID_PROGRESS")
    if forced is not None:
        return forced.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _width() -> dict[str, object]:
    """tqdm's width: follow a real terminal; a fixed 100 columns when forced on elsewhere
    (tqdm sizes a non-terminal stream to a few columns and truncates the bar)."""
    if getattr(sys.stderr, "isatty", lambda: False)():
        return {"dynamic_ncols": True}
    return {"ncols": 100}


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "",
             unit: str = "it", leave: bool = False) -> Iterator[T]:
    """``iterable`` wrapped in a bar when :func:`progress_enabled`, else unchanged.

    The bar is transient by default (``leave=False``): the per-epoch log line stays the record.
    """
    if not progress_enabled():
        yield from iterable
        return
    bar = tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr,
               **_width())
    try:
        yield from bar
    finally:
        bar.close()


class ProgressCounter:
    """A bar advanced by hand (``update(n)``) for loops that are not a single iterable."""

    def __init__(self, *, total: int | None, desc: str = "", unit: str = "it",
                 leave: bool = False) -> None:
        self._bar = (tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr,
                          **_width()) if progress_enabled() else None)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
