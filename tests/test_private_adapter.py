"""Every accessor of Ray's and Optuna's private attributes against the installed libraries, and the version check."""

import math
import subprocess
import sys
import threading
import warnings

import numpy as np
import optuna
import pytest
from ray import cloudpickle

from ulsam_search.search import _private
from ulsam_search.search._private import PrivateAPIError, check_version


def test_the_installed_ray_and_optuna_are_in_the_supported_ranges():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_version("ray")
        check_version("optuna")


def test_a_version_below_the_range_is_refused_and_one_above_it_warned_about():
    with pytest.raises(PrivateAPIError, match=r"optuna 4\.9\.0 is older than 5\.0"):
        check_version("optuna", "4.9.0")
    with pytest.raises(PrivateAPIError, match=r"ray 2\.9\.3 is older than 2\.30"):
        check_version("ray", "2.9.3")
    with pytest.warns(UserWarning, match=r"ray 3\.0\.0\.dev0 is newer"):
        check_version("ray", "3.0.0.dev0")
    check_version("ray", "2.30.0")


def test_a_missing_attribute_is_named_with_its_owner_and_the_installed_version():
    with pytest.raises(PrivateAPIError, match=r"optuna\.samplers\._random\.RandomSampler\._all_grids is missing in "
                                              r"optuna [0-9.]+; this package was written for optuna >=5\.0,<6"):
        _private.grid_points(optuna.samplers.RandomSampler())


def test_the_optuna_search_accessors():
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space={"x": optuna.distributions.CategoricalDistribution(["a", "b"])}, metric="y",
                            mode="max", sampler=optuna.samplers.RandomSampler(seed=0))
    study = _private.searcher_study(searcher)
    assert isinstance(study, optuna.Study)
    assert _private.searcher_trials(searcher) == {}
    searcher.suggest("tune-1")
    [(tune_id, trial)] = _private.searcher_trials(searcher).items()
    assert tune_id == "tune-1" and isinstance(trial, optuna.Trial)


def test_the_trial_accessors():
    study = optuna.create_study()
    live = study.ask()
    live.set_user_attr("arch", "x")
    frozen = _private.frozen_trial(study, live)
    assert isinstance(frozen, optuna.trial.FrozenTrial) and frozen.user_attrs == {"arch": "x"}
    assert _private.trial_id(frozen) == _private.trial_id(live)
    again = _private.live_trial(study, frozen)
    study.tell(again, 1.0)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE and study.trials[0].value == 1.0


def test_the_grid_accessors():
    sampler = optuna.samplers.GridSampler({"b": ["x", "y"], "a": [1, 2, 3]}, seed=0)
    assert _private.grid_param_names(sampler) == ["a", "b"]
    points = _private.grid_points(sampler)
    assert sorted(points) == [(1, "x"), (1, "y"), (2, "x"), (2, "y"), (3, "x"), (3, "y")]
    last = points[-1]
    points.insert(0, points.pop())  # reordered in place, as the grid sampler puts the baseline first
    assert _private.grid_points(sampler)[0] == last and len(_private.grid_points(sampler)) == 6


def test_the_pareto_front_accessor():
    costs = np.array([[1.0, 3.0], [2.0, 2.0], [2.0, 2.0], [3.0, 3.0], [3.0, 1.0]])
    assert _private.is_pareto_front(costs).tolist() == [True, True, True, False, True]


def test_the_registries_and_the_package_import_neither_torch_ray_nor_optuna():
    code = ("import sys\n"
            "import ulsam_search.search, ulsam_search.search.objectives, ulsam_search.search.samplers\n"
            "import ulsam_search.search.schedulers, ulsam_search.search.backends, ulsam_search.search._private\n"
            "print(sorted(m for m in ('torch', 'ray', 'optuna', 'ulsam_search.config') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_hypervolume_accessor():
    # Two points in the unit box against (1, 1): 0.5 x 0.8 + 0.8 x 0.5 - 0.5 x 0.5 = 0.55.
    assert math.isclose(_private.compute_hypervolume(np.array([[0.5, 0.2], [0.2, 0.5]]), np.ones(2)), 0.55)


def test_a_sampler_holding_a_lock_pickles_and_gets_fresh_locks():
    sampler = _private.picklable_sampler(optuna.samplers.NSGAIISampler(seed=0))
    lock_types = (type(threading.Lock()), type(threading.RLock()))
    locks = {key: type(value) for key, value in vars(sampler).items() if isinstance(value, lock_types)}
    assert locks  # Optuna 5's NSGA-II holds one: the reason the adapter exists
    again = cloudpickle.loads(cloudpickle.dumps(sampler))  # as Ray Tune saves the searcher
    assert type(again).__name__ == "NSGAIISampler" and isinstance(again, optuna.samplers.NSGAIISampler)
    assert {key: type(getattr(again, key)) for key in locks} == locks and all(
        getattr(again, key) is not getattr(sampler, key) for key in locks)
    random = optuna.samplers.RandomSampler(seed=0)
    assert _private.picklable_sampler(random) is random and type(random) is optuna.samplers.RandomSampler
