"""Where a proposal goes (train, relaunch, infeasible, duplicate, wait), decided without Ray or Optuna."""

import math
from types import SimpleNamespace

import pytest

from ulsam_search.models.arch import Architecture
from ulsam_search.search import routing
from ulsam_search.search.objectives import get_objective
from ulsam_search.search.routing import (Proposal, infeasible_message, proposal_of, route_proposal, untrained_values,
                                         violations)

ARCH = Architecture.parse("mobilenet_v1@0.25:8+2")
COST = SimpleNamespace(macs=1_000, params=100)
NO_LIMITS = SimpleNamespace(max_macs=None, max_params=None, max_latency_ms=None)


def limits(**given):
    return SimpleNamespace(**{**vars(NO_LIMITS), **given})


def proposal(relaunch=False):
    return Proposal(ARCH, 0, str(ARCH), relaunch)


def route(latency=None, limits=NO_LIMITS, finished=None, running=None, relaunch=False):
    return route_proposal(proposal(relaunch), COST, latency, limits, finished or {}, running or {})


def test_a_new_proposal_within_every_limit_trains():
    assert route().action == routing.TRAIN
    assert route(limits=limits(max_macs=1_000, max_params=100, max_latency_ms=2.0), latency=2.0).action == routing.TRAIN


def test_an_interrupted_trial_of_an_earlier_attempt_is_relaunched():
    assert route(relaunch=True).action == routing.RELAUNCH


@pytest.mark.parametrize("given, latency, broken", [
    ({"max_macs": 999}, None, {"max_macs": 1}),
    ({"max_params": 90}, None, {"max_params": 10}),
    ({"max_latency_ms": 1.5}, 2.0, {"max_latency_ms": 0.5}),
    ({"max_macs": 500, "max_params": 50}, None, {"max_macs": 500, "max_params": 50}),
])
def test_a_proposal_breaking_a_cost_limit_is_infeasible_by_how_much(given, latency, broken):
    decided = route(latency=latency, limits=limits(**given))
    assert decided.action == routing.INFEASIBLE and dict(decided.violations) == broken


def test_an_unmeasured_latency_breaks_no_limit_before_training():
    assert route(latency=None, limits=limits(max_latency_ms=1e-6)).action == routing.TRAIN


def test_infeasible_comes_first_even_for_a_finished_or_relaunched_experiment():
    decided = route(limits=limits(max_macs=1), finished={str(ARCH): "earlier"}, relaunch=True)
    assert decided.action == routing.INFEASIBLE


def test_an_experiment_already_finished_is_a_duplicate_of_it():
    decided = route(finished={str(ARCH): "trial 3"}, running={str(ARCH): 4})
    assert decided.action == routing.DUPLICATE and decided.twin == "trial 3"


def test_an_experiment_still_training_waits_for_its_twin():
    assert route(running={str(ARCH): 4}).action == routing.WAIT
    assert route(running={"mobilenet_v1@0.25": 4}).action == routing.TRAIN  # another experiment


def test_an_experiment_is_its_arch_and_seed():
    search = SimpleNamespace(from_params=lambda params: ARCH, seed_of=lambda params: None)
    cells = SimpleNamespace(from_params=lambda params: ARCH, seed_of=lambda params: 2)
    assert proposal_of(search, {}, 7) == Proposal(ARCH, 7, str(ARCH))
    assert proposal_of(cells, {}, 7, relaunch=True) == Proposal(ARCH, 2, f"{ARCH} #2", True)
    # the same ARCH with another seed is another experiment: it trains
    decided = route_proposal(proposal_of(cells, {}, 7), COST, None, NO_LIMITS, {str(ARCH): "seed 0"}, {})
    assert decided.action == routing.TRAIN


def test_what_an_infeasible_proposal_is_told_and_says():
    given = limits(max_macs=999, max_params=90, max_latency_ms=1.5)
    broken = violations(COST, 2.0, given)
    assert infeasible_message(broken, COST, 2.0, given) == \
        "MACs 1,000 > max_macs 999; params 100 > max_params 90; latency 2 ms > max_latency_ms 1.5"
    objectives = [get_objective(name) for name in ("top1", "macs", "params", "latency")]
    assert untrained_values(objectives, COST, None) == [0.0, 1000.0, 100.0, math.inf]
    assert untrained_values(objectives, COST, 2.0) == [0.0, 1000.0, 100.0, 2.0]
