"""Training throughput of the FlipReID method at the paper's size, with and without mixed
precision, on random 384x128 batches of 16 x 4 (no data set needed; nothing downloads).

    python plugins/flipreid/benchmarks/throughput.py --device cuda --steps 30
    python plugins/flipreid/benchmarks/throughput.py --device cpu --steps 2 --height 128 --width 64

Images/s counts the images of the batch (each step also embeds their flips). Measures only.
"""

from __future__ import annotations

import argparse
import time


def measure(args: argparse.Namespace, precision_mode: str) -> float:
    import torch
    from reidcore.api import MethodContext, Precision, StepOptimizers
    from reidcore.testing import installed_plugins, resolve_recipe

    registry = installed_plugins().registry
    sets = ["backbone.pretrained=\"\"", f"method.variant={args.variant}", "method.frozen_epochs=0",
            f"train.precision={precision_mode}", *args.overrides]
    recipe = resolve_recipe(args.recipe, sets)
    device = torch.device(args.device)
    precision = Precision.create(device, precision_mode)
    batch_size = recipe.loader.identities * recipe.loader.instances
    context = MethodContext(recipe=recipe, registry=registry, num_classes=args.classes,
                            steps_per_epoch=10**6, device=device, precision=precision)
    method = registry.get("method", "flipreid").create(recipe.method.config, context=context)
    for module in method.modules().values():
        module.to(device).train()
    optim = StepOptimizers(method.configure_optimizers(), precision)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, args.height, args.width, generator=generator)
    pids = torch.arange(batch_size) // recipe.loader.instances
    batch = {"images": images.to(device), "pids": pids.to(device)}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for step in range(args.warmup):
        method.training_step(batch, step, optim)
        precision.update()
    sync()
    started = time.perf_counter()
    for step in range(args.steps):
        method.training_step(batch, args.warmup + step, optim)
        precision.update()
    sync()
    return args.steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="flipreid-market1501")
    parser.add_argument("--variant", default="flipreid", choices=["plain", "flip_tta", "flipreid"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--classes", type=int, default=751)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")
    args = parser.parse_args()
    for mode in args.precisions:
        rate = measure(args, mode)
        print(f"{args.recipe} {args.variant} {args.height}x{args.width} {mode}: "
              f"{rate:.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
