"""Batches for training: ``DataBundle``, in-memory ``TensorBatches`` augmented where they live, the seeded
DataLoader for image files, and ``load_data``, which loads a registered set by name.

Every loader is an iterable of ``(images, labels)`` batches with ``len()`` and ``set_epoch(epoch)``: the order and
the augmentation of an epoch depend only on the seed and the epoch number, so a resumed run sees the same batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Iterator, Protocol

import torch
import torch.nn.functional as F

from ..errors import InvalidInput
from .registry import DatasetInfo, LoadOptions, dataset_info, get_dataset, is_small_input

_SUBSET_SEED = 20200302  # fixed: ``train_limit`` keeps the same images for every trial and seed


def stratified_subset(labels, limit: int | None) -> list[int] | None:
    """Sorted indices of ``limit`` training images drawn per class in proportion to the class sizes (largest
    remainders get the leftover images), shuffled with a fixed seed: every trial and seed of a run sees the same
    subset. None when no limit applies."""
    labels = torch.as_tensor(labels).long()
    if limit is None or limit >= len(labels):
        return None
    generator = torch.Generator().manual_seed(_SUBSET_SEED)
    classes, sizes = labels.unique(return_counts=True)
    exact = sizes.double() * limit / len(labels)
    quota = exact.floor().long()
    leftover = limit - int(quota.sum())
    order = sorted(range(len(classes)), key=lambda c: (-(exact[c] - quota[c]).item(), c))
    quota[order[:leftover]] += 1
    chosen = []
    for label, count in zip(classes.tolist(), quota.tolist()):
        members = (labels == label).nonzero().flatten()
        chosen += members[torch.randperm(len(members), generator=generator)[:count]].tolist()
    return sorted(chosen)


def _epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's order and augmentation: the same on a resumed run."""
    return seed * 100_003 + epoch


class Batches(Protocol):
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...
    def set_epoch(self, epoch: int) -> None: ...


@dataclass(frozen=True)
class DataBundle:
    """A dataset ready for training: train and validation batches, class count and image side."""

    name: str
    train: Batches
    val: Batches
    num_classes: int
    input_size: int
    num_train: int
    num_val: int
    synthetic: bool = False

    @property
    def small_input(self) -> bool:
        """Whether the backbone should keep early resolution (32x32-class data; see ``make_block_table``)."""
        return is_small_input(self.input_size)

    def describe(self) -> str:
        text = (f"{self.name}: {self.num_train} train / {self.num_val} val images, {self.num_classes} classes, "
                f"{self.input_size}x{self.input_size}")
        return text + " (SYNTHETIC: throughput only, accuracy is meaningless)" if self.synthetic else text


class TensorBatches:
    """Batches from uint8 images held in memory (N x C x H x W), augmented batch-wise where they live.

    Augmentation: random crop after zero padding by ``pad`` pixels and, if ``flip``, random horizontal flips;
    then scaling to [0, 1] and per-channel normalisation.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, mean, std,
                 train: bool = False, pad: int = 0, flip: bool = False, seed: int = 0) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("images must be a uint8 N x C x H x W tensor")
        self.images, self.labels = images, labels.long()
        self.batch_size, self.train, self.pad, self.flip, self.seed = batch_size, train, pad, flip, seed
        self.mean, self.std = tuple(mean), tuple(std)
        self.epoch = 0

    def to(self, device: torch.device | str) -> TensorBatches:
        """The same batches with the images on ``device`` (moved once; augmentation then runs there)."""
        return TensorBatches(self.images.to(device), self.labels.to(device), self.batch_size, mean=self.mean,
                             std=self.std, train=self.train, pad=self.pad, flip=self.flip, seed=self.seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.images.device
        generator = torch.Generator(device=device).manual_seed(_epoch_seed(self.seed, self.epoch))
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1) * 255
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1) * 255
        n = len(self.labels)
        order = torch.randperm(n, device=device, generator=generator) if self.train else None
        for start in range(0, n, self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start:start + self.batch_size]
            images = self.images[index]
            if self.train:
                images = self._augment(images, generator)
            yield images.float().sub_(mean).div_(std), self.labels[index]

    def _augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = images.shape
        if self.pad:
            padded = F.pad(images, (self.pad,) * 4)
            dy, dx = torch.randint(0, 2 * self.pad + 1, (2, n, 1), device=images.device, generator=generator)
            rows = dy + torch.arange(h, device=images.device)
            cols = dx + torch.arange(w, device=images.device)
            batch = torch.arange(n, device=images.device)[:, None, None]
            images = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if self.flip:
            flipped = torch.rand(n, device=images.device, generator=generator) < 0.5
            images = torch.where(flipped[:, None, None, None], images.flip(3), images)
        return images


class EpochTensorBatches(TensorBatches):
    """Training batches whose images ``make(epoch)`` makes anew each epoch (uint8 N x C x H x W, the same images
    for the same epoch, so a resumed run sees them again), shuffled from the seed and epoch as ``TensorBatches``
    are, with no further augmentation."""

    def __init__(self, make, labels: torch.Tensor, batch_size: int, *, mean, std, seed: int = 0) -> None:
        super().__init__(torch.zeros((0, 1, 1, 1), dtype=torch.uint8), labels, batch_size, mean=mean, std=std,
                         train=True, seed=seed)
        self.make, self.made = make, None

    def to(self, device: torch.device | str) -> EpochTensorBatches:
        return EpochTensorBatches(self.make, self.labels.to(device), self.batch_size, mean=self.mean, std=self.std,
                                  seed=self.seed)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.made != self.epoch:
            self.images, self.made = self.make(self.epoch).to(self.labels.device), self.epoch
        return super().__iter__()


class _EpochSampler(torch.utils.data.Sampler):
    """Indices of one epoch (shuffled from the epoch's seed when training), each paired with that seed."""

    def __init__(self, size: int, shuffle: bool) -> None:
        self.size, self.shuffle, self.epoch_seed = size, shuffle, 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.epoch_seed)
        order = torch.randperm(self.size, generator=generator).tolist() if self.shuffle else range(self.size)
        return ((self.epoch_seed, index) for index in order)


class _SeededSamples(torch.utils.data.Dataset):
    """Each image's random transforms seeded from (epoch seed, index): the same in any worker, in the main
    process, and after a resume (persistent workers otherwise carry their RNG from epoch to epoch)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch_seed, index = key
        with torch.random.fork_rng(devices=[]):  # the trainer's own RNG is left as it was
            torch.manual_seed(epoch_seed * 1_000_003 + index)
            return self.dataset[index]


class _SeededLoader:
    """A DataLoader whose order and per-image augmentation depend only on (seed, epoch, image index)."""

    def __init__(self, dataset, batch_size: int, *, train: bool, workers: int, pin_memory: bool, seed: int) -> None:
        self.seed, self.epoch = seed, 0
        self.sampler = _EpochSampler(len(dataset), shuffle=train)
        self.loader = torch.utils.data.DataLoader(
            _SeededSamples(dataset), batch_size=batch_size, sampler=self.sampler, num_workers=workers,
            pin_memory=pin_memory, persistent_workers=workers > 0,
            generator=torch.Generator())  # its worker seeds are drawn from here, not from the trainer's RNG

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.sampler.epoch_seed = _epoch_seed(self.seed, self.epoch)
        return iter(self.loader)


def load_data(name: str, root: str | os.PathLike | None = None, *, batch_size: int = 128,
              input_size: int | None = None, workers: int | None = None, download: bool = False,
              device: torch.device | str = "cpu", seed: int = 0, num_classes: int | None = None,
              train_limit: int | None = None, fake_size: int = 1024, options: dict | None = None) -> DataBundle:
    """Load dataset ``name`` (one of ``DATASETS``); in-memory data sets are placed on ``device``.

    ``input_size`` defaults to each data set's native side (32 for digits and CIFAR, 224 otherwise).
    ``train_limit`` keeps N training images, a fixed class-stratified subset (``stratified_subset``; ``fake``
    generates N images). ``options`` are the set's own (``cluttered-mnist``: canvas, clutter, ...).
    """
    info = dataset_info(name, root, input_size=input_size, num_classes=num_classes, download=download,
                        options=options)
    if batch_size <= 0:
        raise InvalidInput(f"batch size must be a positive integer, got {batch_size}")
    if train_limit is not None and train_limit <= 0:
        raise InvalidInput(f"train_limit must be a positive integer, got {train_limit}")
    device = torch.device(device)
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    options = LoadOptions(batch_size, seed, train_limit, workers, device.type == "cuda", fake_size)
    bundle = get_dataset(name).load(info, options)
    if isinstance(bundle.train, TensorBatches):
        bundle = replace(bundle, train=bundle.train.to(device), val=bundle.val.to(device))
    return bundle


def in_memory_bundle(info: DatasetInfo, options: LoadOptions, train: tuple[torch.Tensor, torch.Tensor],
                     val: tuple[torch.Tensor, torch.Tensor], *, mean, std, shift: float, flip: bool) -> DataBundle:
    """Bundle uint8 train/val tensors resized to the input size; random shifts up to ``shift`` of the side."""
    subset = stratified_subset(train[1], options.train_limit)
    if subset is not None:
        train = (train[0][subset], train[1][subset])
    input_size, batch_size = info.input_size, options.batch_size
    train_images, val_images = (resize_uint8(images, input_size) for images in (train[0], val[0]))
    pad = max(1, round(shift * input_size))
    return DataBundle(
        info.name,
        TensorBatches(train_images, train[1], batch_size, mean=mean, std=std, train=True, pad=pad, flip=flip,
                      seed=options.seed),
        TensorBatches(val_images, val[1], batch_size, mean=mean, std=std),
        info.num_classes, input_size, len(train[1]), len(val[1]))


def seeded_bundle(info: DatasetInfo, options: LoadOptions, train, val, *, targets=None,
                  synthetic: bool = False) -> DataBundle:
    """Bundle map-style datasets (image files, generated images) behind seeded DataLoaders; with the training
    labels ``targets``, only a stratified ``train_limit`` subset of the training set is kept."""
    subset = None if targets is None else stratified_subset(targets, options.train_limit)
    if subset is not None:
        train = torch.utils.data.Subset(train, subset)
    loaders = (_SeededLoader(dataset, options.batch_size, train=is_train, workers=options.workers,
                             pin_memory=options.pin_memory, seed=options.seed)
               for dataset, is_train in ((train, True), (val, False)))
    return DataBundle(info.name, *loaders, info.num_classes, info.input_size, len(train), len(val), synthetic)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


