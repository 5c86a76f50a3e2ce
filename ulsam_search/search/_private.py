"""The one adapter over Ray's and Optuna's private attributes: every such access in the package goes through here.

The searcher needs what Ray's ``OptunaSearch`` keeps to itself (its study, its Tune-id -> Optuna-trial map), the
grid sampler reorders Optuna's shuffled grid, the Pareto test and the hypervolume are Optuna's own, and a
sampler that holds a thread lock is made picklable. None of these is public API, so
each accessor checks the installed versions against the ranges this was written for and names the attribute when
it is gone, instead of an ``AttributeError`` deep inside a trial.

Import-light: Ray and Optuna are imported only when an accessor is called.
"""

from __future__ import annotations

import importlib.metadata
import re
import threading
import types
import warnings
from functools import cache

# library -> (lowest version written for, first version not yet checked: a major release may move anything)
SUPPORTED = {"ray": ((2, 30), (3, 0)), "optuna": ((5, 0), (6, 0))}


class PrivateAPIError(RuntimeError):
    """A private attribute this package relies on is missing from the installed library."""


def _release(version: str) -> tuple[int, int]:
    """(major, minor) of a version string such as ``2.60.0`` or ``3.0.0.dev0``."""
    major, minor = re.match(r"(\d+)(?:\.(\d+))?", version).groups()
    return int(major), int(minor or 0)


def check_version(library: str, version: str | None = None) -> None:
    """Raise below the supported range (the private attributes are known to differ there); warn above it."""
    version = version or importlib.metadata.version(library)
    low, high = SUPPORTED[library]
    release = _release(version)
    if release < low:
        raise PrivateAPIError(f"{library} {version} is older than {low[0]}.{low[1]}, the oldest this package "
                              f"supports (pip install '{library}>={low[0]}.{low[1]}')")
    if release >= high:
        warnings.warn(f"{library} {version} is newer than the {high[0]}.x this package was checked against; if a "
                      f"search fails on a missing attribute, install {library}<{high[0]}", stacklevel=3)


@cache
def _checked(library: str) -> None:
    check_version(library)


def _attribute(owner: object, name: str, library: str):
    """``owner.<name>``, or an error naming the attribute, its owner's class and the installed version."""
    _checked(library)
    try:
        return getattr(owner, name)
    except AttributeError:
        version = importlib.metadata.version(library)
        where = owner.__name__ if isinstance(owner, types.ModuleType) else \
            f"{type(owner).__module__}.{type(owner).__qualname__}"
        raise PrivateAPIError(f"{where}.{name} is missing in {library} {version}; this package was written for "
                              f"{library} {_range(library)}") from None


def _range(library: str) -> str:
    (low_major, low_minor), (high_major, _) = SUPPORTED[library]
    return f">={low_major}.{low_minor},<{high_major}"


# Ray Tune's OptunaSearch


def searcher_study(searcher):
    """The Optuna study a Ray ``OptunaSearch`` asks and tells (``OptunaSearch._ot_study``)."""
    return _attribute(searcher, "_ot_study", "ray")


def searcher_trials(searcher) -> dict:
    """Tune trial id -> live Optuna trial of a Ray ``OptunaSearch`` (``OptunaSearch._ot_trials``), to edit in place."""
    return _attribute(searcher, "_ot_trials", "ray")


# Optuna


def trial_id(trial) -> int:
    """The storage's id of a live or frozen Optuna trial (``Trial._trial_id`` / ``FrozenTrial._trial_id``)."""
    return _attribute(trial, "_trial_id", "optuna")


def frozen_trial(study, trial):
    """The stored (frozen) state of a live trial (``Study._storage``)."""
    return _attribute(study, "_storage", "optuna").get_trial(trial_id(trial))


def live_trial(study, frozen):
    """A live trial over a stored one, to tell it how it ended (a RUNNING trial of an interrupted attempt)."""
    import optuna

    return optuna.trial.Trial(study, trial_id(frozen))


def grid_points(sampler) -> list[tuple]:
    """A ``GridSampler``'s grid in visiting order, to reorder in place (``_all_grids``, one tuple per point)."""
    return _attribute(sampler, "_all_grids", "optuna")


def grid_param_names(sampler) -> list[str]:
    """The parameter names in the order of a grid point's values (``GridSampler._param_names``)."""
    return _attribute(sampler, "_param_names", "optuna")


def is_pareto_front(costs):
    """Optuna's non-dominated test over ``costs`` (n x k, to minimise), the one ``Study.best_trials`` uses;
    equal rows are all kept (``optuna.study._multi_objective._is_pareto_front``)."""
    import optuna.study._multi_objective as multi_objective

    return _attribute(multi_objective, "_is_pareto_front", "optuna")(costs, assume_unique_lexsorted=False)


def compute_hypervolume(losses, reference):
    """Optuna's exact hypervolume of ``losses`` (n x k, to minimise) against ``reference``
    (``optuna._hypervolume.compute_hypervolume``, what ``optuna.visualization`` plots)."""
    import optuna._hypervolume as hypervolume

    return _attribute(hypervolume, "compute_hypervolume", "optuna")(losses, reference)


def picklable_sampler(sampler):
    """``sampler`` made picklable with the searcher Ray Tune saves: Optuna 5.1's NSGA-II holds a thread lock in its
    private state, which cannot be pickled, so its class becomes a subclass that leaves the locks out and makes
    fresh ones on loading."""
    _checked("optuna")
    lock_types = (type(threading.Lock()), type(threading.RLock()))
    reentrant = {key: isinstance(value, lock_types[1]) for key, value in vars(sampler).items()
                 if isinstance(value, lock_types)}
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
