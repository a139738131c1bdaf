"""Issue 25, item 9: ``--disable-plugin`` with a name no plugin has is refused with a
did-you-mean (never silently ignored), and a packaged recipe of a disabled plugin says that
the plugin that provides it is disabled (not "no recipe named ... did you mean ...")."""

from __future__ import annotations

from reidcore.cli import main


def test_an_unknown_plugin_name_to_disable_is_refused_with_did_you_mean(capsys):
    assert main(["--disable-plugin", "dgnett", "plugins"]) != 0
    err = capsys.readouterr().err
    assert "cannot disable plugin 'dgnett': no installed plugin has that name" in err
    assert "(did you mean 'dgnet'?)" in err


def test_an_unknown_name_in_the_environment_is_refused_too(capsys, monkeypatch):
    monkeypatch.setenv("REID_DISABLE_PLUGINS", "dupp")
    assert main(["plugins"]) != 0
    assert "cannot disable plugin 'dupp'" in capsys.readouterr().err


def test_a_recipe_of_a_disabled_plugin_names_the_plugin(capsys):
    assert main(["--disable-plugin", "dgnet", "check", "dgnet-synthetic"]) != 0
    err = capsys.readouterr().err
    assert "recipe 'dgnet-synthetic' is packaged by a plugin that is not loaded" in err
    assert "the plugin that provides it (reid-plugin-dgnet" in err and "is disabled" in err
    assert "did you mean" not in err
