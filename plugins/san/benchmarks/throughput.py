"""SAN's training throughput (images/s) at 256x128: the ``san-cuhk03`` networks (ResNet-50
SA-Enc + SA-Dec, batch 16 x 4) and its full step (one forward, two gradients, four
optimizers), fp32 and mixed precision, on random data (no dataset needed, no weights read).

    python plugins/san/benchmarks/throughput.py --device cuda              # fp32, bf16, fp16
    python plugins/san/benchmarks/throughput.py --device cpu --steps 2 --batch 8 --size 64x32

Prints one line per precision: images/s over ``--steps`` timed steps after ``--warmup``.
"""

from __future__ import annotations

import argparse
import time

import torch


def build(precision: str, device: torch.device, classes: int, size: tuple[int, int]):
    """The method and the ``optim`` its step receives from the engine."""
    from reidcore.api import MethodContext, Precision
    from reidcore.testing import installed_plugins, resolve_recipe, step_optimizers

    registry = installed_plugins().registry
    overrides = ['backbone.pretrained=""', f"loader.height={size[0]}", f"loader.width={size[1]}",
                 f"loader.texture_height={size[0]}", f"loader.texture_width={2 * size[1]}",
                 "method.textures=dataset", "loader.textures=true"]
    recipe = resolve_recipe("san-cuhk03", overrides)
    context = MethodContext(recipe=recipe, registry=registry, num_classes=classes,
                            device=device, precision=Precision.create(device, precision),
                            steps_per_epoch=1000)
    method = registry.get("method", "san").create(recipe.method.config, context=context)
    for module in method.modules().values():
        module.to(device).train()
    context.clock.start_epoch(recipe.method.config.warmup_epochs, 1000)  # the main phase
    return method, step_optimizers(method, context)


def measure(method, optim, batch: dict, steps: int, warmup: int, device: torch.device) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for step in range(warmup):
        method.training_step(batch, step, optim)
        method.context.precision.update()
    sync()
    started = time.perf_counter()
    for step in range(steps):
        method.training_step(batch, step, optim)
        method.context.precision.update()
    sync()
    return steps * batch["images"].shape[0] / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--batch", type=int, default=64, help="a multiple of 4 (P x 4)")
    parser.add_argument("--size", default="256x128")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    height, width = (int(v) for v in args.size.split("x"))
    classes = 767
    generator = torch.Generator().manual_seed(0)
    batch = {"images": torch.randn(args.batch, 3, height, width, generator=generator),
             "pids": torch.arange(args.batch // 4).repeat_interleave(4),
             "textures": torch.rand(args.batch, 3, height, 2 * width, generator=generator) * 2 - 1}
    for precision in args.precisions:
        torch.manual_seed(0)
        method, optim = build(precision, device, classes, (height, width))
        rate = measure(method, optim, batch, args.steps, args.warmup, device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"{precision:5s} {args.size} batch {args.batch}: {rate:8.1f} images/s ({name})",
              flush=True)


if __name__ == "__main__":
    main()
