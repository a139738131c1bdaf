"""Multi-stage workflows from one command: the runs a recipe requires come first.

A recipe declares the runs its method loads (``[requires.<role>]``, see
:class:`~reidcore.recipe.Requirement`). ``reid run`` trains each required recipe that is
missing into the sibling directory ``<run dir>-<role>`` (depth first: a requirement's own
requirements before it), resumes one that was killed, skips one that completed, and then
runs the recipe itself. Started again after a kill, the chain continues where it stopped.
A directory that holds a different recipe than the one required is never reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reidcore.engine.rundir import RunDirectory
from reidcore.errors import ReidError, did_you_mean


def _check_same_recipe(recipe: Any, target: RunDirectory, role: str, registry: Any) -> None:
    differing = [change["key"] for change in target.differs_from(recipe, registry)]
    if differing:
        raise ReidError(f"required run '{role}' at {target} was made with a different recipe "
                        f"(differing keys: {', '.join(differing[:8])}); remove or move that "
                        f"directory, or point [requires.{role}].run at it to use it as it is")


def run_option_problems(recipe: Any, registry: Any) -> list[str]:
    """The ``[method]`` options naming runs (the method's ``MethodNeeds.runs``) whose bare
    name is no ``[requires.<role>]`` of ``recipe`` nor an existing file or directory."""
    from reidcore.registry import Kind

    if (Kind.METHOD, recipe.method.name) not in registry:
        return []
    config = recipe.method.config
    problems = []
    for option, need in registry.get(Kind.METHOD, recipe.method.name).needs.runs.items():
        value = getattr(config, option, "")
        used = bool(value) and (need.used_when is None
                                or getattr(config, need.used_when[0], None) == need.used_when[1])
        looks_like_path = "/" in str(value) or "\\" in str(value) or Path(str(value)).suffix
        if not used or value in recipe.requires or looks_like_path or Path(value).exists():
            continue
        roles = ", ".join(f"'{role}'" for role in recipe.requires) or "none"
        problems.append(f"method.{option} = {value!r} names no [requires.{value}] of this "
                        f"recipe{did_you_mean(str(value), list(recipe.requires))} and no run "
                        f"directory or checkpoint (the recipe's roles: {roles}); name a role, "
                        f"or a run directory or checkpoint file")
    return problems


def check_chain(recipe: Any, plugins: Any, source: Path | None,
                _stack: tuple[str, ...] = ()) -> list[str]:
    """Check the whole chain before anything trains: ``recipe``'s run options, then every
    stage's recipe resolved with its ``set`` overrides (unknown keys, misspelt recipe names,
    invalid values), recursively, and no circle. Raises a :class:`ReidError` naming the
    stage; returns one line per stage (``role: recipe``) for ``reid check``."""
    from reidcore.recipe import load_recipe

    where = str(source) if source is not None else "the recipe"
    problems = run_option_problems(recipe, plugins.registry)
    if problems:
        raise ReidError(f"{where}: " + "; ".join(problems))
    base = source.parent if source is not None else None
    if source is not None and not _stack:
        _stack = (str(source.resolve()),)
    stages = []
    for role, requirement in recipe.requires.items():
        if not requirement.recipe:
            continue
        try:
            path, required = load_recipe(requirement.recipe, plugins, requirement.set, base)
        except ReidError as exc:
            raise ReidError(f"{where}: [requires.{role}] (recipe = {requirement.recipe!r}, "
                            f"set = {requirement.set}): {exc}") from None
        key = str(path.resolve())
        if key in _stack:
            raise ReidError(f"recipes require each other in a circle: "
                            f"{' -> '.join((*_stack, key))}")
        stages += [f"{role}: {path}"]
        stages += [f"{role}.{line}" for line in
                   check_chain(required, plugins, path, (*_stack, key))]
    return stages


def run_chain(recipe: Any, plugins: Any, run_dir: Path | None, resume: bool = False,
              recipe_name: str = "recipe", source: Path | None = None, *, nproc: int = 1,
              quiet: bool = False, allow_recipe_change: bool = False,
              _stack: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train the runs ``recipe`` requires that are missing, then ``recipe`` itself into
    ``run_dir`` (None: ``runs/<recipe>-<time>``, or the engine's choice when nothing is
    required); return its summary. ``source`` is the recipe's file (requirements given
    as relative paths are looked up beside it first). ``allow_recipe_change`` applies to
    ``recipe`` itself (see :meth:`~reidcore.engine.rundir.RunDirectory.resume_changes`); a
    required run is never resumed with a different recipe."""
    from reidcore.engine.runner import default_run_dir, run_recipe
    from reidcore.recipe import load_recipe

    if run_dir is None and recipe.requires:
        if resume:
            raise ReidError("--resume needs --out DIR: the run directory to continue")
        run_dir = default_run_dir(recipe_name)  # the requirements live beside it

    if not _stack:  # the whole chain, before its first stage trains
        check_chain(recipe, plugins, source)
    owner = RunDirectory(run_dir) if run_dir is not None else None
    base = source.parent if source is not None else None
    if source is not None and not _stack:
        _stack = (str(source.resolve()),)
    for role, requirement in recipe.requires.items():
        if not requirement.recipe:
            continue  # an existing run, used as it is (context.load_run checks it)
        path, required = load_recipe(requirement.recipe, plugins, requirement.set, base)
        key = str(path.resolve())
        if key in _stack:
            raise ReidError(f"recipes require each other in a circle: "
                            f"{' -> '.join((*_stack, key))}")
        assert owner is not None  # a recipe with requirements always gets a run directory
        target = owner.requirement(role)
        _check_same_recipe(required, target, role, plugins.registry)
        if target.completed:
            if not quiet:
                print(f"requirement '{role}': completed run {target} is reused", flush=True)
            continue
        started = target.started
        if not quiet:
            print(f"requirement '{role}': {'resuming' if started else 'training'} "
                  f"{path.stem} in {target}", flush=True)
        run_chain(required, plugins, target.path, resume=started, recipe_name=path.stem,
                  source=path, nproc=nproc, quiet=quiet, _stack=(*_stack, key))
    return run_recipe(recipe, plugins, out=run_dir, resume=resume, recipe_name=recipe_name,
                      nproc=nproc, quiet=quiet, allow_recipe_change=allow_recipe_change)
