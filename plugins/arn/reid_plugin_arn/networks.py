"""The two architectures (method notes B.1 and B.5), as generator components.

Both expose one interface the ``arn`` method trains through:

* ``encode(x, domain) -> (shared map, private map | None)``: e_c and e_p before pooling;
* ``decode(shared, private) -> image``; ``pool(map) -> vector``; ``embed(x)`` = the
  pooled shared (identity) feature, the test feature;
* ``has_private``, ``feature_dim``;
* ``forward(images, target=None)``: pooled features and reconstructions of a source batch
  (and of a target batch through the target's encoders): :func:`domain_outputs`.

``arn_network``: E_I = a ResNet's stem and stages 1-3 (shared by both domains); E_C,
E_S and E_T = three separate copies of stage 4 (each from the same ImageNet weights when
loaded, as the code's three ``resnet50(pretrained=True)`` cuts); the decoder reads
e_c + e_p. The official code's second decoder (``decoder_c``, never called) is left out.
``identity_pose_network``: identity encoder = stages 1-3 + its own stage 4, pose encoder =
a separate full copy (one for both domains); the decoder reads [pose, identity].
Pooling is adaptive (the code's ``AvgPool2d((8, 4))`` / ``AvgPool2d((7, 7))`` hold for
256 x 128 / 224 x 224 only), so both run at any input size.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from reidcore.api import ReidError, load_weights, read_state_dict, weight_loading_enabled
from torch import nn

from reid_plugin_arn.config import ArnNetworkConfig, EncoderOptions, IdentityPoseNetworkConfig

DOMAINS = ("source", "target")


def create_resnet(options: EncoderOptions) -> nn.Module:
    """The timm ResNet the encoders are cut from, with the recipe's weights (none while
    ``reid check --build`` builds offline)."""
    import timm

    if not timm.is_model(options.model):
        from reidcore.api import did_you_mean

        raise ReidError(f"unknown timm model '{options.model}'"
                        f"{did_you_mean(options.model, timm.list_models('resnet*'))}")
    kwargs: dict[str, Any] = {}
    if options.layers:
        kwargs["layers"] = list(options.layers)
    if options.channels:
        kwargs["channels"] = tuple(options.channels)
        kwargs["stem_width"] = options.channels[0]
    loading = weight_loading_enabled()
    hub = options.pretrained == "hub" and loading
    try:
        net = timm.create_model(options.model, pretrained=hub, num_classes=0, global_pool="",
                                **kwargs)
    except Exception as exc:
        if hub:
            raise ReidError(f"could not get pretrained weights for '{options.model}' from "
                            f"the hub (is the network reachable?): {exc}") from None
        raise ReidError(f"timm model '{options.model}' with {kwargs}: {exc}") from None
    if not all(hasattr(net, name) for name in ("conv1", "layer3", "layer4")):
        raise ReidError(f"'{options.model}' is not a ResNet (no conv1 / layer3 / layer4): "
                        f"ARN cuts its encoders from a ResNet")
    if options.pretrained and options.pretrained != "hub" and loading:
        load_weights(net, read_state_dict(options.pretrained), options.pretrained,
                     ignore_unexpected=("fc.",))
    return net


def stem_to_stage3(net: nn.Module) -> nn.Sequential:
    """E_I: conv1, bn1, relu, maxpool, layer1-3 (1024 x 16 x 8 at 256 x 128 for ResNet-50)."""
    return nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool,
                         net.layer1, net.layer2, net.layer3)


def stage_channels(stage: nn.Module) -> int:
    """Output channels of a ResNet stage (its last block's last batch norm)."""
    norms = [m for m in stage.modules() if isinstance(m, nn.BatchNorm2d)]
    return norms[-1].num_features


class Pool(nn.Module):
    """Adaptive average (or max) pooling to one vector per image."""

    def __init__(self, kind: str = "avg"):
        super().__init__()
        self.kind = kind

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            return maps.amax(dim=(2, 3))
        return maps.mean(dim=(2, 3))


def _transposed_block(cin: int, cout: int, convs: int, last: bool) -> nn.Sequential:
    """ConvT 3x3 stride 2 (output padding 1: doubles H and W) + BN + LReLU(0.2), then
    ``convs`` x [ConvT 3x3 stride 1 + BN + LReLU(0.2)]; the last block ends BN -> Tanh."""
    layers: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1),
                               nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
    for _ in range(convs):
        layers += [nn.ConvTranspose2d(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout),
                   nn.LeakyReLU(0.2)]
    if last:
        layers[-1] = nn.Tanh()
    return nn.Sequential(*layers)


def _upsample_block(cin: int, cout: int, convs: int, last: bool) -> nn.Sequential:
    """Bilinear x2 + Conv 3x3 + BN + LReLU(0.2), then ``convs`` x [Conv 3x3 + BN +
    LReLU(0.2)]; the last block ends on BN (no activation), as the identity/pose code."""
    layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                               nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout),
                               nn.LeakyReLU(0.2)]
    for _ in range(convs):
        layers += [nn.Conv2d(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
    if last:
        layers.pop()
    return nn.Sequential(*layers)


def image_decoder(cin: int, channels: list[int], convs: int, kind: str) -> nn.Sequential:
    """Five blocks, each doubling H and W (the ResNet's total stride 32 undone)."""
    make = _transposed_block if kind == "transposed" else _upsample_block
    widths = [cin, *channels]
    return nn.Sequential(*(make(widths[i], widths[i + 1], convs, i == len(channels) - 1)
                           for i in range(len(channels))))


def count_each_batch_twice(module: nn.Module) -> None:
    """Give ``module``'s batch norms the running statistics of two train-mode passes per
    batch from one pass: the official iteration calls each stage-4 encoder twice on the
    same input (once for the map, once for the pooled vector), and in train mode both passes
    see the same batch statistics, so the two updates ``r <- (1 - m) r + m s`` are one with
    momentum ``1 - (1 - m)^2`` (0.19 for PyTorch's 0.1). The outputs and gradients of one
    pass equal those of the two. A cumulative average (momentum None) is left alone."""
    for norm in module.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.momentum is not None:
            norm.momentum = 1.0 - (1.0 - norm.momentum) ** 2


def domain_outputs(net: Any, images: torch.Tensor,
                   target: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """``forward``: the source images' pooled ``shared`` and ``private`` features and their
    ``reconstruction``; with ``target`` images, the same through the target's encoders as
    ``target_shared``, ``target_private``, ``target_reconstruction`` (every part a step of
    the method trains; the method itself calls ``encode`` / ``decode``)."""
    out: dict[str, torch.Tensor] = {}
    for prefix, domain, x in (("", "source", images), ("target_", "target", target)):
        if x is None:
            continue
        shared, private = net.encode(x, domain)
        out[f"{prefix}shared"] = net.pool(shared)
        out[f"{prefix}reconstruction"] = net.decode(shared, private)
        if private is not None:
            out[f"{prefix}private"] = net.pool(private)
    return out


class ArnNetwork(nn.Module):
    """E_I, E_C, E_S, E_T and the image decoder (see the module docstring)."""

    def __init__(self, config: ArnNetworkConfig):
        super().__init__()
        net = create_resnet(config)
        self.trunk = stem_to_stage3(net)
        self.shared = net.layer4
        self.private = nn.ModuleDict({d: copy.deepcopy(net.layer4) for d in DOMAINS}) \
            if config.private else None
        self.feature_dim = stage_channels(net.layer4)
        self.decoder = image_decoder(self.feature_dim, list(config.decoder_channels),
                                     config.decoder_convs, "transposed")
        self.pool = Pool(config.pooling)
        self.has_private = config.private

    def encode(self, images: torch.Tensor, domain: str = "source"
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        base = self.trunk(images)
        private = self.private[domain](base) if self.private is not None else None
        return self.shared(base), private

    def decode(self, shared: torch.Tensor, private: torch.Tensor | None) -> torch.Tensor:
        return self.decoder(shared if private is None else shared + private)

    def copy_shared_to_private(self) -> None:
        """E_S and E_T become copies of E_C (``method.private_init = "shared"``)."""
        if self.private is not None:
            for encoder in self.private.values():
                encoder.load_state_dict(self.shared.state_dict())

    def follow_official_passes(self) -> None:
        """The official ARN iteration runs E_C, E_S and E_T twice per batch (the map and,
        again, the pooled vector): :func:`count_each_batch_twice` on each. Called once by
        the ``arn`` method for adaptation (not the source-only stage, which is ours)."""
        for encoder in (self.shared, *(self.private.values() if self.private else ())):
            count_each_batch_twice(encoder)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.shared(self.trunk(images)))

    def forward(self, images: torch.Tensor,
                target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return domain_outputs(self, images, target)


class IdentityPoseNetwork(nn.Module):
    """Identity encoder, pose encoder and the [pose, identity] decoder (module docstring).
    The pose encoder is the "private" part for both domains."""

    has_private = True

    def __init__(self, config: IdentityPoseNetworkConfig):
        super().__init__()
        identity = create_resnet(config)
        pose = copy.deepcopy(identity)
        self.trunk = stem_to_stage3(identity)
        self.shared = identity.layer4
        self.pose = nn.Sequential(stem_to_stage3(pose), pose.layer4)
        self.feature_dim = stage_channels(identity.layer4)
        self.decoder = image_decoder(2 * self.feature_dim, list(config.decoder_channels),
                                     config.decoder_convs, "upsample")
        self.pool = Pool(config.pooling)

    def encode(self, images: torch.Tensor, domain: str = "source"
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.shared(self.trunk(images)), self.pose(images)

    def decode(self, shared: torch.Tensor, private: torch.Tensor | None) -> torch.Tensor:
        if private is None:
            raise ReidError("identity_pose_network decodes [pose, identity]: it needs both")
        return self.decoder(torch.cat([private, shared], dim=1))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.shared(self.trunk(images)))

    def forward(self, images: torch.Tensor,
                target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return domain_outputs(self, images, target)


class Classifier(nn.Module):
    """C_S: Dropout -> Linear(feature_dim, K) on the pooled shared feature of source images."""

    def __init__(self, feature_dim: int, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(feature_dim, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(features))


def build_arn_network(config: ArnNetworkConfig) -> ArnNetwork:
    return ArnNetwork(config)


def build_identity_pose_network(config: IdentityPoseNetworkConfig) -> IdentityPoseNetwork:
    return IdentityPoseNetwork(config)


def image_example() -> tuple[torch.Tensor, torch.Tensor]:
    """A source and a target batch (the contract's forward reaches E_S and E_T)."""
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(2, 3, 64, 32, generator=generator),
            torch.randn(2, 3, 64, 32, generator=generator))
