"""Issue 25, item 2: a run loaded for a ``RunOption(same_source=True)`` (DG-Net's teacher)
is matched to this run by the dataset fingerprints manifest.json records, not by the count
of identities: a teacher trained on 40 other identities (``data.source.0.seed = 1``) is
refused, with a message naming both datasets and the recipe key that differs."""

from __future__ import annotations

import json

import attrs
import pytest

from reidcore.engine.context import MethodContext
from reidcore.engine.runner import run_recipe
from reidcore.errors import ReidError
from reidcore.plugins import get_plugins
from reidcore.recipe import ComponentSection
from reidcore.registry import ComponentSpec, Kind, MethodNeeds, Registry, RunOption
from tests.engine.conftest import fast_recipe_dict, resolve_dict


@attrs.define
class StudentConfig:
    teacher: str = "teacher"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two trained runs, on synthetic data of seed 0 and of seed 1 (same counts)."""
    root = tmp_path_factory.mktemp("identity")
    made = {}
    for seed in (0, 1):
        raw = fast_recipe_dict(root / f"data{seed}", epochs=1, steps=1)
        raw["data"]["source"][0]["seed"] = seed
        made[seed] = (root / f"run{seed}", resolve_dict(raw))
        run_recipe(made[seed][1], get_plugins(), out=made[seed][0], quiet=True)
    return made


def _student_context(runs, teacher_seed: int, same_source: bool) -> MethodContext:
    """A context of a method whose ``teacher`` option must (or need not) share the data,
    in a run on the seed-0 data, with [requires.teacher] pointing at the given run."""
    registry = Registry()
    registry.extend(get_plugins().registry.specs())
    registry.add(ComponentSpec(name="student", kind=Kind.METHOD, config=StudentConfig,
                               build=lambda config, context: None,
                               needs=MethodNeeds(runs={"teacher": RunOption(
                                   same_source=same_source)})))
    run_dir, recipe = runs[0]
    teacher_dir = runs[teacher_seed][0]
    student = attrs.evolve(recipe, method=ComponentSection("student", {}, StudentConfig()))
    student.requires = {"teacher": attrs.evolve(
        resolve_dict({**fast_recipe_dict(run_dir.parent / "data0"),
                      "requires": {"teacher": {"run": str(teacher_dir)}}}).requires["teacher"])}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return MethodContext(recipe=student, registry=registry, num_classes=4,
                         run_dir=run_dir.parent / "student",
                         source_datasets=manifest["datasets"])


def test_a_teacher_trained_on_other_identities_is_refused_naming_both(runs):
    context = _student_context(runs, teacher_seed=1, same_source=True)
    with pytest.raises(ReidError) as info:
        context.load_run("teacher")
    message = str(info.value)
    assert f"the run loaded as 'teacher' ({runs[1][0]}) was trained on other data" in message
    assert message.count("source[0] synthetic (") == 2  # both datasets, by fingerprint
    assert "data.source[0].seed = 1 there, 0 here" in message
    assert "train 'teacher' on this run's [[data.source]] data" in message


def test_a_teacher_on_the_same_data_and_an_option_without_the_need_pass(runs):
    assert _student_context(runs, 0, same_source=True).load_run("teacher") is not None
    assert _student_context(runs, 1, same_source=False).load_run("teacher") is not None


def test_the_fingerprint_follows_the_data_not_its_folder(tmp_path):
    from types import SimpleNamespace

    from reidcore.engine.logging import dataset_fingerprint

    def dataset(root, pid=1, content=b"jpeg"):
        files = [root / "bounding_box_train" / "0001_c1.jpg", root / "query" / "0002_c2.jpg"]
        for file in files:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(content)
        return SimpleNamespace(train=[SimpleNamespace(path=str(files[0]), pid=pid, camid=0)],
                               query=[SimpleNamespace(path=str(files[1]), pid=2, camid=1)],
                               gallery=[])

    here, moved = dataset(tmp_path / "a" / "market"), dataset(tmp_path / "b" / "copy")
    assert dataset_fingerprint([here]) == dataset_fingerprint([moved])
    assert dataset_fingerprint([here]).startswith("rel:")
    assert dataset_fingerprint([here]) != dataset_fingerprint([dataset(tmp_path / "c", pid=3)])
    # files named alike with other contents (the generator's seeds): their sizes differ
    assert dataset_fingerprint([here]) != \
        dataset_fingerprint([dataset(tmp_path / "d", content=b"other jpeg")])
    # the older absolute-path form still tells the folders apart
    assert dataset_fingerprint([here], relative=False) != \
        dataset_fingerprint([moved], relative=False)


def test_a_teacher_whose_manifest_has_absolute_path_fingerprints_is_still_checked(runs):
    from reidcore.engine.run_match import check_same_source

    teacher_dir, recipe = runs[0]
    manifest_file = teacher_dir / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    ours = manifest["datasets"]
    legacy = {key: "ab" * 32 for key in ours}  # as an older core wrote them
    old = {**manifest, "datasets": legacy}
    copy = teacher_dir.parent / "legacy-teacher"
    copy.mkdir()
    (copy / "manifest.json").write_text(json.dumps(old))
    check_same_source("teacher", copy, ours, recipe, legacy=legacy)  # compared in that form
    with pytest.raises(ReidError, match="was trained on other data"):
        check_same_source("teacher", copy, ours, recipe, legacy={k: "cd" * 32 for k in ours})
