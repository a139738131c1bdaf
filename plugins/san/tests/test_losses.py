"""L_Rec, L_TR and the re-ID losses against values derived by hand from the notes (C.3, C.8)."""

import math

import pytest
import torch
from reidcore.api import ReidError


def build(registry, name, **options):
    spec = registry.get("loss", name)
    return spec.create(spec.config(**options))


def maps(batch, fill=0.0):
    shapes = ((8, 4, 2), (4, 8, 4), (4, 16, 8), (2, 32, 16))
    return [torch.full((batch, *s), fill) for s in shapes]


def pk(batch, k=4):
    return torch.arange(batch // k).repeat_interleave(k)


def test_l_tr_on_identical_maps_is_18(registry):
    """Batch 64, K = 4: 15 anchor groups x 4 levels x margin 0.3 = 18.0 (C.8.3)."""
    loss = build(registry, "texture_triplet")
    value = loss({"decoder_maps": maps(64)}, {"pids": pk(64)})
    assert value.item() == pytest.approx(18.0, abs=1e-5)


def test_l_tr_fixed_pairing_by_hand():
    """Batch 8 (2 groups, only group 0 anchors), one-element maps with chosen values:
    s1 [d(0,1) - d(0,4) + .3]+ with x = 0,1,.,.,3 -> 1 - 9 + .3 < 0 -> 0
    s2 [d(1,2) - d(1,5) + .3]+ with x1 = 0, x2 = .5, x5 = .4 -> .25 - .16 + .3 = .39
    s3 [d(2,3) - d(2,6) + .3]+ with x2 = 0, x3 = 1, x6 = 2 -> 1 - 4 + .3 < 0 -> 0
    s4 [d(0,3) - d(3,4) + .3]+ with x0 = 0, x3 = 1, x4 = 1 -> 1 - 0 + .3 = 1.3
    (the s4 negative term anchors at i+3, as the code)."""
    from reid_plugin_san.losses import texture_triplet

    def level(values):
        return torch.tensor(values, dtype=torch.float32).view(8, 1, 1, 1)

    s1 = level([0, 1, 0, 0, 3, 0, 0, 0])
    s2 = level([0, 0, .5, 0, 0, .4, 0, 0])
    s3 = level([0, 0, 0, 1, 0, 0, 2, 0])
    s4 = level([0, 0, 0, 1, 1, 0, 0, 0])
    value = texture_triplet([s1, s2, s3, s4], instances=4, margin=0.3, pids=pk(8))
    assert value.item() == pytest.approx(0.39 + 1.3, abs=1e-6)
    # d is the MEAN over C*H*W: doubling the map size with equal values changes nothing
    doubled = [t.expand(8, 2, 1, 2) for t in (s1, s2, s3, s4)]
    assert texture_triplet(doubled, pids=pk(8)).item() == pytest.approx(1.69, abs=1e-6)


@pytest.mark.parametrize("batch,pids,message", [
    (63, None, "batch of 63"),
    (4, None, "batch of 4"),  # one group: nothing to pair with
    (8, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), "not in blocks of 4"),
    (8, torch.tensor([5, 5, 5, 5, 5, 5, 5, 5]), "share an identity"),
])
def test_l_tr_rejects_batches_without_the_pk_layout(registry, batch, pids, message):
    loss = build(registry, "texture_triplet")
    with pytest.raises(ReidError, match=f"P x K batches.*{message}"):
        loss({"decoder_maps": maps(batch)}, {"pids": pids} if pids is not None else {})


def test_l_tr_needs_k_of_at_least_4(registry):
    with pytest.raises(ValueError, match="instances"):
        registry.get("loss", "texture_triplet").config(instances=2)


def test_l_rec_is_mean_absolute_error(registry):
    loss = build(registry, "texture_l1")
    prediction = torch.zeros(2, 3, 4, 4)
    target = torch.zeros(2, 3, 4, 4)
    target[0] = 1.0            # half of the elements off by 1
    target[1, 0, 0, 0] = -0.5  # one more off by 0.5
    value = loss({"texture": prediction}, {"textures": target})
    assert value.item() == pytest.approx((48 + 0.5) / 96)


def test_l_rec_names_the_texture_size_on_mismatch(registry):
    loss = build(registry, "texture_l1")
    with pytest.raises(ReidError, match="texture_height"):
        loss({"texture": torch.zeros(1, 3, 8, 8)}, {"textures": torch.zeros(1, 3, 4, 4)})


def test_label_smoothed_cross_entropy_values(registry):
    """C.8.4: CE with eps 0.1, target (1 - eps) onehot + eps / C: equal logits over 767
    ids -> ln 767; logits [2, 0, 0, 0] with label 0 -> 0.9 * (ln(e^2 + 3) - 2)
    + 0.025 * (4 ln(e^2 + 3) - 2) = 0.49075."""
    loss = build(registry, "cross_entropy", label_smoothing=0.1)
    flat = loss({"logits": torch.zeros(3, 767)}, {"pids": torch.tensor([0, 5, 766])})
    assert flat.item() == pytest.approx(math.log(767), abs=1e-5)
    assert math.log(767) == pytest.approx(6.64249, abs=1e-5)
    lse = math.log(math.e ** 2 + 3)
    by_hand = 0.9 * (lse - 2) + 0.025 * (4 * lse - 2)
    value = loss({"logits": torch.tensor([[2.0, 0, 0, 0]])}, {"pids": torch.tensor([0])})
    assert value.item() == pytest.approx(by_hand, abs=1e-6)
    assert by_hand == pytest.approx(0.49075, abs=1e-5)
