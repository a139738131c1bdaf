"""Recipes: TOML files parsed into attrs classes with the one cattrs converter.

Parsing has two phases. The *skeleton* phase structures the top level: which sections
exist and, for each component section, its ``name`` and raw options. The *component*
phase looks each name up in the registry and structures the options into that
component's own config class. Problems from both phases (unknown keys, wrong types,
invalid values, unknown component names) are collected and raised together as one
:class:`~reidcore.errors.RecipeError` before anything is built.

Two rules hold for every section, core or plugin, without a validator of their own
(:func:`number_problems`): a float option is finite (``inf`` and ``nan`` are TOML
numbers, and a config documents it when it accepts one: field metadata
``{"nonfinite": True}``), and an integer option named ``seed`` or ``*_seed`` is >= 0.

A component section is a table with ``name`` and the component's options side by side::

    [backbone]
    name = "resnet50"
    last_stride = 1           # reported as $.backbone.last_stride when wrong

    [[losses]]
    name = "cross_entropy"
    weight = 1.0              # ``weight`` is the one extra key a loss section has
    label_smoothing = 0.1
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from reidcore.compat import tomllib
from reidcore.converter import converter, structure, unstructure
from reidcore.data.config import LoaderConfig
from reidcore.errors import RecipeError, RecipeFileError, RecipeProblem, did_you_mean
from reidcore.fileio import atomic_write_text
from reidcore.needs import needs_problems
from reidcore.registry import Kind, Registry
from reidcore.tracking import mlflow_problems
from reidcore.train_config import TrainConfig


@attrs.define
class ComponentSection:
    """A recipe table naming a component; ``config`` is filled in by the component phase."""

    name: str
    options: dict[str, Any] = attrs.field(factory=dict)
    config: Any = attrs.field(default=None, eq=False, repr=False)


@attrs.define
class LossSection(ComponentSection):
    """A ``[[losses]]`` entry: a loss component and its weight in the total."""

    weight: float = 1.0


@attrs.define
class DataSection:
    """Datasets by role: labeled sources, unlabeled targets, test sets (each evaluated)."""

    source: list[ComponentSection] = attrs.field(factory=list)
    target: list[ComponentSection] = attrs.field(factory=list)
    test: list[ComponentSection] = attrs.field(factory=list)


@attrs.define
class Requirement:
    """A run this recipe's method loads (a teacher, a pretraining stage):
    ``[requires.<role>]`` with either ``recipe`` (a packaged recipe name or a recipe file,
    trained first by ``reid run`` into the sibling run directory ``<run dir>-<role>``,
    with the ``set`` overrides) or ``run`` (an existing run directory or checkpoint, used
    as it is). The method gets it with ``context.load_run("<role>")``."""

    recipe: str = ""
    run: str = ""
    set: list[str] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        if bool(self.recipe) == bool(self.run):
            raise ValueError("give exactly one of 'recipe' (a recipe to train first) and "
                             "'run' (an existing run directory or checkpoint)")
        if self.run and self.set:
            raise ValueError("'set' overrides apply to 'recipe' only; an existing 'run' is "
                             "used as it is")


@attrs.define
class Recipe:
    """A whole recipe. Sections left out take the defaults shown here."""

    method: ComponentSection
    name: str = ""
    description: str = ""
    seed: int = 0
    backbone: ComponentSection | None = None
    generators: dict[str, ComponentSection] = attrs.field(factory=dict)
    losses: list[LossSection] = attrs.field(factory=list)
    data: DataSection = attrs.field(factory=DataSection)
    loader: LoaderConfig = attrs.field(factory=LoaderConfig)
    train: TrainConfig = attrs.field(factory=TrainConfig)
    evaluate: ComponentSection = attrs.field(factory=lambda: ComponentSection("ranking"))
    requires: dict[str, Requirement] = attrs.field(factory=dict)

    def components(self) -> Iterator[tuple[str, Kind, ComponentSection]]:
        """Every component section with its recipe path and kind."""
        return _component_sections(attrs.asdict(self, recurse=False))


def _component_sections(values: dict[str, Any]) -> Iterator[tuple[str, Kind, ComponentSection]]:
    """Component sections among structured top-level values (a whole or partial recipe)."""
    if values.get("method") is not None:
        yield "$.method", Kind.METHOD, values["method"]
    if values.get("backbone") is not None:
        yield "$.backbone", Kind.BACKBONE, values["backbone"]
    for role, section in (values.get("generators") or {}).items():
        yield f"$.generators.{role}", Kind.GENERATOR, section
    for index, section in enumerate(values.get("losses") or ()):
        yield f"$.losses[{index}]", Kind.LOSS, section
    if values.get("data") is not None:
        for role in ("source", "target", "test"):
            for index, section in enumerate(getattr(values["data"], role)):
                yield f"$.data.{role}[{index}]", Kind.DATASET, section
    if values.get("evaluate") is not None:
        yield "$.evaluate", Kind.EVALUATOR, values["evaluate"]


def _section_hook(cls: type[ComponentSection]):
    reserved = {field.name for field in attrs.fields(cls)} - {"options", "config"}

    def structure_section(data: Any, _type: type) -> ComponentSection:
        if not isinstance(data, dict):
            raise TypeError(f"expected a table with name = \"<component>\", got {data!r}")
        if "name" not in data:
            raise ValueError("missing key 'name' (the component to use)")
        values = {key: data[key] for key in reserved if key in data}
        values["name"] = converter.structure(values["name"], str)
        if "weight" in values:
            values["weight"] = converter.structure(values["weight"], float)
        options = {key: value for key, value in data.items() if key not in reserved}
        return cls(options=options, **values)

    return structure_section


converter.register_structure_hook(ComponentSection, _section_hook(ComponentSection))
converter.register_structure_hook(LossSection, _section_hook(LossSection))


# --- reading ----------------------------------------------------------------------------


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into a message with the file and line."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise RecipeFileError(f"recipe file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeFileError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise RecipeFileError(f"cannot read recipe {path}: {exc.strerror}") from None


def packaged_recipes(recipe_dirs: Sequence[tuple[str, Path]]) -> dict[str, tuple[str, Path]]:
    """Packaged recipes by name (file stem): name -> (provider, path)."""
    found: dict[str, tuple[str, Path]] = {}
    for provider, directory in recipe_dirs:
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found.setdefault(path.stem, (provider, path))
    return found


def find_recipe(ref: str, recipe_dirs: Sequence[tuple[str, Path]]) -> Path:
    """A recipe by path, or by the name of a recipe packaged by the core or a plugin."""
    path = Path(ref)
    if path.is_file():
        return path
    if path.suffix == ".toml" or "/" in ref:
        raise RecipeFileError(f"recipe file not found: {ref}")
    packaged = packaged_recipes(recipe_dirs)
    if ref in packaged:
        return packaged[ref][1]
    names = sorted(packaged)
    raise RecipeFileError(
        f"no recipe file or packaged recipe named '{ref}'{did_you_mean(ref, names)}; "
        f"packaged recipes: {', '.join(names) if names else '(none)'}")


def load_recipe(ref: str | Path, plugins: Any, overrides: Sequence[str] = (),
                base: Path | None = None) -> tuple[Path, Recipe]:
    """Find (a file, or a recipe packaged by the core or a plugin), read and resolve a
    recipe with ``--set`` style ``overrides``; ``plugins`` gives the registry, the recipe
    folders and the validation hook. A relative file name is looked up in ``base`` first
    (e.g. beside the recipe that names it). Returns ``(path, recipe)``."""
    candidate = base / str(ref) if base is not None else None
    if candidate is not None and candidate.is_file():
        path = candidate
    else:
        try:
            path = find_recipe(str(ref), plugins.recipe_dirs())
        except RecipeFileError:
            note = getattr(plugins, "unloaded_recipe_note", lambda _name: None)(str(ref))
            if note is None:
                raise
            raise RecipeFileError(note) from None
    return path, resolve(read_toml(path), str(path), plugins.registry, plugins.hook,
                         overrides=list(overrides))


# --- command-line overrides -------------------------------------------------------------

_SEGMENT = re.compile(r"([A-Za-z_][\w-]*)|\[(\d+)\]|(\d+)")


def _parse_override_path(dotted: str) -> list[str | int]:
    parts: list[str | int] = []
    for chunk in dotted.split("."):
        pos = 0
        while pos < len(chunk):
            match = _SEGMENT.match(chunk, pos)
            if match is None:
                raise ValueError(f"cannot read key path '{dotted}'")
            key, bracket, bare = match.groups()
            parts.append(key if key is not None else int(bracket or bare))
            pos = match.end()
    if not parts:
        raise ValueError("empty key path")
    return parts


def parse_override_value(text: str) -> Any:
    """A TOML value (``3``, ``true``, ``"x"``, ``[1, 2]``); anything else is a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> list[RecipeProblem]:
    """Apply ``--set a.b=value`` overrides in place; return problems instead of raising."""
    problems: list[RecipeProblem] = []
    for override in overrides:
        dotted, sep, text = override.partition("=")
        if not sep:
            problems.append(RecipeProblem(f"--set {override}", "expected KEY=VALUE, e.g. "
                                          "--set train.epochs=5"))
            continue
        try:
            parts = _parse_override_path(dotted.strip())
        except ValueError as exc:
            problems.append(RecipeProblem(f"--set {override}", str(exc)))
            continue
        node: Any = raw
        where = "$"
        for part, following in zip(parts, parts[1:], strict=False):
            where += f"[{part}]" if isinstance(part, int) else f".{part}"
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    problems.append(RecipeProblem(where, f"--set {override}: no such array item"))
                    break
                node = node[part]
            else:
                if not isinstance(node, dict):
                    problems.append(RecipeProblem(where, f"--set {override}: not a table"))
                    break
                node = node.setdefault(part, [] if isinstance(following, int) else {})
        else:
            last = parts[-1]
            value = parse_override_value(text.strip())
            if isinstance(last, int):
                if isinstance(node, list) and last < len(node):
                    node[last] = value
                else:
                    problems.append(RecipeProblem(where, f"--set {override}: no such array item"))
            elif isinstance(node, dict):
                node[last] = value
            else:
                problems.append(RecipeProblem(where, f"--set {override}: not a table"))
    return problems


# --- the two phases ---------------------------------------------------------------------


def _structure_skeleton(raw: dict[str, Any]) -> tuple[dict[str, Any], list[RecipeProblem]]:
    """Phase one, field by field, so one bad section does not hide the others' problems."""
    fields = attrs.fields_dict(attrs.resolve_types(Recipe))
    problems = [RecipeProblem(f"$.{key}", f"unknown key{did_you_mean(key, fields)}; expected "
                                          f"one of: {', '.join(fields)}")
                for key in raw if key not in fields]
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in raw:
            if field.default is attrs.NOTHING:
                problems.append(RecipeProblem(f"$.{name}", "required key is missing"))
            continue
        value, field_problems = structure(raw[name], field.type or object, f"$.{name}")
        problems += field_problems
        if not field_problems:
            values[name] = value
    return values, problems


def _is_seed(name: str) -> bool:
    return name == "seed" or name.endswith("_seed")


def _value_problems(value: Any, path: str, field: Any = None) -> Iterator[RecipeProblem]:
    if isinstance(value, ComponentSection):
        # a component's options sit beside its name: $.backbone.gem_p, not ...config.gem_p
        if isinstance(value, LossSection):
            yield from _value_problems(value.weight, f"{path}.weight")
        if value.config is not None:
            yield from _value_problems(value.config, path)
    elif attrs.has(type(value)):
        for sub in attrs.fields(type(value)):
            yield from _value_problems(getattr(value, sub.name), f"{path}.{sub.name}", sub)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _value_problems(item, f"{path}.{key}", field)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _value_problems(item, f"{path}[{index}]", field)
    elif isinstance(value, float):
        if not math.isfinite(value) and not (field is not None
                                             and field.metadata.get("nonfinite")):
            yield RecipeProblem(path, f"expected a finite number, got {value}")
    elif (isinstance(value, int) and not isinstance(value, bool) and field is not None
          and _is_seed(field.name) and value < 0):
        yield RecipeProblem(path, f"expected a seed >= 0, got {value}")


def number_problems(values: Mapping[str, Any]) -> list[RecipeProblem]:
    """Non-finite floats and negative seeds among structured top-level recipe values
    (component configs included), with their recipe paths."""
    problems: list[RecipeProblem] = []
    fields = attrs.fields_dict(Recipe)
    for name, value in values.items():
        problems += _value_problems(value, f"$.{name}", fields.get(name))
    return problems


def resolve(raw: dict[str, Any], source: str, registry: Registry, hook: Any | None = None,
            overrides: Sequence[str] = ()) -> Recipe:
    """Parse a raw TOML mapping into a fully configured :class:`Recipe`, or raise one
    :class:`RecipeError` listing every problem found."""
    raw = _deep_copy(raw)
    problems = apply_overrides(raw, overrides)
    values, skeleton_problems = _structure_skeleton(raw)
    problems += skeleton_problems
    for path, kind, section in _component_sections(values):
        if (kind, section.name) not in registry:
            problems.append(RecipeProblem(f"{path}.name",
                                          registry.unknown_message(kind, section.name)))
            continue
        spec = registry.get(kind, section.name)
        section.config, config_problems = structure(section.options, spec.config, path)
        problems += config_problems
    problems += number_problems(values)
    if problems:
        raise RecipeError(source, problems)
    recipe = Recipe(**values)
    problems += needs_problems(recipe, registry)
    problems += mlflow_problems(recipe.train.mlflow)
    if hook is not None:
        for found in hook.reid_validate_recipe(recipe=recipe, registry=registry):
            problems += list(found or ())
    if problems:
        raise RecipeError(source, problems)
    return recipe


def differences(resolved: Mapping[str, Any], written: Mapping[str, Any],
                prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two recipe dicts (:func:`to_dict` of one,
    a ``recipe.toml`` read back); tables are compared key by key, anything else whole."""
    keys = []
    for key in sorted(set(resolved) | set(written)):
        a, b = resolved.get(key), written.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def value_at(data: Mapping[str, Any], dotted: str) -> Any:
    """The value of a dotted key from :func:`differences` (None where absent)."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


# --- writing ----------------------------------------------------------------------------


def _section_to_dict(section: ComponentSection) -> dict[str, Any]:
    options = unstructure(section.config) if section.config is not None else section.options
    data: dict[str, Any] = {"name": section.name}
    if isinstance(section, LossSection):
        data["weight"] = section.weight
    data.update(options)
    return data


def to_dict(recipe: Recipe) -> dict[str, Any]:
    """The fully resolved recipe (every default filled in) as plain TOML-ready data."""
    data: dict[str, Any] = {"name": recipe.name, "description": recipe.description,
                            "seed": recipe.seed, "method": _section_to_dict(recipe.method)}
    if recipe.backbone is not None:
        data["backbone"] = _section_to_dict(recipe.backbone)
    if recipe.generators:
        data["generators"] = {role: _section_to_dict(s) for role, s in recipe.generators.items()}
    if recipe.losses:
        data["losses"] = [_section_to_dict(s) for s in recipe.losses]
    data["data"] = {role: [_section_to_dict(s) for s in getattr(recipe.data, role)]
                    for role in ("source", "target", "test") if getattr(recipe.data, role)}
    data["loader"] = unstructure(recipe.loader)
    data["train"] = unstructure(recipe.train)
    data["evaluate"] = _section_to_dict(recipe.evaluate)
    if recipe.requires:
        data["requires"] = {role: unstructure(requirement)
                            for role, requirement in recipe.requires.items()}
    return data


def dumps(recipe: Recipe) -> str:
    import tomli_w

    header = "# Fully resolved recipe written by reid; run it again with `reid run <this file>`.\n"
    return header + tomli_w.dumps(to_dict(recipe))


def write_resolved(recipe: Recipe, path: Path) -> None:
    atomic_write_text(path, dumps(recipe))
