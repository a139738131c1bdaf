"""Written for reidcore API version 1: it must be reported, not half-loaded."""

from reidcore.api import hookimpl

REID_API_VERSION = 1


@hookimpl
def reid_losses() -> list:
    return []
