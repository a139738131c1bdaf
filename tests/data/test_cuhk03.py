"""CUHK03: the HDF5 (MATLAB v7.3) release, image extraction, new and classic protocols."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reidcore.data.datasets.base import split_stats
from reidcore.records import SplitStats

h5py = pytest.importorskip("h5py", reason="cuhk03 needs the optional extra reidcore[cuhk03]")
sio = pytest.importorskip("scipy.io", reason="cuhk03 needs the optional extra reidcore[cuhk03]")

from reidcore.data.datasets.cuhk03 import CUHK03, CUHK03Config, image_name  # noqa: E402

IDS_PER_PAIR = 3
MISSING = {(0, 1, 7), (2, 0, 9)}  # (pair, identity, index) cells left empty


def write_release(path: Path) -> None:
    """A tiny cuhk-03.mat laid out as MATLAB v7.3 writes it: cells are HDF5 object
    references, arrays are stored transposed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as mat:
        for kind, shade in (("labeled", 10), ("detected", 200)):
            pair_refs = []
            for pair in range(5):
                cells = np.empty((10, IDS_PER_PAIR), dtype=h5py.ref_dtype)
                for identity in range(IDS_PER_PAIR):
                    for index in range(10):
                        if (pair, identity, index) in MISSING:
                            data = np.zeros(2, dtype=np.uint64)  # MATLAB's empty matrix
                        else:
                            image = np.full((8 + index, 4, 3), shade, dtype=np.uint8)
                            image[0, 0] = (pair, identity, index)
                            data = image.T
                        name = f"#refs#/{kind}{pair}_{identity}_{index}"
                        cells[index, identity] = mat.create_dataset(name, data=data).ref
                pair_refs.append(mat.create_dataset(f"#refs#/{kind}{pair}", data=cells).ref)
            mat.create_dataset(kind, data=np.array(pair_refs, dtype=h5py.ref_dtype)[:, None])
        test_refs = []
        for split in range(20):
            rows = np.array([[1 + split % 5, 1], [2, 3], [5, 2]],
                            dtype=np.float64)  # (pair, identity), 1-based
            test_refs.append(mat.create_dataset(f"#refs#/test{split}", data=rows.T).ref)
        mat.create_dataset("testsets", data=np.array(test_refs, dtype=h5py.ref_dtype)[None, :])


def write_split(path: Path, names: list[str], labels: list[int], train: list[int],
                query: list[int], gallery: list[int]) -> None:
    filelist = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        filelist[i, 0] = name
    sio.savemat(str(path), {
        "filelist": filelist,
        "labels": np.array(labels, dtype=np.float64)[:, None],
        "train_idx": np.array(train, dtype=np.float64)[:, None] + 1,  # MATLAB is 1-based
        "query_idx": np.array(query, dtype=np.float64)[:, None] + 1,
        "gallery_idx": np.array(gallery, dtype=np.float64)[:, None] + 1,
        "camId": np.array([int(n.split("_")[2]) for n in names], dtype=np.float64)[:, None],
    })


@pytest.fixture
def release(tmp_path) -> Path:
    data = tmp_path / "cuhk03"
    write_release(data / "cuhk03_release" / "cuhk-03.mat")
    return data


def test_images_are_extracted_with_the_split_file_names(release):
    names = [image_name(0, 0, 0), image_name(0, 0, 5), image_name(1, 2, 9)]
    write_split(release / "cuhk03_new_protocol_config_labeled.mat", names, [1, 1, 7], [0],
                [1], [2])
    dataset = CUHK03(CUHK03Config(root=str(release.parent)))
    splits = dataset.load()
    extracted = release / "images_labeled"
    files = sorted(p.name for p in extracted.glob("*.png"))
    assert len(files) == 5 * IDS_PER_PAIR * 10 - len(MISSING)
    assert "1_002_2_08.png" not in files and "1_002_2_07.png" in files
    from PIL import Image

    with Image.open(extracted / "2_003_2_10.png") as image:
        pixels = np.asarray(image)
    assert pixels.shape == (17, 4, 3) and tuple(pixels[0, 0]) == (1, 2, 9)
    assert [r.path for r in splits.train] == [str(extracted / "1_001_1_01.png")]
    assert (splits.query[0].pid, splits.query[0].camid) == (1, 1)  # camera 2 -> camid 1
    assert splits.gallery[0].pid == 7
    stamp = (extracted / "1_001_1_01.png").stat().st_mtime_ns
    dataset.load()  # extracted once, reused
    assert (extracted / "1_001_1_01.png").stat().st_mtime_ns == stamp


def test_classic_protocol_uses_the_release_test_sets(release):
    config = CUHK03Config(root=str(release.parent), protocol="classic", split=1,
                          images="detected")
    splits = CUHK03(config).load()
    assert splits.query == splits.gallery
    test_ids = {r.pid for r in splits.query}
    assert test_ids == {2001, 2003, 5002}  # pid = pair * 1000 + identity
    assert len({r.pid for r in splits.train}) == 5 * IDS_PER_PAIR - 3
    assert {r.camid for r in splits.query} == {0, 1}
    assert CUHK03(config).expected is None


@pytest.mark.slow  # writes and reads split files of 14,000 entries
@pytest.mark.parametrize("kind,stats", [
    ("labeled", SplitStats(767, 7368, 1400, 5328, 700)),
    ("detected", SplitStats(767, 7365, 1400, 5332, 700)),
])
def test_new_protocol_split_files_give_the_declared_counts(tmp_path, kind, stats):
    data = tmp_path / "cuhk03"
    (data / "cuhk03_release").mkdir(parents=True)
    (data / "cuhk03_release" / "cuhk-03.mat").touch()
    (data / f"images_{kind}").mkdir()
    (data / f"images_{kind}" / ".complete").touch()  # extraction already done
    names, labels, train, query, gallery = [], [], [], [], []

    def add(pid: int, count: int, target: list) -> None:
        for n in range(count):
            target.append(len(names))
            names.append(f"{pid // 300 + 1}_{pid % 300 + 1:03d}_{n % 2 + 1}_{n + 1:02d}.png")
            labels.append(pid)

    for i, pid in enumerate(range(767)):
        add(pid, stats.train_images // 767 + (i < stats.train_images % 767), train)
    for i, pid in enumerate(range(767, 1467)):
        add(pid, 2, query)
        add(pid, stats.gallery_images // 700 + (i < stats.gallery_images % 700), gallery)
    write_split(data / f"cuhk03_new_protocol_config_{kind}.mat", names, labels, train, query,
                gallery)
    dataset = CUHK03(CUHK03Config(root=str(tmp_path), images=kind))
    assert split_stats(dataset.load()) == dataset.expected == stats


def test_missing_release_prints_the_layout(tmp_path):
    from reidcore.errors import ReidError

    with pytest.raises(ReidError, match="cuhk03_release/cuhk-03.mat"):
        CUHK03(CUHK03Config(root=str(tmp_path))).load()


def test_a_corrupt_release_is_named(tmp_path):
    from reidcore.errors import ReidError

    data = tmp_path / "cuhk03"
    (data / "cuhk03_release").mkdir(parents=True)
    (data / "cuhk03_release" / "cuhk-03.mat").write_bytes(b"MATLAB 5.0 not hdf5")
    (data / "cuhk03_new_protocol_config_labeled.mat").touch()
    with pytest.raises(ReidError, match=r"cuhk-03.mat \(expected the MATLAB v7.3/HDF5"):
        CUHK03(CUHK03Config(root=str(tmp_path))).load()
