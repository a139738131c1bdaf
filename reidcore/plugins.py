"""Discovering plugins through entry points and building the component registry.

Each entry point in the ``reid.plugins`` group is loaded on its own: one that fails to
import (or whose registration hook raises) is recorded with its distribution, version and
error, and everything else keeps working. Plugins are disabled by entry-point or
distribution name through ``REID_DISABLE_PLUGINS`` (comma-separated) or
``reid --disable-plugin NAME``.

Two plugins that register the same component name are both kept: the name becomes a
conflict, an error only for a recipe that uses it, and listed on both plugins' reports.
A run observer hook (``reid_run_start``, ``reid_train_step_end``, ``reid_evaluate_end``,
``reid_run_end``) that raises is reported on stderr with its plugin's name and the run
continues: a logger's bug must not cost a training.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pluggy

from reidcore import hookspecs
from reidcore.errors import ReidError, did_you_mean
from reidcore.registry import ComponentSpec, Kind, Registry

CORE_PLUGIN_NAME = "reidcore"
DISABLE_ENV_VAR = "REID_DISABLE_PLUGINS"
OBSERVER_HOOKS = ("reid_run_start", "reid_train_step_end", "reid_evaluate_end", "reid_run_end")
"""Hooks whose return value is ignored: their exceptions are reported, not raised."""


@attrs.define
class PluginInfo:
    """One plugin as ``reid plugins`` shows it."""

    name: str
    distribution: str
    version: str
    module: str
    error: str | None = None
    disabled: bool = False
    components: dict[str, list[str]] = attrs.field(factory=dict)
    conflicts: list[str] = attrs.field(factory=list)
    """Component names this plugin shares with another plugin (unusable until one of the
    two is disabled), one message each."""
    hook_failures: dict[str, int] = attrs.field(factory=dict)
    """Observer hook name -> how many of its calls raised (reported, then ignored)."""

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version} (plugin '{self.name}')"

    @property
    def ok(self) -> bool:
        return self.error is None and not self.disabled


@attrs.define
class Plugins:
    """The loaded plugin manager, the registry built from it, and a report per plugin."""

    manager: pluggy.PluginManager
    registry: Registry
    infos: list[PluginInfo]
    disabled: frozenset[str] = frozenset()

    def loader(self) -> Callable[[], Plugins]:
        """A picklable function that loads the same plugins again (entry points only, the
        same ones disabled): what a spawned training process calls, so that the engine
        never looks up the global plugin manager itself."""
        return functools.partial(load_plugins, sorted(self.disabled))

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def failed(self) -> list[PluginInfo]:
        return [info for info in self.infos if info.error is not None]

    def recipe_dirs(self) -> list[tuple[str, Path]]:
        """(provider, directory) pairs, core first: each loaded plugin's package's
        ``recipes`` directory (found by the core: a plugin need not say so), then any
        further directory a ``reid_recipe_dirs`` hook returns."""
        dirs: list[tuple[str, Path]] = []
        for info in self.infos:
            if info.ok:
                found = package_recipes(info.module)
                if found is not None:
                    dirs.append((info.name, found))
        for impl in reversed(self.manager.hook.reid_recipe_dirs.get_hookimpls()):
            found_dirs: Any = impl.function() or ()
            dirs.extend((impl.plugin_name, Path(str(d))) for d in found_dirs)
        unique: dict[Path, tuple[str, Path]] = {}
        for provider, directory in dirs:
            unique.setdefault(directory.resolve(), (provider, directory))
        return list(unique.values())


    def unloaded_recipe_note(self, name: str) -> str | None:
        """Why the packaged recipe ``name`` is not found when a disabled or failed plugin
        packages it (its ``recipes`` folder is found without importing it), else None."""
        for info in self.infos:
            if info.ok or info.name == CORE_PLUGIN_NAME:
                continue
            found = package_recipes(info.module)
            if found is not None and (found / f"{name}.toml").is_file():
                state = ("is disabled (--disable-plugin or REID_DISABLE_PLUGINS); enable it "
                         "to use the recipe" if info.disabled
                         else f"failed to load: {info.error}")
                return (f"recipe '{name}' is packaged by a plugin that is not loaded: the "
                        f"plugin that provides it ({info.label}) {state}")
        return None


def package_recipes(module: str) -> Path | None:
    """``<package>/recipes`` of the package holding the hook module ``module`` (an
    entry-point value such as ``reid_plugin_x.plugin``), if it is a directory."""
    from importlib.util import find_spec

    name = module.partition(":")[0]
    package = name.rpartition(".")[0] or name
    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "recipes"
        if candidate.is_dir():
            return candidate
    return None


def api_version_error(module: object) -> str | None:
    """Why a plugin's hook module does not fit this core's API, or None."""
    from reidcore.api import API_VERSION

    stated = getattr(module, "REID_API_VERSION", None)
    if stated == API_VERSION:
        return None
    core = f"this reidcore {_core_version()} provides API version {API_VERSION}"
    if stated is None:
        return (f"its hook module states no REID_API_VERSION (plugins written for API "
                f"version 1 predate it); {core}: install a release of the plugin made for "
                f"it, or (its author) port it and set REID_API_VERSION = {API_VERSION}")
    return (f"it was written for reidcore API version {stated!r} (REID_API_VERSION); "
            f"{core}: install a release of the plugin made for it")


def disabled_from_env() -> set[str]:
    raw = os.environ.get(DISABLE_ENV_VAR, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _describe_exception(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _core_version() -> str:
    from reidcore import __version__

    return __version__


def _entry_point_infos(disabled: set[str]) -> Iterable[tuple[PluginInfo, ModuleType | None]]:
    seen: set[str] = set()
    for entry_point in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        dist = entry_point.dist
        info = PluginInfo(
            name=entry_point.name,
            distribution=dist.name if dist is not None else "?",
            version=dist.version if dist is not None else "?",
            module=entry_point.value,
        )
        if info.name == CORE_PLUGIN_NAME or info.name in seen:
            continue  # the core registers itself; the same dist may be visible twice
        seen.add(info.name)
        if info.name in disabled or info.distribution in disabled:
            info.disabled = True
            yield info, None
            continue
        try:
            module = entry_point.load()
        except Exception as exc:  # a broken plugin must not break reid
            info.error = f"failed to import {entry_point.value}: {_describe_exception(exc)}"
            module = None
        if module is not None:
            info.error = api_version_error(module)
            if info.error is not None:
                module = None
        yield info, module


def _specs_of(manager: pluggy.PluginManager, plugin_name: str) -> list[ComponentSpec]:
    """Every spec one plugin returns from the registration hooks, checked for shape."""
    collected: list[ComponentSpec] = []
    for kind in Kind:
        for impl in getattr(manager.hook, kind.hook_name).get_hookimpls():
            if impl.plugin_name != plugin_name:
                continue
            for spec in impl.function() or ():
                if not isinstance(spec, ComponentSpec) or spec.kind is not kind:
                    raise TypeError(f"{kind.hook_name}() must return ComponentSpec objects "
                                    f"of kind '{kind.value}', got {spec!r}")
                collected.append(spec)
    return collected


def _collect_specs(manager: pluggy.PluginManager, infos: dict[str, PluginInfo],
                   registry: Registry) -> None:
    """Fill the registry plugin by plugin (core first); a plugin whose hooks raise is
    marked failed and contributes nothing, not half of its components."""
    for info in infos.values():
        if not info.ok:
            continue
        try:
            specs = _specs_of(manager, info.name)
        except Exception as exc:
            info.error = f"a registration hook raised {_describe_exception(exc)}"
            continue
        for spec in specs:
            spec = attrs.evolve(spec, provider=info.label)
            registry.add(spec)
            info.components.setdefault(spec.kind.value, []).append(spec.name)
    by_label = {info.label: info for info in infos.values()}
    for _kind, _name, specs in registry.conflicts():
        message = registry.conflict_message(specs[0].kind, specs[0].name) or ""
        for provider in dict.fromkeys(spec.provider for spec in specs):
            if provider in by_label:
                by_label[provider].conflicts.append(message)


def load_plugins(disabled: Iterable[str] = (),
                 extra: Iterable[tuple[str, object]] = ()) -> Plugins:
    """Load the core and every installed, non-disabled plugin; build the registry.

    ``extra`` registers ``(name, object)`` plugins directly, after the entry points (for
    programs embedding reid and for tests, like pytest's ``-p``).
    """
    disabled_names = set(disabled) | disabled_from_env()
    if CORE_PLUGIN_NAME in disabled_names:
        raise ReidError(f"the core plugin '{CORE_PLUGIN_NAME}' cannot be disabled")
    from reidcore import builtin

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(builtin, name=CORE_PLUGIN_NAME)
    core = PluginInfo(CORE_PLUGIN_NAME, "reidcore", _core_version(), builtin.__name__)
    infos = {CORE_PLUGIN_NAME: core}
    for info, module in _entry_point_infos(disabled_names):
        infos[info.name] = info
        if module is None:
            continue
        _register(manager, info, module)
    _check_disabled_names(disabled_names, infos.values())
    for name, plugin in extra:
        info = PluginInfo(name, name, "(in-process)", getattr(plugin, "__name__", repr(plugin)))
        infos[name] = info
        if hasattr(plugin, "REID_API_VERSION"):  # in-process objects may leave it out
            info.error = api_version_error(plugin)
        if info.error is None:
            _register(manager, info, plugin)
    registry = Registry()
    _collect_specs(manager, infos, registry)
    for info in infos.values():
        if info.error is not None and manager.has_plugin(info.name):
            manager.unregister(name=info.name)
    failed = [info for info in infos.values() if info.error is not None]
    if failed:
        reports = "; ".join(f"{info.label}: {info.error}" for info in failed)
        registry.unavailable_note = f"plugins that failed to load (one may provide it): {reports}"
    return Plugins(manager=manager, registry=registry, infos=list(infos.values()),
                   disabled=frozenset(disabled_names))


def _check_disabled_names(disabled: set[str], infos: Iterable[PluginInfo]) -> None:
    """A name to disable that no installed plugin has is a typo, never ignored."""
    known = {name for info in infos for name in (info.name, info.distribution)}
    for name in sorted(disabled - known):
        raise ReidError(f"cannot disable plugin '{name}': no installed plugin has that name "
                        f"(--disable-plugin or REID_DISABLE_PLUGINS){did_you_mean(name, known)}"
                        f"; installed: {', '.join(sorted(known)) or '(none)'}")


def _register(manager: pluggy.PluginManager, info: PluginInfo, plugin: object) -> None:
    """Register one plugin and check it at once (``check_pending``): the plugins before it
    passed, so a hook implementation that matches no hook is this plugin's, reported as
    its error (``reid_loss`` for ``reid_losses``), never dropped without a word."""
    try:
        manager.register(plugin, name=info.name)
    except Exception as exc:  # e.g. a hookimpl with wrong arguments
        info.error = f"rejected by the plugin manager: {_describe_exception(exc)}"
        return
    try:
        manager.check_pending()
    except pluggy.PluginValidationError:
        info.error = _unknown_hooks_message(manager, info.name)
        manager.unregister(name=info.name)
        return
    _guard_observers(manager, info)


def _unknown_hooks_message(manager: pluggy.PluginManager, plugin_name: str) -> str:
    from reidcore.errors import did_you_mean

    known = [name for name in dir(hookspecs) if name.startswith("reid_")]
    unknown = sorted(
        name for name, caller in vars(manager.hook).items()
        if isinstance(caller, pluggy.HookCaller) and not caller.has_spec()
        and any(impl.plugin_name == plugin_name and not impl.optionalhook
                for impl in caller.get_hookimpls()))
    described = "; ".join(f"'{name}'{did_you_mean(name, known)}" for name in unknown)
    return (f"implements hooks that reid does not have: {described} (every hook: "
            f"reidcore.hookspecs)")


def _guard_observers(manager: pluggy.PluginManager, info: PluginInfo) -> None:
    """Wrap this plugin's observer hook implementations so that an exception is reported
    (plugin, hook, error; the first time per hook) and counted instead of propagating: the
    other plugins' observers still run and the run continues. Wrappers (generators around
    the call) are left alone."""
    for hook_name in OBSERVER_HOOKS:
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            if impl.plugin_name != info.name or impl.hookwrapper or impl.wrapper:
                continue
            impl.function = _guarded(impl.function, info, hook_name)


def _guarded(function: Callable[..., Any], info: PluginInfo,
             hook_name: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any) -> Any:
        try:
            return function(*args)
        except Exception as exc:
            count = info.hook_failures.get(hook_name, 0) + 1
            info.hook_failures[hook_name] = count
            if count == 1:
                print(f"reid: warning: plugin {info.label}: its {hook_name} hook raised "
                      f"{_describe_exception(exc)}; the run continues (further failures of "
                      f"this hook are counted, not shown)", file=sys.stderr)
            return None

    return call


_cache: dict[frozenset[str], Plugins] = {}


def get_plugins(disabled: Iterable[str] = ()) -> Plugins:
    """Cached :func:`load_plugins` (entry points are read once per process)."""
    key = frozenset(set(disabled) | disabled_from_env())
    if key not in _cache:
        _cache[key] = load_plugins(key)
    return _cache[key]


def clear_cache() -> None:
    _cache.clear()
