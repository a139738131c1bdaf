"""Every registered method's embedding (the core's baseline and every installed plugin's,
each built tiny from its ``example()`` as the contract checks build it) exports to ONNX with
l2 normalisation and embeds as PyTorch does within 1e-4 (flip averaging, which only doubles
the graph, is covered by test_export_run; FlipReID and DG-Net flip inside embed anyway); a
module that cannot export is named in the error."""

from __future__ import annotations

import pytest
import torch

from reidcore.errors import ReidError
from reidcore.registry import Kind
from reidcore.testing import build_method, installed_plugins, spec_id

pytest.importorskip("onnxruntime")

METHODS = list(installed_plugins().registry.specs(Kind.METHOD))


@pytest.mark.parametrize("spec", METHODS, ids=spec_id)
def test_every_method_exports_with_parity(spec):
    from reidcore.export.onnx_export import export_method
    from reidcore.export.run_export import check_parity
    from reidcore.testing import _example

    torch.manual_seed(0)
    method, context = build_method(spec, _example(spec))
    loader = context.recipe.loader
    model = export_method(method, loader.height, loader.width, flip=False, normalise=True)
    images = torch.randn(4, 3, loader.height, loader.width,
                         generator=torch.Generator().manual_seed(1))
    parity = check_parity(method, model, images, flip=False, normalise=True, source="random")
    assert parity.max_abs_diff <= 1e-4, parity.describe()
    assert parity.ranking_agreement == 1.0, parity.describe()


class _Unexportable(torch.nn.Module):
    """Singular values: no ONNX operator exists for them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.conv(images).flatten(2)
        return torch.linalg.svdvals(maps)


class _MethodWithUnexportableHead:
    def __init__(self) -> None:
        self.network = torch.nn.Sequential(torch.nn.Identity(), _Unexportable())

    def modules(self):
        return {"network": self.network}

    def embed(self, images):
        return self.network(images)


def test_an_unexportable_module_is_named():
    from reidcore.export.onnx_export import export_method

    with pytest.raises(ReidError) as error:
        export_method(_MethodWithUnexportableHead(), 8, 4, flip=False, normalise=False,
                      name="method 'toy'")
    message = str(error.value)
    assert "method 'toy' cannot be exported" in message
    assert "module 'network.1 (_Unexportable)'" in message
    assert "linalg_svdvals" in message
