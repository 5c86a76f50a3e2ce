"""The dataset registry: each data set's spec (read from a data root or not, how to describe it, how to load it).

Imports neither torch nor numpy, so that reading a config or the CLI's choices costs no torch import: the built-in
sets register themselves in ``memory`` and ``files``, which import torch only when a set is loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .._io import absolute
from .._registry import Registry
from ..errors import InvalidInput

DEFAULT_DATA_ROOT = "data"
# Each registers its sets on import, in the order DATASETS lists them.
_BUILTIN_MODULES = (".memory", ".files", ".mnist")


def package_file(package: str, relative: str, what: str, pip_name: str | None = None) -> Path:
    """A data file shipped inside an installed package, found without importing the package (an import costs
    seconds, paid again by every Ray worker); ``pip_name``: the distribution's name where it differs."""
    spec = importlib.util.find_spec(package)
    path = Path(spec.submodule_search_locations[0]) / relative if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise InvalidInput(f"{what} ships inside the {package} package: pip install {pip_name or package} (nothing "
                           "is downloaded at run time)")
    return path


def is_small_input(side: int) -> bool:
    """Whether images of this side want the stride-8 backbone (``small_input``): CIFAR and digits do."""
    return side <= 64


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The absolute data root: ``root``, else ``$ULSAM_SEARCH_DATA``, else ``./data``, against the working folder.

    Resolved where the command runs: Ray trials run in their own folders, so a relative path must not reach them.
    """
    chosen = root if root is not None else os.environ.get("ULSAM_SEARCH_DATA") or DEFAULT_DATA_ROOT
    return absolute(chosen)


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, found without loading it: enough to size a model and count its cost."""

    name: str
    root: Path
    num_classes: int
    input_size: int
    options: dict = field(default_factory=dict)  # the set's own options (``DatasetSpec.options``), defaults filled

    @property
    def small_input(self) -> bool:
        return is_small_input(self.input_size)


@dataclass(frozen=True)
class LoadOptions:
    """How to load a set, beyond what ``DatasetInfo`` says: the same arguments for every loader."""

    batch_size: int
    seed: int
    train_limit: int | None
    workers: int
    pin_memory: bool
    fake_size: int  # images ``fake`` generates


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset by name.

    ``info(root, num_classes, download, **options)`` checks cheaply that the set is there (files and folders, no
    images read) and returns its (class count, native image side); ``load(info, options)`` returns a
    ``DataBundle``. ``on_disk``: the set is read from a data root (``--data-root``). ``options``: the set's own
    options (``dataset.options`` in a config) with their defaults, all whole numbers.
    """

    name: str
    on_disk: bool
    info: Callable[..., tuple[int, int]]
    load: Callable[[DatasetInfo, LoadOptions], object]
    options: Mapping[str, int] = field(default_factory=dict)

    def with_defaults(self, given: Mapping[str, int] | None) -> dict[str, int]:
        """``given`` over the defaults; an unknown option or a value that is not a whole number >= 0 is bad input."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            valid = ", ".join(self.options) or "none"
            raise InvalidInput(f"unknown option '{unknown[0]}' for dataset {self.name}; valid: {valid}")
        for key, value in given.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"dataset option {key} must be a whole number >= 0, got {value!r}")
        return {**self.options, **given}


_SPECS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry; a name is registered once."""
    return _SPECS.register(spec.name, spec)


def _registry() -> Registry[DatasetSpec]:
    """The registry with the built-in sets in it (their modules are imported on first use, not here at import)."""
    for module in _BUILTIN_MODULES:
        importlib.import_module(module, __package__)
    return _SPECS


def list_datasets() -> list[str]:
    """The registered dataset names in registration order (the built-ins: digits, cifar10, cifar100, imagefolder,
    fake)."""
    return list(_registry().names())


def get_dataset(name: str) -> DatasetSpec:
    return _registry()[name]


def __getattr__(name: str) -> tuple[str, ...]:
    """``DATASETS`` (every name) and ``DATASETS_ON_DISK`` (those read from a data root), read from the registry."""
    if name == "DATASETS":
        return tuple(list_datasets())
    if name == "DATASETS_ON_DISK":
        return tuple(n for n, spec in _registry().items() if spec.on_disk)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dataset_info(name: str, root: str | os.PathLike | None = None, *, input_size: int | None = None,
                 num_classes: int | None = None, download: bool = False,
                 options: Mapping[str, int] | None = None) -> DatasetInfo:
    """Check that dataset ``name`` is there (cheaply: files and folders, no images read) and describe it.

    ``num_classes`` is checked against the data (for ``fake`` it sets the class count, default 1000).
    """
    spec = get_dataset(name)
    root = data_root(root)
    options = spec.with_defaults(options)
    found, side = spec.info(root, num_classes, download, **options)
    if num_classes is not None and num_classes != found:
        raise InvalidInput(f"dataset {name} has {found} classes but --num-classes is {num_classes}; "
                           f"drop --num-classes or pass {found}")
    return DatasetInfo(name, root, found, input_size or side, options)
