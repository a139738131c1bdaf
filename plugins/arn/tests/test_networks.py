"""Parameter counts and shapes of both architectures (method notes B.1, B.5, B.6 1-2).

Counts are taken on the meta device (no memory). ResNet-50 totals 25,557,032 parameters:
fc 2,049,000 and stage 4 14,964,736 leave 8,543,296 for E_I (stem + stages 1-3).
"""

import pytest
import torch

from reid_plugin_arn.config import ArnNetworkConfig, IdentityPoseNetworkConfig
from reid_plugin_arn.networks import ArnNetwork, Classifier, IdentityPoseNetwork

TINY = {"model": "resnet18", "layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64]}


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def arn50():
    with torch.device("meta"):
        return ArnNetwork(ArnNetworkConfig())


def test_arn_resnet50_counts(arn50):
    assert count(arn50.trunk) == 8_543_296
    assert count(arn50.shared) == 14_964_736
    assert count(arn50.private["source"]) == 14_964_736
    assert count(arn50.private["target"]) == 14_964_736
    # 5 blocks of ConvT (bias) + BN, 2048 -> 1024 -> 512 -> 256 -> 64 -> 3:
    # 37,757,952 + 9,441,792 + 2,361,600 + 221,760 + 1,917
    assert count(arn50.decoder) == 49_785_021
    assert count(arn50.decoder[0]) == 37_757_952  # what the unused decoder_c also holds
    # no second decoder: the whole network is E_I + 3 stage-4 copies + the image decoder
    assert count(arn50) == 8_543_296 + 3 * 14_964_736 + 49_785_021


def test_classifier_counts():
    for classes, expected in ((1812, 3_712_788), (702, 1_438_398), (751, 1_538_799),
                              (1501, 3_075_549)):
        assert count(Classifier(2048, classes)) == expected
    # the full model as coded with K = 1812 adds the unused decoder_c (37,757,952)
    total = 8_543_296 + 3 * 14_964_736 + 49_785_021 + 3_712_788 + 37_757_952
    assert total == 144_693_265


def test_without_private_encoders():
    with torch.device("meta"):
        net = ArnNetwork(ArnNetworkConfig(private=False))
    assert net.private is None and not net.has_private
    assert count(net) == 8_543_296 + 14_964_736 + 49_785_021


def test_identity_pose_counts():
    with torch.device("meta"):
        net = IdentityPoseNetwork(IdentityPoseNetworkConfig())
    assert count(net.trunk) == 8_543_296 and count(net.shared) == 14_964_736
    assert count(net.pose) == 8_543_296 + 14_964_736  # a separate full ResNet-50 trunk
    # Conv (bias) + BN, [upsample + conv, conv, conv] per block, 4096 -> 2048 -> 512 -> 256
    # -> 64 -> 3: 4096*2048*9 + 2048 + 2*(2048*2048*9 + 2048) + 3*4096 = 151,013,376;
    # 14,160,384; 2,361,600; 221,760; 1,917 (the last three as ARN's transposed blocks)
    assert count(net.decoder[0]) == 151_013_376
    assert count(net.decoder[1]) == 14_160_384
    assert count(net.decoder) == 167_759_037


def test_arn_shapes_at_256x128(arn50):
    blocks = [(1024, 16, 8), (512, 32, 16), (256, 64, 32), (64, 128, 64), (3, 256, 128)]
    with torch.device("meta"):
        x = torch.empty(2, 3, 256, 128)
        base = arn50.trunk(x)
        assert tuple(base.shape) == (2, 1024, 16, 8)
        shared, private = arn50.encode(x, "target")
        assert tuple(shared.shape) == tuple(private.shape) == (2, 2048, 8, 4)
        assert tuple(arn50.pool(shared).shape) == (2, 2048)
        h = shared + private
        for block, shape in zip(arn50.decoder, blocks, strict=True):
            h = block(h)
            assert tuple(h.shape) == (2, *shape)


def test_identity_pose_at_224x224():
    with torch.device("meta"):
        net = IdentityPoseNetwork(IdentityPoseNetworkConfig())
        x = torch.empty(1, 3, 224, 224)
        assert tuple(net.trunk(x).shape) == (1, 1024, 14, 14)
        shared, pose = net.encode(x)
        assert tuple(shared.shape) == tuple(pose.shape) == (1, 2048, 7, 7)
        assert tuple(net.decode(shared, pose).shape) == (1, 3, 224, 224)
        assert tuple(net.embed(x).shape) == (1, 2048)


def test_pooling_adapts_to_the_input_size():
    torch.manual_seed(0)
    net = ArnNetwork(ArnNetworkConfig(**TINY, decoder_channels=[32, 16, 16, 8, 3])).eval()
    for size in ((64, 32), (96, 64), (128, 64)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            out = net(x)
            shared = net.shared(net.trunk(x))
        assert tuple(out["reconstruction"].shape) == (2, 3, *size)
        assert torch.allclose(out["shared"], shared.mean(dim=(2, 3)))
        assert out["reconstruction"].abs().max() <= 1.0  # Tanh


def test_max_pooling_option():
    torch.manual_seed(0)
    net = ArnNetwork(ArnNetworkConfig(**TINY, pooling="max",
                                      decoder_channels=[32, 16, 16, 8, 3])).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(net.embed(x), net.shared(net.trunk(x)).amax(dim=(2, 3)))


def test_private_encoders_start_as_copies_of_stage_4():
    torch.manual_seed(0)
    net = ArnNetwork(ArnNetworkConfig(**TINY, decoder_channels=[32, 16, 16, 8, 3]))
    for domain in ("source", "target"):
        for a, b in zip(net.shared.parameters(), net.private[domain].parameters(), strict=True):
            assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_bad_options_are_clear():
    from reidcore.api import ReidError

    with pytest.raises(ValueError, match="5 positive widths"):
        ArnNetworkConfig(decoder_channels=[64, 3])
    with pytest.raises(ValueError, match="4 ResNet stages"):
        ArnNetworkConfig(layers=[1, 1])
    with pytest.raises(ReidError, match="unknown timm model"):
        ArnNetwork(ArnNetworkConfig(model="resnt50"))


def test_forward_with_a_target_batch_reaches_every_encoder():
    torch.manual_seed(0)
    net = ArnNetwork(ArnNetworkConfig(**TINY, decoder_channels=[32, 16, 16, 8, 3]))
    x, y = torch.randn(2, 3, 64, 32), torch.randn(2, 3, 64, 32)
    assert set(net(x)) == {"shared", "private", "reconstruction"}
    out = net(x, y)
    assert set(out) == {"shared", "private", "reconstruction", "target_shared",
                        "target_private", "target_reconstruction"}
    sum(v.mean() for v in out.values()).backward()
    assert all(p.grad is not None for p in net.parameters())
    with torch.no_grad():
        shared, private = net.encode(y, "target")
    assert torch.allclose(out["target_private"], net.pool(private))


def test_private_encoders_can_start_as_copies_of_the_shared_one():
    net = ArnNetwork(ArnNetworkConfig(**TINY, decoder_channels=[16, 8, 8, 8, 3]))
    with torch.no_grad():
        for p in net.shared.parameters():
            p.add_(1.0)
    net.copy_shared_to_private()
    theirs = net.shared.state_dict()
    for encoder in net.private.values():
        assert encoder.state_dict().keys() == theirs.keys()
        for name, mine in encoder.state_dict().items():
            assert torch.equal(mine, theirs[name]), name
