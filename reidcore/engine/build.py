"""Building a recipe's method without data: ``reid check --build`` and contract examples.

On the meta device parameters have shapes but no storage, so a paper-size model costs
no memory or time; the parameter count of each named module is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from reidcore.registry import Kind, Registry


def expected_num_classes(recipe: Any, registry: Registry) -> tuple[int, str]:
    """Training identities from the source datasets' declared counts (no files read).
    Returns ``(count, note)``; 751 (Market-1501) with a note when a source declares none."""
    total, unknown = 0, []
    for section in recipe.data.source:
        try:
            dataset = registry.get(Kind.DATASET, section.name).create(section.config)
            expected = getattr(dataset, "expected", None)
        except Exception:  # e.g. a dataset that checks its folder when built
            expected = None
        if expected is None:
            unknown.append(section.name)
        else:
            total += int(expected.train_ids)
    if not recipe.data.source:
        return 751, "no [[data.source]]: classifier sized for 751 identities (Market-1501)"
    if unknown:
        return total + 751 * len(unknown), (f"{', '.join(unknown)} declare no identity count: "
                                            f"751 assumed for each")
    return total, ""


def count_parameters(modules: Mapping[str, nn.Module]) -> dict[str, Any]:
    """Parameters of each named module and of its direct children, and the total."""
    rows: dict[str, int] = {}
    trainable = 0
    seen: set[int] = set()
    total = 0
    for name, module in modules.items():
        rows[name] = sum(p.numel() for p in module.parameters())
        for child_name, child in module.named_children():
            rows[f"{name}.{child_name}"] = sum(p.numel() for p in child.parameters())
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
                trainable += p.numel() if p.requires_grad else 0
    return {"modules": rows, "total": total, "trainable": trainable}


def format_counts(counts: Mapping[str, Any]) -> str:
    lines = [f"{'module':40s} {'parameters':>14s}"]
    for name, count in counts["modules"].items():
        indent = "  " if "." in name else ""
        lines.append(f"{indent + name:40s} {count:>14,d}")
    lines.append(f"{'total':40s} {counts['total']:>14,d}")
    lines.append(f"{'trainable':40s} {counts['trainable']:>14,d}")
    return "\n".join(lines)


def example_recipe() -> dict[str, Any]:
    """The baseline's contract example: a ResNet-10-T recipe (see reidcore.testing)."""
    return {"backbone": {"name": "timm", "model": "resnet10t"}}
