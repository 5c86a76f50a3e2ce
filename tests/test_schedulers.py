import numpy as np
from ray.tune.schedulers import TrialScheduler

from ulsam_search.schedulers import MultiObjectiveASHA, nondominated_order

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def test_nondominated_order_fronts_then_crowding():
    # (top1 max, macs min): a, c, e are on the first front; b is dominated by a; d by everything on the front.
    values = np.array([[90, 10], [80, 12], [70, 5], [60, 20], [85, 8]])
    order = nondominated_order(values, ["max", "min"])
    assert set(order[:3]) == {0, 2, 4} and order[3:] == [1, 3]
    assert order[:2] == [0, 2] or order[:2] == [2, 0]  # the front's extremes (infinite crowding) come first


def test_mo_asha_promotes_the_pareto_front_and_stops_the_dominated():
    scheduler = MultiObjectiveASHA([("top1", "max"), ("macs", "min")], max_t=4, grace_period=1, reduction_factor=2)
    assert scheduler.rungs == [1, 2]
    assert scheduler.decide("a", {"epoch": 1, "top1": 50.0, "macs": 10}) == CONTINUE  # first at the rung
    assert scheduler.decide("b", {"epoch": 1, "top1": 40.0, "macs": 20}) == STOP  # dominated by a; keep 1 of 2
    # c is less accurate than a but cheaper: on the front, kept (keep 2 of 3).
    assert scheduler.decide("c", {"epoch": 1, "top1": 30.0, "macs": 5}) == CONTINUE
    assert scheduler.stopped == {"b"}
    # A single-metric ASHA would have stopped c at its rung; here only dominated trials go.
    assert scheduler.decide("a", {"epoch": 2, "top1": 60.0, "macs": 10}) == CONTINUE
    assert scheduler.decide("c", {"epoch": 2, "top1": 20.0, "macs": 25}) == STOP
    # The full budget, failed results and results between rungs never stop a trial.
    assert scheduler.decide("a", {"epoch": 4, "top1": 1.0, "macs": 99}) == CONTINUE
    assert scheduler.decide("d", {"epoch": 0, "error": "boom"}) == CONTINUE
    assert scheduler.decide("a", {"epoch": 3, "top1": 1.0, "macs": 99}) == CONTINUE


def test_mo_asha_never_stops_the_baseline_but_ranks_against_it():
    scheduler = MultiObjectiveASHA([("top1", "max"), ("macs", "min")], max_t=4, grace_period=1, reduction_factor=2)
    assert scheduler.decide("a", {"epoch": 1, "top1": 50.0, "macs": 10}) == CONTINUE
    # The baseline is dominated by a: recorded at the rung, yet it goes on.
    assert scheduler.decide("base", {"epoch": 1, "top1": 40.0, "macs": 20, "baseline": True}) == CONTINUE
    assert "base" in scheduler.recorded[1] and scheduler.stopped == set()
    assert scheduler.decide("b", {"epoch": 1, "top1": 30.0, "macs": 30}) == STOP  # behind a and the baseline
