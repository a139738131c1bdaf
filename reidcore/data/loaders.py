"""Turning datasets into batches: the API the engine calls.

Training::

    train = build_train_loader(sources, targets, recipe.loader, seed=recipe.seed,
                               rank=rank, world_size=world_size)
    train.num_classes          # source identities in all (pids relabelled 0..N-1)
    for epoch in range(epochs):
        train.set_epoch(epoch) # deterministic order per (seed, epoch); DDP-sharded
        for step, batch in enumerate(train):   # len(train) steps
            ...

``sources`` and ``targets`` are lists of :class:`~reidcore.interfaces.Dataset` objects
(anything with ``load()``) or of already loaded :class:`~reidcore.records.DatasetSplits`;
their ``train`` splits are used. A training batch is a dict:

=============  ====================================================================
``images``     float tensor B x 3 x H x W, augmented and normalised
``pids``       int64 B: identity labels relabelled contiguously over all sources,
               source i occupying ``[train.pid_offsets[i], train.pid_offsets[i+1])``
``camids``     int64 B: 0-based camera ids, -1 where the dataset has none
``domains``    int64 B: index of the source dataset in ``sources``
               (``train.domain_names`` gives their names)
``indices``    int64 B: index of the image in ``train.source_records``
``paths``      list of B file paths
``extras``     list of B dicts: each record's ``extras`` as the dataset gave them
``positives``  (``loader.positive``) B x 3 x H x W: another image of the same identity
               (the same image if the identity has only one)
``textures``   (``loader.textures``) B x 3 x th x tw in [-1, 1], not augmented: each
               record's ``extras["texture"]`` (an error if a record has none)
``second``     (``loader.second_batch``) an independent labelled batch of the same
               size, sampler and keys (images, pids, ...), drawn in its own order
``target``     (only with targets) the unlabeled batch of the same step: a dict with
               ``images``, ``camids``, ``domains`` (index in ``targets``), ``indices``,
               ``paths``, ``extras``. It has no ``pids``: target labels never reach a loss.
=============  ====================================================================

With P x K sampling (``loader.sampler = "pk"``) a source batch is
``loader.identities`` x ``loader.instances`` images, laid out identity by identity
(K consecutive images share a pid). Target batches are ``loader.target_batch_size``
images drawn uniformly; the target loader is cycled when it is shorter than the source
one. An epoch is one pass of the source loader, or ``steps_per_epoch`` batches when given
(``train.steps_per_epoch``). Augmentations are reproducible with workers too: each epoch's
workers are seeded from ``(seed, rank, epoch)``, so a resumed epoch repeats them.

Testing::

    for test in build_test_loaders(tests, recipe.loader, names=[...]):
        test.name, test.query, test.gallery      # DataLoaders in record order
        test.query_pids, test.query_camids       # numpy arrays (camids None: no cameras)

A test batch has ``images``, ``pids`` (original labels, not relabelled; 0 = distractor),
``camids`` (-1 where none), ``domains``, ``indices`` and ``paths``.
``build_eval_loader(records, loader)`` gives the same kind of loader for any records.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import numpy as np
import torch
from torch.utils.data import DataLoader

from reidcore.data.config import LoaderConfig
from reidcore.data.image_cache import CachedImages, build_image_cache
from reidcore.data.imageio import CorruptImageError, open_image  # noqa: F401 - re-exported
from reidcore.data.samplers import PKSampler, RandomBatchSampler, SequentialBatchSampler
from reidcore.data.transforms import (
    build_test_transform,
    build_texture_transform,
    build_train_transform,
)
from reidcore.errors import ReidError
from reidcore.records import DatasetSplits, ImageRecord


def _worker_message(message: str) -> str:
    """The original message of an error re-raised from a DataLoader worker (PyTorch puts
    the worker's traceback in front of it)."""
    if "Original Traceback" not in message:
        return message
    last = [line for line in message.strip().splitlines() if line.strip()][-1]
    name, sep, rest = last.partition(": ")
    return rest if sep and "Error" in name else last


class ReidDataLoader(DataLoader):
    """A DataLoader whose user errors raised in worker processes (an unreadable image,
    a missing texture) surface with their own message, without the worker traceback."""

    def __iter__(self):
        iterator = super().__iter__()
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except ReidError as exc:
                raise type(exc)(_worker_message(str(exc))) from None
            yield batch


class ImageDataset(torch.utils.data.Dataset):
    """Records -> sample dicts (``image``, ``pid``, ``camid``, ``domain``, ``index``,
    ``path``, ``extras`` and, when asked for, ``positive`` and ``texture``)."""

    def __init__(self, records: Sequence[ImageRecord], transform: Callable,
                 labels: Sequence[int] | None = None, domains: Sequence[int] | None = None,
                 positive: bool = False, texture_transform: Callable | None = None):
        self.records = list(records)
        self.images = CachedImages(transform, open_image)
        """``path -> transformed image``; :func:`build_train_loader` gives it a decoded-image
        cache with ``loader.cache_images``."""
        self.labels = list(labels) if labels is not None else [r.pid for r in self.records]
        self.domains = list(domains) if domains is not None else [0] * len(self.records)
        self.texture_transform = texture_transform
        self.by_label: dict[int, list[int]] | None = None
        if positive:
            self.by_label = {}
            for i, label in enumerate(self.labels):
                self.by_label.setdefault(label, []).append(i)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        sample = {
            "image": self.images(record.path),
            "pid": self.labels[index],
            "camid": -1 if record.camid is None else record.camid,
            "domain": self.domains[index],
            "index": index,
            "path": record.path,
            "extras": dict(record.extras),
        }
        if self.by_label is not None:
            group = self.by_label[self.labels[index]]
            others = [i for i in group if i != index] or group
            other = others[int(torch.randint(len(others), ()).item())]
            sample["positive"] = self.images(self.records[other].path)
        if self.texture_transform is not None:
            texture = record.extras.get("texture")
            if texture is None:
                raise ReidError(f"loader.textures = true but {record.path} has no texture "
                                f"(dataset domain '{record.domain}' gives no extras['texture'])")
            sample["texture"] = self.texture_transform(open_image(str(texture)))
        return sample


_PLURAL = {"image": "images", "pid": "pids", "camid": "camids", "domain": "domains",
           "index": "indices", "path": "paths", "extras": "extras", "positive": "positives",
           "texture": "textures"}


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Sample dicts -> one batch dict (keys in the module docstring)."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in ("image", "positive", "texture"):
            batch[_PLURAL[key]] = torch.stack(values)
        elif key in ("pid", "camid", "domain", "index"):
            batch[_PLURAL[key]] = torch.tensor(values, dtype=torch.int64)
        else:
            batch[_PLURAL[key]] = values
    return batch


def _splits(dataset: Any) -> DatasetSplits:
    if isinstance(dataset, DatasetSplits):
        return dataset
    return dataset.load()


def _domain_name(dataset: Any, splits: DatasetSplits, index: int) -> str:
    for record in itertools.chain(splits.train, splits.query):
        if record.domain:
            return record.domain
    return getattr(dataset, "name", "") or f"dataset{index}"


def _loader_kwargs(loader: LoaderConfig, seed: int) -> dict[str, Any]:
    # No persistent workers: a worker seeds its RNGs once, when it starts, from a number
    # drawn from ``generator``; the train loader reseeds that generator from (seed, epoch)
    # before every epoch, so fresh workers give each epoch's augmentations exactly, also
    # in a resumed run.
    return {"num_workers": loader.workers, "collate_fn": collate,
            "pin_memory": torch.cuda.is_available(),
            "generator": torch.Generator().manual_seed(seed)}


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """The seed of one epoch's data-loading randomness (worker seeds), per stream."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


@attrs.define(eq=False)
class TrainLoader:
    """Iterable over training batches (see the module docstring for their keys)."""

    source: DataLoader
    target: DataLoader | None
    num_classes: int
    pid_offsets: list[int]
    domain_names: list[str]
    target_domain_names: list[str]
    source_records: list[ImageRecord]
    target_records: list[ImageRecord]
    seed: int = 0
    """(seed + rank): with the epoch, it seeds the workers of each epoch."""
    second: DataLoader | None = None
    """``loader.second_batch``: the independent labelled loader of ``batch["second"]``."""
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose (deterministic) order the next iteration uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        _sampler(self.source).set_epoch(self.epoch)
        return len(self.source)

    def _target_batches(self) -> Iterator[dict[str, Any]]:
        assert self.target is not None
        cycle = 0
        while True:
            # a distinct, deterministic order for every pass over the target data
            _sampler(self.target).set_epoch(self.epoch * 1000 + cycle)
            self.target.generator.manual_seed(epoch_seed(self.seed, self.epoch * 1000 + cycle,
                                                         1))
            produced = False
            for batch in self.target:
                produced = True
                yield batch
            if not produced:
                raise ReidError("the target data cannot fill one batch")
            cycle += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = self.epoch
        _sampler(self.source).set_epoch(epoch)
        self.source.generator.manual_seed(epoch_seed(self.seed, epoch, 0))
        targets = self._target_batches() if self.target is not None else None
        seconds = None
        if self.second is not None:
            _sampler(self.second).set_epoch(epoch)
            self.second.generator.manual_seed(epoch_seed(self.seed, epoch, 2))
            seconds = iter(self.second)
        for batch in self.source:
            if seconds is not None:
                batch["second"] = next(seconds)  # same sampler type and length per epoch
            if targets is not None:
                target = next(targets)
                target.pop("pids", None)
                batch["target"] = target
            yield batch
        if self.epoch == epoch:
            self.epoch += 1


def _sampler(loader: DataLoader) -> Any:
    """The loader's batch sampler (one of :mod:`reidcore.data.samplers`: it has
    ``set_epoch``, which DataLoader's annotations do not know)."""
    return loader.batch_sampler


def build_train_loader(sources: Sequence[Any], targets: Sequence[Any] = (),
                       loader: LoaderConfig | None = None, seed: int = 0, rank: int = 0,
                       world_size: int = 1, steps_per_epoch: int = 0) -> TrainLoader:
    """The training loader over the ``train`` splits of ``sources`` (labelled) and
    ``targets`` (unlabelled). See the module docstring for the batches. With
    ``steps_per_epoch > 0`` every epoch has exactly that many batches."""
    loader = loader or LoaderConfig()
    if not sources:
        raise ReidError("training needs at least one [[data.source]] dataset")
    records: list[ImageRecord] = []
    labels: list[int] = []
    domains: list[int] = []
    offsets = [0]
    names = []
    for i, dataset in enumerate(sources):
        splits = _splits(dataset)
        if not splits.train:
            raise ReidError(f"source dataset {i} ({_domain_name(dataset, splits, i)}) has no "
                            "training images")
        names.append(_domain_name(dataset, splits, i))
        relabel = {pid: offsets[-1] + j
                   for j, pid in enumerate(sorted({r.pid for r in splits.train}))}
        records += splits.train
        labels += [relabel[r.pid] for r in splits.train]
        domains += [i] * len(splits.train)
        offsets.append(offsets[-1] + len(relabel))
    train_transform = build_train_transform(loader)
    dataset = ImageDataset(records, train_transform, labels, domains, positive=loader.positive,
                           texture_transform=build_texture_transform(loader)
                           if loader.textures else None)
    batch_size = loader.identities * loader.instances
    try:
        if loader.sampler == "pk":
            sampler: Any = PKSampler(labels, loader.identities, loader.instances, seed, rank,
                                     world_size, steps_per_epoch)
        else:
            sampler = RandomBatchSampler(len(records), batch_size, seed, rank, world_size,
                                         steps_per_epoch)
    except ValueError as exc:
        raise ReidError(f"cannot sample training batches: {exc}") from None
    source = ReidDataLoader(dataset, batch_sampler=sampler, **_loader_kwargs(loader, seed + rank))
    second = None
    if loader.second_batch:  # its own order: the sampler seeded apart from the source's
        second_sampler = copy.copy(sampler)
        second_sampler.seed = seed + 104729
        second = ReidDataLoader(dataset, batch_sampler=second_sampler,
                                **_loader_kwargs(loader, seed + 104729 + rank))

    target_loader = None
    target_records: list[ImageRecord] = []
    target_names: list[str] = []
    if targets:
        target_domains: list[int] = []
        for i, dataset_ in enumerate(targets):
            splits = _splits(dataset_)
            if not splits.train:
                raise ReidError(f"target dataset {i} ({_domain_name(dataset_, splits, i)}) has "
                                "no training images")
            target_names.append(_domain_name(dataset_, splits, i))
            target_records += splits.train
            target_domains += [i] * len(splits.train)
        target_set = ImageDataset(target_records, train_transform, [-1] * len(target_records),
                                  target_domains)
        target_size = loader.target_batch_size or batch_size
        try:
            target_sampler = RandomBatchSampler(len(target_records), target_size, seed + 1, rank,
                                                world_size)
        except ValueError as exc:
            raise ReidError(f"cannot sample target batches: {exc}") from None
        if len(target_sampler) == 0:
            raise ReidError(f"the target data ({len(target_records)} images) cannot give every "
                            f"one of {world_size} ranks a batch of {target_size}")
        target_loader = ReidDataLoader(target_set, batch_sampler=target_sampler,
                                   **_loader_kwargs(loader, seed + 7919 + rank))
    if loader.cache_images:  # built before the workers fork: they share its memory
        cache = build_image_cache([r.path for r in records + target_records], train_transform,
                                  open_image, int(loader.cache_gb * 2**30))
        for cached in (dataset, *((target_loader.dataset,) if target_loader else ())):
            cached.images = CachedImages(train_transform, open_image, cache)
    return TrainLoader(source=source, target=target_loader, num_classes=offsets[-1],
                       pid_offsets=offsets, domain_names=names, target_domain_names=target_names,
                       source_records=records, target_records=target_records,
                       seed=seed + rank, second=second)


def build_eval_loader(records: Sequence[ImageRecord], loader: LoaderConfig | None = None,
                      domain: int = 0, rank: int = 0, world_size: int = 1) -> DataLoader:
    """Test-time loader over ``records`` in order (original pids; no augmentation)."""
    loader = loader or LoaderConfig()
    dataset = ImageDataset(records, build_test_transform(loader),
                           domains=[domain] * len(records))
    sampler = SequentialBatchSampler(len(records), loader.test_batch_size, rank, world_size)
    kwargs = _loader_kwargs(loader, 0)
    return ReidDataLoader(dataset, batch_sampler=sampler, **kwargs)


@attrs.define(eq=False)
class TestSet:
    """One test dataset: query and gallery loaders (record order) and their labels."""

    __test__ = False  # not a pytest test class

    name: str
    query: DataLoader
    gallery: DataLoader
    query_records: list[ImageRecord]
    gallery_records: list[ImageRecord]

    @property
    def has_camids(self) -> bool:
        return all(r.camid is not None for r in self.query_records + self.gallery_records)

    @property
    def query_pids(self) -> np.ndarray:
        return np.array([r.pid for r in self.query_records], dtype=np.int64)

    @property
    def gallery_pids(self) -> np.ndarray:
        return np.array([r.pid for r in self.gallery_records], dtype=np.int64)

    @property
    def query_camids(self) -> np.ndarray | None:
        return _camids(self.query_records) if self.has_camids else None

    @property
    def gallery_camids(self) -> np.ndarray | None:
        return _camids(self.gallery_records) if self.has_camids else None


def _camids(records: Sequence[ImageRecord]) -> np.ndarray:
    return np.array([r.camid for r in records], dtype=np.int64)


def build_test_loaders(tests: Sequence[Any], loader: LoaderConfig | None = None,
                       names: Sequence[str] | None = None, rank: int = 0,
                       world_size: int = 1) -> list[TestSet]:
    """One :class:`TestSet` per test dataset, each to be evaluated separately."""
    loader = loader or LoaderConfig()
    result = []
    for i, dataset in enumerate(tests):
        splits = _splits(dataset)
        name = names[i] if names is not None else _domain_name(dataset, splits, i)
        if not splits.query or not splits.gallery:
            raise ReidError(f"test dataset '{name}' has no query or no gallery images")
        result.append(TestSet(
            name=name,
            query=build_eval_loader(splits.query, loader, i, rank, world_size),
            gallery=build_eval_loader(splits.gallery, loader, i, rank, world_size),
            query_records=list(splits.query), gallery_records=list(splits.gallery)))
    return result
