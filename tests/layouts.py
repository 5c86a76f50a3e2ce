"""Data on disk in the layouts the datasets read (CIFAR python batch files, ImageFolder trees of PNGs, state_dict
files), written by the tests themselves: nothing is downloaded."""

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_LAYOUT = {  # name: (folder, train files, test files, label key, classes), as torchvision unpacks them
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}


def write_cifar(root: Path, name: str, n_train: int = 20, n_test: int = 10, labels=None) -> Path:
    """CIFAR python batch files of random images under ``root``; ``labels`` fixes the training labels."""
    folder, train_files, test_files, key, classes = CIFAR_LAYOUT[name]
    directory = Path(root) / folder
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_labels = list(labels) if labels is not None else rng.integers(0, classes, n_train).tolist()
    per_file = len(train_labels) // len(train_files)
    chunks = [(f, train_labels[i * per_file:(i + 1) * per_file]) for i, f in enumerate(train_files)]
    chunks += [(f, rng.integers(0, classes, n_test).tolist()) for f in test_files]
    for file, targets in chunks:
        batch = {b"data": rng.integers(0, 256, (len(targets), 3072), dtype=np.uint8), key.encode(): targets}
        with open(directory / file, "wb") as handle:
            pickle.dump(batch, handle)
    return directory


def write_image(path: Path, colour, size=(40, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), colour, dtype=np.uint8)).save(path)


def write_imagefolder(root: Path, classes=("cat", "dog", "fox"), per_class=3, val_per_class=1, size=(40, 48)) -> Path:
    """``root/train/<class>/<i>.png`` and ``root/val/<class>/<i>.png``: flat images, a colour per class and index;
    ``classes`` is a list of names or a count (class folders ``c0000``, ``c0001``, ...)."""
    names = [f"c{k:04d}" for k in range(classes)] if isinstance(classes, int) else list(classes)
    for split, count in (("train", per_class), ("val", val_per_class)):
        for c, name in enumerate(names):
            for i in range(count):
                write_image(Path(root) / split / name / f"{i}.png", (60 * c + 10 * i) % 256, size)
    return Path(root)


def write_mobilenet_v2_state_dict(path: Path) -> Path:
    """torchvision's MobileNet-V2 state_dict (random weights, the layout of its ImageNet weights)."""
    import torch
    import torchvision

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    return path
