"""Item 13 (plugins): a raising observer hook is reported with its plugin's name and the run
goes on; a component name registered by two plugins breaks only what uses it."""

from __future__ import annotations

import argparse

import pytest

from reidcore import hookimpl
from reidcore.cli import command_plugins
from reidcore.errors import DuplicateComponentError, RecipeError
from reidcore.plugins import load_plugins
from reidcore.recipe import resolve
from reidcore.registry import ComponentSpec, Kind
from tests.core.fakes import VALID_RECIPE, FakeBackboneConfig, FakePlugin, fake_specs


def _twin(name: str = "twin") -> ComponentSpec:
    return ComponentSpec(name, Kind.BACKBONE, FakeBackboneConfig, "builtins:dict")


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    @hookimpl
    def reid_train_step_end(self, run, step, metrics):
        self.calls.append(("step", step))

    @hookimpl
    def reid_run_end(self, run, summary):
        self.calls.append(("end", 0))


class _Raising:
    @hookimpl
    def reid_train_step_end(self, run, step, metrics):
        raise ValueError(f"logger broke at step {step}")

    @hookimpl
    def reid_run_end(self, run, summary):
        raise OSError("disk of the logger is gone")


def test_a_raising_observer_is_reported_with_its_plugin_and_the_others_still_run(capsys):
    recorder = _Recorder()
    plugins = load_plugins(extra=[("noisy", _Raising()), ("recorder", recorder)])
    for step in (1, 2, 3):
        plugins.hook.reid_train_step_end(run=None, step=step, metrics={"loss": 1.0})
    plugins.hook.reid_run_end(run=None, summary={"status": "completed"})
    assert recorder.calls == [("step", 1), ("step", 2), ("step", 3), ("end", 0)]
    err = capsys.readouterr().err
    # reported once per hook, with the plugin's label, the hook and the error
    assert err.count("reid_train_step_end hook raised") == 1
    assert "plugin noisy (in-process) (plugin 'noisy')" in err
    assert "ValueError: logger broke at step 1" in err
    assert "OSError: disk of the logger is gone" in err
    assert "the run continues" in err
    noisy = next(info for info in plugins.infos if info.name == "noisy")
    assert noisy.hook_failures == {"reid_train_step_end": 3, "reid_run_end": 1}


def _duplicated():
    return load_plugins(extra=[("first", FakePlugin(fake_specs() + [_twin()])),
                               ("second", FakePlugin([_twin(), _twin("single")]))])


def test_a_duplicate_name_fails_only_the_recipe_that_uses_it():
    plugins = _duplicated()  # the old registry raised here: every command was unusable
    registry = plugins.registry
    assert ("backbone", "single") in registry and ("backbone", "fakenet") in registry
    resolve(dict(VALID_RECIPE), "ok.toml", registry)  # names no conflicting component
    with pytest.raises(RecipeError) as info:
        resolve(dict(VALID_RECIPE), "twin.toml", registry, overrides=["backbone.name=twin"])
    message = str(info.value)
    assert "$.backbone.name: backbone 'twin' is registered twice" in message
    assert "'first (in-process) (plugin 'first')'" in message
    assert "'second (in-process) (plugin 'second')'" in message
    assert "--disable-plugin" in message
    with pytest.raises(DuplicateComponentError, match="registered twice"):
        registry.get(Kind.BACKBONE, "twin")


def test_reid_plugins_lists_every_plugin_and_the_conflict(capsys):
    plugins = _duplicated()
    assert command_plugins(argparse.Namespace(json=False), plugins) == 0
    out = capsys.readouterr().out
    assert "(plugin 'first')" in out and "(plugin 'second')" in out
    for name in ("first", "second"):
        info = next(i for i in plugins.infos if i.name == name)
        assert info.ok  # a conflict does not fail the plugin: its other components work
        assert len(info.conflicts) == 1
        assert "backbone 'twin' is registered twice" in info.conflicts[0]
    assert out.count("conflict: backbone 'twin' is registered twice") == 2
