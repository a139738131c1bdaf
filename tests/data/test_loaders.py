"""Samplers, transforms and the train/test loaders the engine uses."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reidcore.data import LoaderConfig, build_test_loaders, build_train_loader
from reidcore.data.datasets.market1501 import Market1501, Market1501Config
from reidcore.data.loaders import CorruptImageError, build_eval_loader
from reidcore.data.samplers import PKSampler, RandomBatchSampler, SequentialBatchSampler
from reidcore.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RandomGrayscalePatch,
    build_test_transform,
    build_train_transform,
    erasing_fill,
)
from reidcore.errors import ReidError
from reidcore.records import DatasetSplits, ImageRecord

SMALL = dict(height=32, width=16, identities=3, instances=2, test_batch_size=16, workers=0)


# --- samplers -----------------------------------------------------------------------------


def test_pk_batches_hold_p_distinct_identities_times_k():
    pids = [p for p in range(10) for _ in range(3 + p % 4)]
    sampler = PKSampler(pids, identities=4, instances=3, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        labels = [pids[i] for i in batch]
        assert len(batch) == 12
        groups = [labels[i:i + 3] for i in range(0, 12, 3)]
        assert all(len(set(g)) == 1 for g in groups)  # K consecutive images per identity
        assert len({g[0] for g in groups}) == 4  # P distinct identities
        assert len(set(batch)) == 12  # identities with >= K images: no repeats


def test_pk_epochs_have_a_fixed_length():
    pids = [p for p in range(13) for _ in range(1 + (p * 7) % 9)]
    sampler = PKSampler(pids, identities=4, instances=2, seed=0)
    chunks = sum(max(1, (1 + (p * 7) % 9) // 2) for p in range(13))
    assert len(sampler) == chunks // 4
    for epoch in range(6):
        sampler.set_epoch(epoch)
        assert len(list(sampler)) == len(sampler)


def test_pk_samples_small_identities_with_replacement():
    pids = [0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    sampler = PKSampler(pids, identities=2, instances=4, seed=1)
    seen = [b for b in (list(sampler) + [b for e in range(1, 6)
                                       for b in (sampler.set_epoch(e) or list(sampler))])]
    with_zero = [b for b in seen if 0 in b]
    assert with_zero and all(b.count(0) == 4 for b in with_zero)


def test_samplers_are_deterministic_per_seed_and_epoch():
    pids = [p for p in range(20) for _ in range(5)]
    a, b = PKSampler(pids, 4, 2, seed=3), PKSampler(pids, 4, 2, seed=3)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert list(PKSampler(pids, 4, 2, seed=4)) != list(a)
    r1, r2 = RandomBatchSampler(50, 8, seed=2), RandomBatchSampler(50, 8, seed=2)
    assert list(r1) == list(r2) and len(r1) == 6
    assert all(len(batch) == 8 for batch in r1)


@pytest.mark.parametrize("make", [
    lambda rank, world: PKSampler([p for p in range(30) for _ in range(4)], 4, 2, 5, rank, world),
    lambda rank, world: RandomBatchSampler(101, 7, 5, rank, world),
])
def test_ddp_shards_are_disjoint_and_equally_long(make):
    whole = list(make(0, 1))
    shards = [list(make(rank, 3)) for rank in range(3)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(make(1, 3))
    flat = [tuple(b) for s in shards for b in s]
    assert len(flat) == len(set(flat))  # no batch on two ranks
    assert set(flat) <= {tuple(b) for b in whole}
    assert len(flat) == len(whole) - len(whole) % 3


def test_sequential_test_sampler_covers_each_index_once_across_ranks():
    indices = [i for rank in range(3) for b in SequentialBatchSampler(10, 3, rank, 3) for i in b]
    assert indices == list(range(10))


def test_pk_needs_enough_identities():
    with pytest.raises(ValueError, match="lower loader.identities"):
        PKSampler([0, 0, 1], identities=3, instances=2)


# --- transforms ---------------------------------------------------------------------------


def image(h: int = 40, w: int = 20, value: int = 200) -> Image.Image:
    return Image.fromarray(np.full((h, w, 3), value, dtype=np.uint8))


def test_test_transform_resizes_and_normalises_with_presets():
    x = build_test_transform(LoaderConfig(height=32, width=16))(image(value=255))
    assert x.shape == (3, 32, 16)
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(x[:, 0, 0], expected, atol=1e-5)
    x = build_test_transform(LoaderConfig(height=32, width=16, normalize="tanh"))(image(value=0))
    assert torch.allclose(x, torch.full_like(x, -1.0))
    x = build_test_transform(LoaderConfig(height=32, width=16, normalize="none"))(image(value=51))
    assert torch.allclose(x, torch.full_like(x, 0.2))


def test_train_transform_shapes_for_every_option():
    config = LoaderConfig(height=32, width=16, translate=1.0, color_jitter=0.3,
                          grayscale_patch=1.0, erasing=1.0, pad_mode="reflect", normalize="tanh")
    torch.manual_seed(0)
    x = build_train_transform(config)(image())
    assert x.shape == (3, 32, 16) and x.dtype == torch.float32 and torch.isfinite(x).all()


def test_random_erasing_writes_the_imagenet_mean_in_normalised_space():
    config = LoaderConfig(height=32, width=16, flip=0, pad=0, erasing=1.0)
    torch.manual_seed(0)
    x = build_train_transform(config)(image(value=255))
    fill = torch.tensor(erasing_fill(config))
    erased = (x - fill[:, None, None]).abs().sum(0) < 1e-5
    assert 0 < erased.float().mean() < 1
    assert torch.allclose(fill, torch.zeros(3), atol=1e-6)  # ImageNet mean -> 0


def test_raw_mean_erasing_fill_writes_torchreids_values_into_the_normalised_tensor():
    config = LoaderConfig(height=32, width=16, flip=0, pad=0, erasing=1.0,
                          erasing_fill="raw_mean")
    torch.manual_seed(0)
    x = build_train_transform(config)(image(value=255))
    erased = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]).abs().sum(0) < 1e-6
    assert 0 < erased.float().mean() < 1
    # as a pixel: 0.485 * 0.229 + 0.485 = 0.596 red (torchreid's grey, not the mean's 0.485)
    pixel = x[:, erased][:, 0] * torch.tensor(IMAGENET_STD) + torch.tensor(IMAGENET_MEAN)
    assert torch.allclose(pixel, torch.tensor([0.5961, 0.5581, 0.4974]), atol=1e-4)


def test_grayscale_patch_keeps_the_rest_and_greys_a_patch():
    colour = torch.zeros(3, 40, 20, dtype=torch.uint8)
    colour[0] = 200
    out = RandomGrayscalePatch(p=1.0)(colour)
    changed = (out != colour).any(0)
    assert changed.any() and not changed.all()
    ys, xs = torch.nonzero(changed, as_tuple=True)
    patch = out[:, ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    assert (patch[0] == patch[1]).all() and (patch[1] == patch[2]).all()
    assert int(patch[0, 0, 0]) == int(0.299 * 200)


def test_flip_flips():
    config = LoaderConfig(height=16, width=16, flip=1.0, pad=0, erasing=0, normalize="none")
    array = np.zeros((16, 16, 3), dtype=np.uint8)
    array[:, :8] = 255
    x = build_train_transform(config)(Image.fromarray(array))
    assert x[0, 0, -1] == 1.0 and x[0, 0, 0] == 0.0


# --- loaders ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth_splits(tiny_synth) -> DatasetSplits:
    return Market1501(Market1501Config(root=str(tiny_synth))).load()


def test_train_batches_relabel_pids_with_offsets_across_sources(synth_splits, tiny_real):
    real = Market1501(Market1501Config(root=str(tiny_real))).load()
    loader = build_train_loader([synth_splits, real], [], LoaderConfig(**SMALL), seed=0)
    assert loader.num_classes == 12 and loader.pid_offsets == [0, 6, 12]
    assert len(loader.domain_names) == 2
    seen_pids, seen_domains = set(), set()
    for batch in loader:
        assert batch["images"].shape == (6, 3, 32, 16)
        assert batch["pids"].dtype == torch.int64 and len(batch["paths"]) == 6
        for pid, domain, index in zip(batch["pids"].tolist(), batch["domains"].tolist(),
                                      batch["indices"].tolist(), strict=True):
            record = loader.source_records[index]
            assert loader.pid_offsets[domain] <= pid < loader.pid_offsets[domain + 1]
            source = [synth_splits, real][domain]
            assert record in source.train
        seen_pids |= set(batch["pids"].tolist())
        seen_domains |= set(batch["domains"].tolist())
    assert seen_pids <= set(range(12)) and seen_domains == {0, 1}
    # the original pid maps to one contiguous label, consistently
    labels = {}
    for batch in loader:
        for pid, index, domain in zip(batch["pids"].tolist(), batch["indices"].tolist(),
                                      batch["domains"].tolist(), strict=True):
            key = (domain, loader.source_records[index].pid)
            assert labels.setdefault(key, pid) == pid


def test_train_order_is_deterministic_per_seed_and_epoch(synth_splits):
    def order(seed: int, epoch: int) -> list[str]:
        loader = build_train_loader([synth_splits], [], LoaderConfig(**SMALL), seed=seed)
        loader.set_epoch(epoch)
        return [p for batch in loader for p in batch["paths"]]

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)


def test_epochs_advance_on_their_own(synth_splits):
    loader = build_train_loader([synth_splits], [], LoaderConfig(**SMALL), seed=0)
    first = [p for b in loader for p in b["paths"]]
    second = [p for b in loader for p in b["paths"]]
    assert loader.epoch == 2 and first != second


def test_second_batch_is_an_independent_labelled_batch(synth_splits):
    def epoch(seed: int, number: int) -> list[dict]:
        config = LoaderConfig(**{**SMALL, "second_batch": True})
        loader = build_train_loader([synth_splits], [], config, seed=seed)
        loader.set_epoch(number)
        return list(loader)

    batches = epoch(0, 1)
    labels = {p: int(pid) for b in batches for p, pid in zip(b["paths"], b["pids"], strict=True)}
    firsts = [p for b in batches for p in b["paths"]]
    seconds = [p for b in batches for p in b["second"]["paths"]]
    assert len(seconds) == len(firsts) and seconds != firsts  # its own order
    for batch in batches:
        second = batch["second"]
        assert second["images"].shape == batch["images"].shape
        for path, pid in zip(second["paths"], second["pids"].tolist(), strict=True):
            assert labels.get(path, pid) == pid  # labelled as the source batch labels them
    again = epoch(0, 1)
    assert [p for b in again for p in b["second"]["paths"]] == seconds  # deterministic
    assert [p for b in epoch(0, 2) for p in b["second"]["paths"]] != seconds
    assert "second" not in next(iter(build_train_loader([synth_splits], [],
                                                        LoaderConfig(**SMALL), seed=0)))


def test_target_batches_come_without_labels_and_cycle(synth_splits, tiny_real):
    real = Market1501(Market1501Config(root=str(tiny_real))).load()
    small_target = DatasetSplits(real.train[:10])
    config = LoaderConfig(**{**SMALL, "target_batch_size": 4})
    loader = build_train_loader([synth_splits], [small_target], config, seed=0)
    batches = list(loader)
    assert len(batches) == len(loader) > 2  # the 2-batch target set is cycled
    for batch in batches:
        target = batch["target"]
        assert "pids" not in target and target["images"].shape == (4, 3, 32, 16)
        assert set(target["domains"].tolist()) == {0}
        assert all(p in {r.path for r in small_target.train} for p in target["paths"])


def test_positives_and_textures(tmp_path, reid_cache):
    from reidcore.data.datasets.synthetic import SyntheticConfig, SyntheticDataset

    dataset = SyntheticDataset(SyntheticConfig(ids=4, test_ids=2, distractors=0, cameras=2,
                                               images_per_camera=2, size="64x32", seed=2))
    config = LoaderConfig(**{**SMALL, "positive": True, "textures": True,
                             "texture_height": 16, "texture_width": 16})
    loader = build_train_loader([dataset], [], config, seed=0)
    batch = next(iter(loader))
    assert batch["positives"].shape == batch["images"].shape
    assert batch["textures"].shape == (6, 3, 16, 16)
    assert batch["textures"].min() >= -1 and batch["textures"].max() <= 1
    assert all(Path(e["texture"]).name == f"{loader.source_records[i].pid:04d}.png"
               for e, i in zip(batch["extras"], batch["indices"].tolist(), strict=True))


def test_textures_required_when_asked(synth_splits):
    config = LoaderConfig(**{**SMALL, "textures": True})
    loader = build_train_loader([synth_splits], [], config, seed=0)
    with pytest.raises(ReidError, match="has no texture"):
        next(iter(loader))


def test_worker_processes_give_the_same_batches_as_the_main_process(synth_splits):
    config = LoaderConfig(**{**SMALL, "erasing": 0.0, "flip": 0.0, "pad": 0})
    plain = build_train_loader([synth_splits], [], config, seed=0)
    workers = build_train_loader([synth_splits], [], LoaderConfig(**{
        **SMALL, "erasing": 0.0, "flip": 0.0, "pad": 0, "workers": 2}), seed=0)
    a, b = next(iter(plain)), next(iter(workers))
    assert a["paths"] == b["paths"] and torch.equal(a["images"], b["images"])


def test_test_loaders_keep_original_labels_in_order(synth_splits):
    (test,) = build_test_loaders([synth_splits], LoaderConfig(**SMALL), names=["synth"])
    assert test.name == "synth" and test.has_camids
    pids = torch.cat([b["pids"] for b in test.gallery]).numpy()
    assert np.array_equal(pids, test.gallery_pids) and 0 in pids  # distractors kept
    assert np.array_equal(torch.cat([b["camids"] for b in test.query]).numpy(),
                          test.query_camids)
    paths = [p for b in test.query for p in b["paths"]]
    assert paths == [r.path for r in synth_splits.query]


def test_datasets_without_cameras_are_flagged(tmp_path):
    path = tmp_path / "a.png"
    image().save(path)
    records = (ImageRecord(str(path), 1, None), ImageRecord(str(path), 2, None))
    (test,) = build_test_loaders([DatasetSplits((), records, records)], LoaderConfig(**SMALL))
    assert not test.has_camids and test.query_camids is None
    batch = next(iter(test.query))
    assert batch["camids"].tolist() == [-1, -1]


def test_a_corrupt_image_is_named(tmp_path):
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    image().save(good)
    bad.write_bytes(good.read_bytes()[:40])  # truncated JPEG
    loader = build_eval_loader([ImageRecord(str(good), 1, 0), ImageRecord(str(bad), 1, 1)],
                               LoaderConfig(**SMALL))
    with pytest.raises(CorruptImageError, match="bad.jpg"):
        next(iter(loader))


def test_a_corrupt_image_read_by_a_worker_keeps_a_clean_message(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    loader = build_eval_loader([ImageRecord(str(bad), 1, 0)],
                               LoaderConfig(**{**SMALL, "workers": 1}))
    with pytest.raises(CorruptImageError) as error:
        list(loader)
    message = str(error.value)
    assert message.startswith(f"cannot read image {bad}") and "Traceback" not in message


def test_training_needs_a_source():
    with pytest.raises(ReidError, match="at least one"):
        build_train_loader([], [], LoaderConfig(**SMALL))


def test_p_x_k_sampling_of_too_few_identities_is_a_user_error(synth_splits):
    with pytest.raises(ReidError, match="lower loader.identities"):
        build_train_loader([synth_splits], [], LoaderConfig(**{**SMALL, "identities": 50}))


def test_every_identity_appears_in_an_epoch(synth_splits):
    loader = build_train_loader([synth_splits], [], LoaderConfig(**SMALL), seed=0)
    counts = Counter(p for b in loader for p in b["pids"].tolist())
    assert set(counts) == set(range(6))


def test_cached_images_give_the_same_batches_with_workers(synth_splits, tiny_real):
    """loader.cache_images: source and target images come from the shared decoded cache,
    with the same tensors and random draws as decoding each time (workers included)."""
    real = Market1501(Market1501Config(root=str(tiny_real))).load()

    def epoch(cache: bool) -> list[dict]:
        config = LoaderConfig(**{**SMALL, "workers": 1, "cache_images": cache})
        loader = build_train_loader([synth_splits], [real], config, seed=3)
        if cache:
            for dataset in (loader.source.dataset, loader.target.dataset):
                assert dataset.images.cache is not None and len(dataset.images.cache) > 0
        loader.set_epoch(1)
        return list(loader)

    plain, cached = epoch(False), epoch(True)
    assert len(plain) == len(cached)
    for a, b in zip(plain, cached, strict=True):
        assert a["paths"] == b["paths"]
        assert torch.equal(a["images"], b["images"])
        assert torch.equal(a["target"]["images"], b["target"]["images"])
