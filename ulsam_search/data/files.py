"""The data sets streamed from files or generated: ``imagefolder`` (image files through DataLoader workers with the
standard ImageNet transforms) and ``fake`` (torchvision's FakeData: random images for throughput measurements only;
its accuracy means nothing and every output says so). Each registers itself; torch is imported only on loading."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidInput
from .registry import DatasetInfo, DatasetSpec, LoadOptions, register_dataset

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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


def _imagefolder_info(root: Path, num_classes: int | None, download: bool) -> tuple[int, int]:
    return len(_imagefolder_classes(root)), 224


def _load_imagefolder(info: DatasetInfo, options: LoadOptions):
    """``root/train/<class>/*`` and ``root/val/<class>/*`` with the standard ImageNet transforms."""
    from torchvision import datasets, transforms

    from .batches import seeded_bundle

    root, input_size = info.root, info.input_size
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
    return seeded_bundle(info, options, train, val, targets=train.targets)


def _fake_info(root: Path, num_classes: int | None, download: bool) -> tuple[int, int]:
    return num_classes or 1000, 224


def _load_fake(info: DatasetInfo, options: LoadOptions):
    """torchvision FakeData: random images, for measuring throughput only (``train_limit`` caps their number)."""
    from torchvision import datasets, transforms

    from .batches import seeded_bundle

    size, seed = min(options.fake_size, options.train_limit or options.fake_size), options.seed
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    shape = (3, info.input_size, info.input_size)
    train = datasets.FakeData(size, shape, info.num_classes, transform, random_offset=seed * 100_003)
    val = datasets.FakeData(max(size // 8, options.batch_size), shape, info.num_classes, transform,
                            random_offset=seed * 100_003 + size)
    return seeded_bundle(info, options, train, val, synthetic=True)


register_dataset(DatasetSpec("imagefolder", True, _imagefolder_info, _load_imagefolder))
register_dataset(DatasetSpec("fake", False, _fake_info, _load_fake))
