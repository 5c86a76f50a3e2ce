"""The samplers registry: the Optuna samplers a config may name (``sampler.name``), each the one place to add one.

Import-light on purpose (no torch, Ray or Optuna until a sampler is made): ``config`` reads the names from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from ..errors import InvalidInput
from .._registry import Registry
from ._private import picklable_sampler

if TYPE_CHECKING:
    from ..config import SearchConfig
    from .space import SearchSpace

# (seed, options, space, first trial's params or None) -> an Optuna sampler
SamplerFactory = Callable[[int, dict, "SearchSpace", "dict | None"], object]


@dataclass(frozen=True)
class Sampler:
    make: SamplerFactory
    # Walks a fixed list of points (the grid): it keeps its seed on resume (the seed orders the points and the
    # points visited are skipped) and puts the first trial's params first itself.
    enumerates: bool = False


SAMPLERS: Registry[Sampler] = Registry("sampler")
list_samplers = SAMPLERS.names


def register_sampler(name: str, make: SamplerFactory, enumerates: bool = False) -> Sampler:
    return SAMPLERS.register(name, Sampler(make, enumerates))


def get_sampler(name: str) -> Sampler:
    return SAMPLERS[name]


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
register_sampler("grid", _grid, enumerates=True)


def baseline_params(config: SearchConfig, space: SearchSpace) -> dict | None:
    """The first trial of a new run: the backbone without ULSAM, where the space holds it and the config wants it."""
    return space.baseline_params() if config.space.baseline else None


def make_sampler(config: SearchConfig, space: SearchSpace, trials_so_far: int = 0):
    """The Optuna sampler the config names, always passed explicitly (Optuna 5 changed the MO default).

    A resumed run seeds it with ``seed + trials_so_far``: the same seed would replay the first proposals. Not a
    sampler that enumerates its points (the grid): its seed orders them and it skips the points already visited.
    """
    options = dict(config.sampler.options)
    sampler = get_sampler(config.sampler.name)
    seed = config.sampler.seed + (0 if sampler.enumerates else trials_so_far)
    try:
        return picklable_sampler(sampler.make(seed, options, space, baseline_params(config, space)))
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
