"""The ``reid`` command line: run, check, plugins, recipes, plus plugin-added commands.

User errors (:class:`~reidcore.errors.ReidError`) print one message to stderr and exit
non-zero without a traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reidcore.errors import ReidError
from reidcore.registry import Kind


def _global_options(suppress_defaults: bool) -> argparse.ArgumentParser:
    """--debug and --disable-plugin, accepted before or after the sub-command."""
    default: Any = argparse.SUPPRESS if suppress_defaults else None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--debug", action="store_true",
                        default=argparse.SUPPRESS if suppress_defaults else False,
                        help="show the Python traceback of errors")
    parser.add_argument("--disable-plugin", action="append", metavar="NAME", default=default,
                        help="skip a plugin (entry-point or distribution name); repeatable; "
                             "also REID_DISABLE_PLUGINS=a,b")
    return parser


def _add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="a recipe file, or the name of a packaged recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set train.epochs=5 "
                             "--set backbone.last_stride=1 (values are TOML)")


def build_parser(plugins: Any) -> argparse.ArgumentParser:
    from reidcore import __version__

    common = _global_options(suppress_defaults=True)
    parser = argparse.ArgumentParser(
        prog="reid", parents=[_global_options(suppress_defaults=False)],
        description="reid: person re-identification with plugins.")
    parser.add_argument("--version", action="version", version=f"reid {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True

    run = subparsers.add_parser("run", parents=[common], help="train and evaluate a recipe")
    _add_recipe_arguments(run)
    run.add_argument("--out", type=Path, help="run directory (default: runs/<recipe>-<time>)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last checkpoint")
    run.add_argument("--allow-recipe-change", action="store_true",
                     help="with --resume: accept a recipe that differs from the run's in "
                          "keys that keep its checkpoints valid (e.g. train.epochs); the "
                          "changes are recorded in manifest.json")
    run.add_argument("--nproc", type=int, default=1, metavar="N",
                     help="train with N DistributedDataParallel processes (gloo on CPU, "
                          "nccl on CUDA); under torchrun leave it out")
    run.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                     help="run the recipe once per seed into --out/seed-<N> (each an ordinary "
                          "run; started again, completed seeds are kept and a killed one "
                          "resumes) and write --out/seeds.json with each metric's mean, sd, "
                          "min and max; {seed} in a --set value becomes each run's seed")
    run.set_defaults(func=command_run)

    check = subparsers.add_parser("check", parents=[common],
                                  help="validate a recipe (exit 0 when valid, 2 when not)")
    _add_recipe_arguments(check)
    check.add_argument("--print", dest="print_resolved", action="store_true",
                       help="print the fully resolved recipe")
    check.add_argument("--build", action="store_true",
                       help="also build the method (meta device: no data, no memory) and "
                            "print the parameter count of each named module")
    check.add_argument("--json", action="store_true",
                       help="with --build: machine-readable parameter counts")
    check.set_defaults(func=command_check)

    listing = subparsers.add_parser("plugins", parents=[common],
                                    help="list plugins and their components")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=command_plugins)

    recipes = subparsers.add_parser("recipes", parents=[common], help="list packaged recipes")
    recipes.add_argument("--json", action="store_true", help="machine-readable output")
    recipes.set_defaults(func=command_recipes)

    plugins.hook.reid_add_commands(subparsers=subparsers)
    return parser


# --- commands ---------------------------------------------------------------------------


def load_recipe(args: argparse.Namespace, plugins: Any):
    """Find, read and resolve the recipe named on the command line."""
    from reidcore.recipe import load_recipe as load

    return load(args.recipe, plugins, args.overrides)


def _check_names(recipe: Any, method: Any, plugins: Any, source: str) -> None:
    """lr_mult/freeze against the method's parameter groups, best_metric against the
    evaluator's metrics (:mod:`reidcore.engine.names`), as ``reid run`` checks them."""
    from reidcore.engine.names import check_names

    try:
        optimization = method.configure_optimizers()
    except Exception as exc:  # e.g. a method whose optimizers need real tensors
        optimization = None
        print(f"note: parameter-group names (train.lr_mult, train.freeze) not checked: "
              f"{recipe.method.name}.configure_optimizers() failed on the meta device "
              f"({type(exc).__name__}: {exc}); `reid run` checks them", file=sys.stderr)
    evaluate = recipe.evaluate
    evaluator = plugins.registry.get(Kind.EVALUATOR, evaluate.name).create(evaluate.config)
    check_names(recipe, optimization, evaluator, source)


def command_check(args: argparse.Namespace, plugins: Any) -> int:
    from reidcore.recipe import dumps

    path, recipe = load_recipe(args, plugins)
    from reidcore.engine.chain import check_chain

    stages = check_chain(recipe, plugins, path)  # every [requires] stage, before any build
    if getattr(args, "build", False):
        from reidcore.engine.build import count_parameters, expected_num_classes, format_counts
        from reidcore.engine.context import build_method

        num_classes, note = expected_num_classes(recipe, plugins.registry)
        method = build_method(recipe, plugins.registry, num_classes, meta=True)
        _check_names(recipe, method, plugins, str(path))
        counts = count_parameters(method.modules())
        if args.json:
            print(json.dumps({"recipe": str(path), "method": recipe.method.name,
                              "num_classes": num_classes, **counts}, indent=2))
            return 0
        if args.print_resolved:
            print(dumps(recipe), end="")
        print(f"ok: {path} builds: method {recipe.method.name}, {num_classes} training "
              f"identities" + (f" ({note})" if note else ""))
        print(format_counts(counts))
        return 0
    if args.print_resolved:
        print(dumps(recipe), end="")
    else:
        parts = [f"{kind.value} {section.name}" for _, kind, section in recipe.components()]
        print(f"ok: {path} is valid ({', '.join(parts)})")
        for stage in stages:
            print(f"ok: requirement {stage} is valid")
    return 0


def command_run(args: argparse.Namespace, plugins: Any) -> int:
    import os

    path, recipe = load_recipe(args, plugins)
    # OpenMP threads that sleep instead of spinning while they wait: on a shared CPU,
    # spinning threads make training several times slower (set it yourself to override).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from reidcore.engine.chain import run_chain

    if args.nproc < 1:
        raise ReidError(f"--nproc must be at least 1, got {args.nproc}")
    if args.allow_recipe_change and not args.resume:
        raise ReidError("--allow-recipe-change applies to --resume only")
    if args.seeds:
        if args.resume:
            raise ReidError("--seeds resumes by itself: run the same command again (completed "
                            "seeds are kept, a killed one resumes); leave out --resume")
        from reidcore.engine.seed_group import SEED_PLACEHOLDER, run_seeds, seeded_overrides
        from reidcore.recipe import load_recipe as load

        def recipe_of(seed: int) -> Any:
            return load(args.recipe, plugins, seeded_overrides(args.overrides, seed))[1]

        per_seed = any(SEED_PLACEHOLDER in item for item in args.overrides)
        group = run_seeds(recipe_of if per_seed else recipe, plugins, args.seeds, args.out,
                          recipe_name=path.stem, source=path, nproc=args.nproc)
        print(json.dumps(group["metrics"], indent=2))
        return 0
    summary = run_chain(recipe, plugins, args.out, resume=args.resume, recipe_name=path.stem,
                        source=path, nproc=args.nproc,
                        allow_recipe_change=args.allow_recipe_change)
    print(json.dumps(summary.get("metrics", {}), indent=2))
    return 0


def command_plugins(args: argparse.Namespace, plugins: Any) -> int:
    infos = plugins.infos
    if args.json:
        print(json.dumps([{
            "name": info.name, "distribution": info.distribution, "version": info.version,
            "module": info.module, "status": ("disabled" if info.disabled else
                                              "failed" if info.error else "ok"),
            "error": info.error, "components": info.components,
            "conflicts": info.conflicts, "hook_failures": info.hook_failures,
        } for info in infos], indent=2))
        return 0
    for info in infos:
        status = " DISABLED" if info.disabled else " FAILED" if info.error else ""
        print(f"{info.distribution} {info.version} (plugin '{info.name}'){status}")
        if info.error:
            print(f"  error: {info.error}")
        for conflict in info.conflicts:
            print(f"  conflict: {conflict}")
        for kind, names in sorted(info.components.items()):
            print(f"  {Kind(kind).plural}: {', '.join(sorted(names))}")
    return 0


def command_recipes(args: argparse.Namespace, plugins: Any) -> int:
    from reidcore.recipe import packaged_recipes

    found = packaged_recipes(plugins.recipe_dirs())
    if args.json:
        print(json.dumps([{"name": name, "provider": provider, "path": str(path)}
                          for name, (provider, path) in sorted(found.items())], indent=2))
        return 0
    if not found:
        print("no packaged recipes")
    for name, (provider, path) in sorted(found.items()):
        print(f"{name:32s} {provider:16s} {path}")
    return 0


# --- entry point ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    early, _ = _global_options(suppress_defaults=False).parse_known_args(argv)
    try:
        from reidcore.plugins import get_plugins

        plugins = get_plugins(early.disable_plugin or ())
        args = build_parser(plugins).parse_args(argv)
        return int(args.func(args, plugins) or 0)
    except ReidError as exc:
        if early.debug:
            raise
        print(f"reid: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("reid: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
