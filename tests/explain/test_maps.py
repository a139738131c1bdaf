"""The activation map and the similarity Grad-CAM on a network small enough to derive both
by hand: a 1 x 1 convolution with chosen weights, then global average pooling."""

from __future__ import annotations

import pytest
import torch

from reidcore.errors import ReidError
from reidcore.explain.maps import activation_maps, similarity_gradcam


class _PoolingMethod:
    """Feature map = a fixed 1 x 1 convolution of the image; embedding = its spatial mean."""

    def __init__(self, weight: torch.Tensor):
        conv = torch.nn.Conv2d(weight.shape[1], weight.shape[0], 1, bias=False)
        conv.weight.data = weight[:, :, None, None].clone()
        self.network = torch.nn.Sequential(conv, torch.nn.AdaptiveAvgPool2d(1),
                                           torch.nn.Flatten())

    def modules(self):
        return {"network": self.network}

    @torch.no_grad()
    def embed(self, images):
        return self.network(images)


def test_activation_map_is_the_channel_l2_norm_scaled_to_one():
    method = _PoolingMethod(torch.eye(2))  # the feature map is the image itself
    image = torch.tensor([[[3.0, 0.0], [6.0, 1.0]],    # channel 0, 2 x 2
                          [[4.0, 0.0], [8.0, 0.0]]])   # channel 1
    maps, module = activation_maps(method, image[None])
    # norms 5, 0, 10, 1 -> divided by the largest (the smallest is 0)
    assert module == "network.0"  # the pooled 1 x 1 output is not a spatial map
    assert maps[0].flatten().tolist() == pytest.approx([0.5, 0.0, 1.0, 0.1])


def test_similarity_gradcam_matches_the_hand_derivation():
    method = _PoolingMethod(torch.eye(2))
    first = torch.tensor([[[2.0, 0.0]], [[0.0, 2.0]]])[None]   # 2 channels, 1 x 2
    second = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]]])[None]
    # embeddings (spatial means): x = (1, 1), y = (1, 0.5); k = 1 / (|x||y|) > 0, cos = 1.5k
    # d cos / dx = y k - cos x / |x|^2 = k ((1, .5) - .75 (1, 1)) = k (.25, -.25)
    # channel weights (the map's gradient, averaged over positions) are proportional to it:
    # cam(first) = relu(.25 * (2, 0) - .25 * (0, 2)) = (.5, 0) -> scaled (1, 0)
    # d cos / dy = x k - cos y / |y|^2 = k ((1, 1) - 1.2 (1, .5)) = k (-.2, .4)
    # cam(second) = relu(-.2 * (2, 0) + .4 * (0, 1)) = (0, .4) -> scaled (0, 1)
    first_cam, second_cam = similarity_gradcam(method, first, second)
    assert first_cam.flatten().tolist() == pytest.approx([1.0, 0.0])
    assert second_cam.flatten().tolist() == pytest.approx([0.0, 1.0])


def test_a_named_layer_that_gives_no_map_is_refused_with_a_suggestion():
    method = _PoolingMethod(torch.eye(2))
    with pytest.raises(ReidError, match=r"'network.O' gave no spatial feature map \(did you "
                                        r"mean 'network.0'\?\)"):
        activation_maps(method, torch.ones(1, 2, 2, 2), layer="network.O")


def test_a_network_without_a_spatial_map_is_refused():
    class Flat:
        network = torch.nn.Linear(4, 3)

        def modules(self):
            return {"network": self.network}

        def embed(self, images):
            return self.network(images.flatten(1))

    with pytest.raises(ReidError, match="method 'flat': no module gave a spatial feature map"):
        activation_maps(Flat(), torch.ones(1, 1, 2, 2), name="method 'flat'")
