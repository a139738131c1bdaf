"""Real dataset layouts: fake trees written with the real naming rules give exactly the
declared counts, with the documented junk and distractor rules."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from reidcore.data.datasets.base import DatasetLayoutError, split_stats
from reidcore.data.datasets.dukemtmcreid import DukeMTMCreID, DukeMTMCreIDConfig
from reidcore.data.datasets.folder import FolderConfig, FolderDataset
from reidcore.data.datasets.gtasynthreid import GTASynthReid, GTASynthReidConfig
from reidcore.data.datasets.market1501 import Market1501, Market1501Config
from reidcore.data.datasets.msmt17 import MSMT17, MSMT17Config
from reidcore.data.datasets.pit import PIT, PITConfig
from reidcore.errors import ReidError
from reidcore.records import SplitStats

from .conftest import touch_all


def spread(total: int, ids: list[int]) -> list[int]:
    """``total`` images over ``ids``, as evenly as possible: the pid of each image."""
    return [ids[i % len(ids)] for i in range(total)]


# --- Market-1501 --------------------------------------------------------------------------


# Each tree builder takes a divisor: 1 writes the published counts (tests marked slow:
# tens of thousands of files), 40 a small tree with the same rules for the quick run.
SCALES = [pytest.param(1, marks=pytest.mark.slow, id="full"), pytest.param(40, id="small")]


def scaled(stats: SplitStats, divisor: int) -> SplitStats:
    return SplitStats(*(None if v is None else -(-v // divisor) for v in attrs_values(stats)))


def attrs_values(stats: SplitStats) -> tuple:
    return (stats.train_ids, stats.train_images, stats.query_images, stats.gallery_images,
            stats.test_ids)


def market_tree(base: Path, divisor: int = 1) -> Path:
    """Market-1501 counts (divided) with its real names, junk and distractors."""
    data = base / "Market-1501-v15.09.15"
    rng = np.random.default_rng(0)
    pids = sorted(rng.choice(np.arange(1, 1502), size=1501, replace=False).tolist())
    train_ids, test_ids = pids[:-(-751 // divisor)], pids[751:751 + -(-750 // divisor)]
    paths = []
    distractors = -(-2793 // divisor)
    for split, total, ids in (("bounding_box_train", 12936, train_ids), ("query", 3368, test_ids),
                              ("bounding_box_test", 15913, test_ids)):
        total = -(-total // divisor) - (distractors if split == "bounding_box_test" else 0)
        for n, pid in enumerate(spread(total, ids)):
            paths.append(data / split / f"{pid:04d}_c{n % 6 + 1}s{n % 5 + 1}_{n:06d}_0{n % 3}.jpg")
    for n in range(distractors):  # distractors: pid 0, kept
        paths.append(data / "bounding_box_test" / f"0000_c{n % 6 + 1}s1_{n:06d}_01.jpg")
    for n in range(-(-3819 // divisor)):  # junk: pid -1, dropped
        paths.append(data / "bounding_box_test" / f"-1_c{n % 6 + 1}s1_{n:06d}_01.jpg")
    touch_all(paths)
    return data


@pytest.fixture(scope="module")
def market_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("market")
    market_tree(root, 40)
    return root


@pytest.mark.parametrize("divisor", SCALES)
def test_market1501_gives_the_declared_counts(tmp_path, divisor):
    market_tree(tmp_path, divisor)
    dataset = Market1501(Market1501Config(root=str(tmp_path)))
    assert dataset.expected == SplitStats(751, 12936, 3368, 15913, 750)
    splits = dataset.load()
    assert split_stats(splits) == scaled(dataset.expected, divisor)
    gallery_pids = [r.pid for r in splits.gallery]
    assert -1 not in gallery_pids and gallery_pids.count(0) == -(-2793 // divisor)
    assert {r.camid for r in splits.train} == set(range(6))  # c1..c6 -> 0..5
    assert {r.domain for r in splits.query} == {"market1501"}


def test_market1501_root_may_be_the_dataset_folder_itself(market_root):
    inner = market_root / "Market-1501-v15.09.15"
    assert len(Market1501(Market1501Config(root=str(inner))).load().query) == -(-3368 // 40)


def test_market1501_500k_distractors(tmp_path):
    data = tmp_path / "Market-1501-v15.09.15"
    touch_all([data / "bounding_box_train" / "0002_c1s1_000451_03.jpg",
               data / "query" / "0003_c1s1_000451_03.jpg",
               data / "bounding_box_test" / "0003_c2s1_000451_03.jpg",
               data / "images" / "0000_c3s1_000001_01.jpg",
               data / "images" / "0000_c4s1_000002_01.jpg"])
    plain = Market1501(Market1501Config(root=str(tmp_path))).load()
    extended = Market1501(Market1501Config(root=str(tmp_path), distractors_500k=True))
    assert extended.expected is None
    gallery = extended.load().gallery
    assert len(gallery) == len(plain.gallery) + 2 and [r.pid for r in gallery[-2:]] == [0, 0]
    (data / "images" / "0000_c3s1_000001_01.jpg").unlink()
    (data / "images" / "0000_c4s1_000002_01.jpg").unlink()
    (data / "images").rmdir()
    with pytest.raises(DatasetLayoutError, match="distractors_500k"):
        extended.load()


def test_missing_market_root_prints_the_expected_layout(tmp_path):
    with pytest.raises(ReidError) as error:
        Market1501(Market1501Config(root=str(tmp_path / "nowhere"))).load()
    message = str(error.value)
    assert "does not exist" in message and str(tmp_path / "nowhere") in message
    assert "bounding_box_train/" in message and "0002_c1s1_000451_03.jpg" in message


def test_misnamed_folder_gets_a_did_you_mean(tmp_path):
    (tmp_path / "Market-1501-v15.09.16").mkdir()
    with pytest.raises(ReidError, match="did you mean 'Market-1501-v15.09.15'"):
        Market1501(Market1501Config(root=str(tmp_path))).load()


def test_a_file_breaking_the_naming_rule_is_named(tmp_path):
    data = tmp_path / "Market-1501-v15.09.15"
    touch_all([data / "bounding_box_train" / "person.jpg", data / "query" / "x.jpg"])
    (data / "bounding_box_test").mkdir()
    with pytest.raises(ReidError, match=r"person\.jpg: file name does not follow"):
        Market1501(Market1501Config(root=str(tmp_path))).load()


# --- DukeMTMC-reID ------------------------------------------------------------------------


@pytest.mark.parametrize("divisor", SCALES)
def test_dukemtmcreid_gives_the_declared_counts(tmp_path, divisor):
    data = tmp_path / "DukeMTMC-reID"
    n_ids, n_distractors = -(-702 // divisor), -(-408 // divisor)
    train_ids = list(range(1, 1404, 2))[:n_ids]
    test_ids = list(range(2, 1405, 2))[:n_ids]
    distractors = list(range(5000, 5000 + n_distractors))
    paths = []
    for split, total, ids in (("bounding_box_train", 16522, train_ids), ("query", 2228, test_ids),
                              ("bounding_box_test", 17661, test_ids + distractors)):
        for n, pid in enumerate(spread(-(-total // divisor), ids)):
            paths.append(data / split / f"{pid:04d}_c{n % 8 + 1}_f{n:07d}.jpg")
    touch_all(paths)
    dataset = DukeMTMCreID(DukeMTMCreIDConfig(root=str(tmp_path)))
    assert dataset.expected == SplitStats(702, 16522, 2228, 17661, 702)
    splits = dataset.load()
    assert split_stats(splits) == scaled(dataset.expected, divisor)
    assert {r.camid for r in splits.gallery} == set(range(8))
    assert len({r.pid for r in splits.gallery}) == n_ids + n_distractors


# --- MSMT17 -------------------------------------------------------------------------------


def msmt_tree(base: Path, version: str, divisor: int = 1) -> Path:
    folder = {"v1": ("train", "test"), "v2": ("mask_train_v2", "mask_test_v2")}[version]
    data = base / f"MSMT17_{version.upper()}"
    for name in folder:
        (data / name).mkdir(parents=True)

    def lines(total: int, ids: list[int], tag: str) -> str:
        out = []
        for n, pid in enumerate(spread(-(-total // divisor), ids)):
            out.append(f"{pid:04d}/{pid:04d}_{n:03d}_{n % 15 + 1:02d}_0303{tag}_{n:04d}_0.jpg "
                       f"{pid}\n")
        return "".join(out)

    train_ids, test_ids = list(range(-(-1041 // divisor))), list(range(-(-3060 // divisor)))
    (data / "list_train.txt").write_text(lines(30248, train_ids, "morning"))
    (data / "list_val.txt").write_text(lines(2373, train_ids[::3], "noon"))
    (data / "list_query.txt").write_text(lines(11659, test_ids, "afternoon"))
    (data / "list_gallery.txt").write_text(lines(82161, test_ids, "morning"))
    return data


@pytest.mark.parametrize("divisor", SCALES)
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_msmt17_lists_give_the_declared_counts(tmp_path, version, divisor):
    data = msmt_tree(tmp_path, version, divisor)
    merged = MSMT17(MSMT17Config(root=str(tmp_path), version=version))
    assert merged.expected == SplitStats(1041, 32621, 11659, 82161, 3060)
    splits = merged.load()
    found = split_stats(splits)
    assert found.train_images == -(-30248 // divisor) + -(-2373 // divisor)
    assert attrs_values(found)[2:] == attrs_values(scaled(merged.expected, divisor))[2:]
    assert found.train_ids == -(-1041 // divisor)
    train_folder = "train" if version == "v1" else "mask_train_v2"
    assert splits.train[0].path == str(data / train_folder / "0000" /
                                       "0000_000_01_0303morning_0000_0.jpg")
    assert splits.train[0].camid == 0 and splits.query[14].camid == 14
    alone = MSMT17(MSMT17Config(root=str(tmp_path), version=version, merge_val=False))
    assert alone.expected.train_images == 30248
    assert split_stats(alone.load()) == scaled(alone.expected, divisor)


def test_msmt17_bad_list_line_is_named(tmp_path):
    data = msmt_tree(tmp_path, "v1", 100)
    (data / "list_query.txt").write_text("0000/0000_000_01_x.jpg\n")
    with pytest.raises(ReidError, match=r"list_query.txt:1: expected '<relative path> <pid>'"):
        MSMT17(MSMT17Config(root=str(tmp_path))).load()


# --- GTASynthReid -------------------------------------------------------------------------


def gta_tree(root: Path, train_ids: int, test_ids: int) -> Path:
    data = root / "GTASynthReid"
    paths = []
    for pid in range(train_ids + test_ids):
        split = "bounding_box_train" if pid < train_ids else "bounding_box_test"
        count = 29 + pid % 5  # every identity has at least 29 boxes
        for n in range(count):
            cam = pid % 19 + 1 if n % 2 else (pid + 3) % 19 + 1
            day = "d" if n % 3 else "n"
            paths.append(data / split / f"{pid}_s{day}{n % 4 + 1}c{cam:02d}_{n:06d}.jpeg")
        if pid >= train_ids:
            for cam in {pid % 19 + 1, (pid + 3) % 19 + 1}:
                paths.append(data / "query" / f"{pid}_sd1c{cam:02d}_{900 + cam:06d}.jpeg")
    touch_all(paths)
    return root


@pytest.mark.parametrize("ids", [pytest.param((438, 100), marks=pytest.mark.slow, id="full"),
                                 pytest.param((11, 8), id="small")])
def test_gtasynthreid_split_and_combined_source(tmp_path, ids):
    train_ids, test_ids = ids
    root = gta_tree(tmp_path, train_ids, test_ids)
    plain = GTASynthReid(GTASynthReidConfig(root=str(root)))
    assert plain.expected is None and plain.expected_ids == {"train_ids": 438, "test_ids": 100}
    splits = plain.load()
    stats = split_stats(splits)
    assert (stats.train_ids, stats.test_ids) == ids
    assert stats.query_images == 2 * test_ids
    assert {r.pid for r in splits.gallery} == set(range(train_ids, train_ids + test_ids))
    cameras = {r.camid for r in splits.train + splits.gallery}
    assert 0 in cameras and cameras <= set(range(19))  # c01..c19 -> 0..18
    combined = GTASynthReid(GTASynthReidConfig(root=str(root), combine_all=True, max_per_id=20))
    assert combined.expected == SplitStats(538, 10760, 0, 0, 0)
    splits = combined.load()
    total = train_ids + test_ids
    assert split_stats(splits) == SplitStats(total, 20 * total, 0, 0, 0)
    again = GTASynthReid(GTASynthReidConfig(root=str(root), combine_all=True,
                                            max_per_id=20)).load()
    assert again == splits  # the cap is a deterministic subset
    other_seed = GTASynthReid(GTASynthReidConfig(root=str(root), combine_all=True,
                                                 max_per_id=20, seed=1)).load()
    assert other_seed != splits


# --- PIT ----------------------------------------------------------------------------------


@pytest.mark.parametrize("textures", [pytest.param(929, marks=pytest.mark.slow, id="full"),
                                      pytest.param(12, id="small")])
def test_pit_pairs_images_with_their_texture_maps(tmp_path, textures):
    data = tmp_path / "PIT"
    touch_all([data / "textures" / f"{t:04d}.jpg" for t in range(1, textures + 1)])
    touch_all([data / "images" / f"{t:04d}_{m:02d}.jpg" for t in range(1, textures + 1)
               for m in range(1, 11)])
    dataset = PIT(PITConfig(root=str(tmp_path)))
    assert dataset.expected == SplitStats(929, 9290, 0, 0, 0)
    splits = dataset.load()
    assert split_stats(splits) == SplitStats(textures, 10 * textures, 0, 0, 0)
    record = splits.train[12]
    assert record.pid == 2 and record.camid is None
    assert record.extras["texture"] == str(data / "textures" / "0002.jpg")
    (data / "textures" / "0002.jpg").unlink()
    with pytest.raises(ReidError, match=r"0002_01.jpg has no texture map"):
        dataset.load()


# --- folder -------------------------------------------------------------------------------


def test_folder_with_the_default_regex(tmp_path):
    touch_all([tmp_path / "train" / "0001_c1_a.jpg", tmp_path / "train" / "0001_c2_b.png",
               tmp_path / "train" / "0002_c1_c.jpg", tmp_path / "query" / "0003_c1_d.jpg",
               tmp_path / "gallery" / "0003_c2_e.jpg", tmp_path / "gallery" / "-1_c2_f.jpg",
               tmp_path / "train" / "notes.txt"])
    splits = FolderDataset(FolderConfig(root=str(tmp_path))).load()
    assert split_stats(splits) == SplitStats(2, 3, 1, 1, 1)
    assert [r.camid for r in splits.train] == [0, 1, 0]


def test_folder_without_camera_ids_uses_none(tmp_path):
    touch_all([tmp_path / "train" / "p7-x.jpg", tmp_path / "query" / "p8-y.jpg",
               tmp_path / "gallery" / "p8-z.jpg"])
    config = FolderConfig(root=str(tmp_path), regex=r"^p(?P<pid>\d+)-")
    splits = FolderDataset(config).load()
    assert [r.pid for r in splits.query] == [8]
    assert all(r.camid is None for r in splits.train + splits.query + splits.gallery)


def test_folder_csv_manifest(tmp_path):
    manifest = tmp_path / "list.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "pid", "camid", "split"])
        writer.writerows([["img/a.jpg", 3, 1, "train"], ["img/b.jpg", 3, 2, "train"],
                          ["img/c.jpg", 4, 1, "query"], ["/abs/d.jpg", 4, 2, "gallery"]])
    splits = FolderDataset(FolderConfig(root=str(tmp_path), manifest="list.csv")).load()
    assert splits.train[0].path == str(tmp_path / "img" / "a.jpg")
    assert splits.gallery[0].path == "/abs/d.jpg" and splits.gallery[0].camid == 1
    manifest.write_text("path,pid,camid,split\na.jpg,1,,train\nb.jpg,1,,query\n")
    splits = FolderDataset(FolderConfig(root=str(tmp_path), manifest="list.csv")).load()
    assert splits.train[0].camid is None
    manifest.write_text("path,pid,camid,split\na.jpg,1,,train\nb.jpg,1,2,query\n")
    with pytest.raises(ReidError, match="some images have camera ids and some do not"):
        FolderDataset(FolderConfig(root=str(tmp_path), manifest="list.csv")).load()
    manifest.write_text("path,pid,camid,split\na.jpg,1,1,validation\n")
    with pytest.raises(ReidError, match=r"list.csv:2: split 'validation'"):
        FolderDataset(FolderConfig(root=str(tmp_path), manifest="list.csv")).load()


def test_folder_regex_needs_a_pid_group():
    with pytest.raises(ValueError, match="pid"):
        FolderConfig(regex=r"(\d+)_c(\d+)")


def test_folder_missing_splits_print_the_layout(tmp_path):
    with pytest.raises(ReidError, match="train/"):
        FolderDataset(FolderConfig(root=str(tmp_path))).load()
