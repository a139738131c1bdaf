"""The core's dataset components (registered by ``reidcore.builtin``).

Importing this module imports only attrs config classes (no torch, no scanning); the
dataset modules hold nothing heavier than ``re`` and attrs at import time.
"""

from __future__ import annotations

from reidcore.registry import ComponentSpec

_PKG = "reidcore.data.datasets"


def dataset_specs() -> list[ComponentSpec]:
    from reidcore.data.datasets import (
        cuhk03,
        dukemtmcreid,
        folder,
        gtasynthreid,
        market1501,
        msmt17,
        pit,
        synthetic,
    )

    specs = [
        ComponentSpec(
            name="synthetic", kind="dataset", config=synthetic.SyntheticConfig,
            build=f"{_PKG}.synthetic:build",
            summary="procedural pedestrians, generated on first use (no download)"),
        ComponentSpec(
            name="market1501", kind="dataset", config=market1501.Market1501Config,
            build=f"{_PKG}.market1501:build",
            summary="Market-1501 (751 train ids, 3,368 query, 15,913 gallery)"),
        ComponentSpec(
            name="dukemtmcreid", kind="dataset", config=dukemtmcreid.DukeMTMCreIDConfig,
            build=f"{_PKG}.dukemtmcreid:build",
            summary="DukeMTMC-reID (702 train ids, 2,228 query, 17,661 gallery)"),
        ComponentSpec(
            name="msmt17", kind="dataset", config=msmt17.MSMT17Config,
            build=f"{_PKG}.msmt17:build",
            summary="MSMT17 V1/V2 (1,041 train ids, 11,659 query, 82,161 gallery)"),
        ComponentSpec(
            name="cuhk03", kind="dataset", config=cuhk03.CUHK03Config,
            build=f"{_PKG}.cuhk03:build",
            summary="CUHK03 labeled/detected, new 767/700 or classic protocol (needs "
                    "reidcore[cuhk03])"),
        ComponentSpec(
            name="gtasynthreid", kind="dataset", config=gtasynthreid.GTASynthReidConfig,
            build=f"{_PKG}.gtasynthreid:build",
            summary="GTASynthReid (538 synthetic GTA V identities)"),
        ComponentSpec(
            name="pit", kind="dataset", config=pit.PITConfig, build=f"{_PKG}.pit:build",
            summary="SAN's Paired-Image-Texture data (image + texture map in extras)"),
        ComponentSpec(
            name="folder", kind="dataset", config=folder.FolderConfig,
            build=f"{_PKG}.folder:build",
            summary="any dataset: split folders + filename regex, or a CSV manifest"),
    ]
    return specs
