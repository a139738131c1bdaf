import attrs
import pytest

from reidcore.errors import DuplicateComponentError, UnknownComponentError
from reidcore.plugins import load_plugins
from reidcore.registry import ComponentSpec, Kind, resolve_callable

from .fakes import FakeBackboneConfig, FakePlugin, fake_registry


def _renamed_spec(name: str) -> ComponentSpec:
    return ComponentSpec(name, Kind.BACKBONE, FakeBackboneConfig, "builtins:dict")


def test_unknown_name_lists_installed_and_suggests():
    registry = fake_registry()
    with pytest.raises(UnknownComponentError) as info:
        registry.get("backbone", "fakente")
    message = str(info.value)
    assert "unknown backbone 'fakente'" in message
    assert "did you mean 'fakenet'?" in message
    assert "installed backbones: fakenet" in message


def test_duplicate_names_across_plugins_name_both_providers():
    plugins = load_plugins(extra=[("first", FakePlugin([_renamed_spec("twin")])),
                                  ("second", FakePlugin([_renamed_spec("twin")]))])
    with pytest.raises(DuplicateComponentError) as info:  # on use, not on loading
        plugins.registry.get("backbone", "twin")
    message = str(info.value)
    assert "backbone 'twin' is registered twice" in message
    assert "'first (in-process) (plugin 'first')'" in message
    assert "'second (in-process) (plugin 'second')'" in message


def test_same_name_in_different_kinds_is_allowed():
    loss = ComponentSpec("twin", Kind.LOSS, FakeBackboneConfig, "builtins:dict")
    plugins = load_plugins(extra=[("p", FakePlugin([_renamed_spec("twin"), loss]))])
    assert ("backbone", "twin") in plugins.registry
    assert ("loss", "twin") in plugins.registry


def test_a_plugin_whose_hook_raises_is_reported_and_contributes_nothing():
    class Exploding(FakePlugin):
        from reidcore import hookimpl

        @hookimpl
        def reid_losses(self):
            raise RuntimeError("boom")

    plugins = load_plugins(extra=[("bad", Exploding([_renamed_spec("half")])),
                                  ("good", FakePlugin([_renamed_spec("fine")]))])
    bad = next(info for info in plugins.infos if info.name == "bad")
    assert bad.error is not None and "RuntimeError: boom" in bad.error
    assert ("backbone", "half") not in plugins.registry  # not half of its components
    assert ("backbone", "fine") in plugins.registry
    with pytest.raises(UnknownComponentError) as info:
        plugins.registry.get("backbone", "half")
    assert "bad (in-process) (plugin 'bad'): a registration hook raised RuntimeError" in str(
        info.value)


def test_hooks_must_return_specs_of_their_kind():
    wrong = ComponentSpec("x", Kind.LOSS, FakeBackboneConfig, "builtins:dict")

    class Mislabelled(FakePlugin):
        from reidcore import hookimpl

        @hookimpl
        def reid_backbones(self):
            return [wrong]

    plugins = load_plugins(extra=[("mis", Mislabelled([]))])
    info = next(info for info in plugins.infos if info.name == "mis")
    assert "reid_backbones() must return ComponentSpec objects of kind 'backbone'" in info.error


def test_config_must_be_an_attrs_class():
    with pytest.raises(TypeError, match="attrs class"):
        ComponentSpec("x", Kind.LOSS, dict, "builtins:dict")


def test_lazy_build_target_is_resolved_only_when_building():
    spec = ComponentSpec("x", Kind.BACKBONE, FakeBackboneConfig, "no_such_module_xyz:build")
    assert spec.name == "x"  # constructing the spec imports nothing
    with pytest.raises(ModuleNotFoundError):
        spec.create()
    assert resolve_callable("os.path:join")("a", "b") == "a/b"
    with pytest.raises(ValueError, match="package.module:function"):
        resolve_callable("no_colon_here")


def test_create_checks_the_config_type_and_passes_context():
    seen = {}

    def build(config, **context):
        seen.update(context, config=config)
        return "ok"

    spec = ComponentSpec("x", Kind.METHOD, FakeBackboneConfig, build)
    assert spec.create(None, num_classes=7) == "ok"
    assert seen["num_classes"] == 7 and attrs.asdict(seen["config"])["last_stride"] == 2
    with pytest.raises(TypeError, match="expects FakeBackboneConfig"):
        spec.create(object())


def test_core_plugin_cannot_be_disabled():
    from reidcore.errors import ReidError

    with pytest.raises(ReidError, match="cannot be disabled"):
        load_plugins(disabled=["reidcore"])
