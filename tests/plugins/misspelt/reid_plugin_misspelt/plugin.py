"""Registers its loss through ``reid_loss``, a hook reid does not have (``reid_losses``)."""

import attrs

from reidcore.api import ComponentSpec, hookimpl

REID_API_VERSION = 2


@attrs.define
class NothingConfig:
    pass


@hookimpl
def reid_loss() -> list[ComponentSpec]:
    return [ComponentSpec(name="never_registered", kind="loss", config=NothingConfig,
                          build="reid_plugin_misspelt.plugin:NothingConfig")]
