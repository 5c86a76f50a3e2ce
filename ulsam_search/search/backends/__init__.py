"""Trial backends: where a trial's results come from (``backend.name``), in syne-tune's spirit.

A backend turns one proposal into its epochs: ``train`` trains the architecture, ``table`` answers from a tabular
benchmark. Everything around it (the result every epoch carries, the latency limit, failures, Ray, Optuna) is the
same for both (``search.trial``), so a search over a table behaves as the search it stands in for.

Import-light on purpose (no torch, Ray or Optuna until a backend is made): ``config`` reads the names from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .._registry import Registry

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


BACKENDS: Registry[Callable[[], TrialBackend]] = Registry("backend")
register_backend, list_backends = BACKENDS.register, BACKENDS.names


def get_backend(name: str) -> TrialBackend:
    return BACKENDS[name]()


def _train() -> TrialBackend:
    from .train import TrainBackend

    return TrainBackend()


def _table() -> TrialBackend:
    from .table import TableBackend

    return TableBackend()


register_backend("train", _train)
register_backend("table", _table)
