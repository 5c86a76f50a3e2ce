"""The small data sets held in memory as uint8 tensors: scikit-learn's digits (embedded) and CIFAR-10/100 (from
their python-version batch files). Each registers itself; torch and numpy are imported only when a set is loaded."""

from __future__ import annotations

import functools
import pickle
import shutil
from pathlib import Path

from ..errors import InvalidInput
from .registry import DatasetInfo, DatasetSpec, LoadOptions, package_file, register_dataset

CIFAR_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}
DIGITS_MEAN, DIGITS_STD = (0.305,) * 3, (0.324,) * 3  # measured on the 32x32 upsampled images
DIGITS_VAL_FRACTION = 0.2
_DIGITS_SPLIT_SEED = 20200301  # fixed: the split never changes with the training seed


def read_digits():
    """The digits file scikit-learn ships (pixels 0-16 as rows of 64, labels), read without importing sklearn.

    ``import sklearn`` takes ~1.7 s here, paid again by every Ray worker; ``load_digits`` only parses this file.
    """
    import numpy as np

    path = package_file("sklearn", "datasets/data/digits.csv.gz", "the digits data", "scikit-learn")
    rows = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return rows[:, :-1], rows[:, -1].astype(np.int64)


def _load_digits(info: DatasetInfo, options: LoadOptions):
    """scikit-learn's 1,797 bundled 8x8 digits: upsampled, grey to 3 channels, a fixed stratified 80/20 split."""
    import torch

    from .batches import in_memory_bundle

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
    return in_memory_bundle(info, options, (images[~is_val], labels[~is_val]), (images[is_val], labels[is_val]),
                            mean=DIGITS_MEAN, std=DIGITS_STD, shift=2 / 32, flip=False)


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


def _cifar_info(name: str, root: Path, num_classes: int | None, download: bool) -> tuple[int, int]:
    if download:
        _download_cifar(name, root)
    _cifar_directory(name, root)
    return _CIFAR_FILES[name][4], 32


def _load_cifar(info: DatasetInfo, options: LoadOptions):
    """CIFAR from the python-version batch files, the layout torchvision's CIFAR10/100 download unpacks."""
    import torch

    from .batches import in_memory_bundle

    name = info.name
    _, train_files, test_files, label_key, num_classes = _CIFAR_FILES[name]
    directory = _cifar_directory(name, info.root)

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

    return in_memory_bundle(info, options, read(train_files), read(test_files), mean=CIFAR_MEAN[name],
                            std=CIFAR_STD[name], shift=4 / 32, flip=True)


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



def _digits_info(root: Path, num_classes: int | None, download: bool) -> tuple[int, int]:
    return 10, 32


register_dataset(DatasetSpec("digits", False, _digits_info, _load_digits))
register_dataset(DatasetSpec("cifar10", True, functools.partial(_cifar_info, "cifar10"), _load_cifar))
register_dataset(DatasetSpec("cifar100", True, functools.partial(_cifar_info, "cifar100"), _load_cifar))
