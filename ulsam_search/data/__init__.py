"""Datasets by name, from a registry: ``digits`` (embedded default), ``cifar10``, ``cifar100``, ``imagefolder`` and
``fake``; ``load_data`` turns one into train and validation batches.

``registry`` holds the specs (torch-free), ``batches`` the batch iterables and ``load_data``, ``memory`` the
in-memory sets (digits, CIFAR) and ``files`` the streamed ones (imagefolder, fake). Names are imported on first use,
so importing this package, or reading ``DATASETS``, imports no torch.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "DATASETS": ".registry", "DATASETS_ON_DISK": ".registry", "DEFAULT_DATA_ROOT": ".registry",
    "DatasetInfo": ".registry", "DatasetSpec": ".registry", "LoadOptions": ".registry", "data_root": ".registry",
    "dataset_info": ".registry", "get_dataset": ".registry", "is_small_input": ".registry",
    "list_datasets": ".registry", "register_dataset": ".registry",
    "Batches": ".batches", "DataBundle": ".batches", "TensorBatches": ".batches", "in_memory_bundle": ".batches",
    "load_data": ".batches", "seeded_bundle": ".batches", "stratified_subset": ".batches",
    "CIFAR_MEAN": ".memory", "CIFAR_STD": ".memory", "DIGITS_MEAN": ".memory", "DIGITS_STD": ".memory",
    "DIGITS_VAL_FRACTION": ".memory", "read_digits": ".memory",
    "IMAGENET_MEAN": ".files", "IMAGENET_STD": ".files",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
