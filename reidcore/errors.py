"""User-facing errors.

Every error a user can cause derives from :class:`ReidError`; the CLI prints its message
without a traceback. Anything else escaping the CLI is a bug and is shown in full.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import attrs


class ReidError(Exception):
    """An error caused by input (recipe, data, plugin, command line), not by a bug."""

    exit_code = 1


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


@attrs.frozen
class RecipeProblem:
    """One problem in a recipe: where (``$.backbone.last_stride``) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class RecipeError(ReidError):
    """All problems found in one recipe, reported together."""

    exit_code = 2

    def __init__(self, source: str, problems: Sequence[RecipeProblem]):
        self.source = source
        self.problems = list(problems)
        lines = [f"recipe {source} has {len(self.problems)} problem(s):"]
        lines += [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


class RecipeFileError(ReidError):
    """A recipe that cannot be found or read (missing file, invalid TOML)."""

    exit_code = 2


class UnknownComponentError(ReidError):
    """A component name that no installed plugin provides."""

    exit_code = 2


class DuplicateComponentError(ReidError):
    """Two plugins register a component of the same kind under the same name."""


class PluginLoadError(ReidError):
    """A plugin that could not be imported, raised when something actually needs it."""
