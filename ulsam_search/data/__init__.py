"""Datasets by name: ``digits`` (embedded default), ``cifar10``, ``cifar100``, ``imagefolder`` and ``fake``.

Small data sets (digits, CIFAR) are held in memory as uint8 tensors and augmented batch-wise on the tensors' device,
so training needs no worker processes and the GPU does the augmentation when there is one. ``imagefolder`` streams
image files through DataLoader workers with the standard ImageNet transforms. ``fake`` is torchvision's FakeData:
random images for throughput measurements only; its accuracy means nothing and every output says so.

Every loader is an iterable of ``(images, labels)`` batches with ``len()`` and ``set_epoch(epoch)``: the order and
the augmentation of an epoch depend only on the seed and the epoch number, so a resumed run sees the same batches.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from .._io import absolute
from ..errors import InvalidInput

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder", "fake")
DATASETS_ON_DISK = ("cifar10", "cifar100", "imagefolder")  # the ones read from a data root
DEFAULT_DATA_ROOT = "data"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}
DIGITS_MEAN, DIGITS_STD = (0.305,) * 3, (0.324,) * 3  # measured on the 32x32 upsampled images
DIGITS_VAL_FRACTION = 0.2
_DIGITS_SPLIT_SEED = 20200301  # fixed: the split never changes with the training seed
_SUBSET_SEED = 20200302  # fixed: ``train_limit`` keeps the same images for every trial and seed


def is_small_input(side: int) -> bool:
    """Whether images of this side want the stride-8 backbone (``small_input``): CIFAR and digits do."""
    return side <= 64


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The absolute data root: ``root``, else ``$ULSAM_SEARCH_DATA``, else ``./data``, against the working folder.

    Resolved where the command runs: Ray trials run in their own folders, so a relative path must not reach them.
    """
    chosen = root if root is not None else os.environ.get("ULSAM_SEARCH_DATA") or DEFAULT_DATA_ROOT
    return absolute(chosen)


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


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, found without loading it: enough to size a model and count its cost."""

    name: str
    root: Path
    num_classes: int
    input_size: int

    @property
    def small_input(self) -> bool:
        return is_small_input(self.input_size)


def dataset_info(name: str, root: str | os.PathLike | None = None, *, input_size: int | None = None,
                 num_classes: int | None = None, download: bool = False) -> DatasetInfo:
    """Check that dataset ``name`` is there (cheaply: files and folders, no images read) and describe it.

    ``num_classes`` is checked against the data (for ``fake`` it sets the class count, default 1000).
    """
    if name not in DATASETS:
        raise InvalidInput(f"unknown dataset '{name}'; valid: {', '.join(DATASETS)}")
    root = data_root(root)
    if name == "digits":
        found, side = 10, 32
    elif name in CIFAR_MEAN:
        if download:
            _download_cifar(name, root)
        _cifar_directory(name, root)
        found, side = _CIFAR_FILES[name][4], 32
    elif name == "imagefolder":
        found, side = len(_imagefolder_classes(root)), 224
    else:
        found, side = num_classes or 1000, 224
    if num_classes is not None and num_classes != found:
        raise InvalidInput(f"dataset {name} has {found} classes but --num-classes is {num_classes}; "
                           f"drop --num-classes or pass {found}")
    return DatasetInfo(name, root, found, input_size or side)


def load_data(name: str, root: str | os.PathLike | None = None, *, batch_size: int = 128,
              input_size: int | None = None, workers: int | None = None, download: bool = False,
              device: torch.device | str = "cpu", seed: int = 0, num_classes: int | None = None,
              train_limit: int | None = None, fake_size: int = 1024) -> DataBundle:
    """Load dataset ``name`` (one of ``DATASETS``); in-memory data sets are placed on ``device``.

    ``input_size`` defaults to each data set's native side (32 for digits and CIFAR, 224 otherwise).
    ``train_limit`` keeps N training images, a fixed class-stratified subset (``stratified_subset``; ``fake``
    generates N images).
    """
    info = dataset_info(name, root, input_size=input_size, num_classes=num_classes, download=download)
    if batch_size <= 0:
        raise InvalidInput(f"batch size must be a positive integer, got {batch_size}")
    if train_limit is not None and train_limit <= 0:
        raise InvalidInput(f"train_limit must be a positive integer, got {train_limit}")
    device = torch.device(device)
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    size = info.input_size
    if name == "digits":
        bundle = _digits(batch_size, size, seed, train_limit)
    elif name in CIFAR_MEAN:
        bundle = _cifar(name, info.root, batch_size, size, seed, train_limit)
    elif name == "imagefolder":
        bundle = _imagefolder(info.root, batch_size, size, workers, device.type == "cuda", seed, train_limit)
    else:
        bundle = _fake(batch_size, size, workers, device.type == "cuda", seed, info.num_classes,
                       min(fake_size, train_limit or fake_size))
    if isinstance(bundle.train, TensorBatches):
        bundle = replace(bundle, train=bundle.train.to(device), val=bundle.val.to(device))
    return bundle


def _in_memory(name: str, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
               num_classes: int, batch_size: int, input_size: int, seed: int, train_limit: int | None, *, mean,
               std, shift: float, flip: bool) -> DataBundle:
    """Bundle uint8 train/val tensors resized to ``input_size``; random shifts up to ``shift`` of the side."""
    subset = stratified_subset(train[1], train_limit)
    if subset is not None:
        train = (train[0][subset], train[1][subset])
    train_images, val_images = (_resize_uint8(images, input_size) for images in (train[0], val[0]))
    pad = max(1, round(shift * input_size))
    return DataBundle(
        name,
        TensorBatches(train_images, train[1], batch_size, mean=mean, std=std, train=True, pad=pad, flip=flip,
                      seed=seed),
        TensorBatches(val_images, val[1], batch_size, mean=mean, std=std),
        num_classes, input_size, len(train[1]), len(val[1]))


def _resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits file scikit-learn ships (pixels 0-16 as rows of 64, labels), read without importing sklearn.

    ``import sklearn`` takes ~1.7 s here, paid again by every Ray worker; ``load_digits`` only parses this file.
    """
    sklearn_dir = Path(importlib.util.find_spec("sklearn").submodule_search_locations[0])
    rows = np.loadtxt(sklearn_dir / "datasets" / "data" / "digits.csv.gz",
                      delimiter=",", dtype=np.float32)
    return rows[:, :-1], rows[:, -1].astype(np.int64)


def _digits(batch_size: int, input_size: int, seed: int, train_limit: int | None) -> DataBundle:
    """scikit-learn's 1,797 bundled 8x8 digits: upsampled, grey to 3 channels, a fixed stratified 80/20 split."""
    pixels, target = read_digits()
    images = torch.from_numpy(pixels).float().mul_(255 / 16).round_().to(torch.uint8).view(-1, 1, 8, 8)
    images = images.expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(target).long()
    generator = torch.Generator().manual_seed(_DIGITS_SPLIT_SEED)
    val_index = []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        val_index.append(members[:round(len(members) * DIGITS_VAL_FRACTION)])
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    is_val[torch.cat(val_index)] = True
    # Digits are centred and not mirror-symmetric: small shifts (2 of 32 pixels), no flips.
    return _in_memory("digits", (images[~is_val], labels[~is_val]), (images[is_val], labels[is_val]), 10,
                      batch_size, input_size, seed, train_limit, mean=DIGITS_MEAN, std=DIGITS_STD, shift=2 / 32, flip=False)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batch files (dicts of lists and numpy arrays) and refuses anything else."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


_CIFAR_FILES = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100),
}


def _cifar_directory(name: str, root: Path) -> Path:
    folder, train_files, test_files = _CIFAR_FILES[name][:3]
    directory = root if root.name == folder else root / folder
    missing = [f for f in train_files + test_files if not (directory / f).is_file()]
    if missing:
        raise InvalidInput(f"{name} not found: expected {directory}/ holding {', '.join(train_files + test_files)} "
                           f"(the python version, as torchvision unpacks it); pass --data-root DIR, or --download "
                           f"when online")
    return directory


def _cifar(name: str, root: Path, batch_size: int, input_size: int, seed: int,
           train_limit: int | None) -> DataBundle:
    """CIFAR from the python-version batch files, the layout torchvision's CIFAR10/100 download unpacks."""
    _, train_files, test_files, label_key, num_classes = _CIFAR_FILES[name]
    directory = _cifar_directory(name, root)

    def read(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = [], []
        for file in files:
            try:
                with open(directory / file, "rb") as handle:
                    batch = _ArrayUnpickler(handle, encoding="bytes").load()
                data = torch.as_tensor(batch[b"data"], dtype=torch.uint8).reshape(-1, 3, 32, 32)
                target = torch.as_tensor(batch[label_key], dtype=torch.long)
            except Exception as error:
                raise InvalidInput(f"corrupt {name} file {directory / file}: {type(error).__name__}: {error}; "
                                   f"delete {directory} and unpack it again") from None
            if len(target) != len(data) or len(target) == 0 or int(target.min()) < 0 or int(target.max()) >= num_classes:
                raise InvalidInput(f"corrupt {name} file {directory / file}: {len(data)} images, {len(target)} "
                                   f"labels, labels must lie in 0..{num_classes - 1}")
            images.append(data)
            labels.append(target)
        return torch.cat(images), torch.cat(labels)

    return _in_memory(name, read(train_files), read(test_files), num_classes, batch_size, input_size, seed,
                      train_limit, mean=CIFAR_MEAN[name], std=CIFAR_STD[name], shift=4 / 32, flip=True)


def _download_cifar(name: str, root: Path) -> None:
    from torchvision import datasets

    folder = _CIFAR_FILES[name][0]
    if (root / folder).is_dir() or root.name == folder:
        return
    dataset = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    existed = root.exists()
    try:
        for train in (True, False):
            dataset(str(root), train=train, download=True)
    except Exception as error:
        if not existed:  # leave nothing half-downloaded behind
            shutil.rmtree(root, ignore_errors=True)
        raise InvalidInput(f"could not download {name} into {root} ({type(error).__name__}: {error}); put the "
                           f"unpacked python-version folder under --data-root instead") from None


def _imagefolder_classes(root: Path) -> list[str]:
    """The class folders shared by ``root/train`` and ``root/val`` (an error when they differ or are missing)."""
    classes = {}
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise InvalidInput(f"imagefolder needs {root / split}/ with one folder per class (and "
                               f"{root / ('val' if split == 'train' else 'train')}/ beside it); pass --data-root DIR")
        classes[split] = sorted(entry.name for entry in os.scandir(root / split) if entry.is_dir())
    if not classes["train"]:
        raise InvalidInput(f"imagefolder at {root}: train/ holds no class folders")
    if classes["train"] != classes["val"]:
        only = sorted(set(classes["train"]) ^ set(classes["val"]))
        raise InvalidInput(f"imagefolder at {root}: train/ and val/ hold different classes (only in one: "
                           f"{', '.join(only[:5])}{', ...' if len(only) > 5 else ''})")
    return classes["train"]


def _imagefolder(root: Path, batch_size: int, input_size: int, workers: int, pin_memory: bool, seed: int,
                 train_limit: int | None) -> DataBundle:
    """``root/train/<class>/*`` and ``root/val/<class>/*`` with the standard ImageNet transforms."""
    from torchvision import datasets, transforms

    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_transform = transforms.Compose([transforms.RandomResizedCrop(input_size), transforms.RandomHorizontalFlip(),
                                          transforms.ToTensor(), normalize])
    val_transform = transforms.Compose([transforms.Resize(round(input_size / 0.875)),
                                        transforms.CenterCrop(input_size), transforms.ToTensor(), normalize])
    try:
        train = datasets.ImageFolder(str(root / "train"), train_transform)
        val = datasets.ImageFolder(str(root / "val"), val_transform)
    except (FileNotFoundError, OSError) as error:
        raise InvalidInput(f"imagefolder at {root}: {error}") from None
    subset = stratified_subset(train.targets, train_limit)
    if subset is not None:
        train = torch.utils.data.Subset(train, subset)
    return DataBundle("imagefolder",
                      _SeededLoader(train, batch_size, train=True, workers=workers, pin_memory=pin_memory, seed=seed),
                      _SeededLoader(val, batch_size, train=False, workers=workers, pin_memory=pin_memory, seed=seed),
                      len(val.classes), input_size, len(train), len(val))


def _fake(batch_size: int, input_size: int, workers: int, pin_memory: bool, seed: int, num_classes: int,
          size: int) -> DataBundle:
    """torchvision FakeData: random images, for measuring throughput only."""
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    shape = (3, input_size, input_size)
    train = datasets.FakeData(size, shape, num_classes, transform, random_offset=seed * 100_003)
    val = datasets.FakeData(max(size // 8, batch_size), shape, num_classes, transform,
                            random_offset=seed * 100_003 + size)
    return DataBundle("fake",
                      _SeededLoader(train, batch_size, train=True, workers=workers, pin_memory=pin_memory, seed=seed),
                      _SeededLoader(val, batch_size, train=False, workers=workers, pin_memory=pin_memory, seed=seed),
                      num_classes, input_size, len(train), len(val), synthetic=True)
