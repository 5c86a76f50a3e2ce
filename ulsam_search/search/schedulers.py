"""The schedulers registry: the Ray Tune trial schedulers a config may name (``scheduler.name``).

Import-light on purpose (no torch, Ray or Optuna until a scheduler is made): ``config`` reads the names from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .._registry import Registry
from .objectives import get_objective

if TYPE_CHECKING:
    from ..config import SearchConfig

# name -> config -> a Tune scheduler, or None for Tune's default (FIFO: every trial runs its whole budget)
SchedulerFactory = Callable[["SearchConfig"], object]
SCHEDULERS: Registry[SchedulerFactory] = Registry("scheduler")
register_scheduler, list_schedulers = SCHEDULERS.register, SCHEDULERS.names


def make_scheduler(config: SearchConfig):
    """The Tune scheduler ``config.scheduler`` names (None: Tune's FIFO)."""
    return SCHEDULERS[config.scheduler.name](config)


def _mo_asha(config: SearchConfig):
    from .mo_asha import MultiObjectiveASHA

    objectives = [(get_objective(o).column, get_objective(o).direction) for o in config.objectives]
    return MultiObjectiveASHA(objectives, config.training.epochs, grace_period=config.scheduler.grace_period,
                              reduction_factor=config.scheduler.reduction_factor)


register_scheduler("fifo", lambda config: None)
register_scheduler("mo-asha", _mo_asha)
