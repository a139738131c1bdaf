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


def camera_ids_warning(query_has_camids: bool, gallery_has_camids: bool,
                       protocol: str = "auto") -> str | None:
    """Why ``auto`` fell back to ``no-camera`` although one side has camera ids, or None.

    With camera ids on one side only the market protocol cannot remove same-camera
    matches, and the no-camera protocol counts them as correct: mAP can double. The user
    must know (and can give both sides' ids or choose the protocol)."""
    if protocol != "auto" or query_has_camids == gallery_has_camids:
        return None
    side, other = ("query", "gallery") if query_has_camids else ("gallery", "query")
    return (f"camera ids are given for the {side} only, not for the {other}: the no-camera "
            "protocol is used, which counts same-camera matches as correct (the market "
            "protocol removes them, and scores are usually much lower); give camera ids on "
            "both sides, or choose the protocol explicitly")


def query_gallery_index_from_paths(query_paths: Sequence[str],
                                   gallery_paths: Sequence[str]) -> np.ndarray | None:
    """Gallery index of each query's own image (-1 if absent); None without paths."""
    if not query_paths or not gallery_paths:
        return None
    where = {str(path): index for index, path in enumerate(gallery_paths)}
    return np.array([where.get(str(path), -1) for path in query_paths], np.int64)
