"""Component specs and the per-kind registries built from the plugins' hooks.

A component is a name, a one-line summary, an attrs config class and a build function.
The build function may be given as ``"package.module:function"`` so that a plugin's hook
module never imports torch: it is resolved only when the component is built.
"""

from __future__ import annotations

import enum
import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from reidcore.errors import DuplicateComponentError, UnknownComponentError, did_you_mean


class Kind(str, enum.Enum):
    """The kinds of component; each has one registration hook ``reid_<plural>``."""

    DATASET = "dataset"
    BACKBONE = "backbone"
    GENERATOR = "generator"
    LOSS = "loss"
    EVALUATOR = "evaluator"
    METHOD = "method"

    @property
    def plural(self) -> str:
        return "losses" if self is Kind.LOSS else f"{self.value}s"

    @property
    def hook_name(self) -> str:
        return f"reid_{self.plural}"


BuildFunction = Callable[..., Any]


def resolve_callable(target: str | BuildFunction) -> BuildFunction:
    """Import ``"module:attribute"`` lazily; pass callables through."""
    if callable(target):
        return target
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"build target {target!r} must look like 'package.module:function'")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


def _accepted(function: Callable[..., Any], keywords: dict[str, Any]) -> dict[str, Any]:
    """The ``keywords`` that ``function`` accepts by name (all of them with ``**kwargs``)."""
    if not keywords:
        return keywords
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: pass everything
        return keywords
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return keywords
    names = {p.name for p in parameters
             if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    return {key: value for key, value in keywords.items() if key in names}


OPTIMIZATION_KEYS = ("optimizer", "lr", "weight_decay", "momentum", "schedule", "schedule_by",
                     "milestones", "gamma", "min_lr_factor", "warmup_epochs", "warmup_factor")
"""The ``[train]`` keys a method reads when it builds its optimizers and LR schedules (the
others belong to the engine, which honours them for every method)."""

BATCH_PARTS = {"positives": "loader.positive", "second": "loader.second_batch",
               "textures": "loader.textures", "target": "[[data.target]]"}
"""The optional parts of a training batch and the recipe setting that provides each."""


def _known_train_keys(_instance: Any, attribute: attrs.Attribute, value: frozenset) -> None:
    unknown = sorted(set(value) - set(OPTIMIZATION_KEYS))
    if unknown:
        raise ValueError(f"MethodNeeds.{attribute.name}: {unknown} are not [train] "
                         f"optimization keys ({', '.join(OPTIMIZATION_KEYS)})")


def _known_batch_parts(_instance: Any, attribute: attrs.Attribute, value: frozenset) -> None:
    unknown = sorted(set(value) - set(BATCH_PARTS))
    if unknown:
        raise ValueError(f"MethodNeeds.{attribute.name}: {unknown} are not batch parts "
                         f"({', '.join(BATCH_PARTS)})")


@attrs.frozen
class RunOption:
    """A ``[method]`` option that names a run the method loads with
    ``context.load_run``: a ``[requires.<role>]`` role (a bare name), a run directory or a
    checkpoint file. ``reid check`` and ``reid run`` refuse a bare name that is no role of
    the recipe (DG-Net's ``teacher = "teachr"``), with a did-you-mean."""

    same_source: bool = False
    """The run must be trained on this run's ``[[data.source]]`` data (the same identities
    under the same label indices, e.g. a teacher whose classes are this run's): ``load_run``
    compares the dataset fingerprints both manifest.json files record."""
    used_when: tuple[str, Any] | None = None
    """``(option, value)``: the option is read only when that other ``[method]`` option has
    this value (SAN's ``san_pg`` with ``textures = "san_pg"``); None: whenever it is set."""


@attrs.frozen
class MethodNeeds:
    """What a method reads from its recipe beyond its own ``[method]`` table: the core checks
    a recipe against it once (``reid check``, ``reid run``), with one wording for every
    method, so no setting is silently ignored and no method repeats the checks.

    ``train``: the :data:`OPTIMIZATION_KEYS` the method honours; a recipe that sets another
    one to a non-default value is refused, with ``train_note`` as the reason (where the
    method's own settings are, e.g. ``"dgnet sets its own learning rates: use method.lr_ea
    / lr_g / lr_d"``). ``roles``: the ``[generators.<role>]`` it builds, each with its
    default component (``None``: the recipe must give one); another role is refused.
    ``losses``: whether it takes ``[[losses]]``; ``losses_note`` says where its losses are
    set instead. ``batch``: the optional batch parts (:data:`BATCH_PARTS`) its step reads;
    the recipe must provide each. ``flip_note``: non-empty when the evaluator's ``flip``
    must stay off, with the reason (an embedding that flips by itself). ``runs``: the
    ``[method]`` options naming runs it loads (:class:`RunOption`).
    """

    train: frozenset[str] = attrs.field(default=frozenset(OPTIMIZATION_KEYS),
                                        converter=frozenset, validator=_known_train_keys)
    train_note: str = ""
    roles: dict[str, str | None] = attrs.field(factory=dict, converter=dict, hash=False)
    losses: bool = True
    losses_note: str = ""
    batch: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset,
                                        validator=_known_batch_parts)
    flip_note: str = ""
    runs: dict[str, RunOption] = attrs.field(factory=dict, converter=dict, hash=False)
    """``[method]`` options that name runs the method loads (:class:`RunOption`)."""


def _check_config_class(_instance: Any, _attribute: attrs.Attribute, value: type) -> None:
    if not attrs.has(value):
        raise TypeError(f"config must be an attrs class, got {value!r}")


@attrs.frozen
class ComponentSpec:
    """What a plugin registers: ``build(config)`` returns the component.

    ``config`` is an attrs class whose fields (with defaults) are the component's recipe
    options; ``build`` is a callable or a lazy ``"module:function"`` string.
    ``example`` (callable or ``"module:function"``, optional) returns tiny CPU inputs
    for the contract checks in :mod:`reidcore.testing`; see there what each kind returns.
    ``hint`` (callable or ``"module:function"``, optional) is asked about a name of this
    kind that no component has; it returns how this component provides that name (the
    timm backbone: ``name = "timm"`` with ``model = "resnet50"``) or ``None``. It runs
    only on that error path, so it may import heavy modules.
    ``needs`` (methods only): what the method reads from its recipe, a
    :class:`MethodNeeds` (default: every ``[train]`` optimization key, ``[[losses]]``, no
    generator role, no optional batch part).
    ``provider`` is filled in by the registry with the plugin that returned the spec.
    """

    name: str
    kind: Kind = attrs.field(converter=Kind)
    config: type = attrs.field(validator=_check_config_class)
    build: str | BuildFunction
    summary: str = ""
    example: str | Callable[[], Any] | None = None
    hint: str | Callable[[str], str | None] | None = None
    needs: MethodNeeds = attrs.field(factory=MethodNeeds)
    provider: str = ""

    def default_config(self) -> Any:
        return self.config()

    def create(self, config: Any | None = None, /, **context: Any) -> Any:
        """Build the component from a config instance (the defaults when ``None``).

        ``context`` is passed on to the build function as keyword arguments, those it
        accepts (all of them with ``**kwargs``): methods receive ``context``, losses may
        take ``num_classes`` and ``feature_dim``, and a plain ``build(config)`` still works.
        """
        if config is None:
            config = self.default_config()
        if not isinstance(config, self.config):
            raise TypeError(f"{self.kind.value} '{self.name}' expects {self.config.__name__}, "
                            f"got {type(config).__name__}")
        build = resolve_callable(self.build)
        return build(config, **_accepted(build, context))


@attrs.define
class Registry:
    """All installed components, by kind and name; built by :mod:`reidcore.plugins`.

    A name registered twice for one kind is a *conflict*: it is held apart, so that every
    other component keeps working (``reid plugins`` shows the conflict) and only a recipe
    or a lookup that names it fails, with both providers named.
    """

    _specs: dict[Kind, dict[str, ComponentSpec]] = attrs.field(
        factory=lambda: {kind: {} for kind in Kind})
    _conflicts: dict[Kind, dict[str, list[ComponentSpec]]] = attrs.field(
        factory=lambda: {kind: {} for kind in Kind})
    unavailable_note: str = ""
    """Appended to lookup errors, e.g. the report of plugins that failed to load."""

    def add(self, spec: ComponentSpec) -> None:
        """Register ``spec``; a second spec of the same kind and name makes it a conflict."""
        kind_conflicts = self._conflicts[spec.kind]
        if spec.name in kind_conflicts:
            kind_conflicts[spec.name].append(spec)
            return
        existing = self._specs[spec.kind].pop(spec.name, None)
        if existing is not None:
            kind_conflicts[spec.name] = [existing, spec]
            return
        self._specs[spec.kind][spec.name] = spec

    def conflict_message(self, kind: Kind | str, name: str) -> str | None:
        """Why ``name`` cannot be used (registered more than once), or None."""
        kind = Kind(kind)
        specs = self._conflicts[kind].get(name)
        if not specs:
            return None
        providers = " and by ".join(f"'{spec.provider}'" for spec in specs)
        return (f"{kind.value} '{name}' is registered twice: by {providers}; disable one of "
                f"them (reid --disable-plugin NAME, or REID_DISABLE_PLUGINS=NAME)")

    def conflicts(self) -> list[tuple[Kind, str, list[ComponentSpec]]]:
        """Every conflicting (kind, name) with the specs that claim it."""
        return [(kind, name, list(specs)) for kind in Kind
                for name, specs in sorted(self._conflicts[kind].items())]

    def names(self, kind: Kind | str) -> list[str]:
        return sorted(self._specs[Kind(kind)])

    def specs(self, kind: Kind | str | None = None) -> Iterator[ComponentSpec]:
        kinds = list(Kind) if kind is None else [Kind(kind)]
        for k in kinds:
            yield from (self._specs[k][name] for name in sorted(self._specs[k]))

    def __contains__(self, key: tuple[Kind | str, str]) -> bool:
        kind, name = key
        return name in self._specs[Kind(kind)]

    def get(self, kind: Kind | str, name: str) -> ComponentSpec:
        kind = Kind(kind)
        try:
            return self._specs[kind][name]
        except KeyError:
            conflict = self.conflict_message(kind, name)
            if conflict is not None:
                raise DuplicateComponentError(conflict) from None
            raise UnknownComponentError(self.unknown_message(kind, name)) from None

    def unknown_message(self, kind: Kind | str, name: str) -> str:
        """Why ``name`` is not usable: a conflict, or unknown (with a did-you-mean)."""
        kind = Kind(kind)
        conflict = self.conflict_message(kind, name)
        if conflict is not None:
            return conflict
        installed = self.names(kind)
        hints = self._hints(kind, name)
        suggestion = "; " + "; ".join(hints) if hints else did_you_mean(name, installed)
        message = (f"unknown {kind.value} '{name}'{suggestion}; installed "
                   f"{kind.plural}: {', '.join(installed) if installed else '(none)'}")
        if self.unavailable_note:
            message += f"; {self.unavailable_note}"
        return message

    def _hints(self, kind: Kind, name: str) -> list[str]:
        """What the components' ``hint`` functions say about ``name`` (a failing hint is
        ignored: it must never hide the error it was asked to explain)."""
        found = []
        for spec in self.specs(kind):
            if spec.hint is None:
                continue
            try:
                text = resolve_callable(spec.hint)(name)
            except Exception:
                continue
            if text:
                found.append(text)
        return found

    def extend(self, specs: Iterable[ComponentSpec]) -> None:
        for spec in specs:
            self.add(spec)
