"""CPU embedding speed of an exported ONNX model (onnxruntime) against the same network in
PyTorch (eager, eval mode, no_grad), both computing the run's inference embedding (flip
averaging as the recipe evaluates, so two passes per image).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/export_speed.py \\
        --json benchmarks/results/export_speed.json

Networks: the quickstart's ResNet-10-T at 64 x 32 and ResNet-50 at 256 x 128 (the usual
re-ID input), untrained (speed does not depend on the weights; parity is still checked).
Per configuration: images per second at two batch sizes, the median of ``--repeats`` timed
calls (PyTorch and onnxruntime alternating) after a warm-up, with ``--threads`` intra-op
threads in both runtimes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

CONFIGS = {  # name: (overrides of the quickstart recipe, batch sizes)
    "resnet10t-64x32": (["backbone.model=resnet10t", "loader.height=64", "loader.width=32"],
                        [1, 32]),
    "resnet50-256x128": (["backbone.model=resnet50", "loader.height=256", "loader.width=128"],
                         [1, 8]),
}


def _median_seconds(calls, repeats: int) -> list[float]:
    """Median wall time of each call, the calls alternating (a shared machine's load then
    weighs on both alike), after one warm-up call each."""
    for call in calls:
        call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, spent in zip(calls, times, strict=True):
            start = time.perf_counter()
            call()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from reidcore.engine.extract import FeatureExtractor
    from reidcore.export.embedding import InferenceEmbedding, evaluation_options
    from reidcore.export.onnx_export import INPUT, export_method
    from reidcore.export.parity import compare
    from reidcore.plugins import get_plugins

    torch.set_num_threads(args.threads)
    plugins = get_plugins()
    results: dict[str, dict] = {}
    for name in args.configs:
        extractor = FeatureExtractor("quickstart", plugins=plugins, overrides=CONFIGS[name][0])
        recipe = extractor.recipe
        flip, normalise = evaluation_options(recipe)
        height, width = recipe.loader.height, recipe.loader.width
        model = export_method(extractor.method, height, width, flip=flip, normalise=normalise)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        network = InferenceEmbedding(extractor.method, flip, normalise).eval()
        entry: dict[str, object] = {"flip": flip, "normalise": normalise}
        for batch in CONFIGS[name][1]:
            images = torch.randn(batch, 3, height, width,
                                 generator=torch.Generator().manual_seed(batch))
            array = images.numpy()
            with torch.no_grad():
                reference = network(images).numpy()
                torch_s, onnx_s = _median_seconds(
                    [lambda n=network, x=images: n(x),
                     lambda s=session, x=array: s.run(None, {INPUT: x})], args.repeats)
            parity = compare(reference, session.run(None, {INPUT: array})[0], "random")
            entry[f"batch{batch}"] = {
                "torch_images_per_s": round(batch / torch_s, 1),
                "onnx_images_per_s": round(batch / onnx_s, 1),
                "speedup": round(torch_s / onnx_s, 2),
                "max_abs_diff": parity.max_abs_diff}
            print(name, batch, json.dumps(entry[f"batch{batch}"]), flush=True)
        results[name] = entry
    report = {"command": " ".join(sys.argv), "threads": args.threads, "repeats": args.repeats,
              "torch": torch.__version__, "onnxruntime": ort.__version__, "results": results}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
