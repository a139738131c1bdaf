"""Networks: the ResNet encoder-decoder generator, the PatchGAN discriminator, the PatchNCE
heads and the re-ID branch. Written from the facts in the method notes (A.2, A.3, A.6, A.9).

Two styles of generator and discriminator exist:

* ``synth-reid`` (default): stride-2 convs down, transposed convs up, no bias on convs
  followed by instance norm (except the second conv of each residual block), kaiming init.
* ``cut``: the CUT reference, bias on every conv, xavier init (gain 0.02) and, unless
  ``antialias = false``, blur-pool downsampling and [1, 3, 3, 1] upsampling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reid_plugin_cut_reid.config import PatchDiscriminatorConfig, ResnetGeneratorConfig

# --- initialisation -------------------------------------------------------------------------


def init_kaiming(module: nn.Module) -> None:
    """Synth-ReID's ``weights_init_kaiming``: convs kaiming-normal fan_in, linears fan_out,
    biases 0, BatchNorm1d weight ~ N(1, 0.02); BatchNorm2d keeps (1, 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def init_xavier(module: nn.Module, gain: float = 0.02) -> None:
    """CUT's default init: xavier-normal with gain 0.02 for convs and linears, biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _is_meta(module: nn.Module) -> bool:
    return any(p.is_meta for p in module.parameters())


# --- anti-aliased sampling (CUT) -------------------------------------------------------------


class BlurPool(nn.Module):
    """Anti-aliased downsampling: reflect-pad 1, depthwise [1, 2, 1]^2 / 16 blur, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        kernel = a[:, None] * a[None, :]
        self.register_buffer("filt", (kernel / kernel.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2,
                        groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Anti-aliased x2 upsampling: replicate-pad 1, depthwise transposed conv with the
    [1, 3, 3, 1]^2 / 64 * 4 filter, stride 2, cropped to exactly 2H x 2W."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 3.0, 3.0, 1.0])
        kernel = a[:, None] * a[None, :]
        kernel = kernel / kernel.sum() * 4.0
        self.register_buffer("filt", kernel[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt, stride=2,
                                 padding=2, groups=x.shape[1])
        return out[:, :, 1:-1, 1:-1]


# --- generator ------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """x + [pad, conv, IN, ReLU, pad, conv, IN] with reflection padding, no ReLU after the sum.
    ``bias_first`` adds a bias to the first conv (CUT); the second always has one."""

    def __init__(self, channels: int, bias_first: bool):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias_first),
            nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=True),
            nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _conv_norm_relu(cin: int, cout: int, kernel: int, stride: int, padding: int,
                    bias: bool) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias), nn.InstanceNorm2d(cout),
            nn.ReLU(True)]


class ResnetGenerator(nn.Module):
    """ResNet encoder-decoder. ``encoder`` is an ``nn.Sequential`` whose indices are the NCE
    layer ids; ``encode(x, layers)`` returns the code and the outputs of ``layers``.

    ``forward(x)`` is the translated image in [-1, 1] (tanh).
    """

    def __init__(self, config: ResnetGeneratorConfig):
        super().__init__()
        self.config = config
        ngf, n_down = config.ngf, config.downsamplings
        cut = config.style == "cut"
        antialias = cut and config.antialias
        bias = cut  # Synth-ReID drops the bias of every conv followed by instance norm
        # default NCE layers: the padded input, each downsampling conv's output, the first
        # residual block and the (blocks // 2 + 1)-th one (CUT 0, 4, 8, 12, 16; Synth-ReID
        # 0, 2, 3, 4, 8 for the paper's shape)
        nce = [0]
        if cut:  # CUT: one flat list, so the ids address CUT's netG modules
            enc: list[nn.Module] = [nn.ReflectionPad2d(3),
                                    *_conv_norm_relu(config.in_channels, ngf, 7, 1, 0, bias)]
            for i in range(n_down):
                cin, cout = ngf * 2 ** i, ngf * 2 ** (i + 1)
                nce.append(len(enc))  # the conv, before its norm (as CUT)
                if antialias:
                    enc += [*_conv_norm_relu(cin, cout, 3, 1, 1, bias), BlurPool(cout)]
                else:
                    enc += _conv_norm_relu(cin, cout, 3, 2, 1, bias)
        else:  # Synth-ReID: pad, then one module per conv block (after IN and ReLU)
            enc = [nn.ReflectionPad2d(3),
                   nn.Sequential(*_conv_norm_relu(config.in_channels, ngf, 7, 1, 0, bias))]
            for i in range(n_down):
                nce.append(len(enc))
                enc.append(nn.Sequential(
                    *_conv_norm_relu(ngf * 2 ** i, ngf * 2 ** (i + 1), 3, 2, 1, bias)))
        width = ngf * 2 ** n_down
        first_block = len(enc)
        enc += [ResidualBlock(width, bias_first=bias) for _ in range(config.blocks)]
        nce += sorted({first_block, first_block + config.blocks // 2})
        self.encoder = nn.Sequential(*enc)
        self.default_nce_layers = nce
        self.feature_layer = len(enc) - 1
        self.feature_channels = width

        dec: list[nn.Module] = []
        for i in range(n_down):
            cin = ngf * 2 ** (n_down - i)
            cout = cin // 2
            if antialias:
                dec += [BlurUpsample(cin), *_conv_norm_relu(cin, cout, 3, 1, 1, bias)]
            else:
                dec += [nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1, bias=bias),
                        nn.InstanceNorm2d(cout), nn.ReLU(True)]
        dec += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, config.out_channels, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)
        if not _is_meta(self):
            (init_xavier if cut else init_kaiming)(self)

    def layer_channels(self, layers: Sequence[int]) -> list[int]:
        """Channels of the outputs of encoder ``layers`` (for the PatchNCE heads)."""
        channels, current = [], self.config.in_channels
        for module in self.encoder:
            convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
            current = convs[-1].out_channels if convs else current
            channels.append(current)
        for layer in layers:
            if not 0 <= layer < len(self.encoder):
                raise ValueError(f"encoder layer {layer} does not exist; the encoder has "
                                 f"layers 0..{len(self.encoder) - 1}")
        return [channels[layer] for layer in layers]

    def encode(self, x: torch.Tensor, layers: Sequence[int] = ()
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The encoder's output and the outputs of ``layers`` (in the order given)."""
        feats = self._run(x, layers, len(self.encoder) - 1)
        return feats[-1], feats[:-1]

    def features(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of encoder ``layers`` only (stops after the deepest one)."""
        return self._run(x, layers, max(layers))[:-1]

    def _run(self, x: torch.Tensor, layers: Sequence[int], last: int) -> list[torch.Tensor]:
        if any(not 0 <= layer < len(self.encoder) for layer in layers):
            raise ValueError(f"encoder layers {list(layers)} out of range "
                             f"0..{len(self.encoder) - 1}")
        wanted, outputs = set(layers), {}
        for index, module in enumerate(self.encoder):
            if index > last:
                break
            x = module(x)
            if index in wanted:
                outputs[index] = x
        feats = [outputs[layer] for layer in layers]
        return [*feats, x]

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


# --- discriminator --------------------------------------------------------------------------


class PatchDiscriminator(nn.Module):
    """PatchGAN. ``forward(x)`` is the real/fake map (no sigmoid); ``features(x)`` returns
    ``(map, [outputs of feature_layers])`` for the feature-matching loss."""

    def __init__(self, config: PatchDiscriminatorConfig):
        super().__init__()
        self.config = config
        ndf, cin = config.ndf, config.in_channels
        if config.style == "synth-reid":
            self.model = nn.Sequential(
                nn.Conv2d(cin, ndf, 4, 2, 1),
                nn.LeakyReLU(0.2, True),
                nn.Sequential(nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
                              nn.InstanceNorm2d(ndf * 2), nn.LeakyReLU(0.2, True)),
                nn.Sequential(nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
                              nn.InstanceNorm2d(ndf * 4), nn.LeakyReLU(0.2, True)),
                nn.Sequential(nn.Conv2d(ndf * 4, ndf * 8, 4, 1, (1, 2), bias=False),
                              nn.InstanceNorm2d(ndf * 8), nn.LeakyReLU(0.2, True)),
                nn.Conv2d(ndf * 8, 1, 4, 1, (2, 1)))
            self.feature_layers = [1, 2, 3, 4]
        else:
            aa = config.antialias
            stride = 1 if aa else 2

            def block(c_in: int, c_out: int, strided: bool, norm: bool) -> nn.Sequential:
                s = stride if strided else 1
                layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, s, 1)]
                if norm:
                    layers.append(nn.InstanceNorm2d(c_out))
                layers.append(nn.LeakyReLU(0.2, True))
                if strided and aa:
                    layers.append(BlurPool(c_out))
                return nn.Sequential(*layers)

            self.model = nn.Sequential(
                block(cin, ndf, True, False), block(ndf, ndf * 2, True, True),
                block(ndf * 2, ndf * 4, True, True), block(ndf * 4, ndf * 8, False, True),
                nn.Conv2d(ndf * 8, 1, 4, 1, 1))
            self.feature_layers = [0, 1, 2, 3]
        if not _is_meta(self):
            (init_xavier if config.style == "cut" else init_kaiming)(self)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for index, module in enumerate(self.model):
            x = module(x)
            if index in self.feature_layers:
                feats.append(x)
        return x, feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# --- PatchNCE heads -------------------------------------------------------------------------


def l2_normalize(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """x / (||x||_2 + eps) along dim 1 (CUT's ``Normalize(2)``)."""
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)


class PatchHeads(nn.Module):
    """One Linear-ReLU-Linear head per NCE layer (CUT's ``PatchSampleF`` with ``use_mlp``).

    ``sample(feats, num_patches)`` picks the same random locations for every image of a
    layer and returns them with the ids used; ``project(layer, x)`` maps N x C patches to
    normalised N x head_dim vectors.
    """

    def __init__(self, in_channels: Sequence[int], dim: int = 256, mlp: bool = True,
                 init: str = "kaiming"):
        super().__init__()
        self.mlp = mlp
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(c, dim), nn.ReLU(), nn.Linear(dim, dim)) if mlp
            else nn.Identity() for c in in_channels)
        if not _is_meta(self):
            # kaiming: Synth-ReID's MLP.create_mlp applies weights_init_kaiming (linears
            # kaiming-normal, a = 0, fan_out: std sqrt(2 / dim)); xavier: CUT's netF
            # (xavier-normal, gain 0.02)
            (init_kaiming if init == "kaiming" else init_xavier)(self)

    @staticmethod
    def sample_ids(feat: torch.Tensor, num_patches: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        locations = feat.shape[2] * feat.shape[3]
        perm = torch.randperm(locations, generator=generator)
        return perm[:min(num_patches, locations)].to(feat.device)

    def project(self, layer: int, feat: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """B x C x H x W maps, patch ids -> B x N x dim normalised patch embeddings."""
        b, c = feat.shape[:2]
        patches = feat.flatten(2).transpose(1, 2)[:, ids, :]  # B x N x C
        out = self.heads[layer](patches.reshape(-1, c))
        return l2_normalize(out).view(b, len(ids), -1)


# --- re-ID branch ---------------------------------------------------------------------------


def _make_stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    from torchvision.models.resnet import Bottleneck

    downsample = nn.Sequential(
        nn.Conv2d(inplanes, planes * Bottleneck.expansion, 1, stride, bias=False),
        nn.BatchNorm2d(planes * Bottleneck.expansion))
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ReidBranch(nn.Module):
    """Synth-ReID's ``Id_Net``: ResNet-50 stages 2-4 (randomly initialised, stride 2 on the
    3x3 convs) on the encoder's last features, global average pooling, BNNeck (bias frozen
    at 0) and a linear classifier with bias.

    ``forward`` gives ``{"features": pre-BN, "neck_features": BN}`` and, in training,
    ``"logits"`` from the BN feature.
    """

    def __init__(self, in_channels: int = 256, num_classes: int = 538,
                 layers: Sequence[int] = (4, 6, 3), width: int = 128,
                 classifier_init: str = "kaiming"):
        super().__init__()
        stages, inplanes = [], in_channels
        for i, blocks in enumerate(layers):
            planes = width * 2 ** i
            stages.append(_make_stage(inplanes, planes, blocks, stride=2))
            inplanes = planes * 4
        self.stages = nn.Sequential(*stages)
        self.feature_dim = inplanes
        self.neck = nn.BatchNorm1d(inplanes)
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(inplanes, num_classes)
        if not _is_meta(self):
            init_kaiming(self)
            if classifier_init == "normal":
                nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, code: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.stages(code).mean(dim=(2, 3))
        neck = self.neck(features)
        out = {"features": features, "neck_features": neck}
        if self.training:
            out["logits"] = self.classifier(neck)
        return out


# --- build functions and contract examples --------------------------------------------------


def build_generator(config: ResnetGeneratorConfig, **_context: object) -> ResnetGenerator:
    return ResnetGenerator(config)


def build_discriminator(config: PatchDiscriminatorConfig,
                        **_context: object) -> PatchDiscriminator:
    return PatchDiscriminator(config)


def image_example() -> torch.Tensor:
    """Two 64x32 images in [-1, 1] (the contract checks' tiny input)."""
    return torch.rand(2, 3, 64, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
