"""What a training run is asked for and what it reports: ``TrainConfig`` and its choices, the per-epoch metrics.

Imports no torch, so that reading a config or listing the CLI's choices costs no torch import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InvalidInput

OPTIMIZERS = ("sgd", "adamw")
AMP_MODES = ("auto", "off", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
# Fields that change how fast a run goes, not what it computes: a resumed run may change them.
RUNTIME_FIELDS = ("device", "amp", "channels_last", "compile")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        super().__init__(f"training diverged: loss {loss} at epoch {epoch}, step {step}; lower the learning rate "
                         f"or clip gradients (--grad-clip)")
        self.epoch, self.step, self.loss = epoch, step, loss


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (``lr`` is for the whole batch, no scaling rule is applied)."""

    epochs: int = 10
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    warmup_epochs: float = 1.0
    min_lr: float = 0.0
    label_smoothing: float = 0.1
    grad_clip: float | None = None
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name, value, valid in (("optimizer", self.optimizer, OPTIMIZERS), ("amp", self.amp, AMP_MODES),
                                   ("device", self.device, DEVICES)):
            if value not in valid:
                raise InvalidInput(f"unknown {name} '{value}'; valid: {', '.join(valid)}")
        if self.epochs <= 0:
            raise InvalidInput(f"epochs must be a positive integer, got {self.epochs}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise InvalidInput(f"learning rate must be a positive number, got {self.lr}")
        for name in ("weight_decay", "warmup_epochs", "min_lr", "momentum"):
            if not 0 <= getattr(self, name) < math.inf:  # NaN fails this too
                raise InvalidInput(f"{name.replace('_', ' ')} must not be negative, got {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 1:
            raise InvalidInput(f"label smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise InvalidInput(f"gradient clipping norm must be positive, got {self.grad_clip}")


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch measured; top-1/top-5 are percentages on the validation split."""

    epoch: int
    train_loss: float
    val_loss: float
    top1: float
    top5: float
    lr: float
    train_seconds: float
    images_per_second: float
    checkpoint: str | None = None


@dataclass(frozen=True)
class TrainResult:
    """A finished run: the last epoch's metrics, the whole history and how fast it went."""

    history: tuple[EpochMetrics, ...]
    device: str
    seconds: float  # wall time of fit, evaluation included
    images_per_second: float  # training images per second of training steps

    @property
    def final(self) -> EpochMetrics:
        return self.history[-1]
