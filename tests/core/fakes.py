"""Small in-memory components for testing the registry and recipes without torch."""

from __future__ import annotations

from typing import Literal

import attrs

from reidcore import hookimpl
from reidcore.registry import ComponentSpec, Kind, Registry


@attrs.define
class FakeBackboneConfig:
    depth: Literal[18, 50] = 50
    last_stride: int = attrs.field(default=2, validator=attrs.validators.in_((1, 2)))
    dropout: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0.0),
                                                         attrs.validators.le(1.0)])


@attrs.define
class FakeLossConfig:
    margin: float = attrs.field(default=0.3, validator=attrs.validators.ge(0.0))
    soft: bool = False


@attrs.define
class FakeDatasetConfig:
    root: str = "/data"
    cameras: int | None = None


@attrs.define
class EmptyConfig:
    pass


def _built(config: object) -> tuple[str, object]:
    return ("built", config)


def fake_specs() -> list[ComponentSpec]:
    return [
        ComponentSpec("fakenet", Kind.BACKBONE, FakeBackboneConfig, _built, "fake backbone"),
        ComponentSpec("fake_triplet", Kind.LOSS, FakeLossConfig, _built, "fake loss"),
        ComponentSpec("fake_market", Kind.DATASET, FakeDatasetConfig, _built, "fake dataset"),
        ComponentSpec("fake_duke", Kind.DATASET, FakeDatasetConfig, _built, "fake dataset"),
        ComponentSpec("fake_method", Kind.METHOD, EmptyConfig, _built, "fake method"),
        ComponentSpec("fake_ranking", Kind.EVALUATOR, EmptyConfig, _built, "fake evaluator"),
    ]


def fake_registry() -> Registry:
    registry = Registry()
    registry.extend(fake_specs())
    return registry


class FakePlugin:
    """A plugin object (pluggy accepts any namespace with hookimpls)."""

    def __init__(self, specs: list[ComponentSpec]):
        self._specs = specs

    def _of(self, kind: Kind) -> list[ComponentSpec]:
        return [s for s in self._specs if s.kind is kind]

    @hookimpl
    def reid_backbones(self):
        return self._of(Kind.BACKBONE)

    @hookimpl
    def reid_losses(self):
        return self._of(Kind.LOSS)

    @hookimpl
    def reid_datasets(self):
        return self._of(Kind.DATASET)

    @hookimpl
    def reid_methods(self):
        return self._of(Kind.METHOD)

    @hookimpl
    def reid_evaluators(self):
        return self._of(Kind.EVALUATOR)


VALID_RECIPE = {
    "name": "fake",
    "method": {"name": "fake_method"},
    "backbone": {"name": "fakenet", "last_stride": 1},
    "losses": [{"name": "fake_triplet", "weight": 0.5, "margin": 0.2}],
    "data": {"source": [{"name": "fake_market"}],
             "test": [{"name": "fake_market"}, {"name": "fake_duke"}]},
    "train": {"epochs": 3},
    "evaluate": {"name": "fake_ranking"},
}
