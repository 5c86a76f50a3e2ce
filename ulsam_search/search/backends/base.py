"""What every trial backend is: the interface and the trial it runs (its own module, so the backends and the
registry import it without importing each other)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ...config import SearchConfig
    from ...train import EpochMetrics
    from ..space import SearchSpace
    from ..trial import TrialJob


@dataclass
class TrialRun:
    """One trial as a backend runs it: its epochs still to come (nothing runs before the first is asked for, so a
    latency limit can stop the trial first), how to time its model, and the epochs a checkpoint already held."""

    epochs: Iterator[EpochMetrics]
    time_model: Callable[[], float]
    done: list[dict] = field(default_factory=list)


def epoch_record(epoch: EpochMetrics | dict) -> dict:
    """What a trial's ``history`` keeps of an epoch (the tabular benchmark is built from it)."""
    values = epoch if isinstance(epoch, dict) else epoch.__dict__
    return {key: values[key] for key in ("epoch", "top1", "top5", "val_loss", "train_seconds")}


class TrialBackend(Protocol):
    def check(self, config: SearchConfig, space: SearchSpace) -> None:
        """Refuse (``InvalidInput``) on the driver, before a run directory exists, a config it cannot answer."""

    def start(self, trial_config: dict, job: TrialJob, device: str, seed: int) -> TrialRun:
        """Start the trial ``trial_config`` (its ARCH and number) on a worker."""
