"""Training one architecture: ``settings`` (what a run is asked for and reports; torch-free), ``loop`` (``fit``,
evaluation, schedule, precision), ``checkpoints`` (save, resume, pretrained weights) and ``progress``. Names are
imported on first use, so importing this package, or reading ``TrainConfig``, imports no torch.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "AMP_MODES": ".settings", "DEVICES": ".settings", "OPTIMIZERS": ".settings", "RUNTIME_FIELDS": ".settings",
    "EpochMetrics": ".settings", "TrainConfig": ".settings", "TrainResult": ".settings",
    "TrainingDiverged": ".settings",
    "WarmupCosine": ".loop", "autocast_dtype": ".loop", "evaluate": ".loop", "fit": ".loop",
    "make_optimizer": ".loop", "native_bf16": ".loop", "resolve_device": ".loop", "resolve_runtime": ".loop",
    "seed_everything": ".loop", "train_epochs": ".loop",
    "CHECKPOINT_FORMAT": ".checkpoints", "load_checkpoint": ".checkpoints", "load_pretrained": ".checkpoints",
    "run_facts": ".checkpoints", "save_checkpoint": ".checkpoints",
    "EpochProgress": ".progress",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
