"""Mapping a foreign checkpoint's keys onto a reid network, every key accounted for.

An :class:`Architecture` names, for each key of the reid network it builds, where the value
comes from (:class:`From`: a source key, or a constant the source architecture fixes, such
as fast-reid's non-trainable GeM ``p = 3``), and which source keys are read but not loaded
(:class:`Checked`: e.g. fast-reid's pixel mean, which must equal the recipe's
normalisation). :func:`map_state` applies it and refuses with one message listing every
source key that is not used, every reid key that has no source and every shape that
differs, and names the architecture the file does match when another one of the same
framework does (fast-reid issue #396: renamed BNNeck keys that were silently not loaded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import torch

from reidcore.errors import ReidError, did_you_mean


@attrs.frozen
class From:
    """The value of a reid key: source ``key``, or ``constant`` (with ``why``)."""

    key: str | None = None
    constant: float | None = None
    why: str = ""


@attrs.frozen
class Checked:
    """A source key read and checked but not loaded: ``check(tensor)`` returns a problem
    (or ``""``); ``why`` says what it is and why reid needs no copy of it."""

    check: Callable[[torch.Tensor], str]
    why: str


@attrs.frozen
class Architecture:
    """One architecture of a source framework and the reid recipe that rebuilds it."""

    framework: str
    name: str
    recipe: dict[str, Any]
    source_of: Callable[[str], From | None]
    """reid key (``network.backbone.trunk.conv1.weight``) -> its source, None: unknown."""
    checked: Mapping[str, Checked] = attrs.field(factory=dict)
    """Optional source keys that are checked instead of loaded."""
    classifier_key: str | Sequence[str] = "classifier.weight"
    """Source key(s) of the identity classifier's weight (its rows = training identities)."""
    embedding: str = ""
    """What the embedding is, in the source framework's words (printed and recorded)."""

    @property
    def label(self) -> str:
        return f"{self.framework} {self.name}"


@attrs.frozen
class MappedState:
    """The result of :func:`map_state`: reid module states and the accounting record."""

    modules: dict[str, dict[str, torch.Tensor]]
    record: dict[str, Any]


def num_classes_of(arch: Architecture, state: Mapping[str, torch.Tensor]) -> int | None:
    keys = [arch.classifier_key] if isinstance(arch.classifier_key, str) else arch.classifier_key
    for key in keys:
        if key in state and state[key].ndim == 2:
            return int(state[key].shape[0])
    return None


def _listing(keys: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _fits(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """``value`` shaped as ``target``: equal shapes, or one element each (GeM's ``p``)."""
    if tuple(value.shape) == tuple(target.shape):
        return value
    if value.numel() == 1 and target.numel() == 1:
        return value.reshape(target.shape)
    return None


def expected_source_keys(arch: Architecture, target: Mapping[str, Mapping[str, torch.Tensor]]
                         ) -> dict[str, torch.Tensor]:
    """The source keys ``arch`` loads into a network whose states are ``target``, each with
    the reid tensor it loads into (for its shape; a meta tensor will do)."""
    keys = {}
    for module, states in target.items():
        for key, own in states.items():
            origin = arch.source_of(f"{module}.{key}")
            if origin is not None and origin.key is not None:
                keys[origin.key] = own
    return keys


def _matches(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
             optional: Mapping[str, Checked]) -> bool:
    """Whether ``state`` holds exactly the ``expected`` keys (besides ``optional`` ones),
    each in a shape that fits."""
    return (set(expected) <= set(state) and not set(state) - set(expected) - set(optional)
            and all(_fits(state[key], own) is not None for key, own in expected.items()))


def map_state(arch: Architecture, state: Mapping[str, torch.Tensor],
              target: Mapping[str, Mapping[str, torch.Tensor]], source: str,
              other_archs: Callable[[], Mapping[str, Mapping[str, torch.Tensor]]] | None = None
              ) -> MappedState:
    """Map ``state`` (the source checkpoint's tensors) onto ``target`` (reid module name ->
    its state dict, for shapes and dtypes); a :class:`ReidError` names every key that does
    not fit. ``other_archs`` gives, lazily, the source keys each other architecture of the
    framework expects, to name the one the file matches."""
    modules: dict[str, dict[str, torch.Tensor]] = {name: {} for name in target}
    used: dict[str, str] = {}
    constants: dict[str, str] = {}
    missing, shapes, no_rule, misshapen = [], [], [], set()
    for module, states in target.items():
        for key, own in states.items():
            full = f"{module}.{key}"
            origin = arch.source_of(full)
            if origin is None:
                no_rule.append(full)
                continue
            if origin.key is None:
                modules[module][key] = torch.full_like(own, float(origin.constant or 0.0),
                                                       device="cpu")
                constants[full] = origin.why
                continue
            if origin.key not in state:
                missing.append(origin.key)
                continue
            value = _fits(state[origin.key], own)
            if value is None:
                misshapen.add(origin.key)
                shapes.append(f"{origin.key} (file {tuple(state[origin.key].shape)}, "
                              f"{arch.name} {tuple(own.shape)})")
                continue
            modules[module][key] = value.to(own.dtype).clone()
            used[origin.key] = full
    checked: dict[str, str] = {}
    check_problems = []
    for key, rule in arch.checked.items():
        if key in state:
            problem = rule.check(state[key])
            if problem:
                check_problems.append(f"{key}: {problem}")
            checked[key] = rule.why
    unused = sorted(set(state) - set(used) - set(checked) - misshapen)
    if no_rule:  # a bug of the importer, not of the file: say so
        raise ReidError(f"internal: the {arch.label} importer has no source for reid keys "
                        f"{_listing(no_rule)}")
    problems = []
    if missing:
        problems.append(f"keys {arch.label} has that the file lacks: {_listing(sorted(missing))}")
    if unused:
        problems.append(f"keys in the file that {arch.label} does not have (they would be "
                        f"dropped): {_listing(unused)}")
    if shapes:
        problems.append(f"keys whose shapes differ: {_listing(shapes)}")
    problems += check_problems
    if problems:
        hint = ""
        if other_archs is not None and (missing or unused or shapes):
            matches = [name for name, keys in other_archs().items()
                       if name != arch.name and _matches(keys, state, arch.checked)]
            if matches:
                hint = (f". The keys match {arch.framework} '{matches[0]}': import it with "
                        f"--arch {matches[0]}")
        raise ReidError(f"{source} is not a {arch.label} checkpoint: " + "; ".join(problems)
                        + hint)
    record = {"framework": arch.framework, "arch": arch.name, "embedding": arch.embedding,
              "loaded": dict(sorted(used.items())), "set_from_architecture": constants,
              "checked_not_loaded": checked, "source_keys": len(state),
              "reid_keys": sum(len(states) for states in target.values())}
    return MappedState(modules, record)


def find_architecture(name: str, archs: Mapping[str, Architecture],
                      framework: str) -> Architecture:
    """The architecture called ``name`` (case-insensitive), or a did-you-mean error."""
    by_lower = {key.lower(): arch for key, arch in archs.items()}
    found = by_lower.get(name.lower())
    if found is None:
        raise ReidError(f"unknown {framework} --arch '{name}'"
                        f"{did_you_mean(name, list(archs))}; known: {', '.join(archs)}")
    return found
