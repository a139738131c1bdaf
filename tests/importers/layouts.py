"""Checkpoints in torchreid's and fast-reid's key layouts, written from their naming (not
from reid's networks): torchreid's OSNet (``conv2.0.conv2b.1.conv1.weight``, ``fc.0``,
``classifier``) and fast-reid's ResNet-50 (``backbone.layer1.0.bn1.IN.weight``,
``backbone.NL_2.0.W.1.running_mean``, ``heads.bottleneck.0.*``, ``heads.weight``)."""

from __future__ import annotations

import torch

Shape = tuple[int, ...]


def _bn(prefix: str, channels: int) -> dict[str, Shape]:
    return {f"{prefix}.weight": (channels,), f"{prefix}.bias": (channels,),
            f"{prefix}.running_mean": (channels,), f"{prefix}.running_var": (channels,),
            f"{prefix}.num_batches_tracked": ()}


def _conv_bn(prefix: str, cin: int, cout: int, k: int = 1, groups: int = 1) -> dict[str, Shape]:
    return {f"{prefix}.conv.weight": (cout, cin // groups, k, k), **_bn(f"{prefix}.bn", cout)}


def _light(prefix: str, c: int) -> dict[str, Shape]:
    return {f"{prefix}.conv1.weight": (c, c, 1, 1), f"{prefix}.conv2.weight": (c, 1, 3, 3),
            **_bn(f"{prefix}.bn", c)}


def _os_block(prefix: str, cin: int, cout: int) -> dict[str, Shape]:
    mid = cout // 4
    keys = {**_conv_bn(f"{prefix}.conv1", cin, mid), **_light(f"{prefix}.conv2a", mid)}
    for stream, depth in (("conv2b", 2), ("conv2c", 3), ("conv2d", 4)):
        for i in range(depth):
            keys.update(_light(f"{prefix}.{stream}.{i}", mid))
    keys.update({f"{prefix}.gate.fc1.weight": (mid // 16, mid, 1, 1),
                 f"{prefix}.gate.fc1.bias": (mid // 16,),
                 f"{prefix}.gate.fc2.weight": (mid, mid // 16, 1, 1),
                 f"{prefix}.gate.fc2.bias": (mid,),
                 **_conv_bn(f"{prefix}.conv3", mid, cout)})
    if cin != cout:
        keys.update(_conv_bn(f"{prefix}.downsample", cin, cout))
    return keys


def torchreid_osnet(channels=(16, 64, 96, 128), classes: int = 5) -> dict[str, Shape]:
    """torchreid's ``osnet_x0_25`` (default channels) state_dict key -> shape."""
    keys = {"conv1.conv.weight": (channels[0], 3, 7, 7), **_bn("conv1.bn", channels[0])}
    for stage, reduce in ((2, True), (3, True), (4, False)):
        cin, cout = channels[stage - 2], channels[stage - 1]
        keys.update(_os_block(f"conv{stage}.0", cin, cout))
        keys.update(_os_block(f"conv{stage}.1", cout, cout))
        if reduce:
            keys.update(_conv_bn(f"conv{stage}.2.0", cout, cout))
    keys.update(_conv_bn("conv5", channels[3], channels[3]))
    keys.update({"fc.0.weight": (512, channels[3]), "fc.0.bias": (512,), **_bn("fc.1", 512),
                 "classifier.weight": (classes, 512), "classifier.bias": (classes,)})
    return keys


def fastreid_r50(ibn: bool, non_local: bool, gem_p: bool, classes: int = 5) -> dict[str, Shape]:
    """fast-reid's ResNet-50 Baseline model (BoT / AGW / SBS, plain or IBN) key -> shape."""
    keys = {"backbone.conv1.weight": (64, 3, 7, 7), **_bn("backbone.bn1", 64)}
    inplanes = 64
    for stage, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 1):
        for b in range(blocks):
            p = f"backbone.layer{stage}.{b}"
            keys[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            if ibn and planes != 512:
                keys.update({f"{p}.bn1.IN.weight": (planes // 2,),
                             f"{p}.bn1.IN.bias": (planes // 2,),
                             **_bn(f"{p}.bn1.BN", planes // 2)})
            else:
                keys.update(_bn(f"{p}.bn1", planes))
            keys.update({f"{p}.conv2.weight": (planes, planes, 3, 3), **_bn(f"{p}.bn2", planes),
                         f"{p}.conv3.weight": (planes * 4, planes, 1, 1),
                         **_bn(f"{p}.bn3", planes * 4)})
            if b == 0:
                keys.update({f"{p}.downsample.0.weight": (planes * 4, inplanes, 1, 1),
                             **_bn(f"{p}.downsample.1", planes * 4)})
            inplanes = planes * 4
    if non_local:
        for stage, count, channels in ((2, 2, 512), (3, 3, 1024)):
            for i in range(count):
                p = f"backbone.NL_{stage}.{i}"
                for conv in ("g", "theta", "phi"):
                    keys.update({f"{p}.{conv}.weight": (1, channels, 1, 1),
                                 f"{p}.{conv}.bias": (1,)})
                keys.update({f"{p}.W.0.weight": (channels, 1, 1, 1), f"{p}.W.0.bias": (channels,),
                             **_bn(f"{p}.W.1", channels)})
    if gem_p:
        keys["heads.pool_layer.p"] = (1,)
    keys.update({**_bn("heads.bottleneck.0", 2048), "heads.weight": (classes, 2048)})
    return keys


def tensors(layout: dict[str, Shape], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values in ``layout``'s shapes (variances positive, counters integral)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith("pool_layer.p"):
            state[key] = torch.full(shape, 3.5)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state
