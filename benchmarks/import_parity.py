"""Parity of ``reid import`` with the anchors' own model code: same weights, same images,
same embeddings.

For each architecture, the anchor's network is built from its own source files (torchreid's
``torchreid/models/{resnet,osnet}.py``; fast-reid's ``build_model`` on its
``configs/Market1501/<arch>.yml``), randomly initialised, its BatchNorm statistics gathered
from a few random batches and its BN affines, GeM ``p`` and non-local output BN perturbed
(so no layer is an identity), and saved in the anchor's own checkpoint layout (torchreid:
``{"state_dict": {"module." + key}, "epoch", "rank1" (a NumPy float), "optimizer"}``;
fast-reid: its ``Checkpointer``'s ``{"model": ...}``). ``reid import`` writes a run
directory from that file; reid's :class:`FeatureExtractor` on the run and the anchor's model
in eval mode then embed the same images, as the same ImageNet-normalised tensors (for
fast-reid also its whole model on the same pixels on its 0-255 scale, normalised inside
the model: ``from_0_255_pixels``, which differs by the rounding of the two ways to
normalise, amplified through the network). Reported per architecture: max absolute
difference, max relative difference (over the embedding's norm), and the keys accounted
for.

Needs the anchors' sources (not reid's dependencies): clone
https://github.com/KaiyangZhou/deep-person-reid and https://github.com/JDAI-CV/fast-reid,
and ``pip install yacs termcolor tabulate`` (fast-reid's imports)::

    OMP_NUM_THREADS=2 python benchmarks/import_parity.py --torchreid DEEP_PERSON_REID \
        --fastreid FAST_REID --out benchmarks/results/import_parity.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

TORCHREID_ARCHS = ("resnet50", "resnet50_fc512", "osnet_x1_0")
FASTREID_ARCHS = ("bagtricks_R50", "bagtricks_R50-ibn", "AGW_R50", "AGW_R50-ibn", "sbs_R50",
                  "sbs_R50-ibn")
NUM_CLASSES = 751
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_module_file(path: Path, name: str) -> Any:
    """A module from one source file (torchreid's model files import only torch)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@torch.no_grad()
def make_realistic(model: nn.Module, height: int, width: int, seed: int,
                   to_input=lambda x: x) -> None:
    """Perturbed BN affines, then BN statistics gathered from random batches with them, so
    that every layer matters (a fresh BN is the identity in eval mode, a fresh non-local
    block adds 0) and activations keep their scale in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.InstanceNorm2d)) \
                and module.affine:
            module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
            module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the batches below
    model.train()
    for batch in range(3):
        model(to_input(images(8, height, width, seed=100 + 10 * seed + batch)))
    model.eval()


def images(count: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    """Pixels in [0, 1]: smooth random "pedestrians" (upsampled noise), seeded."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, height // 8, width // 8, generator=generator)
    fine = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear",
                                           align_corners=False)
    return (fine + 0.05 * torch.rand(count, 3, height, width, generator=generator)).clamp(0, 1)


def reid_embeddings(framework: str, checkpoint: Path, arch: str, work: Path, plugins: Any,
                    pixels: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any], float]:
    from reidcore.engine.extract import FeatureExtractor
    from reidcore.importers.write import import_checkpoint

    run_dir = work / f"{framework}-{arch}"
    start = time.perf_counter()
    record = import_checkpoint(framework, checkpoint, arch, run_dir, plugins=plugins,
                               replace=True)
    seconds = time.perf_counter() - start
    extractor = FeatureExtractor(run_dir, plugins=plugins)
    return extractor((pixels - MEAN) / STD), record, seconds


def compare(anchor: torch.Tensor, ours: torch.Tensor) -> dict[str, float]:
    diff = (anchor - ours).abs()
    return {"max_abs_diff": float(diff.max()),
            "max_rel_diff": float((diff.max(1).values / anchor.norm(dim=1)).max()),
            "embedding_dim": int(anchor.shape[1]),
            "mean_abs_embedding": float(anchor.abs().mean())}


def torchreid_arch(root: Path, arch: str, work: Path, plugins: Any) -> dict[str, Any]:
    files = {"resnet50": "resnet.py", "resnet50_fc512": "resnet.py", "osnet_x1_0": "osnet.py"}
    module = load_module_file(root / "torchreid" / "models" / files[arch], f"anchor_{arch}")
    torch.manual_seed(0)
    model = getattr(module, arch)(num_classes=NUM_CLASSES, pretrained=False, loss="softmax")
    make_realistic(model, 256, 128, seed=2, to_input=lambda x: (x - MEAN) / STD)
    path = work / f"{arch}.pth.tar-60"
    # torchreid's save_checkpoint layout, trained under DataParallel ("module." keys)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
                "epoch": 60, "rank1": np.float64(0.9), "optimizer": {"state": {}}}, path)
    pixels = images(16, 256, 128)
    with torch.no_grad():
        anchor = model((pixels - MEAN) / STD)
    ours, record, seconds = reid_embeddings("torchreid", path, arch, work, plugins, pixels)
    return {**compare(anchor, ours), **_accounting(record, model.state_dict()),
            "import_seconds": round(seconds, 2)}


def fastreid_arch(root: Path, arch: str, work: Path, plugins: Any) -> dict[str, Any]:
    sys.path.insert(0, str(root))
    from fastreid.config import get_cfg
    from fastreid.modeling import build_model
    from fastreid.utils.checkpoint import Checkpointer

    cfg = get_cfg()
    cfg.merge_from_file(str(root / "configs" / "Market1501" / f"{arch}.yml"))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.HEADS.NUM_CLASSES = NUM_CLASSES
    torch.manual_seed(0)
    model = build_model(cfg)
    height, width = cfg.INPUT.SIZE_TEST
    make_realistic(model.backbone, height, width, seed=3,
                   to_input=lambda x: (x - MEAN) / STD)
    with torch.no_grad():  # SBS's trainable GeM p away from its initial 3
        for name, param in model.heads.named_parameters():
            if name == "pool_layer.p":
                param.fill_(3.7)
    # the BNNeck's statistics from the pooled maps of other images
    make_realistic(model.heads.bottleneck, height, width, seed=4,
                   to_input=lambda x: model.heads.pool_layer(model.backbone((x - MEAN) / STD)))
    model.eval()
    save_dir = work / f"fastreid-{arch}-logs"
    save_dir.mkdir()
    Checkpointer(model, str(save_dir), save_to_disk=True).save("model_final")
    path = save_dir / "model_final.pth"
    pixels = images(16, height, width)
    with torch.no_grad():
        # fast-reid's whole model on 0-255 pixels (it normalises them itself) and its
        # network on the ImageNet-normalised tensor reid gets: the first differs from reid
        # only by the rounding of the two normalisations, amplified through the network
        anchor_pixels = model({"images": pixels * 255.0})
        anchor = model.heads(model.backbone((pixels - MEAN) / STD))
    ours, record, seconds = reid_embeddings("fastreid", path, arch, work, plugins, pixels)
    saved = torch.load(path, map_location="cpu", weights_only=False)["model"]
    on_pixels = compare(anchor_pixels, ours)
    return {**compare(anchor, ours),
            "from_0_255_pixels": {k: on_pixels[k] for k in ("max_abs_diff", "max_rel_diff")},
            **_accounting(record, saved),
            "input": [int(height), int(width)], "import_seconds": round(seconds, 2)}


def _accounting(record: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    accounted = set(record["loaded"]) | set(record["checked_not_loaded"])
    return {"source_keys": len(state), "loaded": len(record["loaded"]),
            "checked_not_loaded": sorted(record["checked_not_loaded"]),
            "set_from_architecture": sorted(record["set_from_architecture"]),
            "unaccounted": sorted(set(state) - accounted)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torchreid", type=Path, help="a deep-person-reid checkout")
    parser.add_argument("--fastreid", type=Path, help="a fast-reid checkout")
    parser.add_argument("--archs", nargs="*", help="only these architectures")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/import_parity.json"))
    args = parser.parse_args()
    from reidcore.plugins import load_plugins

    plugins = load_plugins()
    results: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                               "images": 16, "archs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        jobs = []
        if args.torchreid:
            jobs += [("torchreid", arch, torchreid_arch, args.torchreid)
                     for arch in TORCHREID_ARCHS]
        if args.fastreid:
            jobs += [("fastreid", arch, fastreid_arch, args.fastreid) for arch in FASTREID_ARCHS]
        for framework, arch, run, root in jobs:
            if args.archs and arch not in args.archs:
                continue
            result = run(root, arch, work, plugins)
            results["archs"][f"{framework} {arch}"] = result
            print(f"{framework:9s} {arch:18s} max |diff| {result['max_abs_diff']:.2e}  "
                  f"rel {result['max_rel_diff']:.2e}  dim {result['embedding_dim']}  "
                  f"keys {result['source_keys']} (loaded {result['loaded']}, checked "
                  f"{len(result['checked_not_loaded'])}, unaccounted "
                  f"{len(result['unaccounted'])})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
