"""Which evaluation protocol applies, and which gallery item is each query's own image.

Shared by the evaluator and the ranked-results picture (so neither imports the other).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def resolve_protocol(protocol: str, have_camids: bool) -> str:
    """``auto`` becomes ``market`` with camera ids and ``no-camera`` without."""
    if protocol == "auto":
        return "market" if have_camids else "no-camera"
    return protocol


def query_gallery_index_from_paths(query_paths: Sequence[str],
                                   gallery_paths: Sequence[str]) -> np.ndarray | None:
    """Gallery index of each query's own image (-1 if absent); None without paths."""
    if not query_paths or not gallery_paths:
        return None
    where = {str(path): index for index, path in enumerate(gallery_paths)}
    return np.array([where.get(str(path), -1) for path in query_paths], np.int64)
