"""The samplers, schedulers and backends registries: the names a config may choose, and what each makes."""

import pytest

from ulsam_search.config import SearchConfig
from ulsam_search.errors import InvalidInput
from ulsam_search.search.backends import get_backend, list_backends, register_backend
from ulsam_search.search.samplers import get_sampler, list_samplers
from ulsam_search.search.schedulers import list_schedulers, make_scheduler


def test_the_names_a_config_may_choose_in_order():
    assert list_samplers() == ("nsga2", "tpe", "gp", "random", "grid")
    assert list_schedulers() == ("fifo", "mo-asha")
    assert list_backends() == ("train", "table")
    assert [name for name in list_samplers() if get_sampler(name).enumerates] == ["grid"]


def test_a_name_is_registered_once_and_an_unknown_one_is_bad_input():
    with pytest.raises(ValueError, match="backend 'train' is already registered"):
        register_backend("train", lambda: None)
    with pytest.raises(InvalidInput, match="unknown backend 'cloud'; valid: train, table"):
        get_backend("cloud")


def test_every_backend_has_the_trial_backend_interface():
    for name in list_backends():
        backend = get_backend(name)
        assert callable(backend.check) and callable(backend.start), name


def test_fifo_is_tunes_default_and_mo_asha_promotes_on_the_configs_objectives():
    assert make_scheduler(SearchConfig()) is None
    config = SearchConfig(objectives=["top1", "latency"], scheduler={"name": "mo-asha", "grace_period": 1},
                          training={"epochs": 4})
    scheduler = make_scheduler(config)
    assert scheduler.objectives == [("top1", "max"), ("latency_ms", "min")] and scheduler.rungs == [1, 2]
