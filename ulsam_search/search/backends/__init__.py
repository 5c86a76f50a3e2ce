"""Trial backends: where a trial's results come from (``backend.name``), in syne-tune's spirit.

A backend turns one proposal into its epochs: ``train`` trains the architecture, ``table`` answers from a tabular
benchmark. Everything around it (the result every epoch carries, the latency limit, failures, Ray, Optuna) is the
same for both (``search.trial``), so a search over a table behaves as the search it stands in for.

Import-light on purpose (no torch, Ray or Optuna until a backend is made): ``config`` reads the names from here.
"""

from __future__ import annotations

from collections.abc import Callable

from ..._registry import Registry
from .base import TrialBackend, TrialRun, epoch_record

__all__ = ["TrialBackend", "TrialRun", "epoch_record", "get_backend", "list_backends", "register_backend"]


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
