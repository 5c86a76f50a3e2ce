"""The samplers registry: the Optuna samplers a config may name (``sampler.name``), each the one place to add one.

Import-light on purpose (no torch, Ray or Optuna until a sampler is made): ``config`` reads the names from here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from ..errors import InvalidInput
from .._registry import Registry

if TYPE_CHECKING:
    from ..config import SearchConfig
    from .space import SearchSpace

# name -> (seed, options, space, first trial's params or None) -> an Optuna sampler
SamplerFactory = Callable[[int, dict, "SearchSpace", "dict | None"], object]
SAMPLERS: Registry[SamplerFactory] = Registry("sampler")
register_sampler, list_samplers = SAMPLERS.register, SAMPLERS.names


def _optuna_sampler(class_name: str) -> SamplerFactory:
    def make(seed: int, options: dict, space: SearchSpace, first: dict | None):
        import optuna

        return getattr(optuna.samplers, class_name)(seed=seed, **options)

    return make


def _grid(seed: int, options: dict, space: SearchSpace, first: dict | None):
    return grid_sampler_class()(space.grid(), seed=seed, first=first, **options)


register_sampler("nsga2", _optuna_sampler("NSGAIISampler"))
register_sampler("tpe", _optuna_sampler("TPESampler"))
register_sampler("gp", _optuna_sampler("GPSampler"))
register_sampler("random", _optuna_sampler("RandomSampler"))
register_sampler("grid", _grid)


def baseline_params(config: SearchConfig, space: SearchSpace) -> dict | None:
    """The first trial of a new run: the backbone without ULSAM, where the space holds it and the config wants it."""
    return space.baseline_params() if config.space.baseline else None


def make_sampler(config: SearchConfig, space: SearchSpace, trials_so_far: int = 0):
    """The Optuna sampler the config names, always passed explicitly (Optuna 5 changed the MO default).

    A resumed run seeds it with ``seed + trials_so_far``: the same seed would replay the first proposals. Not the
    grid sampler: its seed shuffles the grid, trial k takes grid point k, and it skips the points already visited.
    """
    options = dict(config.sampler.options)
    seed = config.sampler.seed + (trials_so_far if config.sampler.name != "grid" else 0)
    factory = SAMPLERS[config.sampler.name]
    try:
        return _picklable(factory(seed, options, space, baseline_params(config, space)))
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"sampler.options: {config.sampler.name} refuses {options}: {error}") from None


@cache
def grid_sampler_class():
    """Optuna's grid sampler that visits ``first`` (the baseline) first, and without ``Study.stop()`` on the last
    grid point: outside ``optimize()`` that raises from ``tell`` after the trial is stored, so the run's table missed
    its last trial. The runner stops at ``n_trials`` itself.

    Trial k takes grid point k of the seeded shuffle, and an enqueued trial takes none, so an enqueued baseline would
    be proposed again and leave one grid point unvisited; moving it to the front does neither. (A class made on first
    use: Optuna is imported only when a grid search runs.)
    """
    import optuna

    from ._private import grid_param_names, grid_points

    class GridSampler(optuna.samplers.GridSampler):
        def __init__(self, search_space, seed: int, first: dict | None = None) -> None:
            super().__init__(search_space, seed=seed)
            if first is not None:
                point = tuple(first[name] for name in grid_param_names(self))
                grid = grid_points(self)
                grid.remove(point)
                grid.insert(0, point)

        def after_trial(self, study, trial, state, values) -> None:
            pass

    return GridSampler


def _picklable(sampler):
    """``sampler`` made picklable with the searcher Ray Tune saves: Optuna 5.1's NSGA-II holds a thread lock, which
    cannot be pickled, so its class becomes a subclass that leaves the locks out and makes fresh ones on loading."""
    reentrant = {key: isinstance(value, type(threading.RLock())) for key, value in vars(sampler).items()
                 if isinstance(value, (type(threading.Lock()), type(threading.RLock())))}
    if not reentrant:
        return sampler

    class Picklable(type(sampler)):
        def __getstate__(self):
            return {key: value for key, value in self.__dict__.items() if key not in reentrant}

        def __setstate__(self, state):
            self.__dict__.update(state)
            for key, rlock in reentrant.items():
                setattr(self, key, threading.RLock() if rlock else threading.Lock())

    Picklable.__name__ = Picklable.__qualname__ = type(sampler).__name__
    sampler.__class__ = Picklable
    return sampler
