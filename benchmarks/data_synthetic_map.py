"""How hard is the synthetic data? mAP / rank-1 of untrained baselines on its test split.

    python benchmarks/data_synthetic_map.py [--style synthetic] [--size 128x64] [--network]

* raw pixels: images downsampled to 32x16 (RGB), flattened, Euclidean distance;
* (``--network``) an untrained ResNet-18 (random weights, eval mode), global-average-pooled
  features, Euclidean distance.

Standard Market-1501 protocol: gallery images of the query's identity from the query's
camera are ignored; distractors (pid 0) only count as wrong matches. A trained model
(the quickstart) should end far above both figures.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from reidcore.data.datasets.synthetic import SyntheticConfig, SyntheticDataset


def evaluate(dist: np.ndarray, q_pids, q_cams, g_pids, g_cams) -> tuple[float, float]:
    """(mAP, rank-1) with same-identity-same-camera gallery entries removed."""
    aps, top1 = [], []
    for i in range(len(q_pids)):
        keep = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        order = np.argsort(dist[i][keep], kind="stable")
        matches = (g_pids[keep][order] == q_pids[i]).astype(float)
        if not matches.any():
            continue
        hits = np.cumsum(matches)
        precision = hits / np.arange(1, len(matches) + 1)
        aps.append(float((precision * matches).sum() / matches.sum()))
        top1.append(matches[0])
    return float(np.mean(aps)), float(np.mean(top1))


def distances(q: np.ndarray, g: np.ndarray) -> np.ndarray:
    return ((q ** 2).sum(1)[:, None] + (g ** 2).sum(1)[None] - 2 * q @ g.T).clip(min=0)


def pixels(records) -> np.ndarray:
    out = []
    for record in records:
        with Image.open(record.path) as image:
            out.append(np.asarray(image.convert("RGB").resize((16, 32), Image.BILINEAR),
                                  dtype=np.float32).ravel() / 255)
    return np.stack(out)


def network_features(records, size: tuple[int, int]) -> np.ndarray:
    import torch
    import torchvision

    from reidcore.data import LoaderConfig, build_eval_loader

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    net.fc = torch.nn.Identity()
    net.eval()
    loader = build_eval_loader(records, LoaderConfig(height=size[0], width=size[1], workers=0,
                                                     test_batch_size=64))
    with torch.no_grad():
        return torch.cat([net(batch["images"]) for batch in loader]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="synthetic", choices=["synthetic", "real"])
    parser.add_argument("--size", default="128x64")
    parser.add_argument("--network", action="store_true", help="also an untrained ResNet-18")
    args = parser.parse_args()
    dataset = SyntheticDataset(SyntheticConfig(style=args.style, size=args.size))
    splits = dataset.load()
    q, g = splits.query, splits.gallery
    labels = [np.array([r.pid for r in q]), np.array([r.camid for r in q]),
              np.array([r.pid for r in g]), np.array([r.camid for r in g])]
    print(f"synthetic style={args.style} size={args.size}: {len(q)} query, {len(g)} gallery")
    m, r1 = evaluate(distances(pixels(q), pixels(g)), *labels)
    print(f"raw pixels (32x16, Euclidean): mAP {100 * m:.1f}%  rank-1 {100 * r1:.1f}%")
    if args.network:
        size = dataset.params.height, dataset.params.width
        m, r1 = evaluate(distances(network_features(q, size), network_features(g, size)),
                         *labels)
        print(f"untrained ResNet-18:          mAP {100 * m:.1f}%  rank-1 {100 * r1:.1f}%")


if __name__ == "__main__":
    main()
